"""How a single REINFORCE controller behaves on a trained supernet: every 10 iterations, the share
of proposals within the budget, the policy's entropy and argmax, the best feasible Q and the
mean proposal cost relative to the budget.

    python bench/search_probe.py DATA SUPERNET [--lr 0.05] [--budget 0.8] [--iterations 60]

Not a speed benchmark: a diagnostic for the search (docs/results.md quotes its output).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from adass_ray.artifacts import load_model
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.loader import ShardLoader
from adass_ray.search.agent import SearchAgent, SearchConfig
from adass_ray.search.evaluator import CachedEvaluator, validation_subsample
from adass_ray.search.space import Budget, SearchSpace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("supernet")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--budget", default="0.8")
    ap.add_argument("--iterations", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = Path(args.data)
    fm = FeatureMap.load(data)
    net, _ = load_model(args.supernet, fm)
    cfg = SearchConfig(controllers=1, lr=args.lr, iterations=args.iterations)
    batch = validation_subsample(ShardLoader(data, fm, split="valid", shuffle=False), cfg.val_rows, 0)
    space = SearchSpace.from_feature_map(fm, candidate_sizes=net.candidate_sizes)  # type: ignore[arg-type]
    budget = Budget.parse(args.budget).resolve(space, d_base=cfg.d_base)
    agent = SearchAgent(space=space, budget=budget, evaluator=CachedEvaluator(net, batch),  # type: ignore[arg-type]
                        config=cfg, index=0)
    history: list[dict] = []
    t0 = time.perf_counter()
    for it in range(1, cfg.iterations + 1):
        records = agent.step()
        history += records
        if it % 10 == 0:
            feasible = sum(r["feasible"] for r in records) / len(records)
            best = max((r["quality"] for r in history if r["feasible"]), default=float("nan"))
            s = agent.summary()
            cost = sum(r["cost"] for r in records) / len(records) / budget
            print(f"iteration {it}: feasible {feasible:.2f}  entropy {s['entropy']:.3f}  "
                  f"argmax {space.sizes(s['argmax'])}  best feasible Q {best:.4f}  mean cost {cost:.2f}×B")
    distinct = len({tuple(r["arch"]) for r in history})
    print(f"{distinct} distinct of {len(history)} proposals; max entropy {space.num_fields * torch.log(torch.tensor(float(space.num_candidates))).item():.3f}; "
          f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
