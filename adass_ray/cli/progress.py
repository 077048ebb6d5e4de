"""Whether the CLI draws progress bars, and the ``tqdm`` bars it draws.

Bars go to stderr and only when stderr is a terminal: CI logs, files, pipes and Ray job logs
stay free of carriage-return noise. ``ADASS_RAY_PROGRESS=1`` forces bars on (e.g. under a
terminal multiplexer that hides the tty), ``ADASS_RAY_PROGRESS=0`` forces them off.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any, TextIO

from adass_ray import progress

ENV = "ADASS_RAY_PROGRESS"
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def wanted(stream: TextIO | None = None, env: Mapping[str, str] | None = None) -> bool:
    """True when bars should be drawn on ``stream`` (default stderr); see the module docstring."""
    env = os.environ if env is None else env
    setting = env.get(ENV, "").strip().lower()
    if setting in _ON:
        return True
    if setting in _OFF:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


def tqdm_factory(stream: TextIO) -> progress.BarFactory:
    """A :data:`~adass_ray.progress.BarFactory` drawing ``tqdm`` bars on ``stream``."""
    from tqdm import tqdm

    def make(**kw: Any) -> progress.Bar:
        # leave=False: a finished epoch's bar gives way to the next; the log line stays
        bar: progress.Bar = tqdm(
            file=stream, leave=False, dynamic_ncols=True, mininterval=0.5, smoothing=0.1, **kw
        )
        return bar

    return make


@contextmanager
def maybe_bars(
    stream: TextIO | None = None, env: Mapping[str, str] | None = None
) -> Iterator[bool]:
    """Draw bars inside the block if :func:`wanted`; yields whether they are drawn.

    While bars are drawn, log records go through ``tqdm.write`` so a log line never tears a bar.
    """
    stream = sys.stderr if stream is None else stream
    if not wanted(stream, env):
        yield False
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    root = logging.getLogger()
    redirect = logging_redirect_tqdm([root]) if root.handlers else nullcontext()
    with progress.drawing(tqdm_factory(stream)), redirect:
        yield True
