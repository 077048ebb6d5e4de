"""Stage-2 search against random search and evolution on a synthetic, noisy oracle.

The oracle: Q(α) = 0.75 + Σ_f g_f(s_f) + Σ_{f<g} γ_fg·u(s_f)·u(s_g) + noise, with g_f saturating
in the size (faster for small vocabularies), an over-fitting cost per dimension for no-signal,
high-cardinality fields (dropping them is best), small pairwise terms and Gaussian noise of std
``--noise`` (AUC units). The noise is a fixed function of (architecture, draw), as scoring on fixed
rows is: draw A is the search half, draw B the selection half. Every method gets the same number
of distinct evaluations on A and the same re-ranking on B (:func:`rerank`, top_k + 2 for the
baselines, top_k + the policy's candidates for ours). Reported: the true (noise-free) Q of the
selected architecture, its percentile among uniform feasible architectures, cost/B, and for ours
the entropy, E_π[C]/B and the share of raw proposals within budget. No Ray, seconds to run:

    python bench/controller_probe.py [--seeds 5] [--iterations 60] [--lr 0.1] [--sweep]
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from adass_ray.search.agent import SearchAgent, SearchConfig
from adass_ray.search.knapsack import solve_mckp
from adass_ray.search.selection import rerank, rerank_front
from adass_ray.search.space import Arch, SearchSpace, repair

SIZES = (0, 1, 2, 4, 8, 16)
# name -> (vocab sizes, importance w_f in AUC; 0 = no signal)
DATASETS = {
    "ml8": ((943, 1682, 795, 73, 61, 21, 2, 19),
            (0.030, 0.040, 0.004, 0.006, 0.005, 0.008, 0.003, 0.004)),
    "flights14": ((22_000, 310, 350, 20, 12, 31, 7, 24, 60, 5_000, 150, 1_200, 90, 3),
                  (0.0, 0.012, 0.010, 0.004, 0.003, 0.005, 0.002, 0.004, 0.006, 0.0, 0.005,
                   0.008, 0.004, 0.002)),
}
BUDGETS = (0.25, 0.5, 0.8)
LAMS = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05)


@dataclass
class Oracle:
    """A noisy quality function over a search space (see the module docstring)."""

    space: SearchSpace
    g: np.ndarray  # [F, K]
    pair: np.ndarray  # [F, F], upper triangle
    u: np.ndarray  # [K]
    noise: float
    seed: int
    calls: int = 0

    @classmethod
    def make(cls, name: str, seed: int, noise: float) -> Oracle:
        vocab, w = DATASETS[name]
        rng = np.random.default_rng(1000 + seed)
        space = SearchSpace(tuple(f"f{i}" for i in range(len(vocab))), vocab, SIZES, True)
        s = np.asarray(SIZES, dtype=float)
        v = np.asarray(vocab, dtype=float)
        tau = np.maximum(0.3, np.log2(v) / 3.0)
        imp = np.asarray(w) * rng.uniform(0.6, 1.4, len(v))
        overfit = 2e-4 * v / 1e4 * (np.asarray(w) == 0)
        g = imp[:, None] * (1 - np.exp(-s[None] / tau[:, None])) - overfit[:, None] * np.log2(1 + s)
        pair = np.triu(rng.normal(0, 7e-4, (len(v), len(v))), 1)
        return cls(space, g, pair, np.log2(1 + s) / np.log2(1 + s[-1]), noise, seed)

    def true(self, archs: np.ndarray) -> np.ndarray:
        a = np.asarray(archs, dtype=np.int64).reshape(-1, self.space.num_fields)
        uu = self.u[a]
        sep = self.g[np.arange(a.shape[1]), a].sum(1)
        return 0.75 + sep + np.einsum("nf,fg,ng->n", uu, self.pair, uu)

    def noisy(self, archs: Sequence[Arch], draw: int) -> list[float]:
        a = np.asarray(archs, dtype=np.int64)
        self.calls += len(a)
        code = (a * self.space.num_candidates ** np.arange(a.shape[1])).sum(1).astype(np.uint64)
        key = np.uint64((self.seed * 7919 + draw * 104_729) & 0xFFFFFFFF)
        u1 = _uniform(code * np.uint64(2) + key)
        u2 = _uniform(code * np.uint64(2) + key + np.uint64(1))
        z = np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)
        return list(self.true(a) + self.noise * z)


def _uniform(x: np.ndarray) -> np.ndarray:
    """splitmix64 of ``x`` -> uniforms in (0, 1)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


class Memo:
    """Scores on one draw, memoised; ``unique`` counts distinct evaluations."""

    def __init__(self, oracle: Oracle, draw: int) -> None:
        self.oracle, self.draw, self.cache = oracle, draw, {}  # type: dict

    def __call__(self, archs: Sequence[Arch]) -> list[float]:
        todo = [a for a in dict.fromkeys(map(tuple, archs)) if a not in self.cache]
        if todo:
            self.cache.update(zip(todo, self.oracle.noisy(todo, self.draw), strict=True))
        return [self.cache[tuple(a)] for a in archs]

    @property
    def unique(self) -> int:
        return len(self.cache)


def run_ours(o: Oracle, budget: int, cfg: SearchConfig, lam: float = 0.0) -> dict:
    ev_a, ev_b = Memo(o, 0), Memo(o, 1)
    agent = SearchAgent(space=o.space, budget=budget, evaluator=ev_a, config=cfg, index=0)
    hist, ent, feas, ratio = [], [], [], []
    for _ in range(cfg.iterations):
        recs = agent.step()
        hist += [(tuple(r["arch"]), r["quality"]) for r in recs]
        if not recs[0]["warmup"]:
            feas.append(np.mean([r["proposed_feasible"] for r in recs]))
        ent.append(agent.controller.entropy())
        ratio.append(agent.last.get("expected_cost_ratio", math.nan))
    extra = agent.candidates()
    sel = rerank(o.space, budget, hist, ev_b, top_k=cfg.top_k, extra=extra, lam=lam)
    hq = np.array([q for _, q in hist])
    diag = o.true(np.array([extra[0], hist[int(hq.argmax())][0], *[a for a, _ in hist]]))
    return {"sel": sel, "unique": ev_a.unique, "entropy": ent, "feasible": float(np.mean(feas)),
            "ratio": float(np.nanmean(ratio[-5:])), "hist": hist, "extra": extra,
            "diag": (diag[0], diag[1], diag[2:].max())}


def run_random(o: Oracle, budget: int, evals: int, top_k: int, seed: int, lam: float = 0.0) -> dict:
    ev_a, ev_b, rng = Memo(o, 0), Memo(o, 1), np.random.default_rng(seed)
    hist: list = []
    while ev_a.unique < evals and len(hist) < 50 * evals:
        archs = [repair(o.space, o.space.random_arch(rng), budget) for _ in range(8)]
        hist += zip(archs, ev_a(archs), strict=True)
    sel = rerank(o.space, budget, hist, ev_b, top_k=top_k + 2, lam=lam)
    return {"sel": sel, "unique": ev_a.unique, "hist": hist}


def run_evolution(o: Oracle, budget: int, evals: int, top_k: int, seed: int,
                  pop: int = 32, sample: int = 8) -> dict:
    """Regularised evolution (aging): tournament of ``sample``, one-field mutation, repair."""
    ev_a, ev_b, rng = Memo(o, 0), Memo(o, 1), np.random.default_rng(seed)
    sp = o.space
    population = [repair(sp, sp.random_arch(rng), budget) for _ in range(pop)]
    scores = ev_a(population)
    hist = list(zip(population, scores, strict=True))
    while ev_a.unique < evals and len(hist) < 50 * evals:
        pick = rng.choice(len(population), size=min(sample, len(population)), replace=False)
        parent = list(population[max(pick, key=lambda i: scores[i])])
        f = int(rng.integers(sp.num_fields))
        parent[f] = int(rng.choice([k for k in range(sp.num_candidates) if k != parent[f]]))
        child = repair(sp, parent, budget)
        q = ev_a([child])[0]
        population, scores = population[1:] + [child], scores[1:] + [q]
        hist.append((child, q))
    sel = rerank(sp, budget, hist, ev_b, top_k=top_k + 2)
    return {"sel": sel, "unique": ev_a.unique, "hist": hist}


def reference(o: Oracle, budget: int, seed: int) -> tuple[np.ndarray, float]:
    """True Q of uniform feasible architectures (exhaustive when small) and the best known Q."""
    sp, rng = o.space, np.random.default_rng(seed)
    costs = np.outer(sp.vocab_sizes, sp.candidate_sizes)
    if sp.num_candidates ** sp.num_fields <= 2_000_000:
        grid = np.array(list(itertools.product(range(sp.num_candidates), repeat=sp.num_fields)))
        ok = grid[costs[np.arange(sp.num_fields), grid].sum(1) <= budget]
        q = o.true(ok)
        return np.sort(q), float(q.max())
    draws = rng.integers(0, sp.num_candidates, (400_000, sp.num_fields))
    ok = draws[costs[np.arange(sp.num_fields), draws].sum(1) <= budget]
    if len(ok) < 2000:  # tight budget: repaired uniform samples stand in
        ok = np.array([repair(sp, a, budget) for a in draws[:20_000]])
    sep = solve_mckp(o.g, costs, budget)
    q = o.true(ok)
    return np.sort(q), float(max(q.max(), o.true(np.array([sep]))[0]))


def percentile(ref: np.ndarray, q: float) -> float:
    return 100.0 * np.searchsorted(ref, q, side="right") / len(ref)


def compare(args: argparse.Namespace, cfg: SearchConfig) -> list[dict]:
    rows = []
    for name in args.datasets:
        for ratio in BUDGETS:
            for seed in range(args.seeds):
                o = Oracle.make(name, seed, args.noise)
                budget = int(ratio * o.space.uniform_cost(16))
                ref, best = reference(o, budget, seed)
                ours = run_ours(o, budget, replace(cfg, seed=seed))
                n = ours["unique"]
                res = {"ours": ours, "random": run_random(o, budget, n, cfg.top_k, seed),
                       "evolution": run_evolution(o, budget, n, cfg.top_k, seed)}
                for m, r in res.items():
                    q = float(o.true(np.array([r["sel"].arch]))[0])
                    rows.append({"data": name, "budget": ratio, "seed": seed, "method": m,
                                 "q": q, "pct": percentile(ref, q), "regret": best - q,
                                 "cost": r["sel"].cost / budget, "evals": r["unique"],
                                 "entropy": r.get("entropy"), "feasible": r.get("feasible"),
                                 "ratio": r.get("ratio"), "diag": r.get("diag"),
                                 "best": best})
    return rows


def _ci(x: list[float]) -> str:
    m = statistics.fmean(x)
    se = statistics.stdev(x) / math.sqrt(len(x)) if len(x) > 1 else 0.0
    return f"{m * 1e3:+.2f}±{1.96 * se * 1e3:.2f}"


def print_table(rows: list[dict]) -> None:
    print(f"{'data':10} {'B':>4} {'method':10} {'trueQ':>7} {'pct':>6} {'regret':>7} {'C/B':>5} "
          f"{'evals':>5} {'d(ours-m) 1e-3':>15} {'H0>Hend':>12} {'feas':>5} {'E[C]/B':>6} "
          "regret of: argmax maxQ_A best-seen")
    keys = sorted({(r["data"], r["budget"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for data, b in keys:
        sub = [r for r in rows if (r["data"], r["budget"]) == (data, b)]
        ours = {r["seed"]: r["q"] for r in sub if r["method"] == "ours"}
        for m in ("ours", "random", "evolution"):
            rs = [r for r in sub if r["method"] == m]
            diff = "" if m == "ours" else _ci([ours[r["seed"]] - r["q"] for r in rs])
            extra = ""
            if m == "ours":
                h0 = statistics.fmean(r["entropy"][0] for r in rs)
                h1 = statistics.fmean(r["entropy"][-1] for r in rs)
                regret = [1e3 * statistics.fmean(r["best"] - r["diag"][i] for r in rs)
                          for i in range(3)]
                extra = (f"{h0:5.1f}>{h1:5.1f} {statistics.fmean(r['feasible'] for r in rs):5.2f} "
                         f"{statistics.fmean(r['ratio'] for r in rs):6.2f} "
                         + " ".join(f"{x:5.2f}" for x in regret))
            print(f"{data:10} {b:4.2f} {m:10} {statistics.fmean(r['q'] for r in rs):7.4f} "
                  f"{statistics.fmean(r['pct'] for r in rs):6.1f} "
                  f"{statistics.fmean(r['regret'] for r in rs) * 1e3:7.2f} "
                  f"{statistics.fmean(r['cost'] for r in rs):5.2f} "
                  f"{statistics.fmean(r['evals'] for r in rs):5.0f} {diff:>15} {extra}")


def sweep(args: argparse.Namespace, cfg: SearchConfig) -> None:
    """Trade-off mode over the λ grid, one trial (own seed) per λ: Spearman(λ, selected cost)
    of each trial's own selection, and of the front re-ranked over the pooled trials."""
    print(f"\nλ sweep (mode=tradeoff), λ grid {LAMS}: selected cost/B per λ, Spearman(λ, cost)")
    for name, ratio in (("ml8", 0.8), ("ml8", 0.5), ("flights14", 0.5)):
        rows: dict[str, list[list[float]]] = {"ours/trial": [], "ours/front": [],
                                              "random/front": [], "truth (separable)": []}
        qs: dict[str, list[float]] = {k: [] for k in rows}
        for seed in range(args.seeds):
            o = Oracle.make(name, seed, args.noise)
            budget = int(ratio * o.space.uniform_cost(16))
            trials = [run_ours(o, budget, replace(cfg, seed=100 * seed + j, mode="tradeoff",
                                                  lam=lam), lam=lam)
                      for j, lam in enumerate(LAMS)]
            hist = [h for t in trials for h in t["hist"]]
            extra = [a for t in trials for a in t["extra"]]
            evals = len({a for a, _ in hist})
            rnd = run_random(o, budget, evals, cfg.top_k, seed)["hist"]
            sels = {"ours/trial": [t["sel"] for t in trials],
                    "ours/front": rerank_front(o.space, budget, hist, Memo(o, 1), LAMS,
                                               top_k=cfg.top_k, extra=extra),
                    "random/front": rerank_front(o.space, budget, rnd, Memo(o, 1), LAMS,
                                                 top_k=cfg.top_k)}
            for k, sel in sels.items():
                rows[k].append([x.cost / budget for x in sel])
                qs[k].append(float(o.true(np.array([sel[0].arch]))[0]))
            costs = np.outer(o.space.vocab_sizes, o.space.candidate_sizes)
            truth = [solve_mckp(o.g - lam * costs / budget, costs, budget) for lam in LAMS]
            rows["truth (separable)"].append([o.space.cost(a) / budget for a in truth if a])
            qs["truth (separable)"].append(float(o.true(np.array([truth[0]]))[0]))
        for k, table in rows.items():
            rhos = [_spearman(LAMS, c) for c in table]
            print(f"{name:10} B={ratio:.2f} {k:12} cost/B "
                  + " ".join(f"{x:.2f}" for x in np.mean(table, 0))
                  + f"   Spearman mean {np.mean(rhos):+.2f} (worst {np.max(rhos):+.2f})"
                  + f"   true Q at λ=0 {np.mean(qs[k]):.4f}")


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    rx = np.argsort(np.argsort(x)).astype(float)
    ry = _rank(np.asarray(y))
    if ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def _rank(y: np.ndarray) -> np.ndarray:
    order = np.argsort(y, kind="stable")
    ranks = np.empty(len(y))
    ranks[order] = np.arange(len(y), dtype=float)
    for v in np.unique(y):  # average ranks of ties
        ranks[y == v] = ranks[y == v].mean()
    return ranks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--noise", type=float, default=0.0015)
    ap.add_argument("--sweep", action="store_true", help="also run the trade-off λ sweep")
    ap.add_argument("--sweep-only", action="store_true", help="only the λ sweep")
    base = SearchConfig()
    for field in ("iterations", "archs_per_iter", "lr", "warmup_iters", "lr_ramp_iters",
                  "top_k", "budget_weight", "entropy_weight", "adv_eps", "dual_lr"):
        default = getattr(base, field)
        ap.add_argument("--" + field.replace("_", "-"), type=type(default), default=default)
    ap.add_argument("--h", default=base.h)
    ap.add_argument("--controller", default=base.controller)
    ap.add_argument("--no-competition", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = replace(base, controllers=1, competition=not args.no_competition, h=args.h,
                  controller=args.controller,
                  **{k: getattr(args, k) for k in ("iterations", "archs_per_iter", "lr",
                     "warmup_iters", "lr_ramp_iters", "top_k", "budget_weight",
                     "entropy_weight", "adv_eps", "dual_lr")})
    t0 = time.perf_counter()
    if not args.sweep_only:
        print_table(compare(args, cfg))
    if args.sweep or args.sweep_only:
        sweep(args, cfg)
    print(f"\n{time.perf_counter() - t0:.0f} s; noise std {args.noise}; config {cfg}")


if __name__ == "__main__":
    main()
