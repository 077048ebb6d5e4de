"""Baselines the harness compares our search with: random search, evolution, fixed rules and
SSEDS-style saliency pruning.

Pure torch and numpy (no Ray, no MLflow): :mod:`adass_ray.harness` runs these as Ray tasks and
writes the tables. Every search here scores architectures on a frozen supernet through a
:class:`~adass_ray.search.evaluator.CachedEvaluator`, so the methods that share a supernet are
compared on equal terms; the baselines that need no supernet (uniform, card^0.25, saliency
pruning) only produce sizes. All sizes are then retrained from scratch with one protocol.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.loader import ShardLoader
from adass_ray.errors import ConfigError
from adass_ray.model.supernet import Supernet
from adass_ray.search.evaluator import CachedEvaluator
from adass_ray.search.space import Arch, SearchSpace, repair

# --------------------------------------------------------------------------------- searches


Scored = list[tuple[Arch, float]]


def random_search(
    evaluator: CachedEvaluator, space: SearchSpace, budget: int, evaluations: int, seed: int
) -> Scored:
    """Uniformly random architectures, repaired to the budget, until ``evaluations`` distinct
    ones; returns every ``(arch, Q)`` scored."""
    rng = np.random.default_rng([seed, 11])
    seen: dict[Arch, None] = {}
    stale = 0
    while len(seen) < evaluations and stale < 50 * evaluations:
        a = repair(space, space.random_arch(rng), budget)
        stale = stale + 1 if a in seen else 0
        seen.setdefault(a, None)
    archs = list(seen)
    return list(zip(archs, evaluator.evaluate(archs), strict=True))


def evolutionary_search(
    evaluator: CachedEvaluator,
    space: SearchSpace,
    budget: int,
    evaluations: int,
    seed: int,
    population: int = 32,
    parents: int = 10,
    mutate: float = 0.1,
) -> Scored:
    """OptEmbed-style evolution: random start, then children by crossover and mutation of the
    best ``parents``, all repaired to the budget, until ``evaluations`` distinct architectures;
    returns every ``(arch, Q)`` scored."""
    rng = np.random.default_rng([seed, 13])
    scores: dict[Arch, float] = {}

    def score(archs: list[Arch]) -> None:
        fresh = [a for a in dict.fromkeys(archs) if a not in scores][: evaluations - len(scores)]
        scores.update(zip(fresh, evaluator.evaluate(fresh), strict=True))

    score([repair(space, space.random_arch(rng), budget) for _ in range(population)])
    stale = 0
    while len(scores) < evaluations and stale < 50:
        best = sorted(scores, key=lambda a: -scores[a])[:parents]
        children = []
        for i in range(population):
            p1 = np.array(best[rng.integers(len(best))])
            if i % 2 == 0:  # crossover: each field from one of two parents
                p2 = np.array(best[rng.integers(len(best))])
                child = np.where(rng.random(space.num_fields) < 0.5, p1, p2)
            else:
                child = p1.copy()
            flip = rng.random(space.num_fields) < mutate
            child[flip] = rng.integers(0, space.num_candidates, int(flip.sum()))
            children.append(repair(space, tuple(int(x) for x in child), budget))
        before = len(scores)
        score(children)
        stale = stale + 1 if len(scores) == before else 0
    return list(scores.items())


# --------------------------------------------------------------------------------- baselines


def uniform_matched(space: SearchSpace, budget: int) -> tuple[int, ...]:
    """The largest candidate size whose uniform architecture fits the budget."""
    fits = [s for s in space.candidate_sizes if s > 0 and space.uniform_cost(s) <= budget]
    if not fits:
        raise ConfigError(f"no uniform size fits a budget of {budget:,} params")
    return (max(fits),) * space.num_fields


def _nearest_candidate(x: float, candidates: Sequence[int]) -> int:
    """The candidate size nearest to ``x`` in log scale (ties: the smaller)."""
    return min(candidates, key=lambda s: (abs(math.log2(s) - math.log2(max(x, 1e-9))), s))


def card_rule(
    space: SearchSpace, budget: int, power: float = 0.25
) -> tuple[tuple[int, ...], float]:
    """Sizes ``ceil(k · V_f^power)`` rounded to the candidate set, with the largest k (bisection)
    whose cost fits the budget. Returns (sizes, k)."""
    cands = [s for s in space.candidate_sizes if s > 0]

    def sizes(k: float) -> tuple[int, ...]:
        return tuple(_nearest_candidate(math.ceil(k * v**power), cands) for v in space.vocab_sizes)

    def cost(k: float) -> int:
        return sum(v * s for v, s in zip(space.vocab_sizes, sizes(k), strict=True))

    lo, hi = 0.0, 1.0
    while cost(hi) <= budget and hi < 1e6:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cost(mid) <= budget else (lo, mid)
    if cost(lo) > budget:
        raise ConfigError(f"the card^{power} rule fits no budget of {budget:,} params")
    return sizes(lo), lo


def saliency_sizes(
    model: Any,
    data: Path,
    space: SearchSpace,
    budget: int,
    rows: int = 20_000,
    batch_size: int = 4096,
) -> tuple[tuple[int, ...], list[list[float]]]:
    """SSEDS-style single-shot pruning of a trained uniform model to the budget.

    Each embedding dimension j of field f is scored once by the first-order effect of masking it,
    ``|Σ_rows ∂L/∂e_fj · e_fj|`` = ``|Σ_v T_f[v, j] · ∂L/∂T_f[v, j]|`` over ``rows``
    validation rows.
    Dimensions are kept greedily by saliency per parameter (a dimension of field f costs V_f)
    until the budget is spent; each field's count of kept dimensions is rounded down to a
    candidate size (at least the smallest), and the result is repaired to the budget.

    Returns the sizes and the per-field saliencies (sorted, largest first).
    """
    from adass_ray.train.task import FixedTask

    fm = FeatureMap.load(data)
    task = FixedTask(model)
    emb = model.embeddings
    model.eval()
    model.zero_grad(set_to_none=True)
    loader = ShardLoader(
        data, fm, split="valid", batch_size=batch_size, shuffle=False, max_rows=rows
    )
    for batch in loader:
        loss, _ = task.train_step(
            batch, generator=torch.Generator().manual_seed(0), reduce=lambda t: t
        )
        (loss * len(batch)).backward()
    scores: list[list[float]] = []
    for f in range(fm.num_fields):
        table = emb.field_params(f)[0]
        key, _, row = emb._where[f]
        grad = emb.tables[key].grad
        if grad is None:
            scores.append([0.0] * table.shape[1])
            continue
        if grad.is_sparse:
            grad = grad.to_dense()
        g = grad[row : row + table.shape[0]]
        scores.append((table.detach() * g).sum(0).abs().tolist())
    model.zero_grad(set_to_none=True)
    items = sorted(
        ((s / space.vocab_sizes[f], f, j) for f, sc in enumerate(scores) for j, s in enumerate(sc)),
        reverse=True,
    )
    kept, spent = [0] * space.num_fields, 0
    for _, f, _ in items:
        if spent + space.vocab_sizes[f] <= budget:
            kept[f] += 1
            spent += space.vocab_sizes[f]
    cands = [s for s in space.candidate_sizes if s > 0]
    sizes = tuple(max([c for c in cands if c <= k] or [cands[0]]) for k in kept)
    arch = repair(space, space.arch_of(sizes), budget)
    return space.sizes(arch), [sorted(s, reverse=True) for s in scores]


def panel(space: SearchSpace, n: int, seed: int) -> list[Arch]:
    """A fixed panel of ``n`` architectures for ranking consistency: every uniform architecture
    plus seeded random ones (distinct), spanning small to large costs."""
    archs: dict[Arch, None] = dict.fromkeys(space.uniform_archs())
    rng = np.random.default_rng([seed, 17])
    while len(archs) < n:
        archs.setdefault(space.random_arch(rng), None)
    return list(archs)


def supernet_qualities(net: Supernet, batch: Any, archs: Sequence[Arch]) -> list[float]:
    """Q(α) of each architecture on the frozen supernet (validation subsample)."""
    return CachedEvaluator(net, batch).evaluate(list(archs))
