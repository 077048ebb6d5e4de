"""Every shipped YAML config loads into its dataclass (unknown keys or wrong types would fail)."""

from __future__ import annotations

from pathlib import Path

from adass_ray import configio as config
from adass_ray.train.config import TrainConfig

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def test_every_shipped_config_loads():
    found = sorted(CONFIGS.rglob("*.yaml"))
    assert found, "no configs found"
    for path in found:
        cfg = config.load(TrainConfig, path)
        assert cfg.num_workers * cfg.cpus_per_worker <= 2, (
            f"{path} would not fit the 2-core default"
        )
