"""Selection headroom on one frozen supernet: how much better could any pick from the same
search have been, and do simpler or smoother rules than the A/B re-ranking do better?

For every budget and seed, our controllers run with the config's settings, and random search
and evolution get exactly as many distinct Q_A evaluations (as in ``search_efficiency.py``).
Each history is then turned into one architecture by four rules, and every pick is scored on
the supernet over ``--test-rows`` rows of the **test** split (Q_T), which no search or
selection saw:

- ``re-ranked``: the harness's selection (top ``top_k`` by Q_A, ours' constrained argmaxes and
  the uniform size that fits, re-scored on the selection half B; the config's ``tie_se`` /
  ``occam``);
- ``no re-rank``: no selection half at all. Ours: the controllers' constrained argmax with the
  best Q_A; random search and evolution: their best Q_A;
- ``additive fit``: a ridge fit Q_A ≈ Σ_f β[f, s_f] over the whole history (each (field, size)
  an indicator), maximised under the budget by the exact knapsack (a pair never evaluated is
  chosen only where nothing else fits). It pools every evaluation, so it should smooth the
  row noise of single scores;
- ``best on list``: the best Q_T among the re-ranked candidates, an oracle no rule can beat
  with that short list: its gap to ``re-ranked`` is all any re-ranking rule could still gain.

    python bench/selection_headroom.py DATA SUPERNET [--budgets 0.25,0.5,0.8] [--seeds 5]
        [--test-rows 10000] [key=value ...]

``key=value`` pairs override SearchConfig (budget mode only; ``seed`` is the bench's own). A
diagnostic of the search stage alone (no retraining).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adass_ray.harness.render import ci_text  # noqa: E402
from adass_ray.harness.stats import paired  # noqa: E402
from adass_ray.search.knapsack import solve_mckp  # noqa: E402
from adass_ray.search.selection import rerank, top_k  # noqa: E402
from adass_ray.search.space import Arch, SearchSpace  # noqa: E402
from bench.common import run_main  # noqa: E402
from bench.searches import METHODS, load, run_searches  # noqa: E402

RULES = ("re-ranked", "no re-rank", "additive fit", "best on list")
RIDGE = 1e-3  # per evaluation: a light pull of rarely seen (field, size) pairs towards 0


def additive_pick(space: SearchSpace, history: Sequence[tuple[Arch, float]],
                  budget: int) -> Arch:
    """The budget-feasible maximiser of a ridge fit Q ≈ mean + Σ_f β[f, s_f] to ``history``."""
    f, k = space.num_fields, space.num_candidates
    archs = np.asarray([a for a, _ in history], dtype=np.int64)
    q = np.asarray([v for _, v in history], dtype=np.float64)
    x = np.zeros((len(archs), f * k))
    x[np.arange(len(archs))[:, None], np.arange(f)[None, :] * k + archs] = 1.0
    gram = x.T @ x + RIDGE * len(q) * np.eye(f * k)
    beta = np.linalg.solve(gram, x.T @ (q - q.mean())).reshape(f, k)
    seen = x.sum(axis=0).reshape(f, k) > 0
    floor = beta.min() - 1.0  # below every fitted value: an unseen pair only where forced
    arch = solve_mckp(np.where(seen, beta, floor), space.cost_table(), budget)
    assert arch is not None  # the history holds feasible architectures, so one fits
    return tuple(int(i) for i in arch)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("supernet")
    ap.add_argument("--budgets", default="0.25,0.5,0.8")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--test-rows", type=int, default=10_000)
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_intermixed_args()  # options may sit between the positionals
    if args.seeds < 2:
        ap.error("--seeds must be >= 2 (a paired interval)")
    bench = load(ap, args)
    space, ev_a, ev_t = bench.space, bench.ev_a, bench.ev_t
    print(f"{bench.describe()}; {args.seeds} seeds, {bench.base.iterations} iterations; "
          f"SearchConfig {' '.join(args.overrides) or 'defaults'}")
    print("| budget | method | " + " | ".join(f"Q_T {r}" for r in RULES)
          + " | no re-rank − re-ranked | additive fit − re-ranked |")
    print("|---|---|" + "---|" * (len(RULES) + 2))
    for text, budget in bench.budgets:
        q = {m: {r: [] for r in RULES} for m in METHODS}
        for seed in range(args.seeds):
            cfg = replace(bench.base, seed=seed)
            for name, (h, ex) in run_searches(bench, budget, cfg).items():
                sel = rerank(space, budget, h, bench.ev_b, top_k=cfg.top_k, extra=ex,
                             tie_se=cfg.tie_se, occam=cfg.occam)
                if ex:  # the policy's own answer: its argmax that scored best on A
                    q_a = ev_a.evaluate(list(ex))
                    plain = ex[int(np.argmax(q_a))]
                else:
                    plain = top_k(space, h, budget, 1)[0]
                picks = [sel.arch, plain, additive_pick(space, h, budget)]
                scores = ev_t.evaluate(picks)
                for rule, value in zip(RULES, scores, strict=False):
                    q[name][rule].append(value)
                q[name]["best on list"].append(max(ev_t.evaluate(list(sel.candidates))))
        for name in METHODS:
            qm = q[name]
            print(f"| {text} | {name} | "
                  + " | ".join(f"{statistics.mean(qm[r]):.4f}" for r in RULES)
                  + f" | {ci_text(paired(qm['no re-rank'], qm['re-ranked']))}"
                  + f" | {ci_text(paired(qm['additive fit'], qm['re-ranked']))} |", flush=True)


if __name__ == "__main__":
    run_main(main)
