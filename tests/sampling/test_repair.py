"""Tests for the budget region: cost, the vectorised shrink repair, growth into [low·B, B]."""

from __future__ import annotations

import torch

from adass_ray.sampling.base import (
    PathSpace,
    budget_region,
    grow_towards,
    path_cost,
    shrink_to_budget,
)
from tests.sampling.helpers import gen

SIZES = (0, 1, 2, 4, 8, 16)
VOCAB = (1000, 50, 3, 20_000, 7, 400, 1000, 2500)


def reference_shrink(arch: list[int], budget: float) -> list[int]:
    """The spec, one step at a time: shrink the largest V_f·size_f until C ≤ B."""
    arch = list(arch)

    def cost() -> float:
        return sum(v * SIZES[a] for v, a in zip(VOCAB, arch, strict=True))

    while cost() > budget and any(a > 0 for a in arch):
        use = [VOCAB[f] * SIZES[a] if a > 0 else -1 for f, a in enumerate(arch)]
        arch[use.index(max(use))] -= 1  # first of equal consumers, like a stable sort
    return arch


def tensors() -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(SIZES, dtype=torch.float64), torch.tensor(VOCAB, dtype=torch.float64))


def test_shrink_matches_one_step_at_a_time_reference() -> None:
    sizes, vocab = tensors()
    g = gen(3)
    arch = torch.randint(len(SIZES), (300, len(VOCAB)), generator=g)
    uniform = 16 * sum(VOCAB)
    budget = torch.rand(300, generator=g, dtype=torch.float64) * 0.9 * uniform
    budget[:5] = 0.0  # everything dropped
    budget[5:10] = 1e12  # nothing to do
    got = shrink_to_budget(arch, budget, sizes, vocab)
    want = [reference_shrink(a, float(b)) for a, b in zip(arch.tolist(), budget, strict=True)]
    assert got.tolist() == want
    assert (path_cost(got, sizes, vocab) <= budget).all()
    assert (got[:5] == 0).all() and torch.equal(got[5:10], arch[5:10])


def test_shrink_ties_and_sizes_without_drop() -> None:
    sizes = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    vocab = torch.tensor([10.0, 10.0], dtype=torch.float64)
    arch = torch.tensor([[2, 2]])
    # cost 80, budget 60: one step of 20 from the first of two equal consumers.
    assert shrink_to_budget(arch, torch.tensor([60.0]), sizes, vocab).tolist() == [[1, 2]]
    # Even all-smallest (20) is over a budget of 5: the row ends all-smallest.
    assert shrink_to_budget(arch, torch.tensor([5.0]), sizes, vocab).tolist() == [[0, 0]]


def test_grow_stays_within_budget_and_reaches_target() -> None:
    sizes, vocab = tensors()
    arch = torch.zeros(200, len(VOCAB), dtype=torch.long)
    uniform = 16 * sum(VOCAB)
    budget = torch.full((200,), 0.5 * uniform, dtype=torch.float64)
    target = 0.7 * budget
    target[:10] = -torch.inf  # rows at their target are left alone
    grown = grow_towards(arch, target, budget, sizes, vocab, gen(1))
    cost = path_cost(grown, sizes, vocab)
    assert (grown >= arch).all() and (grown[:10] == 0).all()
    assert (cost <= budget).all()
    assert (cost[10:] >= target[10:]).double().mean() > 0.8


def test_budget_region_rows_in_their_budget() -> None:
    space = PathSpace(None, None, candidate_sizes=SIZES, vocab_sizes=VOCAB, d_base=16)
    ratios = torch.tensor([0.25, 0.5, 0.8], dtype=torch.float64)
    arch, budget = budget_region(4000, space, ratios, 0.7, gen(5))
    cost = space.cost(arch)
    assert arch.shape == (4000, len(VOCAB)) and arch.dtype == torch.long
    assert (cost <= budget).all() and (cost >= 0).all()
    assert (cost >= 0.7 * budget).double().mean() > 0.9
    ratio = budget / space.uniform_cost
    for r in (0.25, 0.5, 0.8):  # every budget is drawn
        assert ((ratio - r).abs() < 1e-12).double().mean() > 0.25
    # Deterministic given the generator.
    again, _ = budget_region(4000, space, ratios, 0.7, gen(5))
    assert torch.equal(arch, again)


def test_budget_region_without_drop_sizes() -> None:
    sizes = (1, 2, 4, 8, 16)
    space = PathSpace(None, None, candidate_sizes=sizes, vocab_sizes=VOCAB, d_base=16)
    arch, budget = budget_region(2000, space, torch.tensor([0.25], dtype=torch.float64), 0.7,
                                 gen(2))
    cost = space.cost(arch)
    assert (cost <= budget).all() and (cost >= 0.7 * budget).double().mean() > 0.9
