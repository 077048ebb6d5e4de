"""Test faults, switched on by the ``ADASS_RAY_FAULTS`` environment variable (never by a public
parameter).

The value is JSON with one entry per kind of fault; the driver reads it once (:func:`spec`) and
ships the entry to its workers inside their private config, so a fault reaches Ray processes
started before the variable was set. Kinds:

* ``train``: ``{"at_step", "rank", "marker", "mid_step", "sleep"}`` — that Ray Train worker
  exits once, at the first checkpoint at or after ``at_step``, or with ``"mid_step": true`` in
  the middle of step ``at_step`` itself (gradients all-reduced, weights not yet updated); with
  ``"sleep": seconds`` it pauses there instead of exiting, so a test can kill the driver;
* ``search``: ``{"index", "at", "marker", "sleep"}`` — that controller actor's process exits
  once when it has done ``at`` iterations (with ``"sleep": seconds``, it pauses there instead,
  so a test can kill the driver);
* ``sweep``: ``{"lam", "at", "marker", "seconds"}`` — that Tune trial writes ``marker`` and
  sleeps ``seconds`` (default 120) at iteration ``at``, so a test can kill the driver.

Each fault fires once: it writes ``marker`` first and is skipped while ``marker`` exists.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
ENV = "ADASS_RAY_FAULTS"


def spec(kind: str) -> dict[str, Any] | None:
    """The fault of ``kind`` asked for in ``$ADASS_RAY_FAULTS``, or None (the normal case)."""
    raw = os.environ.get(ENV)
    if not raw:
        return None
    entry = json.loads(raw).get(kind)
    return dict(entry) if entry else None


def _fire_once(fault: dict[str, Any], what: str) -> bool:
    marker = Path(fault["marker"])
    if marker.exists():
        return False
    marker.write_text(what)
    return True


def train_step(
    fault: dict[str, Any] | None, *, step: int, rank: int, mid_step: bool = False
) -> None:
    """Exit (or pause) this Ray Train worker's process if ``fault`` says so.

    Called at every checkpoint (``mid_step`` false) and in the middle of every step (true).
    """
    if not fault or rank != fault.get("rank", 1) or bool(fault.get("mid_step")) != mid_step:
        return
    due = step == fault["at_step"] if mid_step else step >= fault["at_step"]
    if not (due and _fire_once(fault, str(step))):
        return
    if "sleep" in fault:
        logger.warning("fault injection: rank %d pauses at step %d", rank, step)
        time.sleep(float(fault["sleep"]))
        return
    logger.warning("fault injection: rank %d exits at step %d", rank, step)
    os._exit(1)


def search_step(fault: dict[str, Any] | None, *, index: int, iteration: int) -> None:
    """Exit (or pause) this controller actor's process if ``fault`` says so."""
    if (
        fault
        and fault["index"] == index
        and iteration >= fault["at"]
        and _fire_once(fault, str(iteration))
    ):
        if "sleep" in fault:
            time.sleep(float(fault["sleep"]))
            return
        os._exit(1)


def sweep_iteration(fault: dict[str, Any] | None, *, lam: float, iteration: int) -> None:
    """Pause this Tune trial (so the driver can be killed mid-sweep) if ``fault`` says so."""
    if (
        fault
        and fault["lam"] == lam
        and iteration == fault["at"]
        and _fire_once(fault, str(iteration))
    ):
        time.sleep(fault.get("seconds", 120))
