"""Seeded synthetic CTR data in Criteo shape with planted structure, written to disk.

:func:`generate_dataset` streams a :class:`SyntheticSpec` into a prepared dataset (parquet shards
plus ``feature_map.json``, ground truth in its metadata); :func:`write_criteo_tsv` writes a raw
Criteo-format file to exercise the prepare path. The data-generating process itself (spec,
presets, ground truth, Zipf ids, label model) is in :mod:`adass_ray.data.synthetic_model`; its
public names are importable from here too.

Every random draw comes from ``numpy.random.default_rng([seed, stream, index])``: the output is a
pure function of the spec (``chunk_rows`` included), independent of the machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from adass_ray import progress
from adass_ray.data.feature_map import FEATURE_MAP_FILE, SPLITS, FeatureMap, FieldSpec, SplitInfo
from adass_ray.data.io import atomic_output_dir
from adass_ray.data.synthetic_model import (
    CRITEO_CARDINALITIES,
    LATENT_TABLE_SIZE,
    PRESETS,
    TINY_CARDINALITIES,
    ZIPF_HEAD,
    SyntheticSpec,
    iter_chunks,
)
from adass_ray.data.synthetic_model import _ZipfField as _ZipfField  # re-exported for the tests

__all__ = [
    "CRITEO_CARDINALITIES", "LATENT_TABLE_SIZE", "PRESETS", "TINY_CARDINALITIES", "ZIPF_HEAD",
    "SyntheticSpec", "generate_dataset", "write_criteo_tsv",
]

logger = logging.getLogger(__name__)

_M32 = np.uint64(0xFFFFFFFF)
# Criteo-like missing rates of I1..I13 and C1..C26, and log-means of I1..I13 (write_criteo_tsv).
_INT_MISSING = (0.45, 0, 0.21, 0.22, 0.03, 0.22, 0.04, 0.001, 0.04, 0.45, 0.04, 0.77, 0.22)
_INT_LOGMEAN = (0.7, 3.0, 2.3, 1.8, 8.0, 4.0, 1.5, 2.5, 3.8, 0.3, 1.0, 0.5, 1.8)
_CAT_MISSING = (0, 0, 0.03, 0.03, 0, 0.12, 0, 0, 0, 0, 0, 0.03, 0, 0, 0, 0.03, 0, 0, 0.44, 0.44,
                0.03, 0.76, 0, 0.03, 0.44, 0.44)  # fmt: skip


class _SplitWriter:
    """Appends to ``<split>/part-NNNNN.parquet``, rolling over every ``per`` rows."""

    def __init__(self, root: Path, split: str, schema: pa.Schema, per: int) -> None:
        self.root, self.split, self.schema, self.per = root, split, schema, per
        self.files: list[str] = []
        self.rows = self.in_shard = 0
        self.writer: pq.ParquetWriter | None = None

    def _roll(self) -> pq.ParquetWriter:
        if self.writer is not None:
            self.writer.close()
        self.files.append(f"{self.split}/part-{len(self.files):05d}.parquet")
        (self.root / self.split).mkdir(exist_ok=True)
        self.writer, self.in_shard = pq.ParquetWriter(self.root / self.files[-1], self.schema), 0
        return self.writer

    def write(self, table: pa.Table) -> None:
        off = 0
        while off < table.num_rows:
            full = self.writer is None or self.in_shard >= self.per
            writer = self._roll() if full or self.writer is None else self.writer
            take = min(self.per - self.in_shard, table.num_rows - off)
            writer.write_table(table.slice(off, take))
            off, self.in_shard, self.rows = off + take, self.in_shard + take, self.rows + take

    def close(self) -> SplitInfo:
        if self.writer is None:  # no row drawn for this split: leave one empty shard
            self._roll().write_table(self.schema.empty_table())
        assert self.writer is not None
        self.writer.close()
        return SplitInfo(rows=self.rows, files=tuple(self.files))


def generate_dataset(
    spec: SyntheticSpec, out: str | os.PathLike[str], *, overwrite: bool = False
) -> FeatureMap:
    """Generate a prepared dataset (parquet shards + ``feature_map.json``) in ``out``.

    Rows are generated ``spec.chunk_rows`` at a time and streamed into the shards; each row's
    split is drawn from ``spec.split_fractions`` (a split with fraction 0 is left out).

    Args:
        spec: what to generate.
        out: dataset folder, written atomically.
        overwrite: replace an existing non-empty ``out``.

    Returns:
        The saved feature map; ``metadata`` holds the seed, the ground truth and the
        measured positive rate.

    Raises:
        AdassError: ``out`` exists, is non-empty and ``overwrite`` is false.
    """
    t0 = time.perf_counter()
    names = spec.field_names
    schema = pa.schema([(n, pa.int32()) for n in names] + [("label", pa.float32())])
    bounds = np.cumsum(spec.split_fractions)[:-1]
    positives = 0
    bar = progress.bar(total=spec.rows, desc="generate synthetic", unit="rows", scale=True)
    with atomic_output_dir(out, overwrite=overwrite) as tmp, progress.closing(bar):
        writers = {i: _SplitWriter(tmp, s, schema, spec.rows_per_shard)
                   for i, s in enumerate(SPLITS) if spec.split_fractions[i] > 0}  # fmt: skip
        for rng, ids, y in iter_chunks(spec, stream=1):
            split = np.searchsorted(bounds, rng.random(len(y)), side="right")
            order = np.argsort(split, kind="stable")
            cols = [pa.array(c[order]) for c in ids] + [pa.array(y[order].astype(np.float32))]
            table = pa.Table.from_arrays(cols, schema=schema)
            ends = np.concatenate([[0], np.cumsum(np.bincount(split, minlength=3))])
            for i, w in writers.items():
                w.write(table.slice(int(ends[i]), int(ends[i + 1] - ends[i])))
            positives += int(y.sum())
            bar.update(len(y))
        inf, strengths, ranks = spec.ground_truth()
        truth = {
            "informative": {names[f]: s for f, s in zip(inf, strengths, strict=True)},
            "noise": [n for i, n in enumerate(names) if i not in inf],
            "latent_rank": {names[f]: r for f, r in zip(inf, ranks, strict=True)},
        }
        fmap = FeatureMap(
            name="synthetic",
            label="label",
            fields=tuple(FieldSpec(n, "categorical", vocab_size=int(c) + 1, distinct=int(c))
                         for n, c in zip(names, spec.cardinalities, strict=True)),
            splits={SPLITS[i]: dataclasses.replace(w.close(), digest=_split_digest(spec, i))
                    for i, w in writers.items()},
            metadata={"source": "synthetic", "seed": spec.seed, "ground_truth": truth,
                      "positive_rate": round(positives / spec.rows, 6),
                      "zipf_exponent": spec.zipf_exponent},
        )  # fmt: skip
        fmap.save(tmp / FEATURE_MAP_FILE)
    dt = time.perf_counter() - t0
    logger.info("synthetic: %d rows in %.1f s (%.0f rows/s) -> %s", spec.rows, dt, spec.rows / dt,
                out)  # fmt: skip
    return fmap


def _split_digest(spec: SyntheticSpec, split: int) -> str:
    """The generator's spec fixes every row and its split: its hash stands for the rows."""
    ident = {k: v for k, v in dataclasses.asdict(spec).items() if k != "rows_per_shard"}
    text = json.dumps([ident, SPLITS[split]], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _hex_column(ids: np.ndarray, mult: int, add: int, valid: np.ndarray) -> pa.Array:
    """8-hex-digit strings of a bijective 32-bit mix of ``ids`` (null where not ``valid``)."""
    x = (ids.astype(np.uint64) * np.uint64(mult) + np.uint64(add)) & _M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x45D9F3B)) & _M32
    x ^= x >> np.uint64(16)
    nibbles = (x[:, None] >> np.arange(28, -1, -4, dtype=np.uint64)) & np.uint64(15)
    chars = np.frombuffer(b"0123456789abcdef", np.uint8)[nibbles]
    n = len(ids)
    offsets = np.arange(0, 8 * n + 1, 8, dtype=np.int32)
    bitmap = np.packbits(valid, bitorder="little")
    buffers = [pa.py_buffer(bitmap), pa.py_buffer(offsets), pa.py_buffer(chars)]
    return pa.Array.from_buffers(pa.string(), n, buffers, null_count=int(n - valid.sum()))


def write_criteo_tsv(
    path: str | os.PathLike[str],
    rows: int,
    *,
    seed: int = 0,
    scale: float = 1.0,
    chunk_rows: int = 500_000,
) -> None:
    """Write a raw Criteo-format file: label, I1..I13, C1..C26; tab-separated, no header.

    Labels follow the planted model over the categorical fields of
    ``SyntheticSpec.preset("criteo", rows=rows, scale=scale, seed=seed)`` (computed before
    values are blanked); I1..I13 are log-normal counts with Criteo-like missing rates (I2 also
    takes -1/-2); C1..C26 are 8-hex-digit bijective hashes of the ids, empty at Criteo-like
    rates. Generated in chunks and written atomically (temp file, then rename).

    Args:
        path: output file.
        rows: number of lines.
        seed: the seed.
        scale: divides the Criteo cardinalities (min 2).
        chunk_rows: rows generated and written per step.

    Raises:
        DataError: rows < 1, scale <= 0 or chunk_rows < 1.
    """
    t0 = time.perf_counter()
    spec = SyntheticSpec.preset("criteo", rows=rows, scale=scale, seed=seed, chunk_rows=chunk_rows)
    hrng = np.random.default_rng([seed, 6])
    mix = [(int(hrng.integers(0, 2**31)) * 2 + 1, int(hrng.integers(0, 2**32))) for _ in range(26)]
    schema = pa.schema([("label", pa.int8())] + [(f"I{i}", pa.int64()) for i in range(1, 14)]
                       + [(f"C{i}", pa.string()) for i in range(1, 27)])  # fmt: skip
    opts = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with pacsv.CSVWriter(str(tmp), schema, write_options=opts) as writer:
            for rng, ids, y in iter_chunks(spec, stream=4):
                n = len(y)
                arrays: list[pa.Array] = [pa.array(y.astype(np.int8))]
                for j in range(13):
                    v = np.floor(np.exp(rng.normal(_INT_LOGMEAN[j], 1.3, n)) - 1).astype(np.int64)
                    np.maximum(v, 0, out=v)
                    if j == 1:  # I2 has small negative values in real Criteo
                        neg = rng.random(n) < 0.02
                        v[neg] = -rng.integers(1, 3, int(neg.sum()))
                    arrays.append(pa.array(v, mask=rng.random(n) < _INT_MISSING[j]))
                for f in range(26):
                    arrays.append(_hex_column(ids[f], *mix[f], rng.random(n) >= _CAT_MISSING[f]))
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dt = time.perf_counter() - t0
    logger.info("criteo tsv: %d rows in %.1f s (%.0f rows/s) -> %s", rows, dt, rows / dt, path)
