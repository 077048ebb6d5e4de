"""Prepare in bounded memory: a :class:`RawStream` → the same dataset :func:`prepare` writes.

The file is parsed once, in segments parsed ahead on all cores (:mod:`.segments`) while the
current group of rows is encoded, in two passes over *encoded* data:

1. **fit** — per group and column (columns in parallel threads): dictionary codes of the values
   (``dictionary_encode`` of categorical text; the Criteo ``log2`` bucket of an integer through
   a per-value table, :mod:`.stream_codes`), the group's rows put in split order (train first),
   train counts per dictionary entry by ``bincount`` of that prefix, folded into a per-field
   (value, train count) table merged by one ``dictionary_encode`` + weighted ``bincount`` (so
   memory grows with the number of distinct values, not rows). The encoded group (int32 codes
   + its small dictionary, dense values, labels) is spilled to an Arrow IPC stream in the
   output's temp folder.
2. **map and write** — vocabularies are fixed (descending train count, ties by text, exactly as
   :func:`adass_ray.data.encoding.vocab_ids`; fields in parallel); each spilled group's
   dictionary is mapped to ids with ``index_in`` against the vocabulary, and its split slices
   are written (by a writer thread, while the next group is mapped) as shards of
   ``rows_per_shard`` rows.

The random split needs the row count first: it comes from counting newlines (fast, while the
first segment parses); if parsing finds a different count (quoted newlines, blank lines),
:class:`RowCountMismatch` tells :func:`prepare` to fall back to reading the table whole.
Memory: a few segments, the per-field (value, count) tables, quantile-bucketed columns' train
values, one shard per split being written, and a byte per row for the split.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from adass_ray import progress
from adass_ray.data.encoding import VocabCounts, check_classes, float_numpy, rows_digest
from adass_ray.data.feature_map import SPLITS, FeatureMap, FieldSpec, SplitInfo, dense_column
from adass_ray.data.io import atomic_output_dir
from adass_ray.data.prepare import (
    ROW_GROUP,
    PrepareConfig,
    default_min_count,
    finish,
    label_values,
    parquet_options,
    positive_rate,
    split_of_rows,
    workers,
    write_shard,
)
from adass_ray.data.schema import RawStream
from adass_ray.data.stream_codes import (
    codes_of,
    dictionary_encode,
    int_encode,
    log2_bucket,
    log2_dense,
    log2_int,
)
from adass_ray.errors import DataError

logger = logging.getLogger(__name__)


# rows encoded together in pass 1 (a group of parsed blocks)
GROUP_ROWS = 1 << 17


class RowCountMismatch(Exception):
    """The newline count disagreed with the rows parsed (the split would be wrong)."""


@dataclass
class _Field:
    """One feature column's plan and pass-1 state."""

    name: str
    kind: str  # categorical | log2 | quantile
    min_count: int
    counts: VocabCounts = field(default_factory=VocabCounts)
    train_values: list[np.ndarray] = field(default_factory=list)  # quantile fields only
    lookup: pa.Array | None = None  # vocabulary values in id order (pass 2)
    edges: np.ndarray | None = None
    mean: float = 0.0
    std: float = 1.0


def prepare_stream(
    raw: RawStream, out: str | Path, config: PrepareConfig, *, overwrite: bool = False
) -> FeatureMap:
    """Prepare ``raw`` batch by batch (see the module docstring); same result as ``prepare``.

    Raises:
        RowCountMismatch: the file's newline count is not its row count.
        DataError: as :func:`adass_ray.data.prepare.prepare`.
    """
    schema = raw.schema
    if config.split != "random" or schema.multi_valued:
        raise ValueError("prepare_stream handles random splits without multi-valued fields")
    default_min = default_min_count(raw, config)
    fields = [
        _Field(name=c, min_count=schema.min_count.get(c, default_min),
               kind=(schema.numeric_bucketing if c in schema.numeric else "categorical"))
        for c in schema.feature_columns
    ]
    t0 = time.perf_counter()
    groups = _groups(raw)
    with atomic_output_dir(out, overwrite=overwrite) as tmp, \
            ThreadPoolExecutor(max_workers=workers()) as pool, contextlib.closing(groups):
        # the newline count and the split are made while the first segment is parsed
        counted = pool.submit(_count_and_split, raw, config)
        first = next(groups, None)
        n, which = counted.result()
        spill = tmp / ".encoded"  # one Arrow IPC file per group
        spill.mkdir()
        with progress.closing(progress.bar(
                total=n, desc=f"prepare {raw.name}: read", unit="rows", scale=True)) as bar:
            batches = itertools.chain([] if first is None else [first], groups)
            rows = _fit(raw, batches, fields, which, spill, pool, bar)
        if rows != n:
            raise RowCountMismatch(f"{raw.name}: {n} lines counted but {rows} rows parsed")
        specs, vocabs = _fix_vocabularies(fields, config.n_bins, pool)
        t1 = time.perf_counter()
        with progress.closing(progress.bar(
                total=n, desc=f"prepare {raw.name}: write", unit="rows", scale=True)) as bar:
            split_info, positives = _write(tmp, spill, fields, which, config, pool, bar)
        spill.rmdir()  # pass 2 removed each group's file once mapped
        pos_rate = {s: positive_rate(positives[s], split_info[s].rows) for s in SPLITS}
        check_classes(raw.name, {s: (split_info[s].rows, positives[s]) for s in SPLITS},
                      config.fractions)
        finish(tmp, raw, config, specs, vocabs, split_info, pos_rate, default_min)
    logger.info("prepared %s: %d rows, %d fields → %s (fit %.2f s, write %.2f s)", raw.name,
                n, len(specs), out, t1 - t0, time.perf_counter() - t1)
    return FeatureMap.load(out)


def _count_and_split(raw: RawStream, config: PrepareConfig) -> tuple[int, np.ndarray]:
    n = raw.count_rows()
    if not n:
        raise RowCountMismatch(f"{raw.name}: no row count before parsing")
    return n, split_of_rows(n, config)


# --- pass 1: encode, count, spill ------------------------------------------------------------
def _fit(
    raw: RawStream, groups: Iterator[pa.Table], fields: list[_Field], which: np.ndarray,
    spill: Path, pool: ThreadPoolExecutor, bar: progress.Bar,
) -> int:
    offset = 0
    for i, group in enumerate(groups):
        if offset == 0:
            raw.schema.check_columns(group.column_names, source=raw.name)
        end = offset + group.num_rows
        if end > len(which):
            raise RowCountMismatch(f"{raw.name}: more rows than the {len(which)} counted")
        # rows go to the spill in split order (train, valid, test; file order within each):
        # train counts are then a prefix, and pass 2 cuts splits by slicing
        part = which[offset:end]
        order = np.argsort(part, kind="stable")
        n_train = int(np.count_nonzero(part == 0))
        encoded = list(pool.map(_encode, fields, [group[f.name] for f in fields],
                                [order] * len(fields), [n_train] * len(fields),
                                [raw.name] * len(fields)))
        names = [name for cols in encoded for name in cols]
        arrays = [arr for cols in encoded for arr in cols.values()]
        names.append("label")
        arrays.append(pa.array(label_values(group, raw.schema, raw.name)[order]))
        out = pa.RecordBatch.from_arrays(arrays, names=names)
        with pa.ipc.new_stream(str(spill / f"{i:08d}.arrows"), out.schema) as writer:
            writer.write_batch(out)
        offset = end
        bar.update(group.num_rows)
    return offset


def _groups(raw: RawStream) -> Generator[pa.Table, None, None]:
    """The parsed blocks, grouped into tables of about :data:`GROUP_ROWS` rows.

    Small blocks parse fastest (they stay in cache); grouping them keeps the per-call overhead
    of encoding low without copying: a group's columns are chunked arrays of the blocks.
    """
    group: list[pa.RecordBatch] = []
    rows = 0
    for batch in raw.batches():
        group.append(batch)
        rows += batch.num_rows
        if rows >= GROUP_ROWS:
            yield pa.Table.from_batches(group)
            group, rows = [], 0
    if group:
        yield pa.Table.from_batches(group)


def _encode(
    f: _Field, col: pa.ChunkedArray, order: np.ndarray, n_train: int, source: str
) -> dict[str, pa.Array]:
    """Pass-1 encoding of one column of one group (counts go into ``f``).

    The output rows are the group's rows taken in ``order``, whose first ``n_train`` are the
    train rows.
    """
    if f.kind == "categorical":
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        return {f.name: _count(f, dictionary_encode(col), order, n_train)}
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise DataError(
            f"numeric column {f.name!r} has type {col.type}; it must hold numbers ({source})"
        )
    if f.kind == "quantile":
        x = float_numpy(col)[order]
        fit = x[:n_train]
        f.train_values.append(fit[~np.isnan(fit)])
        return {f.name: pa.array(x)}  # bucketed in pass 2, once the edges are known
    # the Criteo rule, as encoding.encode_numeric: x > 2 → floor(ln(x)^2), else floor(x)
    if pa.types.is_integer(col.type):  # integers (Criteo): the maths once per distinct value
        enc, dense = log2_int(col)
    else:
        x = float_numpy(col)
        missing = np.isnan(x)
        x[missing] = 0.0
        enc, dense = int_encode(log2_bucket(x), missing), log2_dense(x)
    return {f.name: _count(f, enc, order, n_train), dense_column(f.name): pa.array(dense[order])}


def _count(
    f: _Field, enc: pa.DictionaryArray, order: np.ndarray, n_train: int
) -> pa.DictionaryArray:
    """``enc``'s rows in ``order``; the first ``n_train`` of them counted into ``f``."""
    codes = codes_of(enc).take(order)
    f.counts.add(enc.dictionary, np.bincount(codes[:n_train], minlength=len(enc.dictionary)))
    return pa.DictionaryArray.from_arrays(pa.array(codes), enc.dictionary)


def _fix_vocabularies(
    fields: list[_Field], n_bins: int, pool: ThreadPoolExecutor
) -> tuple[list[FieldSpec], dict[str, pa.Table]]:
    """Each field's spec and vocabulary (fields in parallel threads: merges and sorts release
    the GIL); fills in the fields' pass-2 state."""
    fixed = list(pool.map(_fix_field, fields, [n_bins] * len(fields)))
    vocabs = {f.name: vocab for f, (_, vocab) in zip(fields, fixed, strict=True)
              if vocab is not None}
    return [spec for spec, _ in fixed], vocabs


def _fix_field(f: _Field, n_bins: int) -> tuple[FieldSpec, pa.Table | None]:
    transform: dict[str, Any]
    if f.kind == "quantile":
        fit = np.concatenate(f.train_values) if f.train_values else np.empty(0)
        f.train_values = []
        if fit.size == 0:
            raise DataError(f"numeric column {f.name!r} has no values in the train split")
        f.edges = np.unique(np.quantile(fit, np.linspace(0, 1, n_bins + 1)[1:-1]))
        f.mean, f.std = float(fit.mean()), float(fit.std()) or 1.0
        transform = {"type": "quantile", "edges": [float(e) for e in f.edges],
                     "mean": f.mean, "std": f.std}
        return FieldSpec(name=f.name, kind="numeric", vocab_size=len(f.edges) + 2,
                         transform=transform), None
    table, distinct = f.counts.vocab(f.min_count)
    f.counts = VocabCounts()
    f.lookup = table["value"].combine_chunks()
    vocab = table.set_column(1, "value", pc.cast(table["value"], pa.string())).combine_chunks()
    if f.kind == "log2":
        transform = {"type": "log2", "min_count": f.min_count, "dense": "sign*log1p|x|"}
        return FieldSpec(name=f.name, kind="numeric", vocab_size=table.num_rows + 1,
                         transform=transform), vocab
    return FieldSpec(name=f.name, kind="categorical", vocab_size=table.num_rows + 1,
                     distinct=distinct,
                     transform={"type": "vocab", "min_count": f.min_count}), vocab


# --- pass 2: map to ids, route to splits, write shards ---------------------------------------
def _write(
    tmp: Path, spill: Path, fields: list[_Field], which: np.ndarray, config: PrepareConfig,
    pool: ThreadPoolExecutor, bar: progress.Bar,
) -> tuple[dict[str, SplitInfo], dict[str, int]]:
    """Pass 2 over the group files in ``spill`` (removed as they are read)."""
    shards = {s: _Shards(tmp, s, config) for s in SPLITS}
    positives = dict.fromkeys(SPLITS, 0)

    def route(table: pa.Table, part: np.ndarray, label: np.ndarray) -> None:
        start = 0  # the spill holds each batch's rows in split order
        for split, rows in zip(SPLITS, np.bincount(part, minlength=len(SPLITS)), strict=True):
            if rows:
                shards[split].add(table.slice(start, rows))
                positives[split] += int(label[start:start + rows].sum())
                start += int(rows)

    offset = 0
    # one thread routes and writes a batch's rows while the pool maps the next batch to ids.
    # Each group's file is mapped, unlinked, and unmapped once written: mapped pages count as
    # the process's memory until unmapped, and a single mapped spill grew with the file
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending: Future[None] | None = None
        previous: pa.MemoryMappedFile | None = None
        for path in sorted(spill.iterdir()):
            source = pa.memory_map(str(path))
            path.unlink()
            batch = pa.ipc.open_stream(source).read_next_batch()
            end = offset + batch.num_rows
            cols = list(pool.map(_ids, fields, [batch] * len(fields)))
            names = [name for c in cols for name in c]
            arrays = [arr for c in cols for arr in c.values()]
            names.append("label")
            arrays.append(batch["label"])
            table = pa.table(arrays, names=names)
            if pending is not None:
                pending.result()
            if previous is not None:
                previous.close()
            pending = writer.submit(route, table, which[offset:end], batch["label"].to_numpy())
            previous, offset = source, end
            bar.update(batch.num_rows)
        if pending is not None:
            pending.result()
        if previous is not None:
            previous.close()
    # each split's digest: its row numbers, as the in-memory path records them (sorted)
    return {s: dataclasses.replace(shards[s].close(table.schema),
                                   digest=rows_digest(np.flatnonzero(which == code)))
            for code, s in enumerate(SPLITS)}, positives


def _ids(f: _Field, batch: pa.RecordBatch) -> dict[str, pa.Array]:
    col = batch[f.name]
    if f.kind == "quantile":
        assert f.edges is not None
        x = col.to_numpy()
        missing = np.isnan(x)
        ids = np.where(
            missing, 0, np.searchsorted(f.edges, np.where(missing, 0, x), side="right") + 1
        ).astype(np.int32)
        dense = np.where(missing, 0.0, (x - f.mean) / f.std).astype(np.float32)
        return {f.name: pa.array(ids), dense_column(f.name): pa.array(dense)}
    # position of each dictionary entry in the vocabulary (ids are positions + 1), 0 if absent
    # (the null entry included); the extra last slot is where null codes (-1), if any, land
    pos = pc.index_in(col.dictionary, value_set=f.lookup)
    id_of_code = np.append(
        np.asarray(pc.fill_null(pos, -1).to_numpy(zero_copy_only=False), np.int32) + 1, 0
    ).astype(np.int32)
    out = {f.name: pa.array(id_of_code[codes_of(col)])}
    if f.kind == "log2":
        out[dense_column(f.name)] = batch[dense_column(f.name)]
    return out


class _Shards:
    """Writes one split's shards of ``rows_per_shard`` rows (as the in-memory path cuts them),
    appending each group's rows to the open shard so that no shard is held in memory."""

    def __init__(self, root: Path, split: str, config: PrepareConfig) -> None:
        self.root, self.split, self.config = root, split, config
        (root / split).mkdir()
        self.writer: pq.ParquetWriter | None = None
        self.in_shard = 0
        self.files: list[str] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        start, size = 0, self.config.rows_per_shard
        while start < table.num_rows:
            if self.writer is None:
                rel = f"{self.split}/part-{len(self.files):05d}.parquet"
                self.writer = pq.ParquetWriter(self.root / rel, table.schema,
                                               **parquet_options(self.config))
                self.files.append(rel)
            take = min(size - self.in_shard, table.num_rows - start)
            self.writer.write_table(table.slice(start, take), row_group_size=ROW_GROUP)
            start, self.in_shard, self.rows = start + take, self.in_shard + take, self.rows + take
            if self.in_shard == size:
                self.writer.close()
                self.writer, self.in_shard = None, 0

    def close(self, schema: pa.Schema) -> SplitInfo:
        if self.writer is not None:
            self.writer.close()
        if not self.files:  # an empty split still gets one (empty) shard
            rel = f"{self.split}/part-00000.parquet"
            write_shard(self.root / rel, schema.empty_table(), self.config)
            self.files.append(rel)
        return SplitInfo(rows=self.rows, files=tuple(self.files))
