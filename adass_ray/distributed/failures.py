"""How a Ray Train run fails: in one line, with its root cause, and never retried for our errors.

The driver and the workers share one tiny actor (the progress actor of
:mod:`adass_ray.distributed.progress`). A worker that hits one of our errors
(:mod:`adass_ray.errors`: bad data or config, a non-finite loss) records it there, and a worker
group Ray restarts after that returns at once, so ``max_failures`` only ever retries
infrastructure failures. The driver turns what it finds there, or Ray's own
``WorkerGroupError``, into one :class:`AdassError`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from adass_ray import errors, record
from adass_ray.errors import AdassError, WorkerFailure

logger = logging.getLogger(__name__)


def fit_checked(trainer: Any, actor: Any, out: Path, *, kind: str) -> Any:
    """``trainer.fit()`` with the driver's progress display
    (:func:`~adass_ray.distributed.progress.fit_with_progress`), its failures turned into one
    line. A failed run is marked failed in ``out``'s run record, with its error and how many
    times the worker group was started (so a later run starts over instead of needing
    ``--resume``).

    Args:
        actor: the :func:`~adass_ray.distributed.progress.progress_actor` the workers share.

    Raises:
        AdassError: the error a worker recorded (bad data, config, a non-finite loss), else
            :class:`WorkerFailure` naming the failed worker and its root cause in one line.
    """
    import ray

    from adass_ray.distributed.progress import fit_with_progress

    box = fit_with_progress(trainer, actor, kind=kind)
    ours = ray.get(actor.error.remote())
    attempts = int(ray.get(actor.attempts.remote()))
    ray.kill(actor)
    try:
        return _outcome(box, ours, out / ".ray")
    except AdassError as e:
        record.set_status(out, "failed", str(e), attempts=attempts)
        raise


def _outcome(box: dict[str, Any], ours: tuple[str, str] | None, storage: Path) -> Any:
    if ours is not None:
        cls = getattr(errors, ours[0], AdassError)
        raise (cls if isinstance(cls, type) and issubclass(cls, AdassError) else AdassError)(
            ours[1]
        )
    error = box.get("error")
    result = box.get("result")
    if error is None and result is not None:
        error = result.error
    if isinstance(error, KeyboardInterrupt):
        raise error
    if error is not None:
        raise WorkerFailure(
            f"training failed: {root_cause(error)}; its checkpoints are kept in {storage} "
            "(--resume continues from the latest; without it the run starts over)"
        )
    if result is None or result.checkpoint is None:
        raise WorkerFailure("training failed: the run ended without a final checkpoint")
    return result


def root_cause(error: BaseException) -> str:
    """One line naming where a Ray Train failure started and what it was."""
    failures = getattr(error, "worker_failures", None)
    where = ""
    if failures:
        rank = min(failures)
        where, error = f"worker rank {rank}: ", failures[rank]
    error = getattr(error, "controller_failure", error)
    seen = 0
    while getattr(error, "cause", None) is not None and seen < 10:  # RayTaskError wrappers
        error, seen = getattr(error, "cause"), seen + 1  # noqa: B009
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    text = lines[-1] if lines else ""
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{where}{type(error).__name__}" + (f": {text}" if text else "")
