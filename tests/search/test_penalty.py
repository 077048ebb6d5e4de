"""The v2 objective: LOO baseline, standardised advantages, exact expected cost, loss terms."""

from __future__ import annotations

import pytest
import torch

from adass_ray.errors import ConfigError
from adass_ray.search.penalty import (
    Objective,
    budget_term,
    expected_cost,
    loo_baseline,
    overage,
    reward_scale,
    standardised_advantages,
    tradeoff_reward,
)
from adass_ray.search.space import SearchSpace

SPACE = SearchSpace(("big", "mid", "small"), (1000, 100, 10), (0, 4, 8, 16, 32, 64),
                    allow_drop=True)


def test_overage() -> None:
    out = overage(torch.tensor([50, 100, 150, 300]), 100)
    assert out.dtype == torch.float64
    assert out.tolist() == [0.0, 0.0, 0.5, 2.0]
    with pytest.raises(ConfigError):
        overage(torch.tensor([1]), 0)


def test_loo_baseline_is_the_mean_of_the_others() -> None:
    r = torch.tensor([1.0, 2.0, 6.0])
    assert loo_baseline(r).tolist() == pytest.approx([4.0, 3.5, 1.5])
    # r_i - b_i = N/(N-1) (r_i - mean): centred, so the advantages sum to zero.
    adv = r.double() - loo_baseline(r)
    assert adv.tolist() == pytest.approx((1.5 * (r - r.mean())).tolist())
    with pytest.raises(ValueError):
        loo_baseline([1.0])
    with pytest.raises(ValueError):
        loo_baseline([1.0, float("nan")])


def test_standardised_advantages() -> None:
    g = torch.Generator().manual_seed(0)
    r = 0.7 + 0.002 * torch.randn(64, generator=g, dtype=torch.float64)
    adv = standardised_advantages(r, eps=1e-12)
    assert abs(float(adv.mean())) < 1e-9
    # Unit scale whatever the scale of Q: LOO inflates by N/(N-1).
    assert float(adv.std()) == pytest.approx(64 / 63, rel=1e-6)
    torch.testing.assert_close(standardised_advantages(1000 * r, eps=1e-12), adv)
    assert standardised_advantages(torch.full((4,), 0.7)).abs().max() == 0  # equal: no signal
    assert reward_scale([1.0, 3.0], eps=0.5) == pytest.approx(2 ** 0.5 + 0.5)
    torch.testing.assert_close(standardised_advantages([1.0, 3.0], scale=2.0),
                               torch.tensor([-1.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError):
        standardised_advantages([1.0, 2.0], scale=0.0)


def test_expected_cost_matches_enumeration_and_finite_differences() -> None:
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(3, 6, generator=g, dtype=torch.float64, requires_grad=True)
    probs = torch.softmax(theta, -1)
    ec = expected_cost(probs, SPACE)
    # Enumerate every architecture of the (factorised) policy.
    p = probs.detach()
    want = sum(float(p[0, a] * p[1, b] * p[2, c]) * SPACE.cost((a, b, c))
               for a in range(6) for b in range(6) for c in range(6))
    assert float(ec.detach()) == pytest.approx(want, rel=1e-10)
    ec.backward()
    assert theta.grad is not None
    h = 1e-6
    for f, k in [(0, 0), (0, 5), (1, 3), (2, 2)]:
        bump = torch.zeros_like(theta)
        bump[f, k] = h
        fd = (expected_cost(torch.softmax(theta.detach() + bump, -1), SPACE)
              - expected_cost(torch.softmax(theta.detach() - bump, -1), SPACE)) / (2 * h)
        assert float(theta.grad[f, k]) == pytest.approx(float(fd), rel=1e-5, abs=1e-6)
    # Resource competition: the big field's gradient dwarfs the small one's.
    assert theta.grad[0].abs().max() > 50 * theta.grad[2].abs().max()
    with pytest.raises(ValueError):
        expected_cost(torch.ones(2, 6), SPACE)


def test_budget_term_and_tradeoff_reward() -> None:
    x = torch.tensor([0.5, 1.0, 1.5], dtype=torch.float64)
    assert budget_term(x).tolist() == [0.5, 0.0, 0.5]  # two-sided: under-use is penalised too
    assert budget_term(x, "dual").tolist() == [-0.5, 0.0, 0.5]
    with pytest.raises(ConfigError):
        budget_term(x, "square")
    r = tradeoff_reward([0.8, 0.8], [50, 100], 100, lam=0.01)
    assert r.tolist() == pytest.approx([0.795, 0.79])
    with pytest.raises(ConfigError):
        tradeoff_reward([0.8], [1], 100, lam=-1.0)


def _loss_parts(obj: Objective, scale_q: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    theta = torch.zeros(3, 6, dtype=torch.float64, requires_grad=True)
    archs = torch.tensor([[1, 2, 3], [2, 2, 2], [5, 0, 1], [3, 3, 3]])
    logp = torch.log_softmax(theta, -1).gather(1, archs.t()).t().sum(1)
    quality = scale_q * torch.tensor([0.70, 0.71, 0.69, 0.72], dtype=torch.float64)
    loss, stats = obj.loss(space=SPACE, budget=20_000, quality=quality, logp=logp,
                           probs=torch.softmax(theta, -1), raw_logp=logp,
                           raw_costs=SPACE.costs(archs))
    assert stats["expected_cost_ratio"] > 0 and stats["sigma"] > 0
    loss.backward()
    assert theta.grad is not None
    return loss.detach(), theta.grad


def test_tradeoff_cost_term_is_on_q_scale() -> None:
    """Scaling Q by c scales sigma by c: the Q gradient is unchanged, and a lambda scaled by c
    gives the same loss gradient, so lambda is in Q units per unit of C/B."""
    _, g1 = _loss_parts(Objective(mode="tradeoff", lam=0.01, eps=1e-12))
    _, g10 = _loss_parts(Objective(mode="tradeoff", lam=0.1, eps=1e-12), scale_q=10.0)
    torch.testing.assert_close(g1, g10)
    _, g0 = _loss_parts(Objective(mode="tradeoff", lam=0.0, eps=1e-12))
    _, g_big = _loss_parts(Objective(mode="tradeoff", lam=1.0, eps=1e-12))
    # A larger lambda pushes the big field's expected size down harder.
    sizes = torch.tensor(SPACE.candidate_sizes, dtype=torch.float64)
    assert float((g_big[0] * sizes).sum()) > float((g0[0] * sizes).sum())


def test_budget_mode_and_ablation_losses() -> None:
    loss_abs, g_abs = _loss_parts(Objective(budget_weight=1.0))
    _, g_q = _loss_parts(Objective(budget_weight=0.0))
    assert not torch.allclose(g_abs, g_q)  # the budget term contributes
    _, g_ablation = _loss_parts(Objective(budget_weight=1.0, competition=False))
    assert not torch.allclose(g_ablation, g_abs)
    assert torch.isfinite(loss_abs)


@pytest.mark.parametrize("kw", [{"mode": "both"}, {"h": "sq"}, {"lam": -1.0}, {"eps": 0.0},
                                {"budget_weight": float("inf")}])
def test_bad_objective_is_a_one_line_config_error(kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as info:
        Objective(**kw)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
