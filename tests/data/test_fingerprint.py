"""The dataset fingerprint covers each field's value → id mapping and each split's rows.

The same CSV prepared with another seed (other split, so other train counts and ids) or another
vocabulary threshold must not pass for the dataset a checkpoint was trained on.
"""

from __future__ import annotations

import pytest

from adass_ray.data import synthetic
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.prepare import PrepareConfig, prepare
from adass_ray.data.readers import read_csv
from adass_ray.data.schema import Schema
from adass_ray.errors import DataError
from adass_ray.model.checkpoint import check_fingerprint

from .helpers import SCHEMA_YAML, write_ratings_csv


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    path = write_ratings_csv(root / "r.csv", rows=400)
    (root / "s.yaml").write_text(SCHEMA_YAML)
    return read_csv(path, Schema.load(root / "s.yaml"))


def _fp(raw, out, **kw) -> FeatureMap:
    return prepare(raw, out, PrepareConfig(n_bins=4, **kw))


def test_same_input_same_settings_same_fingerprint(raw, tmp_path):
    a, b = _fp(raw, tmp_path / "a", seed=0), _fp(raw, tmp_path / "b", seed=0)
    assert a.fingerprint() == b.fingerprint()
    fp = a.fingerprint()
    assert set(fp["vocab_hashes"]) == set(a.field_names)
    assert set(fp["splits"]) == {"train", "valid", "test"}
    check_fingerprint(fp, b, source="model.pt")  # no error


def test_another_seed_changes_the_fingerprint(raw, tmp_path):
    a, b = _fp(raw, tmp_path / "a", seed=0), _fp(raw, tmp_path / "b", seed=1)
    # names, kinds and vocabulary sizes may well agree: the old fingerprint passed this
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint()["splits"]["train"] != b.fingerprint()["splits"]["train"]
    with pytest.raises(DataError, match="other data") as e:
        check_fingerprint(a.fingerprint(), b, source="model.pt")
    assert "\n" not in str(e.value)


def test_another_vocabulary_changes_the_fingerprint(raw, tmp_path):
    a, b = _fp(raw, tmp_path / "a", seed=0), _fp(raw, tmp_path / "b", seed=0, min_count=3)
    assert a.fingerprint()["splits"] == b.fingerprint()["splits"]  # the same rows...
    changed = [n for n in a.field_names
               if a.fingerprint()["vocab_hashes"][n] != b.fingerprint()["vocab_hashes"][n]]
    assert changed  # ...but some values map to other ids
    # a fingerprint that agrees on sizes but not on one mapping is refused, naming the field
    fp = b.fingerprint()
    fp["fields"] = a.fingerprint()["fields"]
    fp["vocab_hashes"] = {**fp["vocab_hashes"], changed[0]: "0" * 64}
    b_same_sizes = FeatureMap.from_dict({**b.to_dict(), "fields": [
        {**f, "vocab_size": g[2]} for f, g in zip(b.to_dict()["fields"], fp["fields"],
                                                  strict=True)]})
    with pytest.raises(DataError, match=f"field '{changed[0]}' maps values to other ids"):
        check_fingerprint(fp, b_same_sizes, source="model.pt")


def test_the_hashes_survive_the_json_round_trip(raw, tmp_path):
    a = _fp(raw, tmp_path / "a", seed=0)
    assert FeatureMap.load(tmp_path / "a").fingerprint() == a.fingerprint()


def test_synthetic_seeds_differ(tmp_path):
    spec = synthetic.SyntheticSpec.preset
    a = synthetic.generate_dataset(spec("tiny", rows=200, seed=0), tmp_path / "a")
    b = synthetic.generate_dataset(spec("tiny", rows=200, seed=1), tmp_path / "b")
    c = synthetic.generate_dataset(spec("tiny", rows=200, seed=0), tmp_path / "c")
    assert a.fingerprint() != b.fingerprint() and a.fingerprint() == c.fingerprint()
