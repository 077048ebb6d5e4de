"""Parquet shards → torch :class:`Batch` es, with no per-row Python.

A :class:`ShardLoader` reads one split of a prepared dataset — or, for data-parallel training,
one rank's contiguous, equal-sized slice of it (row groups outside the slice are never read) —
into column tensors once, then yields shuffled batches by tensor indexing. The shuffle order is a
function of ``(seed, epoch)`` only, so a resumed run can skip to the batch it stopped at and see
exactly the rows it would have seen.

Why not Ray Data: for data that fit in a worker's memory, per-worker shards read with pyarrow were
measured several times faster than ``ray.data`` ``iter_torch_batches`` on this hardware, with no
warm-up (``python bench/run.py L1`` prints the ratio). Every rank gets the same number of rows, so
DDP ranks take the same number of steps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap, dense_column
from adass_ray.errors import AdassError, DataError

logger = logging.getLogger(__name__)


class ShardLoader:
    """Batches of one split (or one rank's slice of it).

    Args:
        root: the prepared dataset folder.
        feature_map: its feature map (loaded from ``root`` when omitted).
        split: ``train``, ``valid`` or ``test``.
        batch_size: rows per batch.
        shuffle: reshuffle every epoch (seeded by ``seed`` and the epoch number).
        seed: shuffle seed.
        rank, world_size: this worker's slice: rows ``[rank·n, (rank+1)·n)`` with
            ``n = rows // world_size`` (the remainder is dropped so every rank has ``n`` rows).
        drop_last: drop a final partial batch.
        max_rows: read at most this many rows of the split (before slicing); for smoke tests.

    Raises:
        DataError: the files disagree with the feature map (missing column, id out of range).
    """

    def __init__(
        self,
        root: str | Path,
        feature_map: FeatureMap | None = None,
        *,
        split: str = "train",
        batch_size: int = 4096,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        max_rows: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise AdassError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise AdassError(f"rank {rank} is outside world_size {world_size}")
        self.root = Path(root)
        self.fmap = feature_map or FeatureMap.load(self.root)
        self.batch_size, self.shuffle, self.seed, self.drop_last = (
            batch_size, shuffle, seed, drop_last
        )
        self.epoch = 0
        paths = self.fmap.split_paths(self.root, split)
        total = self.fmap.splits[split].rows
        if max_rows is not None:
            total = min(total, max_rows)
        per_rank = total // world_size
        lo = rank * per_rank
        table = _read_rows(paths, lo, lo + per_rank, self._columns())
        self._tensors = _to_tensors(table, self.fmap, source=f"{self.root}/{split}")
        self.num_rows = per_rank

    def _columns(self) -> list[str]:
        cols = [f.name for f in self.fmap.fields]
        cols += [dense_column(f.name) for f in self.fmap.numeric_fields]
        return [*cols, self.fmap.label]

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle order of ``epoch`` (call before iterating)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        full, rest = divmod(self.num_rows, self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def order(self) -> torch.Tensor:
        """Row order for the current epoch: ``[num_rows]`` int64."""
        if not self.shuffle:
            return torch.arange(self.num_rows)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.num_rows, generator=g)

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(0)

    def iter_from(self, start_batch: int) -> Iterator[Batch]:
        """Iterate the current epoch starting at batch ``start_batch`` (for exact resume)."""
        order = self.order()
        ids, multi, dense, label = self._tensors
        for b in range(start_batch, len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield Batch(
                ids=ids[idx].long(),
                multi=tuple(m[idx].long() for m in multi),
                dense=dense[idx],
                label=label[idx],
            )

    def full_batch(self) -> Batch:
        """All rows of this slice as one batch, in file order."""
        ids, multi, dense, label = self._tensors
        return Batch(ids=ids.long(), multi=tuple(m.long() for m in multi), dense=dense, label=label)


def _read_rows(paths: list[Path], lo: int, hi: int, columns: list[str]) -> pa.Table:
    """Rows ``[lo, hi)`` of the concatenation of ``paths``, reading only overlapping row groups."""
    pieces: list[pa.Table] = []
    offset = 0
    for path in paths:
        if not path.is_file():
            raise DataError(f"shard {path} is missing; re-run `adass-ray prepare`")
        pf = pq.ParquetFile(path)
        missing = [c for c in columns if c not in pf.schema_arrow.names]
        if missing:
            raise DataError(f"{path}: column(s) {missing} from the feature map are not in the "
                            "data; the feature map and the shards disagree — re-run "
                            "`adass-ray prepare`")
        for rg in range(pf.num_row_groups):
            n = pf.metadata.row_group(rg).num_rows
            start, stop = offset, offset + n
            offset = stop
            if stop <= lo or start >= hi:
                continue
            t = pf.read_row_group(rg, columns=columns)
            pieces.append(t.slice(max(lo - start, 0), min(hi, stop) - max(lo, start)))
        if offset >= hi:
            break
    if not pieces:
        return pa.table({c: pa.array([], pa.int32()) for c in columns})
    return pa.concat_tables(pieces)


def _to_tensors(
    table: pa.Table, fmap: FeatureMap, *, source: str
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
    n = table.num_rows
    single = [f for f in fmap.fields if f.kind != "multi_valued"]
    ids = np.empty((n, len(single)), dtype=np.int32)
    for j, f in enumerate(single):
        col = table[f.name].to_numpy()
        if n and (col.min() < 0 or col.max() >= f.vocab_size):
            raise DataError(
                f"{source}: field {f.name!r} has ids outside [0, {f.vocab_size}); the feature map "
                "and the data disagree — re-run `adass-ray prepare`"
            )
        ids[:, j] = col
    multi = []
    for f in fmap.multi_valued_fields:
        assert f.max_len is not None
        multi.append(torch.from_numpy(
            _pad_lists(table[f.name], f.max_len, f.vocab_size, source, f.name)
        ))
    dense_names = [dense_column(f.name) for f in fmap.numeric_fields]
    dense = np.empty((n, len(dense_names)), dtype=np.float32)
    for j, name in enumerate(dense_names):
        dense[:, j] = table[name].to_numpy()
    label = table[fmap.label].to_numpy().astype(np.float32)
    return torch.from_numpy(ids), tuple(multi), torch.from_numpy(dense), torch.from_numpy(label)


def _pad_lists(
    col: pa.ChunkedArray, max_len: int, vocab: int, source: str, name: str
) -> np.ndarray:
    """A list<int> column → ``[N, max_len]`` int32 padded with -1 (lists longer are truncated)."""
    arr = col.combine_chunks()
    n = len(arr)
    offsets = arr.offsets.to_numpy()
    values = arr.values.to_numpy(zero_copy_only=False)
    lengths = np.minimum(np.diff(offsets), max_len)
    out = np.full((n, max_len), -1, dtype=np.int32)
    rows = np.repeat(np.arange(n), lengths)
    pos = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    src = np.repeat(offsets[:-1], lengths) + pos
    vals = values[src]
    if vals.size and (vals.min() < 0 or vals.max() >= vocab):
        raise DataError(
            f"{source}: field {name!r} has ids outside [0, {vocab}); re-run `adass-ray prepare`"
        )
    out[rows, pos] = vals
    return out
