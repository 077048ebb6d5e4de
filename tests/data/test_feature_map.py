from __future__ import annotations

import json

import pytest

from adass_ray.data.feature_map import (
    DEFAULT_CANDIDATE_SIZES,
    DEFAULT_UNIFIED_WIDTH,
    FeatureMap,
    FieldSpec,
    SplitInfo,
    validate_candidate_sizes,
)
from adass_ray.errors import DataError


def _fm(**kw) -> FeatureMap:
    base = dict(
        name="t", label="label",
        fields=(FieldSpec(name="a", kind="categorical", vocab_size=5),
                FieldSpec(name="g", kind="multi_valued", vocab_size=4, max_len=3)),
        splits={"train": SplitInfo(rows=10, files=("train/part-00000.parquet",))},
        metadata={"ground_truth": {"informative": {"a": 1.0}}},
    )
    base.update(kw)
    return FeatureMap(**base)


def test_json_round_trip(tmp_path):
    fm = _fm()
    fm.save(tmp_path / "feature_map.json")
    assert FeatureMap.load(tmp_path) == fm
    assert json.loads((tmp_path / "feature_map.json").read_text())["version"] == 1


@pytest.mark.parametrize("bad, match", [
    ({"fields": ()}, "no fields"),
    ({"fields": (FieldSpec(name="a", kind="categorical", vocab_size=2),) * 2}, "duplicate"),
    ({"label": "a"}, "label"),
    ({"candidate_sizes": (8, 4)}, "increasing"),
    ({"candidate_sizes": (4, 0)}, "positive"),
    ({"candidate_sizes": (0,)}, "positive size"),
    ({"candidate_sizes": (0, 0, 4)}, "positive"),
    ({"splits": {"holdout": SplitInfo(rows=1, files=())}}, "unknown split"),
])
def test_invalid_maps_are_refused(bad, match):
    with pytest.raises(DataError, match=match):
        _fm(**bad)


def test_invalid_fields_are_refused():
    with pytest.raises(DataError, match="kind"):
        FieldSpec(name="a", kind="weird", vocab_size=3)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="vocab_size"):
        FieldSpec(name="a", kind="categorical", vocab_size=0)
    with pytest.raises(DataError, match="max_len"):
        FieldSpec(name="a", kind="multi_valued", vocab_size=3)


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="prepare"):
        FeatureMap.load(tmp_path)
    (tmp_path / "feature_map.json").write_text("{not json")
    with pytest.raises(DataError, match="JSON"):
        FeatureMap.load(tmp_path)
    d = _fm().to_dict()
    d["version"] = 99
    (tmp_path / "feature_map.json").write_text(json.dumps(d))
    with pytest.raises(DataError, match="version 99"):
        FeatureMap.load(tmp_path)
    d = _fm().to_dict()
    d["fields"][0]["colour"] = "red"
    (tmp_path / "feature_map.json").write_text(json.dumps(d))
    with pytest.raises(DataError, match="colour") as e:
        FeatureMap.load(tmp_path)
    assert "\n" not in str(e.value)


def test_candidate_sizes_validation():
    assert validate_candidate_sizes([4, 8]) == (4, 8)
    with pytest.raises(DataError):
        validate_candidate_sizes([])


def test_small_sizes_and_a_leading_drop_are_valid_and_round_trip(tmp_path):
    assert validate_candidate_sizes((0, 1, 2, 4)) == (0, 1, 2, 4)
    fm = _fm(candidate_sizes=(0, 1, 2, 4, 8, 16))
    fm.save(tmp_path / "feature_map.json")
    assert FeatureMap.load(tmp_path).candidate_sizes == (0, 1, 2, 4, 8, 16)


def test_default_sizes_respect_the_capacity_rule():
    # No default candidate may exceed the default unified width d (DESIGN.md §2.1).
    assert validate_candidate_sizes(DEFAULT_CANDIDATE_SIZES) == DEFAULT_CANDIDATE_SIZES
    assert max(DEFAULT_CANDIDATE_SIZES) <= DEFAULT_UNIFIED_WIDTH
    assert _fm().candidate_sizes == DEFAULT_CANDIDATE_SIZES
