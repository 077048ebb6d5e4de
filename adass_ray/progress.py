"""Progress bars: the package reports where it is, a driver decides whether anything is drawn.

Long loops (prepare, training epochs seen from the driver, the search, the harness) open a bar
with :func:`bar` and advance it. Unless a driver installed a drawing factory with
:func:`drawing` (the CLI does, when stderr is a terminal), :func:`bar` returns a silent bar, so
library callers, tests, Ray workers and job logs see nothing. The package never imports a bar
library itself: the factory the driver installs does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class Bar(Protocol):
    """What a loop may do with a bar (a subset of ``tqdm``'s interface)."""

    n: float

    def update(self, n: float = 1) -> object:
        """Advance by ``n`` units."""
        ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Show ``s`` after the counters (e.g. the best AUC so far)."""
        ...

    def close(self) -> None:
        """Finish the bar (idempotent)."""
        ...


BarFactory = Callable[..., Bar]


class SilentBar:
    """A bar that draws nothing but still counts (``n``), so callers need no branches."""

    def __init__(self, *, total: float | None = None, initial: float = 0, **_: object) -> None:
        self.total = total
        self.n = initial

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


_lock = threading.Lock()
_factory: BarFactory | None = None


def bar(
    *, total: float | None, desc: str, unit: str = "it", initial: float = 0, scale: bool = False
) -> Bar:
    """A progress bar, drawn only if a driver turned drawing on (see :func:`drawing`).

    Args:
        total: units the loop will do (None when unknown: no ETA).
        desc: what is running, e.g. ``"supernet epoch 2/5"``.
        unit: the unit the rate is shown in (``rows`` gives rows/s).
        initial: units already done (a resumed loop).
        scale: show large counts with k/M prefixes.

    Returns:
        A :class:`Bar`; close it (or use :func:`closing`) when the loop ends.
    """
    factory = _factory
    if factory is None:
        return SilentBar(total=total, initial=initial)
    return factory(total=total, desc=desc, unit=unit, initial=initial, unit_scale=scale)


@contextmanager
def closing(b: Bar) -> Iterator[Bar]:
    """``with closing(bar(...)) as b:`` closes the bar however the block ends."""
    try:
        yield b
    finally:
        b.close()


@contextmanager
def drawing(factory: BarFactory | None) -> Iterator[None]:
    """Within the block, :func:`bar` builds its bars with ``factory`` (None: silent).

    Only a driver (the CLI, a job script) should call this; the previous factory is restored.
    """
    global _factory
    with _lock:
        previous, _factory = _factory, factory
    try:
        yield
    finally:
        with _lock:
            _factory = previous


def active() -> bool:
    """Whether bars are drawn now (loops may skip work that only feeds a bar)."""
    return _factory is not None


__all__ = ["Bar", "BarFactory", "SilentBar", "active", "bar", "closing", "drawing"]
