"""Benchmark runner: ``python bench/run.py NAME [--quick]``.

Each benchmark measures our code and its reference side by side in one run and returns a ratio.
The last line printed is ``NAME <value>`` so scripts can read it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine  # noqa: E402

# name → (module, what the value is, target)
BENCHMARKS: dict[str, tuple[str, str, str]] = {
    "P4": ("bench.p4_prepare", "prepare rows/s ÷ pyarrow bare CSV parse rows/s", ">= 0.5"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="benchmark to run")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (seconds, for CI)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    module, what, target = BENCHMARKS[args.name]
    print(f"{args.name}: {what} (target {target}){' [quick]' if args.quick else ''}")
    print(f"machine: {machine()}")
    value = importlib.import_module(module).run(args.quick)
    print(f"{args.name} {value:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
