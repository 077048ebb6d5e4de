"""Starting or joining Ray, quietly, the same way from the CLI, jobs and tests."""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)


def ensure_ray(*, num_cpus: int | None = None, verbose: bool = False, **kwargs: Any) -> None:
    """Join the cluster in ``RAY_ADDRESS`` (inside ``ray job submit``) or start a local one.

    A local instance gets no dashboard and keeps worker logs off the terminal unless
    ``verbose``. Token auth is off for a local instance (Ray 2.60 turns it on by default, which
    breaks ``ray job submit`` against a local head); a joined cluster keeps its own mode.
    """
    if not os.environ.get("RAY_ADDRESS"):  # joining a cluster keeps the cluster's auth mode
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    import ray

    if ray.is_initialized():
        return
    quiet: dict[str, Any] = {"log_to_driver": verbose,
                             "logging_level": logging.INFO if verbose else logging.WARNING}
    if os.environ.get("RAY_ADDRESS"):
        ray.init(**quiet, **kwargs)  # num_cpus may not be given when joining a cluster
        return
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet, **kwargs)
    logger.debug("started a local Ray instance: %s", ray.cluster_resources())


def require_resource(name: str) -> None:
    """Fail fast (one line) when a custom resource that actors will ask for is not in the cluster;
    otherwise they would wait for it forever."""
    import ray

    from adass_ray.errors import ConfigError

    if name and name not in ray.cluster_resources():
        have = sorted(
            k for k in ray.cluster_resources() if not k.startswith(("node:", "accelerator_type"))
        )
        raise ConfigError(f"actor_resource={name!r}: the Ray cluster has no such resource "
                          f"(it has {have}); "
                          "declare it on a node type (cluster.yaml) or leave actor_resource empty")
