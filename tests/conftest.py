"""Shared test settings: quiet, offline-safe defaults for Ray and MLflow, set before any import."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
os.environ.setdefault("RAY_TRAIN_PREEMPTION_POLL_INTERVAL_S", "0.5")


@pytest.fixture
def tiny_supernet(tmp_path: Path) -> Callable[[Path], Path]:
    """A factory for the supernet benches' tests: writes 3,000 tiny synthetic rows to
    ``tmp_path / "data"`` and an untrained supernet (sizes 1, 2, 4) to the folder it is given;
    returns the data folder."""
    from adass_ray.data import synthetic
    from adass_ray.data.feature_map import FeatureMap
    from adass_ray.model.checkpoint import save_model
    from adass_ray.model.config import ModelConfig, build_supernet

    def make(net_dir: Path) -> Path:
        data = tmp_path / "data"
        synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=3000, seed=0),
                                   data)
        fm = FeatureMap.load(data)
        cfg = ModelConfig(hidden=(8,), candidate_sizes=(1, 2, 4))
        save_model(net_dir / "model.pt", kind="supernet", model=build_supernet(fm, cfg),
                   model_config=cfg, fm=fm)
        return data

    return make
