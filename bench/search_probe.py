"""How a single controller behaves on a trained supernet: every 10 iterations, the share of raw
proposals within the budget (before the repair), the policy's entropy, its expected cost
E[C]/B, the mean cost of the (repaired, credited) architectures, the best Q_A so far and the
policy's constrained argmax.

    python bench/search_probe.py DATA SUPERNET [--budget 0.8] [--iterations 60] [key=value ...]

``key=value`` pairs override SearchConfig (e.g. ``lr=0.1``). Not a speed benchmark: a
diagnostic for the search (docs/results.md quotes its output).
"""

from __future__ import annotations

import argparse
import time

import torch

from adass_ray import configio
from adass_ray.search.agent import SearchAgent, SearchConfig
from adass_ray.search.context import load_context
from adass_ray.search.space import Budget


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("supernet")
    ap.add_argument("--budget", default="0.8")
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = configio.load(SearchConfig, None,
                        [f"iterations={args.iterations}", "controllers=1", *args.overrides])
    ctx = load_context(args.data, args.supernet, rows=cfg.rows, seed=0)
    space = ctx.space
    budget = Budget.parse(args.budget).resolve(space, d_base=cfg.d_base)
    agent = SearchAgent(space=space, budget=budget, evaluator=ctx.evaluator_a.evaluate,
                        config=cfg, index=0)
    history: list[dict] = []
    t0 = time.perf_counter()
    for it in range(1, cfg.iterations + 1):
        records = agent.step()
        history += records
        if it % 10 == 0 or it == 1:
            s = agent.summary()
            best = max(r["quality"] for r in history)
            cost = sum(r["cost"] for r in records) / len(records) / budget
            print(f"iteration {it:3d}: raw feasible {s.get('feasible_share') or 0:.2f}  "
                  f"entropy {s['entropy']:.3f}  E[C]/B {s.get('expected_cost_ratio') or 0:.2f}  "
                  f"scored cost {cost:.2f}×B  best Q_A {best:.4f}  "
                  f"constrained argmax {space.sizes(s['constrained_argmax'])}")
    distinct = len({tuple(r["arch"]) for r in history})
    top = torch.log(torch.tensor(float(space.num_candidates))).item() * space.num_fields
    print(f"{distinct} distinct of {len(history)} proposals; max entropy {top:.3f}; "
          f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
