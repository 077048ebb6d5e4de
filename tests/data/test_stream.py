"""The streaming prepare path: same dataset as the in-memory path and as a plain-Python encoder."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adass_ray.data import stream
from adass_ray.data.feature_map import SPLITS, FeatureMap
from adass_ray.data.prepare import PrepareConfig, prepare
from adass_ray.data.readers import (
    AVAZU_CATEGORICAL,
    read_avazu,
    read_criteo,
    read_csv,
    stream_avazu,
    stream_criteo,
    stream_csv,
)
from adass_ray.data.schema import LabelRule, Schema
from adass_ray.errors import DataError

from .helpers import write_criteo

SMALL_BLOCKS = 1 << 14  # ~60 Criteo rows per batch: many batches, many dictionary merges


@pytest.fixture(autouse=True)
def _small_groups(monkeypatch):
    # many encoding groups (and dictionary merges) even in small files
    monkeypatch.setattr(stream, "GROUP_ROWS", 256)
    monkeypatch.setattr(stream.VocabCounts, "MERGE_ROWS", 300)


def _table(out: Path, fmap: FeatureMap, split: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in fmap.split_paths(out, split)])


def _same_dataset(a: Path, b: Path) -> None:
    fa, fb = FeatureMap.load(a), FeatureMap.load(b)
    assert json.loads((a / "feature_map.json").read_text()) == json.loads(
        (b / "feature_map.json").read_text()
    )
    for split in SPLITS:
        for rel in fa.splits[split].files:
            assert pq.read_table(a / rel).equals(pq.read_table(b / rel)), rel
    for f in fa.fields:
        name = f"{f.name}.parquet"
        if (a / "vocab" / name).exists():
            assert pq.read_table(a / "vocab" / name).equals(pq.read_table(b / "vocab" / name))
    assert fb.fields == fa.fields


def _reference_criteo(path: Path, config: PrepareConfig) -> dict[str, dict[str, list]]:
    """Plain-Python Criteo encoding: the split, vocabularies and ids, row by row."""
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    n = len(rows)
    order = np.random.default_rng(config.seed).permutation(n)
    n_train = int(round(config.fractions[0] * n))
    n_valid = int(round(config.fractions[1] * n))
    split_of = {}
    for i, r in enumerate(order):
        split_of[int(r)] = "train" if i < n_train else "valid" if i < n_train + n_valid else "test"
    keys: dict[int, list] = {}
    for c in range(1, 40):
        col = []
        for r in rows:
            v = r[c]
            if v == "":
                col.append(None)
            elif c <= 13:
                x = int(v)
                col.append(math.floor(math.log(x) ** 2) if x > 2 else x)
            else:
                col.append(v)
        keys[c] = col
    out: dict[str, dict[str, list]] = {s: {} for s in SPLITS}
    for c, col in keys.items():
        name = f"I{c}" if c <= 13 else f"C{c - 13}"
        counts = Counter(v for i, v in enumerate(col) if v is not None and split_of[i] == "train")
        kept = sorted((v for v, k in counts.items() if k >= config.min_count),
                      key=lambda v: (-counts[v], str(v)))
        ids = {v: j + 1 for j, v in enumerate(kept)}
        for s in SPLITS:
            out[s][name] = [ids.get(v, 0) for i, v in enumerate(col) if split_of[i] == s]
    for s in SPLITS:
        out[s]["label"] = [float(r[0]) for i, r in enumerate(rows) if split_of[i] == s]
        out[s]["I5__value"] = [
            math.copysign(math.log1p(abs(int(r[5]))), int(r[5])) if r[5] else 0.0
            for i, r in enumerate(rows) if split_of[i] == s
        ]
    return out


def test_streamed_criteo_matches_plain_python_and_in_memory_path(tmp_path):
    path = write_criteo(tmp_path / "c.tsv", rows=3000, seed=3)
    config = PrepareConfig(min_count=3, rows_per_shard=700, seed=5)
    stream = stream_criteo(path, block_size=SMALL_BLOCKS)
    assert len(list(stream.batches())) > 20  # the file really is read in many batches
    fmap = prepare(stream, tmp_path / "s", config)
    expected = _reference_criteo(path, config)
    for split in SPLITS:
        t = _table(tmp_path / "s", fmap, split)
        assert len(fmap.splits[split].files) == -(-t.num_rows // 700)
        for name, values in expected[split].items():
            got = t[name].to_pylist()
            if name.endswith("__value"):
                np.testing.assert_allclose(got, values, rtol=1e-6)
            else:
                assert got == values, (split, name)
    assert fmap.field("C1").distinct == len({
        line.split("\t")[14] for line in path.read_text().splitlines()} - {""})
    prepare(read_criteo(path), tmp_path / "m", config)
    _same_dataset(tmp_path / "m", tmp_path / "s")


def _quantile_csv(tmp_path: Path, blank_line: bool = False) -> tuple[Path, Schema]:
    rng = np.random.default_rng(0)
    lines = ["user,item,age,price,rating"]
    for i in range(1500):
        age = "" if rng.random() < 0.1 else str(int(rng.integers(15, 70)))
        lines.append(f"u{int(rng.zipf(1.4)) % 90},{int(rng.integers(0, 40))},{age},"
                     f"{rng.lognormal():.4f},{int(rng.integers(1, 6))}")
        if blank_line and i == 700:
            lines.append("")  # pyarrow skips it, the newline count does not: fall back
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n")
    schema = Schema(label="rating", categorical=("user", "item"), numeric=("age", "price"),
                    label_rule=LabelRule.parse("rating >= 4"))
    return path, schema


@pytest.mark.parametrize("blank_line", [False, True])
def test_streamed_csv_with_quantile_bins_matches_in_memory_path(tmp_path, blank_line):
    path, schema = _quantile_csv(tmp_path, blank_line)
    config = PrepareConfig(min_count=2, n_bins=5, rows_per_shard=400, seed=1)
    fmap = prepare(stream_csv(path, schema, block_size=SMALL_BLOCKS), tmp_path / "s", config)
    prepare(read_csv(path, schema), tmp_path / "m", config)
    _same_dataset(tmp_path / "m", tmp_path / "s")
    assert fmap.field("price").transform["type"] == "quantile"
    assert sum(s.rows for s in fmap.splits.values()) == 1500


def test_streamed_avazu_matches_in_memory_path(tmp_path):
    header = ["id", "click", "hour", *AVAZU_CATEGORICAL]
    rows = []
    for i in range(600):
        vals = [str(i), str(i % 2), f"1410{21 + i % 3:02d}{i % 24:02d}"]
        vals += [f"v{(i * 7 + j) % (5 + j)}" for j in range(len(AVAZU_CATEGORICAL))]
        rows.append(",".join(vals))
    path = tmp_path / "avazu.csv"
    path.write_text(",".join(header) + "\n" + "\n".join(rows) + "\n")
    config = PrepareConfig(fractions=(0.7, 0.3, 0.0))  # an empty test split still gets a shard
    fmap = prepare(stream_avazu(path, block_size=SMALL_BLOCKS), tmp_path / "s", config)
    prepare(read_avazu(path), tmp_path / "m", config)
    _same_dataset(tmp_path / "m", tmp_path / "s")
    assert fmap.splits["test"].rows == 0 and len(fmap.splits["test"].files) == 1


def test_streamed_bad_value_leaves_no_output(tmp_path):
    path = write_criteo(tmp_path / "c.tsv", rows=2000)
    lines = path.read_text().splitlines()
    cells = lines[1500].split("\t")
    cells[3] = "many"
    lines[1500] = "\t".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="'I3'"):
        prepare(stream_criteo(path, block_size=SMALL_BLOCKS), tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tsv"]
