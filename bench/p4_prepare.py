"""P4: `prepare` throughput vs pyarrow's bare CSV parse of the same Criteo-format file.

Both are measured in this run on the same file: the bare parse is ``pyarrow.csv.read_csv`` with
type inference and nothing else; prepare is the whole stage (parse with declared types, train-only
vocabularies with the Criteo threshold, log² bucketing, random split, parquet shards, feature
map). Value: prepare rows/s ÷ parse rows/s (target ≥ 0.5).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pyarrow.csv as pacsv

from adass_ray.data.prepare import PrepareConfig, prepare
from adass_ray.data.readers import read_criteo
from adass_ray.data.synthetic import write_criteo_tsv

from .common import timed


def run(quick: bool) -> float:
    rows = 200_000 if quick else 1_000_000
    repeats = 3
    with tempfile.TemporaryDirectory(prefix="adass-p4-") as tmp:
        path = Path(tmp) / "criteo.tsv"
        write_criteo_tsv(path, rows, seed=0)
        size_mb = path.stat().st_size / 2**20

        def parse() -> None:
            pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(autogenerate_column_names=True),
                parse_options=pacsv.ParseOptions(delimiter="\t"),
            )

        def full() -> None:
            out = Path(tmp) / "out"
            shutil.rmtree(out, ignore_errors=True)
            prepare(read_criteo(path), out, PrepareConfig(min_count=10))

        parse()  # warm the page cache so neither side pays for the first read
        t_parse = timed(parse, repeats)
        t_prep = timed(full, repeats)
    parse_rate, prep_rate = rows / t_parse, rows / t_prep
    print(f"file: {rows:,} rows, {size_mb:.0f} MB Criteo TSV (median of {repeats})")
    print(f"pyarrow bare parse : {t_parse:6.2f} s  {parse_rate / 1e6:5.2f} M rows/s")
    print(f"adass-ray prepare  : {t_prep:6.2f} s  {prep_rate / 1e6:5.2f} M rows/s")
    return prep_rate / parse_rate
