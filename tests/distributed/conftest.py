"""One local Ray instance per test module (2 CPUs, no dashboard, quiet)."""

from __future__ import annotations

import os
import tempfile

import pytest


@pytest.fixture(scope="module")
def ray_local():
    import ray

    os.environ.pop("RAY_ADDRESS", None)
    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: unix socket paths are limited
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20,
             _temp_dir=tmp, log_to_driver=False)
    yield ray
    ray.shutdown()
