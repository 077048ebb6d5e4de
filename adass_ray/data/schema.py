"""Raw-input schemas: which columns of a raw table are label, categorical, numeric, multi-valued.

A schema is what ``adass-ray prepare --schema FILE`` reads (YAML) and what every built-in source
produces alongside its Arrow table. Example::

    label: rating
    label_rule: ">= 4"            # optional: turns a non-0/1 label into 0/1
    categorical: [user_id, item_id, gender]
    numeric: [age]                # bucketized into ids (and kept as a dense value)
    multi_valued: {genres: " "}   # column -> separator (use "" for columns already holding lists)
    time: timestamp               # optional: enables split=time
    numeric_bucketing: quantile   # or log2 (the Criteo rule)
    min_count: {zip_code: 2}      # optional per-field minimum counts
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from adass_ray.errors import ConfigError, DataError

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_RULE = re.compile(
    r"^\s*(?P<col>[A-Za-z_][\w.:-]*)?\s*(?P<op>>=|<=|==|!=|>|<)\s*"
    r"(?P<val>[-+]?\d+(\.\d*)?([eE][-+]?\d+)?)\s*$"
)
BUCKETINGS = ("log2", "quantile")


@dataclass(frozen=True)
class LabelRule:
    """``<column> <op> <number>``: rows where it holds get label 1, others 0."""

    op: str
    value: float
    column: str | None = None

    @classmethod
    def parse(cls, text: str) -> LabelRule:
        m = _RULE.match(str(text))
        if not m:
            raise ConfigError(
                f"label rule {text!r} not understood; write e.g. 'rating >= 4' or '> 15' "
                f"(operators: {', '.join(_OPS)})"
            )
        return cls(op=m["op"], value=float(m["val"]), column=m["col"])

    def apply(self, values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
        """0/1 float32 labels from numeric ``values`` (nulls are rejected by the caller)."""
        import pyarrow.compute as pc

        fn = {
            ">=": pc.greater_equal,
            ">": pc.greater,
            "<=": pc.less_equal,
            "<": pc.less,
            "==": pc.equal,
            "!=": pc.not_equal,
        }[self.op]
        return pc.cast(fn(values, pa.scalar(self.value, pa.float64())), pa.float32())

    def __str__(self) -> str:
        col = f"{self.column} " if self.column else ""
        return f"{col}{self.op} {self.value:g}"


@dataclass(frozen=True)
class Schema:
    """Roles of a raw table's columns (see the module docstring)."""

    label: str
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    multi_valued: Mapping[str, str] = field(default_factory=dict)
    label_rule: LabelRule | None = None
    time: str | None = None
    numeric_bucketing: str = "quantile"
    min_count: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.label:
            raise ConfigError("schema: 'label' is required")
        cols = self.feature_columns
        if not cols:
            raise ConfigError(
                "schema: no feature columns; list some under categorical/numeric/multi_valued"
            )
        dupes = sorted({c for c in cols if cols.count(c) > 1})
        if dupes:
            raise ConfigError(f"schema: columns listed under more than one kind: {dupes}")
        if self.label in cols:
            raise ConfigError(f"schema: label {self.label!r} is also listed as a feature")
        if self.numeric_bucketing not in BUCKETINGS:
            raise ConfigError(
                f"schema: numeric_bucketing {self.numeric_bucketing!r}; "
                f"expected one of {BUCKETINGS}"
            )
        for k, v in self.min_count.items():
            if k not in cols:
                raise ConfigError(f"schema: min_count names {k!r}, which is not a feature column")
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"schema: min_count for {k!r} must be an integer >= 1, got {v!r}")

    @property
    def feature_columns(self) -> list[str]:
        return [*self.categorical, *self.numeric, *self.multi_valued]

    @property
    def required_columns(self) -> list[str]:
        cols = [self.label, *self.feature_columns]
        if self.label_rule is not None and self.label_rule.column not in (None, self.label):
            cols.append(self.label_rule.column)
        if self.time:
            cols.append(self.time)
        return list(dict.fromkeys(cols))

    def check_columns(self, available: list[str], *, source: str) -> None:
        """Raise a one-line error naming every column the schema wants but the input lacks."""
        missing = [c for c in self.required_columns if c not in available]
        if missing:
            shown = ", ".join(available[:12]) + (" …" if len(available) > 12 else "")
            raise ConfigError(
                f"{source}: schema names column(s) {', '.join(map(repr, missing))} that the input "
                f"does not have (columns: {shown})"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "schema") -> Schema:
        if not isinstance(d, Mapping):
            raise ConfigError(f"{source}: expected a mapping at the top level")
        # every key here is used: one that would be read and then ignored is refused instead
        known = {
            "label", "categorical", "numeric", "multi_valued", "label_rule", "time",
            "numeric_bucketing", "min_count",
        }
        unknown = sorted(str(k) for k in set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
        mv = d.get("multi_valued") or {}
        if isinstance(mv, list):
            mv = {c: "|" for c in mv}
        if not isinstance(mv, Mapping) or not all(
            isinstance(k, str | int) and isinstance(v, str | None) for k, v in mv.items()
        ):
            raise ConfigError(f"{source}: multi_valued must map column -> separator text")
        for key in ("label", "time", "numeric_bucketing"):
            if d.get(key) is not None and not isinstance(d[key], str | int):
                raise ConfigError(f"{source}: {key} must be one column name / word, "
                                  f"got {d[key]!r}")
        min_count = d.get("min_count") or {}
        if not isinstance(min_count, Mapping):
            raise ConfigError(f"{source}: min_count must map column -> integer, got {min_count!r}")
        rule = d.get("label_rule")
        try:
            return cls(
                label=str(d.get("label") or ""),
                categorical=tuple(_str_list(d.get("categorical"), "categorical", source)),
                numeric=tuple(_str_list(d.get("numeric"), "numeric", source)),
                multi_valued={str(k): v or "" for k, v in mv.items()},
                label_rule=LabelRule.parse(rule) if rule not in (None, "") else None,
                time=str(d["time"]) if d.get("time") is not None else None,
                numeric_bucketing=str(d.get("numeric_bucketing", "quantile")),
                min_count={str(k): v for k, v in min_count.items()},
            )
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith(source) else f"{source}: {msg}") from None

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"schema file {path} does not exist")
        try:
            d = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save as UTF-8") from None
        return cls.from_dict(d or {}, source=str(path))


def _str_list(v: Any, key: str, source: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str | int) for x in v):
        raise ConfigError(f"{source}: {key} must be a list of column names")
    return [str(x) for x in v]


@dataclass(frozen=True)
class RawData:
    """A raw table and the roles of its columns, as produced by a reader or built-in source.

    Categorical columns may be strings or integers; numeric columns numbers (nulls = missing);
    multi-valued columns strings joined by the schema's separator, or lists.
    """

    name: str
    table: pa.Table
    schema: Schema
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RawStream:
    """A raw text file read as a stream of record batches (what prepare uses in bounded memory).

    Attributes:
        name: dataset name (the file's stem).
        schema: roles of the columns.
        batches: opens a fresh pass over the rows; each batch holds the schema's required columns.
        count_rows: a cheap row count taken before parsing (newlines), or ``None`` when unknown;
            prepare checks it against the rows actually parsed.
        metadata: as :attr:`RawData.metadata`.
    """

    name: str
    schema: Schema
    batches: Callable[[], Iterator[pa.RecordBatch]]
    count_rows: Callable[[], int | None]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def read_all(self) -> RawData:
        """The whole file as one table (for what the streaming path does not cover)."""
        batches = list(self.batches())
        if not batches:
            raise DataError(f"input {self.name} has no data rows")
        table = pa.Table.from_batches(batches)
        if table.num_rows == 0:
            raise DataError(f"input {self.name} has no data rows")
        return RawData(name=self.name, table=table, schema=self.schema, metadata=self.metadata)
