"""Training progress from a Ray Train run, seen on the driver.

A worker is not a terminal, so it draws nothing: rank 0 sends one line per epoch (logged by the
driver) and, when the driver draws bars, where the epoch is (sent at most twice a second; None
once the epoch is over) to a tiny actor. The driver polls the actor while ``trainer.fit()`` runs
in a thread and shows one rows/s bar per epoch through :mod:`adass_ray.progress` (silent unless
a driver turned bars on).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from adass_ray import progress as bars
from adass_ray.train.loop import LoopState

logger = logging.getLogger(__name__)
Where = dict[str, int]


def progress_actor() -> Any:
    """The actor the workers and the driver share: rank 0 reports (``put(line)``, ``at(where)``)
    and the driver calls ``take()``; a worker that hits one of our errors records it
    (``fail``), and a worker group Ray restarts after that sees it at ``start`` and returns
    (see :mod:`adass_ray.distributed.failures`).

    It lives on the driver's node, as Ray Train's own controller does: it holds the recorded
    failure and the attempt count, so it must outlive any worker node of a multi-node cluster
    (a 0-CPU actor may otherwise land on a node that is then lost).
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    class Progress:
        def __init__(self) -> None:
            self.lines: list[str] = []
            self.where: Where | None = None
            self.failure: tuple[str, str] | None = None
            self.starts = 0

        def put(self, line: str) -> None:
            self.lines.append(line)

        def at(self, where: Where | None) -> None:
            self.where = where

        def take(self) -> tuple[list[str], Where | None]:
            out, self.lines = self.lines, []
            return out, self.where

        def start(self, rank: int) -> tuple[str, str] | None:
            """A worker starts (rank 0 counts the attempts); returns a recorded failure."""
            self.starts += rank == 0
            return self.failure

        def attempts(self) -> int:
            return self.starts

        def fail(self, kind: str, message: str) -> None:
            if self.failure is None:  # the first one is the root cause
                self.failure = (kind, message)

        def error(self) -> tuple[str, str] | None:
            return self.failure

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return Progress.options(scheduling_strategy=here).remote()  # type: ignore[attr-defined]


def step_reporter(
    actor: Any, *, per_rank_rows: int, world: int, batch: int, epochs: int
) -> Callable[[LoopState, int], None]:
    """Rank 0's ``TrainLoop`` ``on_step``: sends where the epoch is, at most twice a second
    (and always at an epoch's last step, so a finished epoch's bar reaches its end).

    Rows are counted from rank 0's shard times the world size (shards differ by at most a row).
    """
    last = [0.0]

    def on_step(state: LoopState, steps: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.5 and state.step_in_epoch < steps:
            return
        last[0] = now
        rows = min(state.step_in_epoch * batch, per_rank_rows) * world
        actor.at.remote(
            {"epoch": state.epoch, "epochs": epochs, "rows": rows, "total": per_rank_rows * world}
        )

    return on_step


class EpochBar:
    """The driver's bar for the epoch rank 0 last reported (a fresh bar each epoch)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.epoch: int | None = None
        self.bar: bars.Bar | None = None

    def show(self, where: Where | None) -> None:
        """Move the bar to ``where`` (None: no epoch is running; the bar gives way)."""
        if where is None:
            self.close()
            return
        if self.bar is None or where["epoch"] != self.epoch:
            self.close()
            self.epoch = where["epoch"]
            self.bar = bars.bar(
                total=where["total"],
                desc=f"{self.kind} epoch {where['epoch'] + 1}/{where['epochs']}",
                unit="rows",
                initial=where["rows"],
                scale=True,
            )
        self.bar.update(where["rows"] - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def fit_with_progress(trainer: Any, actor: Any, *, kind: str) -> dict[str, Any]:
    """``trainer.fit()`` in a thread while the driver logs rank 0's lines as they come and,
    when bars are drawn, shows the epoch's bar.

    Returns:
        ``{"result": ...}`` or ``{"error": exception}`` (the actor is left alive: the caller
        reads what the workers recorded, then kills it).
    """
    import ray

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = trainer.fit()
        except BaseException as e:  # handed to the caller, which re-raises it
            box["error"] = e

    thread = threading.Thread(target=target, name="ray-train-fit", daemon=True)
    thread.start()
    epoch_bar = EpochBar(kind)
    try:
        while True:
            thread.join(timeout=0.5 if bars.active() else 1.0)
            lines, where = ray.get(actor.take.remote())
            epoch_bar.show(where)  # before the lines: an epoch's line follows its bar
            for line in lines:
                logger.info("%s", line)
            if not thread.is_alive():
                break
    finally:
        epoch_bar.close()
    return box
