"""Small helpers shared by the benchmarks: timing, machine description, the entry point."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

from adass_ray.errors import AdassError


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> str:
    """One line naming the machine the numbers came from."""
    try:
        import torch

        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        threads = -1
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch threads {threads}")


def run_main(main: Callable[[], None]) -> None:
    """Run a bench's ``main``; bad input (an :class:`AdassError`) is one line on stderr and
    exit 2, with no traceback."""
    try:
        main()
    except AdassError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
