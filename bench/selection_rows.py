"""Selection on more rows: does giving the selection half the validation rows the search
never scores pick better architectures?

The search scores thousands of architectures, so its rows (A) must be few. Selection re-scores
only a short list, so its half (B) can take every validation row outside the search's
subsample. The bench compares two row plans on one supernet:

- **B**: the plan before ``select_rows`` and ``search_share`` existed: a subsample of
  ``val_rows`` rows split in halves A and B;
- **B+**: the config's plan: B topped up from the rows outside the subsample, up to
  ``--select-rows``; on a small split the subsample is also at most ``search_share`` of it,
  so A shrinks and B+ gets the rest. ``--plus-val-rows N`` fixes B+'s subsample at N rows.

For every budget and seed, ours runs with the config's settings, and random search and
evolution get as many distinct Q_A evaluations (as in ``search_efficiency.py``). Where both
plans have the same A, the same histories are re-ranked twice, so the difference between the
columns is the selection's alone; otherwise each plan runs its own searches, and the column
weighs a noisier search against a less noisy selection. Every pick is scored on
``--test-rows`` rows of the **test** split (Q_T), which no search or selection saw.

    python bench/selection_rows.py DATA SUPERNET [--select-rows 100000] [--plus-val-rows N]
        [--budgets 0.25,0.5,0.8] [--seeds 5] [--test-rows 10000] [key=value ...]

``key=value`` pairs override SearchConfig (budget mode only; ``seed`` is the bench's own;
``select_rows`` is ``--select-rows`` for B+, and B has ``select_rows=0, search_share=1``).
The A / B rows are drawn per seed (``--fixed-rows``: once, with seed 0), so the intervals
cover the luck of the row split as well as the searches' randomness; a row plan judged on one
split is judged on one draw of that luck. A diagnostic of the search stage alone (no
retraining).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adass_ray import configio  # noqa: E402
from adass_ray.harness.render import ci_text  # noqa: E402
from adass_ray.harness.stats import paired  # noqa: E402
from adass_ray.search.agent import SearchConfig  # noqa: E402
from adass_ray.search.rows import subsample_rows  # noqa: E402
from adass_ray.search.selection import rerank  # noqa: E402
from bench.common import run_main  # noqa: E402
from bench.searches import METHODS, load, run_searches, with_rows  # noqa: E402

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
    ap.add_argument("--fixed-rows", action="store_true",
                    help="draw the A / B rows once (seed 0) rather than per seed")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_intermixed_args()  # options may sit between the positionals
    if args.seeds < 2:
        ap.error("--seeds must be >= 2 (a paired interval)")
    if args.select_rows < 1 or args.plus_val_rows < 0:
        ap.error("--select-rows must be >= 1 and --plus-val-rows >= 0")
    original = [o for o in args.overrides if not o.startswith("select_rows=")]
    given = [o for o in original if not o.startswith("search_share=")]
    # B: the subsample's half only, as before select_rows and search_share existed
    args.overrides = [*given, "select_rows=0", "search_share=1"]
    bench = load(ap, args)
    if args.plus_val_rows:  # B+ searches on a subsample of exactly that many rows
        plus_cfg = replace(bench.base, val_rows=args.plus_val_rows)
    else:  # B+: the config's share (a smaller subsample where the split is small)
        plus_cfg = configio.load(SearchConfig, None, original)
    plus_cfg = replace(plus_cfg, select_rows=args.select_rows)
    plans = {"B": bench.base.rows, "B+": plus_cfg.rows}
    first = {"B": bench, "B+": with_rows(bench, plans["B+"], 0)}  # bench holds B at seed 0
    # the same subsample, hence the same A for every seed: the histories are then shared
    n = len(bench.valid)
    same = min(subsample_rows(plans["B"], n), n) == min(subsample_rows(plans["B+"], n), n)
    print(f"{bench.describe()}; B+: Q_A / Q_B on {first['B+'].ev_a.labels.size} / "
          f"{first['B+'].ev_b.labels.size} validation rows; rows drawn "
          f"{'once (seed 0)' if args.fixed_rows else 'per seed'}; {args.seeds} seeds, "
          f"{bench.base.iterations} iterations; SearchConfig {' '.join(given) or 'defaults'}")
    q = {t: {m: {h: [] for h in HALVES} for m in METHODS} for t, _ in bench.budgets}
    for seed in range(args.seeds):
        draw = 0 if args.fixed_rows else seed
        rows = first if draw == 0 else {h: with_rows(bench, plan, draw)
                                        for h, plan in plans.items()}
        for text, budget in bench.budgets:
            runs = {"B": run_searches(rows["B"], budget, replace(bench.base, seed=seed))}
            runs["B+"] = (runs["B"] if same else
                          run_searches(rows["B+"], budget, replace(plus_cfg, seed=seed)))
            for h in HALVES:
                for name, (hist, extra) in runs[h].items():
                    pick = rerank(bench.space, budget, hist, rows[h].ev_b,
                                  top_k=bench.base.top_k, extra=extra,
                                  tie_se=bench.base.tie_se, occam=bench.base.occam).arch
                    q[text][name][h].append(bench.ev_t.evaluate([pick])[0])
        print(f"seed {seed} done", file=sys.stderr, flush=True)
    print("| budget | method | Q_T re-ranked on B | Q_T re-ranked on B+ | B+ − B [95 % CI] "
          "| ours − this on B | ours − this on B+ |")
    print("|---|---|---|---|---|---|---|")
    for text, _ in bench.budgets:
        for name in METHODS:
            qm, ours = q[text][name], q[text]["ours"]
            vs = ["—" if name == "ours" else ci_text(paired(ours[h], qm[h])) for h in HALVES]
            print(f"| {text} | {name} | {statistics.mean(qm['B']):.4f} "
                  f"| {statistics.mean(qm['B+']):.4f} | {ci_text(paired(qm['B+'], qm['B']))} "
                  f"| {vs[0]} | {vs[1]} |", flush=True)

if __name__ == "__main__":
    run_main(main)
