"""Selection on more rows: does topping the selection half up with validation rows the search
never scored pick better architectures?

The search scores thousands of architectures, so its rows (A, ``val_rows / 2``) must be few.
Selection re-scores only a short list, so its half (B) can take every validation row outside
the search's subsample (``select_rows``). For every budget and seed, ours runs with the
config's settings and random search and evolution get as many distinct Q_A evaluations (as in
``search_efficiency.py``). Each history is re-ranked twice, on the plain half B and on the
topped-up B+, and both picks are scored on ``--test-rows`` rows of the **test** split (Q_T),
which no search or selection saw. The histories are the same, so the difference between the
two columns is the selection's alone. Datasets whose validation split is no larger than
``val_rows`` have nothing to top up: both columns are then equal, unless ``--plus-val-rows N``
gives B+ its own, smaller subsample (``val_rows = N``, so A has ``N / 2`` rows and B+ the rest
of the split): B+'s searches then run on that A, and the column weighs a noisier search
against a less noisy selection.

    python bench/selection_rows.py DATA SUPERNET [--select-rows 100000] [--plus-val-rows N]
        [--budgets 0.25,0.5,0.8] [--seeds 5] [--test-rows 10000] [key=value ...]

``key=value`` pairs override SearchConfig (budget mode only; ``seed`` is the bench's own, and
``select_rows`` is set by the bench). A diagnostic of the search stage alone (no retraining).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adass_ray.errors import AdassError  # noqa: E402
from adass_ray.harness.render import ci_text  # noqa: E402
from adass_ray.harness.stats import paired  # noqa: E402
from adass_ray.search.context import load_context  # noqa: E402
from adass_ray.search.selection import rerank  # noqa: E402
from bench.searches import METHODS, load, run_searches  # noqa: E402

HALVES = ("B", "B+")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("supernet")
    ap.add_argument("--select-rows", type=int, default=100_000)
    ap.add_argument("--budgets", default="0.25,0.5,0.8")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--test-rows", type=int, default=10_000)
    ap.add_argument("--plus-val-rows", type=int, default=0)
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_intermixed_args()  # options may sit between the positionals
    if args.seeds < 2:
        ap.error("--seeds must be >= 2 (a paired interval)")
    if args.select_rows < 1 or args.plus_val_rows < 0:
        ap.error("--select-rows must be >= 1 and --plus-val-rows >= 0")
    given = [o for o in args.overrides if not o.startswith("select_rows=")]
    args.overrides = [*given, "select_rows=0"]  # B: the subsample's half only
    bench = load(ap, args)
    if args.plus_val_rows:  # B+ searches on its own, smaller or larger, subsample
        args.overrides = [*(o for o in given if not o.startswith("val_rows=")),
                          f"val_rows={args.plus_val_rows}", f"select_rows={args.select_rows}"]
        plus = load(ap, args)
    else:  # the same histories, re-ranked on the topped-up half
        wide = load_context(args.data, args.supernet, val_rows=bench.base.val_rows, seed=0,
                            select_rows=args.select_rows).evaluator_b
        plus = replace(bench, ev_b=wide)
    plans = {"B": bench, "B+": plus}
    print(f"{bench.describe()}; B+: Q_A / Q_B on {plus.ev_a.labels.size} / "
          f"{plus.ev_b.labels.size} validation rows ("
          f"{'its own searches' if args.plus_val_rows else 'the same histories'}); "
          f"{args.seeds} seeds, {bench.base.iterations} iterations; SearchConfig "
          f"{' '.join(given) or 'defaults'}")
    print("| budget | method | Q_T re-ranked on B | Q_T re-ranked on B+ | B+ − B [95 % CI] "
          "| ours − this on B | ours − this on B+ |")
    print("|---|---|---|---|---|---|---|")
    for text, budget in bench.budgets:
        q = {m: {h: [] for h in HALVES} for m in METHODS}
        for seed in range(args.seeds):
            cfg = replace(bench.base, seed=seed)
            runs = {"B": run_searches(bench, budget, cfg)}
            runs["B+"] = (run_searches(plus, budget, replace(plus.base, seed=seed))
                          if args.plus_val_rows else runs["B"])
            for h in HALVES:
                for name, (hist, extra) in runs[h].items():
                    pick = rerank(bench.space, budget, hist, plans[h].ev_b, top_k=cfg.top_k,
                                  extra=extra, tie_se=cfg.tie_se, occam=cfg.occam).arch
                    q[name][h].append(bench.ev_t.evaluate([pick])[0])
        for name in METHODS:
            qm, ours = q[name], q["ours"]
            vs = ["—" if name == "ours" else ci_text(paired(ours[h], qm[h])) for h in HALVES]
            print(f"| {text} | {name} | {statistics.mean(qm['B']):.4f} "
                  f"| {statistics.mean(qm['B+']):.4f} | {ci_text(paired(qm['B+'], qm['B']))} "
                  f"| {vs[0]} | {vs[1]} |", flush=True)


if __name__ == "__main__":
    try:
        main()
    except AdassError as e:  # bad input: one line and exit 2, no traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
