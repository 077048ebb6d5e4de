"""Draw the next step's random numbers on a worker thread, with results identical to not doing so.

On a GPU the supernet step is host-bound: the adaptive sampler draws each step's paths on the
CPU (the permutations, the budget-region repair, the row shuffle), and that took about 60 % of a
step at 65,536 rows on an H200 (README § GPU). Every random number a step of that sampler uses
depends only on the step's shape, never on its statistics, so the next step's can be drawn while
the current step runs on the device.

:class:`DrawAhead` keeps that exact. It draws on a copy of the generator and hands the draws
over only when the step asks for the same key (the batch size) and the generator is still where
the copy started (nothing else drew from it meanwhile and no state was loaded into it); the
generator then moves to where the copy ended, as if the step had drawn them itself. Otherwise
the draws are dropped and the step draws as usual. A CUDA generator is never drawn ahead.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


class DrawAhead(Generic[T]):
    """Run ``draw(key, generator)`` for the next step on a worker thread.

    Args:
        draw: makes a step's draws from ``generator`` (its only source of randomness); it must
            not depend on anything that changes between steps except ``key``.
    """

    def __init__(self, draw: Callable[[int, torch.Generator], T]) -> None:
        self._draw = draw
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[int, torch.Tensor, torch.Generator, Future[T]] | None = None

    def start(self, key: int, generator: torch.Generator) -> None:
        """Begin drawing the step after this one, assumed to have ``key`` too, from
        ``generator``'s current state (a copy of it: ``generator`` is not advanced)."""
        if generator.device.type != "cpu":
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adass-draws")
        state = generator.get_state()
        copy = torch.Generator()
        copy.set_state(state)
        self._pending = (key, state, copy, self._pool.submit(self._draw, key, copy))

    def take(self, key: int, generator: torch.Generator) -> T | None:
        """The draws made ahead for ``key`` from ``generator``'s current state (advancing it past
        them), or None when there are none that match."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        started_key, state, copy, future = pending
        if started_key != key or not torch.equal(state, generator.get_state()):
            future.cancel()  # not needed: a draw already running finishes unread
            return None
        draws = future.result()  # an error in the worker is raised here, in the step
        generator.set_state(copy.get_state())
        return draws
