"""The resource competition penalty: overage, shares, reward and per-field advantages."""

from __future__ import annotations

import pytest
import torch

from adass_ray.errors import ConfigError
from adass_ray.search.penalty import field_advantages, overage, reward, shares
from adass_ray.search.space import SearchSpace

SPACE = SearchSpace(("big", "mid", "small"), (1000, 100, 10), (0, 4, 8, 16, 32, 64), allow_drop=True)


def _archs(*rows: tuple[int, ...]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


def test_overage() -> None:
    out = overage(torch.tensor([50, 100, 150, 300]), 100)
    assert out.dtype == torch.float64
    assert out.tolist() == [0.0, 0.0, 0.5, 2.0]
    with pytest.raises(ConfigError):
        overage(torch.tensor([1]), 0)


def test_shares_sum_to_one_and_zero_when_all_dropped() -> None:
    archs = _archs((5, 5, 5), (1, 3, 2), (0, 0, 3), (0, 0, 0))
    sh = shares(SPACE, archs)
    assert sh.shape == (4, 3) and sh.dtype == torch.float64
    torch.testing.assert_close(sh[:3].sum(dim=1), torch.ones(3, dtype=torch.float64))
    assert sh[3].tolist() == [0.0, 0.0, 0.0]
    assert sh[2].tolist() == [0.0, 0.0, 1.0]
    # share_f = V_f·α_f / C
    assert sh[1, 0].item() == pytest.approx(1000 * 4 / (1000 * 4 + 100 * 16 + 10 * 8))


def test_reward() -> None:
    q = torch.tensor([0.8, 0.8, 0.8], dtype=torch.float32)
    costs = torch.tensor([50, 100, 200])
    r = reward(q, costs, 100, lam=0.1)
    assert r.dtype == torch.float32
    torch.testing.assert_close(r, torch.tensor([0.8, 0.8, 0.7]))
    r_mu = reward(q, costs, 100, lam=0.1, mu=0.01, c_max=200)
    torch.testing.assert_close(r_mu, torch.tensor([0.8 - 0.0025, 0.8 - 0.005, 0.7 - 0.01]))
    with pytest.raises(ConfigError, match="c_max"):
        reward(q, costs, 100, lam=0.1, mu=0.01)
    with pytest.raises(ConfigError):
        reward(q, costs, 100, lam=-1.0)


def test_over_budget_biggest_consumer_gets_most_negative_advantage() -> None:
    archs = _archs((5, 5, 5), (5, 1, 1))  # both over a tight budget
    q = torch.tensor([0.75, 0.70])
    budget = 10_000
    adv = field_advantages(q, 0.7, archs, SPACE, budget, lam=1.0)
    assert adv.shape == (2, 3)
    for row in range(2):
        # The field holding the most parameters pays the most; all pay something.
        assert adv[row].argmin().item() == 0
        assert (adv[row] < (q[row] - 0.7)).all()
    # Ordering of advantages follows ordering of shares.
    sh = shares(SPACE, archs)
    for row in range(2):
        assert torch.equal(torch.argsort(adv[row]), torch.argsort(-sh[row].float()))


def test_under_budget_advantage_is_quality_minus_baseline() -> None:
    archs = _archs((1, 2, 3), (2, 2, 2))
    q = torch.tensor([0.71, 0.69], dtype=torch.float64)
    adv = field_advantages(q, 0.7, archs, SPACE, SPACE.max_cost(), lam=5.0)
    expected = (q - 0.7)[:, None].expand(2, 3)
    torch.testing.assert_close(adv, expected)


@pytest.mark.parametrize("mu", [0.0, 0.05])
def test_competition_off_gives_equal_advantages_and_same_total(mu: float) -> None:
    archs = _archs((5, 5, 5), (5, 1, 1), (1, 1, 1), (0, 0, 0))
    q = torch.tensor([0.75, 0.70, 0.65, 0.5], dtype=torch.float64)
    budget, c_max = 10_000, SPACE.max_cost()
    off = field_advantages(q, 0.7, archs, SPACE, budget, lam=1.0, mu=mu, competition=False)
    r = reward(q, SPACE.costs(archs), budget, lam=1.0, mu=mu, c_max=c_max)
    torch.testing.assert_close(off, (r - 0.7)[:, None].expand(4, 3))
    on = field_advantages(q, 0.7, archs, SPACE, budget, lam=1.0, mu=mu)
    # Competition only redistributes the penalty: Σ_f A_f = F·(R − b) in both modes.
    torch.testing.assert_close(on.sum(dim=1), off.sum(dim=1))


def test_soft_cost_term_is_split_by_share() -> None:
    archs = _archs((3, 1, 1))
    q = torch.tensor([0.8], dtype=torch.float64)
    adv = field_advantages(q, 0.0, archs, SPACE, SPACE.max_cost(), lam=0.0, mu=0.3)
    sh = shares(SPACE, archs)[0]
    c = SPACE.costs(archs).double()[0]
    expected = 0.8 - 3 * sh * 0.3 * c / SPACE.max_cost()
    torch.testing.assert_close(adv[0], expected)


def test_shape_mismatch_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        field_advantages(torch.tensor([0.5]), 0.0, _archs((1, 1, 1), (2, 2, 2)), SPACE, 100, lam=1.0)
