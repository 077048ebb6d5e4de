"""One local Ray per module (2 CPUs, no dashboard, quiet), and a tiny trained supernet."""

from __future__ import annotations

import os
import tempfile

import pytest


@pytest.fixture(scope="module")
def ray_local():
    import ray

    os.environ.pop("RAY_ADDRESS", None)
    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: unix socket paths are limited
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=256 * 2**20,
        _temp_dir=tmp,
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def trained(ray_local, tmp_path_factory):
    """Tiny synthetic data and a one-epoch supernet on them (one worker): ``(data, supernet)``."""
    from adass_ray.data import synthetic
    from adass_ray.distributed.train import fit
    from adass_ray.model.config import ModelConfig
    from adass_ray.train.config import TrainConfig

    tmp = tmp_path_factory.mktemp("supernet")
    data = tmp / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=3000, seed=2), data)
    cfg = TrainConfig(
        model=ModelConfig(hidden=(32,)),
        epochs=1,
        batch_size=256,
        num_workers=1,
        max_rows=2000,
        use_gpu="no",
    )
    fit(data=data, out=tmp / "supernet", cfg=cfg, kind="supernet")
    return data, tmp / "supernet"
