"""Prepare: a raw table → train/valid/test parquet shards of ids + ``feature_map.json``.

Everything is columnar (pyarrow / numpy, no per-row Python): categorical values are dictionary
encoded, counted on the *train* rows only, and mapped to ids 1..V-1 by descending count (ties by
value, so the mapping is deterministic); values below the minimum count, unseen or missing get the
OOV id 0. Numeric columns are bucketized (the Criteo ``log2`` rule, or train-fitted quantile bins)
and also kept as a dense value. Multi-valued columns become lists of ids.

Output layout (see :mod:`adass_ray.data.feature_map`)::

    OUT/feature_map.json
    OUT/vocab/<field>.parquet          value → id, with train counts (to encode new data);
                                       see vocab_file_name for names that are not file names
    OUT/{train,valid,test}/part-00000.parquet …

Everything is written into a temp folder and renamed into place at the end. The per-column
encoders (vocabulary fitting, numeric bucketing, multi-valued lists) are in
:mod:`adass_ray.data.encoding`; this module splits, orchestrates and writes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from adass_ray import progress
from adass_ray.data.encoding import (
    check_trainable,
    column_codes,
    encode_multi,
    encode_numeric,
    label_values,
    mapping_hash,
    rows_digest,
    vocab_file_name,
    vocab_ids,
)
from adass_ray.data.feature_map import (
    DEFAULT_CANDIDATE_SIZES,
    SPLITS,
    FeatureMap,
    FieldSpec,
    SplitInfo,
    dense_column,
    validate_candidate_sizes,
)
from adass_ray.data.io import atomic_output_dir, check_output_dir
from adass_ray.data.schema import RawData, RawStream
from adass_ray.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareConfig:
    """How raw data become ids.

    Attributes:
        min_count: values seen fewer times than this in train become the OOV id (per-field
            overrides come from the schema). ``None``: the format's default (1, Criteo 10, Avazu 5).
        split: ``random`` (seeded) or ``time`` (ordered by the schema's time column).
        fractions: train / valid / test fractions.
        seed: seed for the random split.
        n_bins: number of quantile bins for numeric columns (``quantile`` bucketing).
        max_multi_len: cap on a multi-valued field's padded list length.
        rows_per_shard: rows per parquet file.
        compression: parquet codec of the shards. ``none`` (default) writes and reads fastest;
            ``zstd`` makes files about 3× smaller for about twice the write time.
        candidate_sizes: candidate embedding sizes recorded in the feature map.
    """

    min_count: int | None = None
    split: str = "random"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    n_bins: int = 32
    max_multi_len: int = 32
    rows_per_shard: int = 500_000
    compression: str = "none"
    candidate_sizes: tuple[int, ...] = DEFAULT_CANDIDATE_SIZES

    def __post_init__(self) -> None:
        if self.min_count is not None and self.min_count < 1:
            raise ConfigError(f"min_count must be >= 1, got {self.min_count}")
        if self.split not in ("random", "time"):
            raise ConfigError(f"split must be 'random' or 'time', got {self.split!r}")
        if (
            len(self.fractions) != 3
            or any(f < 0 for f in self.fractions)
            or abs(sum(self.fractions) - 1) > 1e-6
        ):
            raise ConfigError(
                f"split fractions {self.fractions} must be three non-negative numbers summing to 1"
            )
        if self.fractions[0] <= 0:
            raise ConfigError("the train fraction must be > 0")
        if self.n_bins < 2:
            raise ConfigError(f"n_bins must be >= 2, got {self.n_bins}")
        if self.max_multi_len < 1 or self.rows_per_shard < 1:
            raise ConfigError("max_multi_len and rows_per_shard must be >= 1")
        if self.compression not in ("none", "snappy", "lz4", "zstd", "gzip"):
            raise ConfigError(
                f"compression {self.compression!r}: use none, snappy, lz4, zstd or gzip"
            )
        validate_candidate_sizes(self.candidate_sizes)


DEFAULT_MIN_COUNT = {"criteo": 10, "avazu": 5}


def prepare(
    raw: RawData | RawStream,
    out: str | Path,
    config: PrepareConfig = PrepareConfig(),
    *,
    overwrite: bool = False,
    inputs: Sequence[str | Path | None] = (),
) -> FeatureMap:
    """Turn ``raw`` into a prepared dataset at ``out`` and return its feature map.

    A :class:`RawStream` is prepared batch by batch in bounded memory (random split, no
    multi-valued fields; otherwise it is read whole first); both paths give the same dataset.
    ``inputs`` (the raw file, the schema ...) are never inside a folder ``overwrite`` replaces.

    Raises:
        DataError: bad label values, empty table, non-numeric numeric columns, no time column
            for a time split.
        AdassError: ``out`` exists and ``overwrite`` is false.
    """
    check_output_dir(out, overwrite=overwrite, inputs=inputs)  # fail before any work
    if isinstance(raw, RawStream):
        if config.split == "random" and not raw.schema.multi_valued:
            # imported here: the streaming module builds on this one's helpers
            from adass_ray.data.stream import RowCountMismatch, prepare_stream

            try:
                return prepare_stream(raw, out, config, overwrite=overwrite)
            except RowCountMismatch as e:
                logger.warning("%s; reading %s whole instead", e, raw.name)
        raw = raw.read_all()
    table, schema = raw.table, raw.schema
    schema.check_columns(table.column_names, source=raw.name)
    n = table.num_rows
    if n == 0:
        raise DataError(f"{raw.name}: no rows")
    label = label_values(raw.table, raw.schema, raw.name)
    splits = _split_indices(raw, config)
    check_trainable(raw.name, label, splits, config.fractions)
    train = np.zeros(n, dtype=bool)
    train[splits["train"]] = True
    default_min = default_min_count(raw, config)

    def encode(
        name: str,
    ) -> tuple[FieldSpec, dict[str, np.ndarray | pa.Array], pa.Table | None]:
        col = table[name]
        min_count = schema.min_count.get(name, default_min)
        if name in schema.multi_valued:
            spec, arr, vocab = encode_multi(
                name, col, schema.multi_valued[name], train, min_count, config.max_multi_len
            )
            return spec, {name: arr}, vocab
        if name in schema.numeric:
            spec, ids, dense, vocab = encode_numeric(
                name, col, schema.numeric_bucketing, train, min_count, config.n_bins
            )
            return spec, {name: ids, dense_column(name): dense}, vocab
        codes, dictionary = column_codes(col)
        ids, vocab, vsize = vocab_ids(codes, dictionary, train, min_count)
        spec = FieldSpec(name=name, kind="categorical", vocab_size=vsize,
                         distinct=len(dictionary),
                         transform={"type": "vocab", "min_count": min_count})
        return spec, {name: ids}, vocab

    # columns are independent and numpy/pyarrow release the GIL: encode them on all cores
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers()) as pool, progress.closing(
        progress.bar(total=n * len(schema.feature_columns), desc=f"prepare {raw.name}: encode",
                     unit="values", scale=True)
    ) as bar:
        encoded = []
        for item in pool.map(encode, schema.feature_columns):
            encoded.append(item)
            bar.update(n)  # one column's rows: the rate reads as values (cells) per second
    logger.debug("encoded %d columns in %.2f s", len(encoded), time.perf_counter() - t0)
    columns: dict[str, np.ndarray | pa.Array] = {}
    fields: list[FieldSpec] = []
    vocabs: dict[str, pa.Table] = {}
    for name, (spec, cols, vocab) in zip(schema.feature_columns, encoded, strict=True):
        fields.append(spec)
        columns.update(cols)
        if vocab is not None:
            vocabs[name] = vocab

    with atomic_output_dir(out, overwrite=overwrite, inputs=inputs) as tmp:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers()) as pool, progress.closing(
            progress.bar(total=n, desc=f"prepare {raw.name}: write", unit="rows", scale=True)
        ) as bar:
            lock = threading.Lock()  # the splits are written in parallel threads

            def wrote(rows: int) -> None:
                with lock:
                    bar.update(rows)

            written = list(pool.map(
                lambda split: _write_split(
                    tmp, split, splits[split], columns, label, config, on_rows=wrote
                ),
                SPLITS,
            ))
        logger.debug("wrote the splits in %.2f s", time.perf_counter() - t0)
        split_info: dict[str, SplitInfo] = {}
        pos_rate: dict[str, float | None] = {}
        for split, files in zip(SPLITS, written, strict=True):
            idx = splits[split]
            split_info[split] = SplitInfo(rows=int(len(idx)), files=tuple(files),
                                          digest=rows_digest(idx))
            pos_rate[split] = positive_rate(int(label[idx].sum()), len(idx))
        finish(tmp, raw, config, fields, vocabs, split_info, pos_rate, default_min)
    logger.info("prepared %s: %d rows, %d fields → %s", raw.name, n, len(fields), out)
    return FeatureMap.load(out)  # what later stages will see (JSON round trip)


def default_min_count(raw: RawData | RawStream, config: PrepareConfig) -> int:
    """The minimum count of fields the schema gives none: the config's, else the format's."""
    if config.min_count is not None:
        return config.min_count
    return DEFAULT_MIN_COUNT.get(str(raw.metadata.get("format", "")), 1)


def positive_rate(positives: int, rows: int) -> float | None:
    """A split's positive rate as recorded in the feature map (None for an empty split)."""
    if not rows:
        return None
    # float32 as numpy's mean of the float32 labels gives it, so both prepare paths agree
    return round(float(np.float32(np.float32(positives) / rows)), 6)


def finish(
    tmp: Path, raw: RawData | RawStream, config: PrepareConfig, fields: list[FieldSpec],
    vocabs: dict[str, pa.Table], split_info: dict[str, SplitInfo],
    pos_rate: dict[str, float | None], default_min: int,
) -> None:
    """Write the vocabularies and ``feature_map.json`` into ``tmp`` (shared by both paths)."""
    for spec in fields:
        if spec.vocab_size == 1:
            logger.warning(
                "field %s: min_count %d leaves only the OOV id (every value is rarer); "
                "lower the threshold or drop the field",
                spec.name, spec.transform.get("min_count", default_min),
            )
    (tmp / "vocab").mkdir()
    for name, vocab in vocabs.items():
        pq.write_table(vocab, tmp / "vocab" / vocab_file_name(name))
    # the fingerprint's part of each field: a hash of its value → id mapping
    hashed = [replace(f, vocab_hash=mapping_hash(f.transform, vocabs.get(f.name))) for f in fields]
    fmap = FeatureMap(
        name=raw.name,
        label="label",
        fields=tuple(hashed),
        candidate_sizes=config.candidate_sizes,
        splits=split_info,
        metadata={
            **dict(raw.metadata),
            "rows": sum(s.rows for s in split_info.values()),
            "positive_rate": pos_rate,
            "label_rule": str(raw.schema.label_rule) if raw.schema.label_rule else None,
            "prepare": {**asdict(config), "min_count": default_min},
        },
    )
    fmap.save(tmp / "feature_map.json")


# --- label and splits ------------------------------------------------------------------------
def _split_indices(raw: RawData, config: PrepareConfig) -> dict[str, np.ndarray]:
    n = raw.table.num_rows
    if config.split == "time":
        if not raw.schema.time:
            raise DataError(
                f"{raw.name}: split=time needs a time column; name one under 'time' in the schema"
            )
        t = raw.table[raw.schema.time]
        if t.null_count:
            raise DataError(f"{raw.name}: time column {raw.schema.time!r} has empty values")
        # pyarrow's sort is stable: rows with equal times keep their file order
        order = np.asarray(pc.array_sort_indices(t.combine_chunks()), dtype=np.int64)
        return _cut(order, config)
    # file order inside a split does not matter (loaders shuffle); sorted gathers are faster
    return {k: np.sort(v) for k, v in _cut(random_order(n, config), config).items()}


def random_order(n: int, config: PrepareConfig) -> np.ndarray:
    """The seeded row permutation whose first, middle and last parts are train, valid, test."""
    return np.random.default_rng(config.seed).permutation(n)


def split_of_rows(n: int, config: PrepareConfig) -> np.ndarray:
    """Per row of the file: 0 train, 1 valid, 2 test (the random split, as int8)."""
    which = np.empty(n, dtype=np.int8)
    for code, idx in enumerate(_cut(random_order(n, config), config).values()):
        which[idx] = code
    return which


def _cut(order: np.ndarray, config: PrepareConfig) -> dict[str, np.ndarray]:
    n = len(order)
    n_train = int(round(config.fractions[0] * n))
    n_valid = int(round(config.fractions[1] * n))
    return {
        "train": order[:n_train],
        "valid": order[n_train:n_train + n_valid],
        "test": order[n_train + n_valid:],
    }


# --- writing ---------------------------------------------------------------------------------
def _write_split(
    root: Path, split: str, idx: np.ndarray, columns: dict[str, Any], label: np.ndarray,
    config: PrepareConfig, on_rows: Callable[[int], object] | None = None,
) -> list[str]:
    rows_per_shard = config.rows_per_shard
    (root / split).mkdir()
    files: list[str] = []
    take = pa.array(idx)
    data: dict[str, pa.Array] = {}
    for name, col in columns.items():
        data[name] = col.take(take) if isinstance(col, pa.Array) else pa.array(col[idx])
    data["label"] = pa.array(label[idx])
    table = pa.table(data)
    for part, start in enumerate(range(0, max(len(idx), 1), rows_per_shard)):
        rel = f"{split}/part-{part:05d}.parquet"
        write_shard(root / rel, table.slice(start, rows_per_shard), config)
        files.append(rel)
        if on_rows is not None:
            on_rows(min(rows_per_shard, len(idx) - start))
    return files


def write_shard(path: Path, table: pa.Table, config: PrepareConfig) -> None:
    """One parquet shard of a split (the same layout from both prepare paths)."""
    pq.write_table(table, path, row_group_size=ROW_GROUP, **parquet_options(config))


ROW_GROUP = 65536


def parquet_options(config: PrepareConfig) -> dict[str, Any]:
    """Parquet writer options of the shards (both prepare paths)."""
    # ids are already compact codes: dictionary pages only help with a codec
    return {"compression": config.compression, "use_dictionary": config.compression != "none"}


def workers() -> int:
    """Threads for column-parallel work (numpy / pyarrow release the GIL)."""
    return max(1, min(8, os.cpu_count() or 1))
