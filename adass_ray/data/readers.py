"""Readers for raw files: Criteo TSV, Avazu CSV, generic CSV / parquet with a declared schema.

Every reader returns a :class:`RawData` (an Arrow table plus the roles of its columns) and turns
pyarrow's parse errors into one-line :class:`DataError` messages that name the file, the column
and what to do. Categorical columns are parsed as plain strings.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from adass_ray.data.schema import LabelRule, RawData, RawStream, Schema
from adass_ray.data.segments import iter_segments
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
R = TypeVar("R", bound=RawData | RawStream)
FORMATS = ("criteo", "avazu", "csv", "parquet")
# categorical text is read as plain strings: dictionary-encoding the whole column once
# afterwards is much faster than unifying per-block dictionaries
_CAT = pa.string()
# bytes per parsed block (one record batch): 1 MiB blocks parse with about 2/3 of the CPU time
# of 16 MiB ones (they stay in cache); the streaming prepare groups them for encoding
BLOCK_SIZE = 1 << 20


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


def open_input(path: str | Path, fmt: str, schema: Schema | None = None) -> RawData | RawStream:
    """As :func:`read_input`, but text formats come back as a :class:`RawStream` so prepare can
    read them in bounded memory (parquet is read whole)."""
    path = Path(path)
    if fmt not in ("criteo", "avazu", "csv"):
        return read_input(path, fmt, schema)
    if fmt == "criteo":
        return stream_criteo(path)
    if fmt == "avazu":
        return stream_avazu(path)
    if schema is None:
        raise ConfigError("--format csv needs --schema FILE naming the label and feature columns")
    return stream_csv(path, schema)


def read_criteo(path: str | Path) -> RawData:
    """Criteo display-advertising TSV: label, I1..I13 (integers, may be empty), C1..C26."""
    return stream_criteo(path).read_all()


def stream_criteo(path: str | Path, *, block_size: int = BLOCK_SIZE) -> RawStream:
    """:func:`read_criteo` as a stream of record batches (for prepare in bounded memory)."""
    path = Path(path)
    _check_file(path)
    types: dict[str, pa.DataType] = {"label": pa.float64()}
    types.update({c: pa.int64() for c in CRITEO_NUMERIC})
    types.update({c: _CAT for c in CRITEO_CATEGORICAL})
    options = _CsvOptions(
        read=pacsv.ReadOptions(column_names=list(CRITEO_COLUMNS), block_size=block_size),
        # no quoting in Criteo files, so newlines count rows exactly
        parse=pacsv.ParseOptions(delimiter="\t", quote_char=False),
        convert=pacsv.ConvertOptions(
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
    return RawStream(
        name=path.stem, schema=schema, batches=lambda: _iter_csv(path, options),
        count_rows=lambda: _count_lines(path, header=False), metadata={"format": "criteo"},
    )


def read_avazu(path: str | Path) -> RawData:
    """Avazu CSV with header; ``hour`` (YYMMDDHH) becomes hour-of-day and weekday fields."""
    return stream_avazu(path).read_all()


def stream_avazu(path: str | Path, *, block_size: int = BLOCK_SIZE) -> RawStream:
    """:func:`read_avazu` as a stream of record batches."""
    path = Path(path)
    _check_file(path)
    types: dict[str, pa.DataType] = {"click": pa.float64(), "hour": pa.int64()}
    types.update({c: _CAT for c in AVAZU_CATEGORICAL})
    need = ["click", "hour", *AVAZU_CATEGORICAL]
    with path.open("rb") as fh:
        header = fh.readline().decode("utf-8", errors="replace").rstrip("\r\n").split(",")
    missing = [c for c in need if c not in header]
    if missing:
        raise DataError(f"{path}: not an Avazu file: missing column(s) {', '.join(missing)}")
    options = _CsvOptions(
        read=pacsv.ReadOptions(block_size=block_size),
        parse=pacsv.ParseOptions(delimiter=","),
        convert=pacsv.ConvertOptions(
            column_types=types, include_columns=need, null_values=[""], strings_can_be_null=True
        ),
        names=tuple(header),
    )
    schema = Schema(
        label="click",
        categorical=(*AVAZU_CATEGORICAL, "hour_of_day", "weekday"),
        time="hour",
    )

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in _iter_csv(path, options):
            hour = batch.column("hour")
            day = pc.divide(hour, 100)  # YYMMDD (integer division of int64)
            date = pc.strptime(
                pc.cast(day, pa.string()), format="%y%m%d", unit="s", error_is_null=True
            )
            extra = {
                "hour_of_day": pc.subtract(hour, pc.multiply(day, 100)),
                "weekday": pc.day_of_week(date),
            }
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, *extra.values()], names=[*batch.schema.names, *extra]
            )

    return RawStream(
        name=path.stem, schema=schema, batches=batches,
        count_rows=lambda: _count_lines(path, header=True), metadata={"format": "avazu"},
    )


def read_csv(path: str | Path, schema: Schema, *, delimiter: str | None = None) -> RawData:
    """A delimited text file with a header row, roles given by ``schema``.

    The delimiter is sniffed from the header (tab, comma, semicolon or pipe) unless given.
    """
    return stream_csv(path, schema, delimiter=delimiter).read_all()


def stream_csv(
    path: str | Path, schema: Schema, *, delimiter: str | None = None,
    block_size: int = BLOCK_SIZE,
) -> RawStream:
    """:func:`read_csv` as a stream of record batches."""
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
    options = _CsvOptions(
        read=pacsv.ReadOptions(block_size=block_size),
        parse=pacsv.ParseOptions(delimiter=delimiter),
        convert=pacsv.ConvertOptions(
            column_types=types,
            include_columns=schema.required_columns,
            null_values=["", "NA", "NaN", "null", "NULL"],
            strings_can_be_null=True,
        ),
        names=tuple(header),
    )
    # quoted fields may hold newlines: the count is then wrong, prepare notices and reads whole
    return RawStream(
        name=path.stem, schema=schema, batches=lambda: _iter_csv(path, options),
        count_rows=lambda: _count_lines(path, header=True), metadata={"format": "csv"},
    )


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


def with_label_rule(raw: R, rule: str | None) -> R:
    """Return ``raw`` with its schema's label rule replaced by ``rule`` (from the CLI)."""
    if not rule:
        return raw
    return dataclasses.replace(
        raw, schema=dataclasses.replace(raw.schema, label_rule=LabelRule.parse(rule))
    )


# --- helpers ---------------------------------------------------------------------------------
def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"input {path} does not exist")
    if path.is_dir():
        raise DataError(f"input {path} is a folder; give a file")
    if path.stat().st_size == 0:
        raise DataError(f"input {path} is empty")


@dataclass(frozen=True)
class _CsvOptions:
    read: pacsv.ReadOptions
    parse: pacsv.ParseOptions
    convert: pacsv.ConvertOptions
    names: tuple[str, ...]


def _iter_csv(path: Path, options: _CsvOptions) -> Iterator[pa.RecordBatch]:
    """Record batches of ``path``: segments of blocks, each parsed on all cores, the next one
    read and parsed in the background (see :mod:`adass_ray.data.segments`)."""
    try:
        for batch in iter_segments(path, options.read, options.parse, options.convert):
            if batch.num_rows:
                yield batch
    except pa.ArrowInvalid as e:
        raise DataError(_explain_csv_error(path, e, options.names)) from None
    except (pa.ArrowKeyError, KeyError) as e:
        raise DataError(f"{path}: {_first_line(e)}") from None


def _count_lines(path: Path, *, header: bool) -> int:
    """Rows of a text file by counting newlines (blank lines, quoted newlines overcount)."""
    n, last = 0, b"\n"
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 24):
            # numpy's vectorized compare counts about twice as fast as bytes.count
            n += int(np.count_nonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n")))
            last = chunk[-1:]
    return n + (last != b"\n") - int(header)


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
