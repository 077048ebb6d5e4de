"""Column encoding for :mod:`adass_ray.data.prepare`: raw columns → integer ids.

What lives here, and why apart from ``prepare``: the columnar (pyarrow / numpy, no per-row
Python) kernels that turn one column into ids, independent of splitting and writing:

* dictionary codes of a column (:func:`column_codes`);
* vocabulary fitting (:func:`vocab_ids`): kept values get ids 1..V-1 by descending *train* count,
  ties by value text; rarer, unseen or missing values get the OOV id 0;
* numeric bucketing (:func:`encode_numeric`): the Criteo ``log2`` rule or train-fitted quantile
  bins, plus the dense value;
* multi-valued fields (:func:`encode_multi`): lists of ids;
* :func:`float_numpy`, a numeric column as float64 numpy with NaN for nulls;
* :class:`VocabCounts`, the same vocabulary fitted from batches (the streaming prepare);
* :func:`mapping_hash` / :func:`rows_digest`, what the dataset fingerprint is made of.

``prepare`` chooses the encoder per field and passes the train mask and thresholds in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from adass_ray.data.feature_map import SPLITS, FieldSpec
from adass_ray.data.schema import Schema
from adass_ray.errors import DataError


def column_codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Dictionary codes (``-1`` for null) and the dictionary of a column, as one chunk."""
    if isinstance(col, pa.ChunkedArray):
        if pa.types.is_dictionary(col.type) and col.num_chunks > 1:
            # unifying many chunk dictionaries is far slower than re-encoding the values
            col = pc.cast(col, col.type.value_type)
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    codes = pc.fill_null(pc.cast(col.indices, pa.int64()), -1).to_numpy(zero_copy_only=False)
    return codes, col.dictionary


def _int_codes(values: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """Codes/dictionary for an int64 column without hashing (small ranges use an offset)."""
    present = values[~missing]
    if present.size == 0:
        return np.full(len(values), -1, dtype=np.int64), pa.array([], pa.int64())
    lo, hi = int(present.min()), int(present.max())
    if hi - lo < 1 << 20:
        codes = np.where(missing, -1, values - lo)
        return codes.astype(np.int64), pa.array(np.arange(lo, hi + 1, dtype=np.int64))
    uniq, inverse = np.unique(present, return_inverse=True)
    codes = np.full(len(values), -1, dtype=np.int64)
    codes[~missing] = inverse
    return codes, pa.array(uniq)


def vocab_ids(
    codes: np.ndarray, dictionary: pa.Array, train: np.ndarray | None, min_count: int
) -> tuple[np.ndarray, pa.Table, int]:
    """Map dictionary codes to ids: kept values 1..V-1 by descending train count; else 0."""
    ndict = len(dictionary)
    fit = codes if train is None else codes[train]
    counts = np.bincount(fit[fit >= 0], minlength=ndict)
    kept = np.flatnonzero(counts >= max(min_count, 1))
    # descending count, ties by the value's text so the mapping does not depend on row order
    kept_values = pc.cast(dictionary.take(pa.array(kept, pa.int64())), pa.string())
    text = np.asarray(kept_values.to_numpy(zero_copy_only=False), dtype=object).astype(str)
    kept = kept[np.lexsort((text, -counts[kept]))]
    id_of_code = np.zeros(ndict + 1, dtype=np.int32)  # last slot: null code -1
    id_of_code[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    ids = id_of_code[codes]
    vocab = pa.table({
        "id": pa.array(np.arange(1, len(kept) + 1, dtype=np.int32)),
        "value": pc.cast(dictionary.take(pa.array(kept)), pa.string()),
        "count": pa.array(counts[kept].astype(np.int64)),
    })
    return ids, vocab, len(kept) + 1


def encode_numeric(
    name: str, col: pa.ChunkedArray, bucketing: str, train: np.ndarray, min_count: int,
    n_bins: int,
) -> tuple[FieldSpec, np.ndarray, np.ndarray, pa.Table | None]:
    """Bucketize a numeric column: ids (``log2`` vocabulary or ``n_bins`` quantile bins), dense
    values and, for ``log2``, the vocabulary."""
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise DataError(f"numeric column {name!r} has type {col.type}; it must hold numbers")
    x = float_numpy(col)
    missing = np.isnan(x)
    if bucketing == "log2":
        # the Criteo rule: x > 2 → floor(ln(x)^2), else x; the result is treated as categorical
        x[missing] = 0.0
        big = x > 2
        b = np.floor(x)
        b[big] = np.floor(np.log(x[big]) ** 2)
        codes, dictionary = _int_codes(b.astype(np.int64), missing)
        ids, vocab, vsize = vocab_ids(codes, dictionary, train, min_count)
        dense = np.log1p(np.abs(x), dtype=np.float32)  # 0 where missing
        np.copysign(dense, x, out=dense, casting="unsafe")
        transform: dict[str, Any] = {
            "type": "log2", "min_count": min_count, "dense": "sign*log1p|x|"
        }
    else:
        fit = x[train & ~missing]
        if fit.size == 0:
            raise DataError(f"numeric column {name!r} has no values in the train split")
        edges = np.unique(np.quantile(fit, np.linspace(0, 1, n_bins + 1)[1:-1]))
        ids = np.where(
            missing, 0, np.searchsorted(edges, np.where(missing, 0, x), side="right") + 1
        )
        ids = ids.astype(np.int32)
        vsize, vocab = len(edges) + 2, None
        mean, std = float(fit.mean()), float(fit.std()) or 1.0
        dense = np.where(missing, 0.0, (x - mean) / std).astype(np.float32)
        transform = {
            "type": "quantile", "edges": [float(e) for e in edges], "mean": mean, "std": std
        }
    # `distinct` is left out for numeric fields: raw distinct numbers say little and counting
    # them costs as much as the bucketing itself
    spec = FieldSpec(name=name, kind="numeric", vocab_size=int(vsize), transform=transform)
    return spec, ids, dense, vocab


def float_numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as float64 numpy with NaN for nulls (no pandas round trip)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    arr = pc.cast(arr, pa.float64())
    if arr.null_count:  # to_numpy on nulls takes a slow path (through pandas)
        arr = pc.fill_null(arr, float("nan"))
    return np.array(arr.to_numpy(zero_copy_only=False), dtype=np.float64)  # writable copy


def encode_multi(
    name: str, col: pa.ChunkedArray, sep: str, train: np.ndarray, min_count: int,
    max_multi_len: int,
) -> tuple[FieldSpec, pa.Array, pa.Table]:
    """Encode a multi-valued column (text split on ``sep``, or lists) as lists of ids."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(pa.string())
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        if not pa.types.is_string(arr.type):
            raise DataError(f"multi-valued column {name!r} must hold text or lists, not {arr.type}")
        arr = pc.split_pattern(pc.utf8_trim_whitespace(arr), pattern=sep or " ")
    arr = pc.fill_null(arr, pa.scalar([], arr.type)) if arr.null_count else arr
    values = pc.list_flatten(arr)
    parents = np.asarray(pc.list_parent_indices(arr), dtype=np.int64)
    values_ok = pc.not_equal(pc.cast(values, pa.string()), "")
    codes, dictionary = column_codes(
        pc.if_else(values_ok, values, pa.nulls(len(values), values.type))
    )
    elem_train = train[parents]
    ids, vocab, vsize = vocab_ids(codes, dictionary, elem_train, min_count)
    keep = codes >= 0  # drop empty tokens ("a||b") rather than turning them into OOV ids
    lengths = np.bincount(parents[keep], minlength=len(arr))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids[keep].astype(np.int32)))
    max_len = int(min(max(lengths[train].max(initial=1), 1), max_multi_len))
    spec = FieldSpec(name=name, kind="multi_valued", vocab_size=vsize, distinct=len(dictionary),
                     max_len=max_len,
                     transform={"type": "vocab", "min_count": min_count, "sep": sep})
    return spec, lists, vocab


@dataclass
class VocabCounts:
    """Train counts per distinct value of one field, merged as batches arrive (streaming prepare).

    Memory follows the number of distinct values: parts are merged whenever the unmerged ones
    outgrow the merged table. A merge is one ``dictionary_encode`` of the parts' values and a
    weighted ``bincount`` (no Acero ``group_by`` plan per merge: that cost more than the
    hashing itself).
    """

    MERGE_ROWS: ClassVar[int] = 1 << 18  # merge no more often than this many new entries

    values: list[pa.Array] = field(default_factory=list)
    counts: list[np.ndarray] = field(default_factory=list)
    merged_rows: int = 0
    pending_rows: int = 0

    def add(self, dictionary: pa.Array, counts: np.ndarray) -> None:
        """Add one batch's dictionary and the train count of each of its entries."""
        self.values.append(dictionary)
        self.counts.append(np.asarray(counts, dtype=np.int64))
        self.pending_rows += len(dictionary)
        # merge when the unmerged parts outgrow the merged table: amortized linear work
        if self.pending_rows > max(self.merged_rows, self.MERGE_ROWS):
            self._merge()

    def _merge(self) -> None:
        if not self.values:
            self.values, self.counts = [pa.array([], pa.string())], [np.zeros(0, np.int64)]
        elif len(self.values) > 1:
            # one hash pass over all parts' values; a value's counts are summed by its code
            # (float64 sums are exact below 2**53 rows)
            enc = pc.dictionary_encode(pa.chunked_array(self.values), null_encoding="encode")
            codes = np.concatenate([np.asarray(c.indices) for c in enc.chunks])
            total = np.bincount(codes, weights=np.concatenate(self.counts),
                                minlength=len(enc.chunk(enc.num_chunks - 1).dictionary))
            self.values = [enc.chunk(enc.num_chunks - 1).dictionary]
            self.counts = [total.astype(np.int64)]
        self.merged_rows, self.pending_rows = len(self.values[0]), 0

    def vocab(self, min_count: int) -> tuple[pa.Table, int]:
        """(vocabulary table ordered as ids 1..V-1, number of distinct values)."""
        self._merge()
        table = pa.table({"value": self.values[0], "count": pa.array(self.counts[0])})
        kept = table.filter(pc.and_(pc.greater_equal(table["count"], max(min_count, 1)),
                                    pc.is_valid(table["value"])))
        # descending count, ties by the value's text (as vocab_ids); values are unique
        kept = kept.append_column("text", pc.cast(kept["value"], pa.string()))
        kept = kept.take(pc.sort_indices(
            kept, sort_keys=[("count", "descending"), ("text", "ascending")]
        ))
        vocab = pa.table({
            "id": pa.array(np.arange(1, kept.num_rows + 1, dtype=np.int32)),
            "value": kept["value"],
            "count": pc.cast(kept["count"], pa.int64()),
        })
        return vocab, table.num_rows - table["value"].null_count


def mapping_hash(transform: Any, vocab: pa.Table | None) -> str:
    """sha256 of a field's value → id mapping: its transform and its vocabulary's (id, value)
    pairs (counts left out: they describe the data, not the mapping)."""
    h = hashlib.sha256(json.dumps(transform, sort_keys=True, default=str).encode())
    if vocab is not None:
        for name in ("id", "value"):
            col = vocab[name].combine_chunks()
            h.update(name.encode())
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                # lengths then bytes: ["ab", "c"] and ["a", "bc"] must hash apart
                h.update(np.asarray(pc.utf8_length(col).fill_null(-1), np.int64).tobytes())
                h.update(_utf8_bytes(col.fill_null("")))
            else:
                h.update(np.asarray(col.to_numpy(zero_copy_only=False), np.int64).tobytes())
    return h.hexdigest()


def _utf8_bytes(col: pa.Array) -> bytes:
    """The values of a string array without nulls, concatenated (its data buffer's used span:
    no Python string per value)."""
    if pa.types.is_large_string(col.type):
        col = col.cast(pa.string())  # fits: vocabularies are far below 2 GiB of text
    offsets = np.frombuffer(col.buffers()[1], dtype=np.int32)[col.offset:col.offset + len(col) + 1]
    data = col.buffers()[2]
    if data is None or len(col) == 0:
        return b""
    return data.slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()


def rows_digest(rows: np.ndarray) -> str:
    """sha256 of the row numbers (of the raw input) one split holds, in order."""
    return hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).hexdigest()


def check_trainable(
    name: str, label: np.ndarray, splits: dict[str, np.ndarray], fractions: Sequence[float]
) -> None:
    """Refuse data a model cannot be trained or scored on: an empty split, one class."""
    check_nonempty(name, {s: len(idx) for s, idx in splits.items()}, fractions)
    classes = np.unique(label)
    if len(classes) < 2:
        raise DataError(
            f"{name}: every row has label {classes[0]:g}; a click model needs both 0s and 1s "
            "(check the label column or the label rule)"
        )
    train = np.unique(label[splits["train"]])
    if len(train) < 2:
        raise DataError(
            f"{name}: the train split holds only label {train[0]:g}; give more rows "
            "or another --seed"
        )


def vocab_file_name(name: str) -> str:
    """The file of field ``name``'s vocabulary under ``vocab/``: one per name, never shared.

    A name that is not already a short, safe file name (``a/b``, ``..``, 300 characters) gets
    its safe prefix plus a hash of the whole name, so ``a/b`` and ``a_b`` get two files.
    """
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:80]
    if safe == name:
        return f"{name}.parquet"
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:12]}.parquet"


def check_nonempty(name: str, rows: dict[str, int], fractions: Sequence[float]) -> None:
    """Refuse a split left empty although its fraction is not 0 (too few rows)."""
    for split, frac in zip(SPLITS, fractions, strict=True):
        if frac > 0 and rows[split] == 0:
            raise DataError(
                f"{name}: {sum(rows.values())} row(s) leave the {split} split empty; give more "
                f"rows (at least {int(np.ceil(1 / min(f for f in fractions if f > 0)))})"
            )


def check_classes(name: str, counts: dict[str, tuple[int, int]],
                  fractions: Sequence[float]) -> None:
    """The streaming path's form of :func:`check_trainable`: ``split -> (rows, positives)``."""
    check_nonempty(name, {s: r for s, (r, _) in counts.items()}, fractions)
    rows = sum(r for r, _ in counts.values())
    positives = sum(p for _, p in counts.values())
    if positives in (0, rows):
        raise DataError(f"{name}: every row has label {int(positives == rows)}; a click model "
                        "needs both 0s and 1s (check the label column or the label rule)")
    train_rows, train_pos = counts["train"]
    if train_pos in (0, train_rows):
        raise DataError(f"{name}: the train split holds only label {int(train_pos > 0)}; give "
                        "more rows or another --seed")


def label_values(table: pa.Table | pa.RecordBatch, schema: Schema, name: str) -> np.ndarray:
    """0/1 float32 labels of ``table`` (after the schema's label rule, if any)."""
    rule = schema.label_rule
    col_name = (rule.column or schema.label) if rule else schema.label
    col = table[col_name]
    if col.null_count:
        raise DataError(
            f"{name}: label column {col_name!r} has {col.null_count} empty values; "
            "drop those rows"
        )
    if not (
        pa.types.is_integer(col.type)
        or pa.types.is_floating(col.type)
        or pa.types.is_boolean(col.type)
    ):
        try:
            col = pc.cast(col, pa.float64())
        except pa.ArrowInvalid:
            raise DataError(f"{name}: label column {col_name!r} is not numeric") from None
    if rule is not None:
        values = float_numpy(col)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:  # the rule would turn nan/inf into 0/1 silently
            raise DataError(
                f"{name}: label column {col_name!r} holds {bad.size} non-finite value(s) "
                f"(e.g. {values[bad[0]]}); drop or fix those rows"
            )
        return (
            rule.apply(pa.array(float_numpy(col))).to_numpy(zero_copy_only=False)
        ).astype(np.float32)
    values = float_numpy(col)
    bad = values[(values != 0) & (values != 1)]
    if bad.size:
        raise DataError(
            f"{name}: label column {col_name!r} holds values other than 0/1 "
            f"(e.g. {bad[0]:g}); "
            f"give a label rule such as --label-rule '{col_name} >= 4' "
            "(or label_rule in the schema)"
        )
    return values.astype(np.float32)
