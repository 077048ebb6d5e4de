"""The streaming prepare's column encoders agree with the row-wise formulas they replace."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from adass_ray.data import stream_codes
from adass_ray.data.stream_codes import log2_bucket, log2_dense, log2_int, small_unique


def _row_wise(values: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bucket key and dense value per row, as encoding.encode_numeric computes them."""
    x = np.where(missing, 0, values).astype(np.float64)
    return log2_bucket(x), log2_dense(x)


@pytest.mark.parametrize("key_range", [1 << 16, 8])  # 8: most values take the wide path
def test_log2_int_matches_row_wise_maths(monkeypatch, key_range):
    monkeypatch.setattr(stream_codes, "KEY_RANGE", key_range)
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.integers(-3, 40, 500), np.floor(np.exp(rng.normal(3, 2.5, 500))).astype(np.int64),
        [-(2**40), 2**45, 0, 1, 2, 3],
    ])
    missing = rng.random(len(values)) < 0.2
    chunks = [pa.array(values[i:i + 97], mask=missing[i:i + 97]) for i in range(0, 1006, 97)]
    enc, dense = log2_int(pa.chunked_array(chunks))
    keys, want_dense = _row_wise(values, missing)
    assert dense.dtype == np.float32
    assert np.array_equal(dense.view(np.int32), want_dense.view(np.int32))  # same bits
    assert enc.indices.null_count == 0
    got = enc.dictionary.take(enc.indices).to_pylist()
    assert got == [None if m else int(k) for k, m in zip(keys, missing, strict=True)]
    assert enc.dictionary.null_count == 1 and enc.dictionary[-1].as_py() is None
    assert len(set(enc.dictionary.to_pylist())) == len(enc.dictionary)  # no duplicates


def test_log2_int_with_the_smallest_int64_and_missing_values():
    low = -(2**63)
    enc, dense = log2_int(pa.chunked_array([pa.array([low, None, 5, None], pa.int64())]))
    keys, want_dense = _row_wise(np.array([low, 0, 5, 0]), np.array([False, True, False, True]))
    assert enc.dictionary.take(enc.indices).to_pylist() == [int(keys[0]), None, int(keys[2]), None]
    assert np.array_equal(dense.view(np.int32), want_dense.view(np.int32))


def test_log2_int_all_missing():
    enc, dense = log2_int(pa.chunked_array([pa.array([None, None], pa.int64())]))
    assert enc.dictionary.take(enc.indices).to_pylist() == [None, None]
    assert dense.tolist() == [0.0, 0.0]


def test_small_unique_is_np_unique():
    rng = np.random.default_rng(1)
    for b in (rng.integers(-5, 2000, 10_000), rng.integers(-(2**40), 2**40, 100),
              np.array([7]), np.zeros(0, np.int64)):
        want, want_inv = np.unique(b, return_inverse=True)
        got, got_inv = small_unique(b)
        assert np.array_equal(got, want) and np.array_equal(got_inv, want_inv)


def test_mapping_hash_reads_the_text_bytes_as_python_would():
    """The vocabulary hash concatenates the values' UTF-8 bytes straight from the Arrow buffer;
    the digest is the one of encoding each value in Python (fingerprints do not move)."""
    import hashlib
    import json

    from adass_ray.data.encoding import mapping_hash

    values = pa.array(["b", "", "é", "a|c", "x" * 300, "zz"]).slice(1)  # a sliced buffer
    vocab = pa.table({"id": pa.array(np.arange(1, 6, dtype=np.int32)), "value": values})
    transform = {"type": "vocab", "min_count": 2}
    h = hashlib.sha256(json.dumps(transform, sort_keys=True, default=str).encode())
    h.update(b"id")
    h.update(np.arange(1, 6, dtype=np.int64).tobytes())
    h.update(b"value")
    h.update(np.array([len(v) for v in values.to_pylist()], np.int64).tobytes())
    h.update(b"".join(v.encode() for v in values.to_pylist()))
    assert mapping_hash(transform, vocab) == h.hexdigest()
