from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.prepare import PrepareConfig, prepare
from adass_ray.data.readers import read_criteo, read_csv
from adass_ray.data.schema import LabelRule, RawData, Schema
from adass_ray.errors import AdassError, ConfigError, DataError

from .helpers import SCHEMA_YAML, write_criteo, write_ratings_csv


def _raw(tmp_path, rows=300, seed=0) -> RawData:
    path = write_ratings_csv(tmp_path / "r.csv", rows=rows, seed=seed)
    (tmp_path / "s.yaml").write_text(SCHEMA_YAML)
    return read_csv(path, Schema.load(tmp_path / "s.yaml"))


def _split_table(out, fmap: FeatureMap, split: str) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in fmap.split_paths(out, split)])


def test_prepare_writes_shards_and_feature_map(tmp_path):
    fmap = prepare(_raw(tmp_path), tmp_path / "out", PrepareConfig(n_bins=4))
    assert (tmp_path / "out" / "feature_map.json").is_file()
    assert FeatureMap.load(tmp_path / "out") == FeatureMap.from_dict(fmap.to_dict())
    kinds = {f.name: f.kind for f in fmap.fields}
    assert kinds == {"user": "categorical", "item": "categorical", "age": "numeric",
                     "genres": "multi_valued"}
    assert sum(s.rows for s in fmap.splits.values()) == 300
    assert [fmap.splits[s].rows for s in ("train", "valid", "test")] == [240, 30, 30]
    t = _split_table(tmp_path / "out", fmap, "train")
    for f in fmap.fields:
        col = t[f.name].combine_chunks()
        vals = np.asarray(col.values if f.kind == "multi_valued" else col)
        assert vals.min() >= 0 and vals.max() < f.vocab_size
    assert set(np.unique(t["label"].to_numpy())) <= {0.0, 1.0}
    assert "age__value" in t.column_names
    # no temp folders left beside the output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "r.csv", "s.yaml"]


def test_label_rule_applied(tmp_path):
    raw = _raw(tmp_path)
    fmap = prepare(raw, tmp_path / "out")
    labels = np.concatenate([_split_table(tmp_path / "out", fmap, s)["label"].to_numpy()
                             for s in ("train", "valid", "test")])
    expected = (raw.table["rating"].to_numpy() >= 4).mean()
    assert labels.mean() == pytest.approx(expected)


def test_vocab_fitted_on_train_and_ordered_by_count(tmp_path):
    t = pa.table({"c": ["a"] * 50 + ["b"] * 30 + ["z"] * 20, "y": [0.0, 1.0] * 50})
    raw = RawData("t", t, Schema(label="y", categorical=("c",)))
    cfg = PrepareConfig(split="time", fractions=(0.8, 0.1, 0.1))
    # time split with no time column is refused
    with pytest.raises(DataError, match="time column"):
        prepare(raw, tmp_path / "o1", cfg)
    t = t.append_column("ts", pa.array(np.arange(100)))
    raw = RawData("t", t, Schema(label="y", categorical=("c",), time="ts"))
    fmap = prepare(raw, tmp_path / "o2", cfg)
    # train = first 80 rows by time: 'z' only appears in the last 20 → not in the vocabulary
    assert fmap.field("c").vocab_size == 3 and fmap.field("c").distinct == 3
    test = _split_table(tmp_path / "o2", fmap, "test")
    assert set(test["c"].to_numpy()) == {0}
    train = _split_table(tmp_path / "o2", fmap, "train")
    assert train["c"].to_numpy()[:50].tolist() == [1] * 50  # most frequent → id 1


def test_min_count_and_warning_when_only_oov(tmp_path, caplog):
    t = pa.table({"a": [str(i) for i in range(100)], "b": ["x", "y"] * 50, "y": [0.0, 1.0] * 50})
    raw = RawData("t", t, Schema(label="y", categorical=("a", "b")))
    with caplog.at_level("WARNING"):
        fmap = prepare(raw, tmp_path / "o", PrepareConfig(min_count=2))
    assert fmap.field("a").vocab_size == 1  # every value seen once
    assert fmap.field("b").vocab_size == 3
    assert any("only the OOV id" in r.message and "a" in r.message for r in caplog.records)


def test_deterministic_for_a_seed(tmp_path):
    raw = _raw(tmp_path)
    f1 = prepare(raw, tmp_path / "a", PrepareConfig(seed=3))
    f2 = prepare(raw, tmp_path / "b", PrepareConfig(seed=3))
    f3 = prepare(raw, tmp_path / "c", PrepareConfig(seed=4))
    t1, t2, t3 = (_split_table(tmp_path / n, f, "train")
                  for n, f in (("a", f1), ("b", f2), ("c", f3)))
    assert t1.equals(t2)
    assert not t1.equals(t3)


def test_multi_valued_lists(tmp_path):
    t = pa.table({"g": ["x y", "y", "", None, "z  x"], "c": list("abcde"), "y": [0.0, 1, 0, 1, 0]})
    raw = RawData("t", t, Schema(label="y", categorical=("c",), multi_valued={"g": " "}))
    fmap = prepare(raw, tmp_path / "o", PrepareConfig(fractions=(1.0, 0.0, 0.0)))
    g = fmap.field("g")
    assert g.vocab_size == 4 and g.max_len == 2
    rows = _split_table(tmp_path / "o", fmap, "train").to_pylist()
    by_c = {r["c"]: r["g"] for r in rows}
    lens = sorted(len(v) for v in by_c.values())
    assert lens == [0, 0, 1, 2, 2]


def test_numeric_log2_rule_and_quantiles(tmp_path):
    x = [None, -1, 0, 1, 2, 3, 10, 100, 1000, 5]
    t = pa.table({"n": pa.array(x, pa.int64()), "y": [0.0, 1.0] * 5})
    raw = RawData("t", t, Schema(label="y", numeric=("n",), numeric_bucketing="log2"))
    fmap = prepare(raw, tmp_path / "o", PrepareConfig(fractions=(1.0, 0.0, 0.0)))
    # distinct buckets: -1,0,1,2, floor(ln 3^2)=1, floor(ln(10)^2)=5, 21, 47, floor(ln(5)^2)=2
    # → {-1,0,1,2,5,21,47}
    assert fmap.field("n").vocab_size == 7 + 1
    raw_q = RawData("t", t, Schema(label="y", numeric=("n",), numeric_bucketing="quantile"))
    fq = prepare(raw_q, tmp_path / "q", PrepareConfig(fractions=(1.0, 0.0, 0.0), n_bins=3))
    assert fq.field("n").transform["type"] == "quantile"
    tab = _split_table(tmp_path / "q", fq, "train").to_pydict()
    ids_by_x = {
        v: i for v, i in zip(tab["n__value"], tab["n"], strict=True)
    }
    pairs = sorted((v, i) for v, i in ids_by_x.items())
    # bucket ids are monotone in the value; the missing value (dense 0 and id 0) is OOV
    assert 0 in tab["n"]
    ranked = [i for _, i in pairs if i != 0]
    assert ranked == sorted(ranked) and len(set(ranked)) >= 2


def test_label_not_binary_without_rule(tmp_path):
    t = pa.table({"c": ["a", "b", "c"], "y": [1.0, 5.0, 3.0]})
    with pytest.raises(DataError, match="label rule"):
        prepare(RawData("t", t, Schema(label="y", categorical=("c",))), tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_existing_output_refused_unless_overwrite(tmp_path):
    raw = _raw(tmp_path)
    prepare(raw, tmp_path / "out")
    before = (tmp_path / "out" / "feature_map.json").read_text()
    with pytest.raises(AdassError, match="--overwrite"):
        prepare(raw, tmp_path / "out")
    prepare(raw, tmp_path / "out", PrepareConfig(seed=9), overwrite=True)
    after = (tmp_path / "out" / "feature_map.json").read_text()
    assert before != after
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "r.csv", "s.yaml"]


def test_criteo_end_to_end(tmp_path):
    raw = read_criteo(write_criteo(tmp_path / "c.tsv", rows=400))
    fmap = prepare(raw, tmp_path / "out", PrepareConfig(min_count=2))
    assert len(fmap.fields) == 39 and fmap.field("I1").kind == "numeric"
    assert fmap.field("I1").transform["type"] == "log2"
    assert fmap.metadata["prepare"]["min_count"] == 2


def test_bad_config_values():
    with pytest.raises(ConfigError):
        PrepareConfig(fractions=(0.5, 0.2, 0.2))
    with pytest.raises(ConfigError):
        PrepareConfig(split="weekly")
    with pytest.raises(ConfigError):
        LabelRule.parse("rating is big")


def test_avazu_reader_derives_hour_fields(tmp_path):
    from adass_ray.data.readers import AVAZU_CATEGORICAL, read_avazu

    header = ["id", "click", "hour", *AVAZU_CATEGORICAL]
    rows = []
    for i in range(40):
        vals = [str(i), str(i % 2), f"1410{21 + i % 3:02d}{i % 24:02d}"]
        vals += [f"v{(i * 7 + j) % 5}" for j in range(len(AVAZU_CATEGORICAL))]
        rows.append(",".join(vals))
    path = tmp_path / "avazu.csv"
    path.write_text(",".join(header) + "\n" + "\n".join(rows) + "\n")
    raw = read_avazu(path)
    assert raw.table["hour_of_day"].to_pylist()[:3] == [0, 1, 2]
    # 2014-10-21 was a Tuesday (Monday = 0)
    assert raw.table["weekday"].to_pylist()[0] == 1
    fmap = prepare(raw, tmp_path / "out")
    assert fmap.metadata["prepare"]["min_count"] == 5  # Avazu's customary threshold
    assert fmap.field("C1").vocab_size == 5 + 1  # 5 values, each seen >= 5 times in train
    fmap = prepare(raw, tmp_path / "out1", PrepareConfig(min_count=1, fractions=(1.0, 0.0, 0.0)))
    assert fmap.field("hour_of_day").vocab_size == 24 + 1


def test_parquet_input_with_schema(tmp_path):
    from adass_ray.data.readers import read_input

    t = pa.table({"u": ["a", "b", "a", "c"] * 25, "n": pa.array(np.arange(100.0)),
                  "y": pa.array([0, 1] * 50, pa.int64())})
    pq.write_table(t, tmp_path / "in.parquet")
    (tmp_path / "s.yaml").write_text("label: y\ncategorical: [u]\nnumeric: [n]\n")
    fmap = prepare(read_input(tmp_path / "in.parquet", "parquet", Schema.load(tmp_path / "s.yaml")),
                   tmp_path / "out", PrepareConfig(n_bins=4))
    assert [f.name for f in fmap.fields] == ["u", "n"] and fmap.field("n").vocab_size == 4 + 1
    (tmp_path / "bad.yaml").write_text("label: y\ncategorical: [u]\nnumeric: [u2]\n")
    with pytest.raises(ConfigError, match="'u2'"):
        read_input(tmp_path / "in.parquet", "parquet", Schema.load(tmp_path / "bad.yaml"))
