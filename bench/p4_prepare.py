"""P4: `prepare` throughput vs pyarrow's bare CSV parse of the same Criteo-format file.

Both are measured in this run on the same file: the bare parse is ``pyarrow.csv.read_csv`` with
type inference and nothing else; prepare is the whole stage as ``adass-ray prepare --format
criteo`` runs it (the streaming path: parse by record batch with declared types, train-only
vocabularies with the Criteo threshold, log² bucketing, random split, parquet shards, feature
map). The two alternate, ``repeats`` times each, so a busy machine slows both alike; the medians
are compared, and the CPU seconds of each are printed too. Value: prepare rows/s ÷ parse rows/s
(target ≥ 0.5).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.csv as pacsv

from adass_ray.data.prepare import PrepareConfig, prepare
from adass_ray.data.readers import stream_criteo
from adass_ray.data.synthetic import write_criteo_tsv


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
            prepare(stream_criteo(path), out, PrepareConfig(min_count=10))

        parse()  # warm the page cache so neither side pays for the first read
        times: dict[str, list[tuple[float, float]]] = {"parse": [], "prepare": []}
        for _ in range(repeats):
            for name, fn in (("parse", parse), ("prepare", full)):
                wall, cpu = time.perf_counter(), time.process_time()
                fn()
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
           for k, v in times.items()}
    print(f"file: {rows:,} rows, {size_mb:.0f} MB Criteo TSV (median of {repeats}, alternating)")
    for label, key in (("pyarrow bare parse", "parse"), ("adass-ray prepare ", "prepare")):
        wall, cpu = med[key]
        print(f"{label} : {wall:6.2f} s  {rows / wall / 1e6:5.2f} M rows/s  (CPU {cpu:5.2f} s)")
    return med["parse"][0] / med["prepare"][0]
