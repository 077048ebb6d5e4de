"""Starting or joining Ray, quietly, the same way from the CLI, jobs and tests.

A Ray instance this package starts itself (no ``RAY_ADDRESS``) is a single-machine instance
that only this user can reach:

* it binds to loopback: Ray's own switch for a single-machine instance (its default on macOS and
  Windows, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) makes the node address 127.0.0.1, and the
  GCS, the raylet (node manager and object manager), every worker's gRPC server and the
  dashboard and runtime-env agents listen on that address only;
* it keeps token authentication on (``RAY_AUTH_MODE=token``) with a fresh random token in a
  file only this user can read, under the system temp folder, removed when the process exits.

Either default yields to the environment: a ``RAY_AUTH_MODE`` (the test suite sets
``disabled``), a token of one's own (``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH``) or
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1`` are kept. Joining a cluster (``RAY_ADDRESS``, as inside
``ray job submit``) keeps the cluster's own settings.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
AUTH_ENV = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def ensure_ray(*, num_cpus: int | None = None, verbose: bool = False, **kwargs: Any) -> None:
    """Join the cluster in ``RAY_ADDRESS`` (inside ``ray job submit``) or start a local one.

    A local instance binds to loopback, keeps token auth on (see the module docstring), gets
    no dashboard and keeps worker logs off the terminal unless ``verbose``.
    """
    if not os.environ.get("RAY_ADDRESS"):
        secure_local_defaults()
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


def secure_local_defaults() -> None:
    """Set the environment a local instance starts with: loopback only, token auth on.

    Only what the environment leaves unset is set (see the module docstring); Ray's processes
    inherit it, so it must happen before ``ray.init``.
    """
    os.environ.setdefault(LOCAL_ONLY_ENV, "0")
    if "RAY_AUTH_MODE" in os.environ:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    if not any(os.environ.get(k) for k in AUTH_ENV):
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(_new_token_file())


def _new_token_file() -> Path:
    """A fresh random token in a new private folder (0700; the file 0600), removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="adass-ray-auth-"))
    path = folder / "auth_token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    atexit.register(shutil.rmtree, folder, True)
    return path


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
