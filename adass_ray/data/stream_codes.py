"""Dictionary codes of one column of one group, for the streaming prepare (pass 1).

Every encoder returns a ``DictionaryArray`` whose indices have no nulls (a missing value is a
null *entry* of the dictionary), so the codes pass to numpy without a copy and the null entry
never becomes a vocabulary value. The Criteo ``log2`` rule is computed with exactly the formulas
of :func:`adass_ray.data.encoding.encode_numeric`; for integer columns it is computed once per
distinct value and gathered back to the rows (the same numbers, far fewer logarithms).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# integer values within this many of a column's minimum are bucketed through a table (one
# entry per value in that range); rarer, larger ones one by one
KEY_RANGE = 1 << 16


def log2_bucket(x: np.ndarray) -> np.ndarray:
    """The Criteo bucket of float64 values: x > 2 → floor(ln(x)^2), else floor(x); int64."""
    big = x > 2
    b = np.floor(x).astype(np.int64)
    b[big] = np.floor(np.log(x[big]) ** 2).astype(np.int64)
    return b


def log2_dense(x: np.ndarray) -> np.ndarray:
    """sign(x) * log1p(|x|) of float64 values, as float32 (+0 where x is 0)."""
    dense = np.log1p(np.abs(x), dtype=np.float32)
    np.copysign(dense, x, out=dense, casting="unsafe")
    return dense


def log2_int(col: pa.ChunkedArray) -> tuple[pa.DictionaryArray, np.ndarray]:
    """Bucket codes and dense values (float32) of an integer column.

    Values within :data:`KEY_RANGE` of the minimum are looked up in a table computed for that
    range (both functions are elementwise, so a value gets the bits it would get row by row);
    the rest are computed directly. Codes index the sorted distinct buckets, then a null entry
    for missing values (whose dense value is 0, as row-wise after filling them with 0).
    """
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    arr = pc.cast(arr, pa.int64())
    bounds = pc.min_max(arr)
    lo = bounds["min"].as_py() or 0
    hi = bounds["max"].as_py() or 0
    span = min(hi - lo + 1, KEY_RANGE)
    # a missing value reads as lo - 1: offset -1, the tables' last slot (null bucket, dense 0)
    at_floor = bool(arr.null_count) and lo == np.iinfo(np.int64).min  # no lo - 1: mask instead
    v = pc.fill_null(arr, lo if at_floor else lo - 1) if arr.null_count else arr
    values = np.asarray(v.to_numpy(zero_copy_only=False), dtype=np.int64)
    # compared, not subtracted: a range over 2**63 would wrap
    wide = np.flatnonzero(values >= lo + span) if span <= hi - lo else np.zeros(0, np.intp)
    wide_x = values[wide].astype(np.float64)
    off = values - lo  # wraps only where wide, overwritten next
    off[wide] = 0
    table_x = np.arange(lo, lo + span, dtype=np.int64).astype(np.float64)
    buckets, inverse = small_unique(np.concatenate([log2_bucket(table_x), log2_bucket(wide_x)]))
    code_table = np.append(inverse[:span], len(buckets)).astype(np.int32)
    codes = code_table[off]
    codes[wide] = inverse[span:]
    dense = np.append(log2_dense(table_x), np.float32(0.0))[off]
    dense[wide] = log2_dense(wide_x)
    if at_floor:
        missing = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        codes[missing], dense[missing] = len(buckets), 0.0
    null_last = np.zeros(len(buckets) + 1, dtype=bool)
    null_last[-1] = True
    dictionary = pa.array(np.append(buckets, 0), mask=null_last)
    return pa.DictionaryArray.from_arrays(pa.array(codes), dictionary), dense


def small_unique(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(b, return_inverse=True)`` of int64 values, by a table when they span a small
    range (buckets do), without sorting."""
    lo, hi = (int(b.min()), int(b.max())) if len(b) else (0, 0)
    if hi - lo >= KEY_RANGE:
        return np.unique(b, return_inverse=True)
    seen = np.zeros(hi - lo + 1, dtype=bool)
    seen[b - lo] = True
    rank = np.cumsum(seen) - 1
    return np.flatnonzero(seen) + lo, rank[b - lo]


def int_encode(b: np.ndarray, missing: np.ndarray) -> pa.DictionaryArray:
    """Dictionary-encode int64 bucket keys; a small range is an offset, not a hash."""
    present = b[~missing]
    lo, hi = (int(present.min()), int(present.max())) if present.size else (0, 0)
    if hi - lo >= 1 << 16:
        return dictionary_encode(pa.chunked_array([pa.array(b, mask=missing)]))
    # missing values get the last dictionary slot, a null (as null_encoding="encode" does)
    codes = np.where(missing, hi - lo + 1, b - lo).astype(np.int32)
    keys = np.arange(lo, hi + 2, dtype=np.int64)
    null_last = np.zeros(len(keys), dtype=bool)
    null_last[-1] = True
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(keys, mask=null_last))


def dictionary_encode(col: pa.ChunkedArray) -> pa.DictionaryArray:
    """One dictionary for all chunks (pyarrow encodes them with one hash table).

    Nulls are encoded as a dictionary entry, so the indices have no validity bitmap and pass to
    numpy without a copy; the null entry is never a vocabulary value (ids map it to OOV).
    """
    enc = pc.dictionary_encode(col, null_encoding="encode")
    if enc.num_chunks == 0:
        return pa.DictionaryArray.from_arrays(pa.array([], pa.int32()), pa.array([], col.type))
    dictionary = enc.chunk(enc.num_chunks - 1).dictionary  # the last chunk's holds every value
    indices = pa.concat_arrays([c.indices for c in enc.chunks])
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def codes_of(enc: pa.DictionaryArray) -> np.ndarray:
    """Dictionary indices as int32 numpy, -1 for null."""
    idx = enc.indices
    if idx.null_count:
        idx = pc.fill_null(idx, -1)
    return np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int32)
