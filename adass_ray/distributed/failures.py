"""How a Ray Train run fails: in one line, with its root cause, and never retried for our errors.

The driver and the workers share a tiny control actor. Rank 0 sends it a progress line per
epoch; a worker that hits one of our errors (:mod:`adass_ray.errors`: bad data or config, a
non-finite loss) records it there, and a worker group Ray restarts after that returns at once,
so ``max_failures`` only ever retries infrastructure failures. The driver turns what it finds
there, or Ray's own ``WorkerGroupError``, into one :class:`AdassError`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from adass_ray import errors, record
from adass_ray.errors import AdassError, WorkerFailure

logger = logging.getLogger(__name__)


def control_actor() -> Any:
    """A tiny actor shared by the workers and the driver: rank 0 sends one line per epoch (the
    driver prints them while it waits), and a worker that hits one of our errors records it."""
    import ray

    @ray.remote(num_cpus=0)
    class Control:
        def __init__(self) -> None:
            self.lines: list[str] = []
            self.failure: tuple[str, str] | None = None
            self.starts = 0

        def start(self, rank: int) -> tuple[str, str] | None:
            """A worker starts (rank 0 counts the attempts); returns a recorded failure."""
            self.starts += rank == 0
            return self.failure

        def attempts(self) -> int:
            return self.starts

        def put(self, line: str) -> None:
            self.lines.append(line)

        def take(self) -> list[str]:
            out, self.lines = self.lines, []
            return out

        def fail(self, kind: str, message: str) -> None:
            if self.failure is None:  # the first one is the root cause
                self.failure = (kind, message)

        def error(self) -> tuple[str, str] | None:
            return self.failure

    return Control.remote()  # type: ignore[attr-defined]


def fit_with_progress(trainer: Any, control: Any, out: Path) -> Any:
    """``trainer.fit()`` in a thread while the driver logs the progress lines as they come.

    A failed run is marked failed in ``out``'s run record, with its error and how many times
    the worker group was started (so a later run starts over instead of needing ``--resume``).

    Raises:
        AdassError: the error a worker recorded (bad data, config, a non-finite loss), else
            :class:`WorkerFailure` naming the failed worker and its root cause in one line.
    """
    import threading

    import ray

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = trainer.fit()
        except BaseException as e:  # re-raised in the driver thread below
            box["error"] = e

    thread = threading.Thread(target=target, name="ray-train-fit", daemon=True)
    thread.start()
    while True:
        thread.join(timeout=1.0)
        for line in ray.get(control.take.remote()):
            logger.info("%s", line)
        if not thread.is_alive():
            break
    ours = ray.get(control.error.remote())
    attempts = int(ray.get(control.attempts.remote()))
    ray.kill(control)
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
