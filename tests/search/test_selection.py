"""Selection: the policy's constrained argmax, top-k by Q_A, re-ranking by Q_B under the budget."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adass_ray.errors import ConfigError
from adass_ray.search.selection import (
    constrained_argmax,
    occam_lam,
    rerank,
    rerank_front,
    top_k,
)
from adass_ray.search.space import SearchSpace, repair

SPACE = SearchSpace(("user", "item", "zip"), (900, 1700, 800), (0, 2, 4, 8, 16), allow_drop=True)


def all_archs(space: SearchSpace) -> list[tuple[int, ...]]:
    return list(itertools.product(range(space.num_candidates), repeat=space.num_fields))


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**31), st.floats(0.05, 1.2), st.floats(0.1, 5.0))
def test_constrained_argmax_is_exact(seed: int, ratio: float, temp: float) -> None:
    g = torch.Generator().manual_seed(seed)
    log_p = torch.log_softmax(temp * torch.randn(3, 5, generator=g, dtype=torch.float64), -1)
    budget = max(SPACE.min_cost(), int(ratio * SPACE.uniform_cost(16)))
    got = constrained_argmax(SPACE, log_p, budget)
    feasible = [a for a in all_archs(SPACE) if SPACE.cost(a) <= budget]
    want = min(feasible, key=lambda a: (-float(sum(log_p[f, k] for f, k in enumerate(a))),
                                        SPACE.cost(a), a))
    assert got == want and SPACE.cost(got) <= budget


def test_constrained_argmax_handles_zero_probabilities_and_bad_input() -> None:
    log_p = torch.log(torch.tensor([[0, 0, 0, 0, 1.0]] * 3))  # only size 16, over budget
    arch = constrained_argmax(SPACE, log_p, SPACE.uniform_cost(8))
    assert SPACE.cost(arch) <= SPACE.uniform_cost(8)
    with pytest.raises(ConfigError):
        constrained_argmax(SPACE, log_p, SPACE.min_cost() - 1 if SPACE.min_cost() else -1)
    with pytest.raises(ValueError):
        constrained_argmax(SPACE, torch.zeros(2, 5), 10_000)


def test_top_k_skips_infeasible_and_unscored_and_breaks_ties() -> None:
    budget = SPACE.uniform_cost(8)
    hist = [((4, 4, 4), 0.9), ((3, 3, 3), 0.8), ((3, 3, 2), 0.8), ((1, 1, 1), float("nan")),
            ((2, 2, 2), None), ((3, 3, 3), 0.7), ((2, 2, 2), 0.6)]
    assert top_k(SPACE, hist, budget, 5) == [(3, 3, 2), (3, 3, 3), (2, 2, 2)]
    # With lambda the cheaper one moves up.
    assert top_k(SPACE, [((3, 3, 3), 0.80), ((2, 2, 2), 0.79)], budget, 1, lam=0.05) == [(2, 2, 2)]


def test_rerank_picks_by_q_b_not_q_a() -> None:
    budget = SPACE.uniform_cost(8)
    hist = [((3, 3, 3), 0.90), ((3, 2, 3), 0.85), ((2, 2, 2), 0.80)]
    q_b = {(3, 3, 3): 0.70, (3, 2, 3): 0.75, (2, 2, 2): 0.72, (3, 3, 1): 0.74}
    calls: list[list[tuple[int, ...]]] = []

    def score_b(archs: list[tuple[int, ...]]) -> list[float]:
        calls.append(list(archs))
        return [q_b.get(a, 0.5) for a in archs]

    sel = rerank(SPACE, budget, hist, score_b, top_k=2, extra=[(3, 3, 1), (4, 4, 4)])
    assert sel.arch == (3, 2, 3) and sel.quality == 0.85 and sel.quality_b == 0.75
    assert len(calls) == 1 and (2, 2, 2) not in calls[0]  # only the top 2 by Q_A
    assert repair(SPACE, (4, 4, 4), budget) in sel.candidates  # extra is repaired
    # Trade-off: lambda on the scale of Q differences moves the choice to a cheaper candidate.
    cheap = rerank(SPACE, budget, hist, score_b, top_k=3, lam=0.2)
    assert cheap.arch == (2, 2, 2) and cheap.lam == 0.2


def test_rerank_falls_back_to_a_repair_and_rejects_empty() -> None:
    budget = SPACE.uniform_cost(4)
    sel = rerank(SPACE, budget, [((4, 4, 4), 0.9)], lambda a: [0.5] * len(a), top_k=3)
    assert sel.repaired and sel.repaired_from == (4, 4, 4) and sel.cost <= budget
    assert sel.quality is None and sel.quality_b == 0.5
    with pytest.raises(ConfigError, match="no candidates"):
        rerank(SPACE, budget, [], lambda a: [0.5] * len(a))
    with pytest.raises(ConfigError):
        rerank(SPACE, budget, [((0, 0, 0), 0.5)], lambda a: [0.5] * len(a), top_k=-1)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[SearchSpace, int, list, list, float]:
    n = draw(st.integers(1, 5))
    vocab = tuple(draw(st.lists(st.integers(1, 10**6), min_size=n, max_size=n)))
    sizes = sorted(draw(st.sets(st.integers(1, 64), min_size=1, max_size=5)))
    drop = draw(st.booleans())
    sp = SearchSpace(tuple(f"f{i}" for i in range(n)), vocab, tuple([0] * drop + sizes), drop)
    budget = draw(st.integers(max(sp.min_cost(), 1), sp.max_cost() + 10))
    arch = st.lists(st.integers(0, sp.num_candidates - 1), min_size=n, max_size=n).map(tuple)
    quality = st.floats(0, 1) | st.just(float("nan"))
    hist = draw(st.lists(st.tuples(arch, quality), min_size=1, max_size=15))
    extra = draw(st.lists(arch, max_size=3))
    return sp, budget, hist, extra, draw(st.sampled_from([0.0, 0.01, 0.1]))


@settings(max_examples=150, deadline=None)
@given(_cases(), st.integers(0, 2**31))
def test_property_rerank_never_exceeds_budget(case: tuple, seed: int) -> None:
    sp, budget, hist, extra, lam = case
    g = torch.Generator().manual_seed(seed)

    def score_b(archs: list[tuple[int, ...]]) -> list[float]:
        return torch.rand(len(archs), generator=g, dtype=torch.float64).tolist()

    sel = rerank(sp, budget, hist, score_b, top_k=4, extra=extra, lam=lam)
    assert sel.cost == sp.cost(sel.arch) <= budget
    assert all(sp.cost(a) <= budget for a in sel.candidates)
    assert sel.arch in sel.candidates
    scored = {a: q for a, q in hist if not math.isnan(q) and sp.cost(a) <= budget}
    if not scored and not extra:
        assert len(sel.candidates) == 1
    log_p = torch.log_softmax(torch.randn(sp.num_fields, sp.num_candidates, generator=g), -1)
    assert sp.cost(constrained_argmax(sp, log_p, budget)) <= budget


@settings(max_examples=100, deadline=None)
@given(_cases(), st.integers(0, 2**31))
def test_property_front_cost_never_rises_with_lambda(case: tuple, seed: int) -> None:
    sp, budget, hist, extra, _ = case
    g = torch.Generator().manual_seed(seed)
    calls: list[int] = []

    def score_b(archs: list[tuple[int, ...]]) -> list[float]:
        calls.append(len(archs))
        return (0.7 + 0.01 * torch.rand(len(archs), generator=g, dtype=torch.float64)).tolist()

    lams = [0.05, 0.0, 0.002, 0.01, 0.02, 0.005]
    front = rerank_front(sp, budget, hist, score_b, lams, top_k=3, extra=extra)
    by_lam = sorted(zip(lams, front, strict=True), key=lambda t: t[0])
    costs = [sel.cost for _, sel in by_lam]
    assert costs == sorted(costs, reverse=True)  # monotone by construction
    assert all(sel.cost <= budget and sel.lam == lam for lam, sel in zip(lams, front, strict=True))
    assert len(calls) == 1  # one scoring pass for the whole grid


def test_front_pool_holds_the_best_below_each_uniform_cost() -> None:
    # (1, 1, 0) is no λ's top-1 here, but it is the best history entry no costlier than
    # uniform-2, where a front has to match the hand-picked size: the pool scores it
    budget = SPACE.uniform_cost(8) + 10
    hist = [((3, 3, 3), 0.80), ((1, 1, 0), 0.60), ((0, 0, 0), 0.50)]
    assert SPACE.cost((1, 1, 0)) <= SPACE.uniform_cost(2) < SPACE.cost((3, 3, 3))
    assert top_k(SPACE, hist, budget, 1) == [(3, 3, 3)]  # λ = 0's own list leaves it out
    front = rerank_front(SPACE, budget, hist, lambda a: [0.7 + 0.1 * (x == (3, 3, 3)) for x in a],
                         [0.0], top_k=1)
    assert (1, 1, 0) in front[0].candidates and front[0].arch == (3, 3, 3)


def test_front_rejects_an_empty_grid() -> None:
    with pytest.raises(ConfigError, match="lams"):
        rerank_front(SPACE, 10_000, [((0, 0, 0), 0.5)], lambda a: [0.5] * len(a), [])


class _Scorer:
    """A PairedScorer over fixed per-row logits (one vector per architecture)."""

    def __init__(self, labels: torch.Tensor, logits: dict[tuple[int, ...], torch.Tensor]) -> None:
        self.labels = labels.numpy()
        self._logits = logits

    def __call__(self, archs):
        from adass_ray.metrics import auc

        return [auc(self.labels, self._logits[tuple(a)].numpy()) for a in archs]

    def logits(self, archs):
        return torch.stack([self._logits[tuple(a)] for a in archs])


def _scorer(noise_small: float, shift_small: float) -> _Scorer:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (4000,), generator=g)
    signal = y.double() + torch.randn(4000, generator=g, dtype=torch.float64)
    return _Scorer(y, {
        (3, 3, 3): signal + 0.3 * torch.randn(4000, generator=g, dtype=torch.float64),
        (2, 2, 2): signal + shift_small * y + noise_small * torch.randn(
            4000, generator=g, dtype=torch.float64),
    })


def test_rerank_noise_band_prefers_the_budget_only_inside_the_noise() -> None:
    budget = SPACE.uniform_cost(8)
    hist = [((3, 3, 3), 0.80), ((2, 2, 2), 0.80)]
    # The cheaper architecture leads on Q_B by a hair: inside the noise, the one that uses the
    # budget is taken; with the band off, the point estimate decides.
    tied = _scorer(noise_small=0.2, shift_small=0.0)
    q = tied(((3, 3, 3), (2, 2, 2)))
    assert q[1] > q[0] and q[1] - q[0] < 0.01
    picked = rerank(SPACE, budget, hist, tied, top_k=2, tie_se=1.0)
    assert picked.arch == (3, 3, 3) and picked.ties == 2
    assert rerank(SPACE, budget, hist, tied, top_k=2, tie_se=0.0).arch == (2, 2, 2)
    assert rerank(SPACE, budget, hist, tied.__call__, top_k=2, tie_se=1.0).arch == (2, 2, 2)
    # A lead far outside the noise stands.
    clear = _scorer(noise_small=0.0, shift_small=1.0)
    picked = rerank(SPACE, budget, hist, clear, top_k=2, tie_se=1.0)
    assert picked.arch == (2, 2, 2) and picked.ties == 1
    # The trade-off mode (λ > 0) prices cost itself: no band.
    assert rerank(SPACE, budget, hist, tied, top_k=2, tie_se=1.0, lam=0.01).arch == (2, 2, 2)


def test_rerank_always_weighs_the_largest_uniform_architecture_that_fits() -> None:
    budget = SPACE.uniform_cost(8) + 10  # uniform 8 (index 3) fits, uniform 16 does not
    hist = [((4, 1, 1), 0.80), ((2, 2, 2), 0.79)]
    q_b = {(4, 1, 1): 0.70, (2, 2, 2): 0.71, (3, 3, 3): 0.75}
    seen: list[tuple[int, ...]] = []

    def score(archs):
        seen.extend(archs)
        return [q_b[a] for a in archs]

    picked = rerank(SPACE, budget, hist, score, top_k=2)
    assert (3, 3, 3) in seen and picked.arch == (3, 3, 3)
    q_b[(0, 0, 0)] = 0.5  # the cheapest architecture (every field dropped) joins a λ > 0 pool
    front = rerank_front(SPACE, budget, hist, score, [0.0, 1.0], top_k=2)
    assert front[0].arch == (3, 3, 3) and front[1].cost <= front[0].cost
    assert (0, 0, 0) in seen
    # at a λ where no field's first step pays, the cheapest architecture wins though no search
    # proposed it: the front reaches the cheap end of the space
    assert rerank_front(SPACE, budget, hist, score, [1e3], top_k=2)[0].arch == (0, 0, 0)
    seen.clear()
    rerank_front(SPACE, budget, hist, score, [0.0], top_k=2)
    assert (0, 0, 0) not in seen  # λ = 0 alone: the budget-mode pool, unchanged
    # Nothing to compare with: no uniform stand-in for a search that never ran.
    with pytest.raises(ConfigError):
        rerank(SPACE, budget, [], score, top_k=2)


def test_occam_prior_prices_capacity_by_the_uniform_steps() -> None:
    space = SearchSpace(("a", "b"), (100, 100), (1, 2, 4, 8))
    budget = space.uniform_cost(8)  # 1,600: C/B of the uniform sizes 1/8, 1/4, 1/2, 1
    uniform = {(0, 0): 0.70, (1, 1): 0.74, (2, 2): 0.76, (3, 3): 0.77}
    q_b = {**uniform, (3, 0): 0.775, (2, 0): 0.774}

    def score(archs):
        return [q_b[a] for a in archs]

    # rates: 0.04 / 0.125 = 0.32, 0.02 / 0.25 = 0.08, 0.01 / 0.5 = 0.02 -> λ_o = 0.5 × 0.02
    assert occam_lam(space, budget, score, 0.5) == pytest.approx(0.01)
    assert occam_lam(space, budget, score, 0.0) == 0.0
    assert occam_lam(space, space.uniform_cost(1), score, 0.5) == 0.0  # one size fits: no step
    hist = [((3, 0), 0.80), ((2, 0), 0.79)]
    # without the prior the best Q_B wins (0.775 at C/B 0.5625); with it the cheaper one
    # (0.774 at C/B 0.3125: 0.001 less Q_B for 0.25 less C/B, a rate below λ_o = 0.01)
    assert rerank(space, budget, hist, score, top_k=2).arch == (3, 0)
    assert rerank(space, budget, hist, score, top_k=2, occam=0.5).arch == (2, 0)
    # the uniform candidate stays in the running (uniform-8, 0.77 at C/B 1, loses to both)
    assert rerank(space, budget, hist, score, top_k=2, occam=0.5).candidates[-1] == (3, 3)
    with pytest.raises(ConfigError, match="occam"):
        rerank(space, budget, hist, score, occam=-1.0)
