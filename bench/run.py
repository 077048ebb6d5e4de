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
    "L1": ("bench.loader_speed:run",
           "ShardLoader rows/s ÷ Ray Data iter_torch_batches rows/s", "> 1"),
    "P1": ("bench.training_speed:p1",
           "supernet step ÷ stand-alone uniform step, same width/batch", "<= 1.25"),
    "P2": ("bench.search_speed:p2",
           "naive full forward per architecture ÷ cached batched evaluation", ">= 10"),
    "P3": ("bench.training_speed:p3",
           "end-to-end training samples/s ÷ MLP-only fwd+bwd ceiling", ">= 0.5"),
    "P4": ("bench.p4_prepare:run",
           "prepare rows/s ÷ pyarrow bare CSV parse rows/s", ">= 0.5"),
    "P5": ("bench.training_speed:p5",
           "one-worker Ray Train epoch ÷ the same loop without Ray", "<= 1.15"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="benchmark to run")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (seconds, for CI)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    module, what, target = BENCHMARKS[args.name]
    print(f"{args.name}: {what} (target {target}){' [quick]' if args.quick else ''}")
    print(f"machine: {machine()}")
    mod, _, fn = module.partition(":")
    value = getattr(importlib.import_module(mod), fn)(args.quick)
    print(f"{args.name} {value:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
