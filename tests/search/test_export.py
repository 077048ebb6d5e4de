"""sizes.json: atomic write, validated read, TorchRec table configs."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from adass_ray.data.feature_map import FeatureMap, FieldSpec
from adass_ray.errors import ConfigError
from adass_ray.search.export import (
    read_sizes_json,
    to_torchrec,
    torchrec_table_configs,
    write_sizes_json,
)
from adass_ray.search.space import SearchSpace


def _fm(vocab_user: int = 1000) -> FeatureMap:
    fields = (
        FieldSpec("user", "categorical", vocab_user),
        FieldSpec("item", "categorical", 100),
        FieldSpec("age", "numeric", 10),
    )
    return FeatureMap(name="t", label="y", fields=fields)


def _write(
    tmp_path: Path, arch: tuple[int, ...] = (1, 3, 0), allow_drop: bool = False
) -> dict[str, Any]:
    space = SearchSpace.from_feature_map(_fm(), candidate_sizes=(4, 8, 16, 32, 64),
                                         allow_drop=allow_drop)
    return write_sizes_json(
        tmp_path / "out" / "sizes.json", space, arch, budget=20000,
        provenance={"run_id": "abc", "lam": 0.1},
    )


def test_round_trip(tmp_path: Path) -> None:
    doc = _write(tmp_path)
    path = tmp_path / "out" / "sizes.json"
    assert doc["fields"] == {
        "user": {"size": 8, "vocab": 1000},
        "item": {"size": 32, "vocab": 100},
        "age": {"size": 4, "vocab": 10},
    }
    assert doc["cost"] == 8000 + 3200 + 40 and doc["cost_bytes_fp32"] == 4 * doc["cost"]
    assert doc["budget"] == 20000 and doc["format"] == 1
    assert doc["uniform_baseline"] == {"size": 16, "cost": 16 * 1110}
    assert read_sizes_json(path, _fm()) == doc
    assert read_sizes_json(path.parent) == doc  # a folder works too
    assert [p.name for p in path.parent.iterdir()] == ["sizes.json"]  # no temp file left behind
    space = SearchSpace.from_feature_map(_fm(), candidate_sizes=(4, 8, 16, 32, 64))
    assert space.arch_of([f["size"] for f in doc["fields"].values()]) == (1, 3, 0)


def test_write_refuses_over_budget_and_bad_provenance(tmp_path: Path) -> None:
    space = SearchSpace.from_feature_map(_fm())
    with pytest.raises(ConfigError, match="over the budget"):
        write_sizes_json(tmp_path / "s.json", space, (4, 4, 4), budget=1000, provenance={})
    with pytest.raises(ConfigError, match="JSON"):
        write_sizes_json(tmp_path / "s.json", space, (0, 0, 0), budget=10**6,
                         provenance={"x": object()})
    assert not list(tmp_path.iterdir())


def _edit(tmp_path: Path, change: Any) -> Path:
    _write(tmp_path)
    path = tmp_path / "out" / "sizes.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d["fields"]["user"].update(size=16), "does not match"),
        (lambda d: d.update(cost=d["cost"] + 1), "does not match"),
        (lambda d: d.update(cost_bytes_fp32=1), "cost_bytes_fp32"),
        (lambda d: d.update(format=2), "format"),
        (lambda d: d["fields"]["user"].update(size="8"), "'size' must be an integer"),
        (lambda d: d["fields"]["user"].update(size=True), "'size' must be an integer"),
        (lambda d: d.update(fields={}), "fields"),
        (lambda d: d.update(budget=100), "exceeds the budget"),
        (lambda d: d["uniform_baseline"].update(cost=1), "uniform_baseline"),
        (lambda d: d.pop("uniform_baseline"), "uniform_baseline"),
    ],
)
def test_read_rejects_malformed(tmp_path: Path, change: Any, match: str) -> None:
    path = _edit(tmp_path, change)
    with pytest.raises(ConfigError, match=match) as e:
        read_sizes_json(path)
    assert "\n" not in str(e.value)


def test_read_checks_the_feature_map(tmp_path: Path) -> None:
    _write(tmp_path)
    path = tmp_path / "out" / "sizes.json"
    with pytest.raises(ConfigError, match="vocab sizes differ"):
        read_sizes_json(path, _fm(vocab_user=999))
    other = FeatureMap(name="t", label="y", fields=(FieldSpec("user", "categorical", 1000),))
    with pytest.raises(ConfigError, match="unknown"):
        read_sizes_json(path, other)


def test_read_missing_and_invalid_json(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no sizes.json"):
        read_sizes_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_sizes_json(tmp_path / "bad.json")


def test_torchrec_dicts_skip_dropped_fields(tmp_path: Path) -> None:
    doc = _write(tmp_path, arch=(0, 3, 2), allow_drop=True)  # user dropped (size 0)
    assert doc["fields"]["user"]["size"] == 0
    tables = torchrec_table_configs(doc, feature_prefix="cat_")
    assert tables == [
        {"name": "t_cat_item", "embedding_dim": 16, "num_embeddings": 100,
         "feature_names": ["cat_item"]},
        {"name": "t_cat_age", "embedding_dim": 8, "num_embeddings": 10,
         "feature_names": ["cat_age"]},
    ]
    with pytest.raises(ConfigError):
        torchrec_table_configs({"format": 1})


def test_to_torchrec_without_torchrec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _write(tmp_path)
    # None in sys.modules makes the import fail whether or not torchrec is installed.
    monkeypatch.setitem(sys.modules, "torchrec", None)
    with pytest.raises(ConfigError, match="pip install torchrec") as e:
        to_torchrec(doc)
    assert "\n" not in str(e.value)


def test_to_torchrec_builds_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _write(tmp_path)

    class EmbeddingBagConfig:  # stands in for torchrec's dataclass, keyword-only like it
        def __init__(self, **kw: Any) -> None:
            self.kw = kw

    for name in ("torchrec", "torchrec.modules", "torchrec.modules.embedding_configs"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setattr(sys.modules["torchrec.modules.embedding_configs"], "EmbeddingBagConfig",
                        EmbeddingBagConfig, raising=False)
    configs = to_torchrec(doc)
    assert [c.kw for c in configs] == torchrec_table_configs(doc)
