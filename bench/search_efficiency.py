"""Search efficiency on one frozen supernet: what each search finds for a given number of
evaluations, scored on rows no search or selection has seen.

For every budget, search length and seed: our controllers run for ``--iterations`` (2
controllers × 32 proposals per iteration by default, the first ``warmup_iters`` iterations
uniform-random); random search and evolution then get exactly as many distinct Q_A
evaluations as ours used. Every history goes through the harness's selection: the top
``top_k`` by Q_A plus the uniform architecture that fits, re-ranked on the selection half B
(with the config's ``tie_se`` / ``occam``); ours also offers its controllers' constrained
argmaxes, as in ``adass-ray report`` (the one asymmetry: up to 2 short-list entries per
controller that random search and evolution have no counterpart for). Each selected
architecture is then scored on the supernet over ``--test-rows`` rows of the **test** split
(Q_T): neither the search (A) nor the selection (B) saw them, so Q_T has no winner's curse.
Differences are paired by seed, with a 95 % t interval over the seeds; the rows (A, B, test)
and the supernet are fixed, so the interval covers the searches' randomness, not row noise.

    python bench/search_efficiency.py DATA SUPERNET [--budgets 0.25,0.5,0.8] [--seeds 5]
        [--iterations 10,20,60] [key=value ...]

``key=value`` pairs override SearchConfig (budget mode only; ``iterations`` and ``seed`` are
the bench's own). A diagnostic of the search stage alone (no
retraining): retrained test AUC is the harness's job (``adass-ray report``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adass_ray.harness.render import ci_text  # noqa: E402
from adass_ray.harness.stats import paired  # noqa: E402
from adass_ray.search.selection import rerank  # noqa: E402
from bench.common import run_main  # noqa: E402
from bench.searches import METHODS, load, run_searches  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("supernet")
    ap.add_argument("--budgets", default="0.25,0.5,0.8")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--iterations", default="10,20,60", help="search lengths (ours' iterations)")
    ap.add_argument("--test-rows", type=int, default=10_000)
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_intermixed_args()  # options may sit between the positionals
    try:
        lengths = [int(x) for x in args.iterations.split(",")]
    except ValueError:
        ap.error(f"--iterations {args.iterations!r}: expected comma-separated integers")
    if args.seeds < 2 or min(lengths) < 1:
        ap.error("--seeds must be >= 2 (a paired interval) and every search length >= 1")
    bench = load(ap, args)
    print(f"{bench.describe()}; {args.seeds} seeds; SearchConfig "
          f"{' '.join(args.overrides) or 'defaults'}")
    print("| budget | iterations | evals | Q_T ours | Q_T random | Q_T evolution "
          "| ours − random [95 % CI] | ours − evolution [95 % CI] |")
    print("|---|---|---|---|---|---|---|---|")
    for text, budget in bench.budgets:
        for n in lengths:
            q: dict[str, list[float]] = {m: [] for m in METHODS}
            evals: dict[str, list[int]] = {m: [] for m in METHODS}
            for seed in range(args.seeds):
                cfg = replace(bench.base, iterations=n, seed=seed)
                for name, (h, ex) in run_searches(bench, budget, cfg).items():
                    sel = rerank(bench.space, budget, h, bench.ev_b, top_k=cfg.top_k, extra=ex,
                                 tie_se=cfg.tie_se, occam=cfg.occam)
                    q[name].append(bench.ev_t.evaluate([sel.arch])[0])
                    evals[name].append(len({a for a, _ in h}))
            r, e = paired(q["ours"], q["random search"]), paired(q["ours"], q["evolution"])
            counts = {m: statistics.mean(v) for m, v in evals.items()}
            shown = f"{counts['ours']:,.0f}"
            if len(set(counts.values())) > 1:  # a small space ran out of distinct architectures
                shown += " (" + " / ".join(f"{v:,.0f}" for v in counts.values()) + ")"
            print(f"| {text} | {n} | {shown} | "
                  + " | ".join(f"{statistics.mean(q[m]):.4f}" for m in METHODS)
                  + f" | {ci_text(r)} | {ci_text(e)} |", flush=True)


if __name__ == "__main__":
    run_main(main)
