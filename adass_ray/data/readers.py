"""Readers for raw files: Criteo TSV, Avazu CSV, generic CSV / parquet with a declared schema.

Every reader returns a :class:`RawData` (an Arrow table plus the roles of its columns) and turns
pyarrow's parse errors into one-line :class:`DataError` messages that name the file, the column
and what to do. Categorical columns are parsed as plain strings.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from adass_ray.data.schema import LabelRule, RawData, Schema
from adass_ray.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

CRITEO_NUMERIC = tuple(f"I{i}" for i in range(1, 14))
CRITEO_CATEGORICAL = tuple(f"C{i}" for i in range(1, 27))
CRITEO_COLUMNS = ("label", *CRITEO_NUMERIC, *CRITEO_CATEGORICAL)
AVAZU_CATEGORICAL = (
    "C1", "banner_pos", "site_id", "site_domain", "site_category", "app_id", "app_domain",
    "app_category", "device_id", "device_ip", "device_model", "device_type", "device_conn_type",
    "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21",
)
FORMATS = ("criteo", "avazu", "csv", "parquet")
# categorical text is read as plain strings: dictionary-encoding the whole column once
# afterwards is much faster than unifying per-block dictionaries
_CAT = pa.string()


def read_input(path: str | Path, fmt: str, schema: Schema | None = None) -> RawData:
    """Read ``path`` in format ``fmt`` (one of :data:`FORMATS`).

    Raises:
        ConfigError: unknown format, or csv/parquet without a schema.
        DataError: a missing/empty file or content that does not parse.
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; expected one of {', '.join(FORMATS)}")
    _check_file(path)
    if fmt == "criteo":
        return read_criteo(path)
    if fmt == "avazu":
        return read_avazu(path)
    if schema is None:
        raise ConfigError(
            f"--format {fmt} needs --schema FILE naming the label and feature columns"
        )
    return read_csv(path, schema) if fmt == "csv" else read_parquet(path, schema)


def read_criteo(path: str | Path) -> RawData:
    """Criteo display-advertising TSV: label, I1..I13 (integers, may be empty), C1..C26."""
    path = Path(path)
    _check_file(path)
    types: dict[str, pa.DataType] = {"label": pa.float64()}
    types.update({c: pa.int64() for c in CRITEO_NUMERIC})
    types.update({c: _CAT for c in CRITEO_CATEGORICAL})
    table = _read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=list(CRITEO_COLUMNS)),
        parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
        convert_options=pacsv.ConvertOptions(
            column_types=types, null_values=[""], strings_can_be_null=True
        ),
        names=CRITEO_COLUMNS,
    )
    schema = Schema(
        label="label",
        categorical=CRITEO_CATEGORICAL,
        numeric=CRITEO_NUMERIC,
        numeric_bucketing="log2",
    )
    return RawData(name=path.stem, table=table, schema=schema, metadata={"format": "criteo"})


def read_avazu(path: str | Path) -> RawData:
    """Avazu CSV with header; ``hour`` (YYMMDDHH) becomes hour-of-day and weekday fields."""
    path = Path(path)
    _check_file(path)
    types: dict[str, pa.DataType] = {"click": pa.float64(), "hour": pa.int64()}
    types.update({c: _CAT for c in AVAZU_CATEGORICAL})
    table = _read_csv(
        path,
        read_options=pacsv.ReadOptions(),
        parse_options=pacsv.ParseOptions(delimiter=","),
        convert_options=pacsv.ConvertOptions(
            column_types=types, null_values=[""], strings_can_be_null=True
        ),
    )
    need = ["click", "hour", *AVAZU_CATEGORICAL]
    missing = [c for c in need if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: not an Avazu file: missing column(s) {', '.join(missing)}")
    hour = table["hour"]
    day = pc.divide(hour, 100)  # YYMMDD (integer division of int64)
    date = pc.strptime(pc.cast(day, pa.string()), format="%y%m%d", unit="s", error_is_null=True)
    table = table.append_column("hour_of_day", pc.subtract(hour, pc.multiply(day, 100)))
    table = table.append_column("weekday", pc.day_of_week(date))
    schema = Schema(
        label="click",
        categorical=(*AVAZU_CATEGORICAL, "hour_of_day", "weekday"),
        time="hour",
    )
    return RawData(name=path.stem, table=table, schema=schema, metadata={"format": "avazu"})


def read_csv(path: str | Path, schema: Schema, *, delimiter: str | None = None) -> RawData:
    """A delimited text file with a header row, roles given by ``schema``.

    The delimiter is sniffed from the header (tab, comma, semicolon or pipe) unless given.
    """
    path = Path(path)
    _check_file(path)
    with path.open("rb") as fh:
        head = fh.readline().decode("utf-8", errors="replace")
    if delimiter is None:
        delimiter = max(["\t", ",", ";", "|"], key=head.count) if head.strip() else ","
    header = [h.strip().strip('"') for h in head.rstrip("\r\n").split(delimiter)]
    schema.check_columns(header, source=str(path))
    types: dict[str, pa.DataType] = {c: _CAT for c in schema.categorical}
    types.update({c: pa.float64() for c in schema.numeric})
    types.update({c: pa.string() for c in schema.multi_valued})
    rule_col = schema.label_rule.column if schema.label_rule else None
    types[rule_col or schema.label] = pa.float64()
    table = _read_csv(
        path,
        read_options=pacsv.ReadOptions(),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            include_columns=schema.required_columns,
            null_values=["", "NA", "NaN", "null", "NULL"],
            strings_can_be_null=True,
        ),
        names=header,
    )
    return RawData(name=path.stem, table=table, schema=schema, metadata={"format": "csv"})


def read_parquet(path: str | Path, schema: Schema) -> RawData:
    """A parquet file (or folder of parquet files), roles given by ``schema``."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"input {path} does not exist")
    try:
        available = pq.ParquetDataset(path).schema.names
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path}: not a readable parquet file ({_first_line(e)})") from None
    schema.check_columns(available, source=str(path))
    table = pq.read_table(path, columns=schema.required_columns)
    if table.num_rows == 0:
        raise DataError(f"{path}: no rows")
    for col in schema.numeric:
        if not _is_number(table.schema.field(col).type):
            raise DataError(
                f"{path}: numeric column {col!r} has type {table.schema.field(col).type}; "
                "convert it to numbers or list it under categorical"
            )
    return RawData(name=path.stem, table=table, schema=schema, metadata={"format": "parquet"})


def with_label_rule(raw: RawData, rule: str | None) -> RawData:
    """Return ``raw`` with its schema's label rule replaced by ``rule`` (from the CLI)."""
    if not rule:
        return raw
    parsed = LabelRule.parse(rule)
    sch = raw.schema
    new = Schema(
        label=sch.label, categorical=sch.categorical, numeric=sch.numeric,
        multi_valued=sch.multi_valued, label_rule=parsed, time=sch.time,
        numeric_bucketing=sch.numeric_bucketing, min_count=sch.min_count,
    )
    return RawData(name=raw.name, table=raw.table, schema=new, metadata=raw.metadata)


# --- helpers ---------------------------------------------------------------------------------
def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"input {path} does not exist")
    if path.is_dir():
        raise DataError(f"input {path} is a folder; give a file")
    if path.stat().st_size == 0:
        raise DataError(f"input {path} is empty")


def _read_csv(
    path: Path,
    *,
    read_options: pacsv.ReadOptions,
    parse_options: pacsv.ParseOptions,
    convert_options: pacsv.ConvertOptions,
    names: list[str] | tuple[str, ...] | None = None,
) -> pa.Table:
    try:
        table = pacsv.read_csv(
            path, read_options=read_options, parse_options=parse_options,
            convert_options=convert_options,
        )
    except pa.ArrowInvalid as e:
        raise DataError(_explain_csv_error(path, e, names)) from None
    except (pa.ArrowKeyError, KeyError) as e:
        raise DataError(f"{path}: {_first_line(e)}") from None
    if table.num_rows == 0:
        raise DataError(f"input {path} has no data rows")
    return table


def _explain_csv_error(path: Path, e: Exception, names: list[str] | tuple[str, ...] | None) -> str:
    msg = _first_line(e)
    m = re.search(r"Expected (\d+) columns, got (\d+)", msg)
    if m:
        row = re.search(r"got \d+: (.*)", msg)
        shown = (
            (row.group(1)[:60] + "…") if row and len(row.group(1)) > 60
            else (row.group(1) if row else "")
        )
        return (
            f"{path}: a row has {m.group(2)} columns where {m.group(1)} are expected "
            f"(row starts {shown!r}); fix the file or check the --format"
        )
    m = re.search(
        r"In CSV column #(\d+): .*conversion error to (\w+): invalid value '([^']*)'", msg
    )
    if m:
        idx = int(m.group(1))
        col = f"{names[idx]!r}" if names and idx < len(names) else f"#{idx + 1}"
        return (
            f"{path}: column {col} should hold numbers ({m.group(2)}) but has "
            f"{m.group(3)!r}; clean it, or declare the column categorical in the schema"
        )
    return f"{path}: cannot parse ({msg})"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
