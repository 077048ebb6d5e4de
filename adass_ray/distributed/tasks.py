"""Independent units of work as Ray tasks: the evaluation harness's parallel runner."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)


def _call(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    import torch

    torch.set_num_threads(1)  # one CPU per task; Ray runs as many tasks as the cluster has CPUs
    return fn(**kwargs)


def run_parallel(fn: Callable[..., Any], calls: Sequence[dict[str, Any]], *, names: Sequence[str],
                 on_done: Callable[[str, Any], None] | None = None,
                 verbose: bool = False) -> list[Any]:
    """Run ``fn(**kwargs)`` for every kwargs in ``calls`` as 1-CPU Ray tasks; results in order.

    ``on_done(name, result)`` is called on the driver as each task finishes (progress lines).
    A task's exception is raised here, after the other running tasks are cancelled.
    """
    import ray

    from adass_ray.distributed.runtime import ensure_ray

    if not calls:
        return []
    ensure_ray(num_cpus=os.cpu_count() or 1, verbose=verbose)
    remote = ray.remote(num_cpus=1, max_retries=0)(_call)
    refs = [remote.remote(fn, kw) for kw in calls]
    index = {ref: i for i, ref in enumerate(refs)}
    results: list[Any] = [None] * len(refs)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        i = index[done[0]]
        try:
            results[i] = ray.get(done[0])
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        if on_done is not None:
            on_done(names[i], results[i])
    return results
