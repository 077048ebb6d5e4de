from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from adass_ray import configio as config
from adass_ray.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    hidden: tuple[int, ...] = (64, 32)


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    epochs: int = 2
    flag: bool = False
    train: Inner = field(default_factory=Inner)
    budget: float | None = None


def test_yaml_and_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 5\ntrain:\n  lr: 0.01\n")
    c = config.load(Outer, tmp_path / "c.yaml", ["train.hidden=[8,4]", "flag=true", "budget=0.8"])
    assert c == Outer(epochs=5, flag=True, train=Inner(lr=0.01, hidden=(8, 4)), budget=0.8)
    assert config.flatten(config.to_dict(c))["train.hidden"] == [8, 4]


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        config.load(Outer, None, ["epoch=3"])
    with pytest.raises(ConfigError, match="unknown key .train.lrr.*did you mean 'lr'"):
        config.load(Outer, None, ["train.lrr=3"])


@pytest.mark.parametrize("override, match", [
    ("epochs=three", "integer"), ("flag=maybe", "true/false"), ("train.lr=fast", "number"),
    ("train.hidden=[a]", "integer"), ("epochs", "key=value"),
])
def test_wrong_types_are_refused(override, match):
    with pytest.raises(ConfigError, match=match):
        config.load(Outer, None, [override])


def test_bad_yaml(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(Outer, tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(Outer, tmp_path / "nope.yaml")
