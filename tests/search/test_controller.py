"""REINFORCE controllers: learning a planted architecture, per-field credit, entropy, resume."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from adass_ray.errors import ConfigError
from adass_ray.search.controller import (
    Controller,
    FactorizedController,
    LSTMController,
    build_controller,
)
from adass_ray.search.penalty import standardised_advantages

F, K = 6, 4
PLANTED = (3, 0, 2, 1, 3, 2)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The tensors here are tiny: a second intra-op thread only spins, and on a busy machine
    that spinning slows every op down many times."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def planted_reward(arch: tuple[int, ...]) -> float:
    """Fraction of fields that match the planted architecture."""
    return sum(a == p for a, p in zip(arch, PLANTED, strict=True)) / F


def train(ctrl: Controller, iterations: int, n: int = 16) -> None:
    for _ in range(iterations):
        archs = ctrl.propose(n)
        rewards = torch.tensor([planted_reward(a) for a in archs])
        ctrl.update(archs, standardised_advantages(rewards))


def test_factorized_learns_planted_architecture() -> None:
    ctrl = FactorizedController(F, K, lr=0.05, seed=1)
    assert isinstance(ctrl, Controller)
    assert ctrl.entropy() == pytest.approx(F * math.log(K))
    train(ctrl, 200)
    assert ctrl.argmax() == PLANTED
    assert ctrl.probs().shape == (F, K)
    assert float(ctrl.probs()[torch.arange(F), torch.tensor(PLANTED)].min()) > 0.8


def test_lstm_learns_planted_architecture() -> None:
    ctrl = build_controller("lstm", num_fields=F, num_candidates=K, seed=2)
    assert isinstance(ctrl, LSTMController) and isinstance(ctrl, Controller)
    assert ctrl.entropy() == pytest.approx(F * math.log(K))  # zero head: uniform at start
    train(ctrl, 150)
    assert ctrl.argmax() == PLANTED
    assert float(ctrl.probs().max(1).values.min()) > 0.6


def test_per_field_advantage_moves_only_that_field() -> None:
    ctrl = FactorizedController(F, K, entropy_weight=0.0)
    before = ctrl.probs()
    archs = [(1,) * F] * 4
    adv = torch.zeros(4, F)
    adv[:, 0] = -1.0
    ctrl.update(archs, adv)
    after = ctrl.probs()
    assert after[0, 1] < before[0, 1]  # field 0 moves away from choice 1
    assert torch.equal(after[1:], before[1:])  # the other fields do not move at all
    # A [N] advantage is shared by every field.
    ctrl.update(archs, torch.full((4,), -1.0))
    assert bool((ctrl.probs()[:, 1] < before[:, 1]).all())


def test_entropy_bonus_keeps_policy_from_collapsing() -> None:
    peaked = torch.zeros(F, K)
    peaked[:, 0] = 3.0
    flat = FactorizedController(F, K, entropy_weight=0.05, init_logits=peaked)
    frozen = FactorizedController(F, K, entropy_weight=0.0, init_logits=peaked)
    start = flat.entropy()
    for ctrl in (flat, frozen):
        for _ in range(100):  # flat rewards: the advantages are exactly zero
            archs = ctrl.propose(8)
            ctrl.update(archs, standardised_advantages(torch.ones(8)))
    assert frozen.entropy() == pytest.approx(start)
    assert flat.entropy() > start + 0.5 * (F * math.log(K) - start)
    # Noisy rewards unrelated to the architecture: the bonus keeps every choice alive.
    noisy = FactorizedController(F, K, entropy_weight=0.05, seed=3)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        archs = noisy.propose(8)
        rewards = torch.rand(8, generator=g)
        noisy.update(archs, 0.2 * standardised_advantages(rewards))
    assert float(noisy.probs().min()) > 0.1


@pytest.mark.parametrize("name", ["factorized", "lstm"])
def test_state_dict_round_trip_gives_identical_proposals(name: str) -> None:
    a = build_controller(name, num_fields=F, num_candidates=K, seed=5)
    train(a, 5)
    state = a.state_dict()
    b = build_controller(name, num_fields=F, num_candidates=K, seed=99)
    b.load_state_dict(state)
    assert b.propose(10) == a.propose(10)
    archs = a.propose(6)
    assert b.propose(6) == archs
    adv = torch.randn(6, F, generator=torch.Generator().manual_seed(0))
    a.update(archs, adv)
    b.update(archs, adv)  # optimizer moments were restored too
    assert torch.allclose(a.probs(), b.probs())
    assert b.propose(10) == a.propose(10)


@pytest.mark.parametrize("name", ["factorized", "lstm"])
def test_saved_state_is_a_snapshot(name: str) -> None:
    a = build_controller(name, num_fields=F, num_candidates=K, seed=5)
    train(a, 3)
    state = a.state_dict()
    first = build_controller(name, num_fields=F, num_candidates=K)
    first.load_state_dict(state)
    first.update(first.propose(4), torch.ones(4))
    expected = first.propose(10)
    train(a, 3)  # later steps of either controller must not change `state`
    second = build_controller(name, num_fields=F, num_candidates=K)
    second.load_state_dict(state)
    second.update(second.propose(4), torch.ones(4))
    assert second.propose(10) == expected


def test_learning_rate_ramp_and_beta1_zero() -> None:
    ctrl = FactorizedController(2, 3, lr=0.3, lr_ramp=3, entropy_weight=0.0)
    assert ctrl.optimizer.defaults["betas"] == (0.0, 0.999)
    seen = []
    for _ in range(5):
        seen.append(ctrl.current_lr())
        ctrl.update([(0, 0), (1, 1)], torch.tensor([1.0, -1.0]))
    assert seen == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3])
    assert ctrl.optimizer.param_groups[0]["lr"] == pytest.approx(0.3)
    state = ctrl.state_dict()
    assert state["updates"] == 5
    other = FactorizedController(2, 3, lr=0.3, lr_ramp=3)
    other.load_state_dict(state)
    assert other.current_lr() == pytest.approx(0.3)


def test_penalty_of_the_marginals_is_differentiable() -> None:
    """A penalty that rewards mass on candidate 0 moves every field there, with zero advantages."""
    for name in ("factorized", "lstm"):
        ctrl = build_controller(name, num_fields=F, num_candidates=K, lr=0.1, entropy_weight=0.0)
        marg = ctrl.marginals()
        assert marg.requires_grad and torch.allclose(marg.sum(1), torch.ones(F))
        before = ctrl.probs()[:, 0].clone()
        for _ in range(5):
            ctrl.update([(1,) * F, (2,) * F], torch.zeros(2), penalty=lambda p: -p[:, 0].sum())
        assert bool((ctrl.probs()[:, 0] > before).all()), name


def test_policy_terms_are_the_log_probs_of_the_given_archs() -> None:
    theta = torch.randn(F, K, generator=torch.Generator().manual_seed(3))
    ctrl = FactorizedController(F, K, init_logits=theta)
    archs = [PLANTED, (0,) * F]
    logp, entropy = ctrl.policy_terms(archs)
    want = torch.log_softmax(theta, -1)
    for row, arch in enumerate(archs):
        torch.testing.assert_close(logp[row], want[torch.arange(F), torch.tensor(arch)])
    assert float(entropy.detach()) == pytest.approx(ctrl.entropy(), rel=1e-5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: build_controller("ppo", num_fields=2, num_candidates=2), "unknown controller"),
        (lambda: build_controller("factorized", num_fields=2), "num_candidates"),
        (lambda: build_controller("lstm", num_fields=2, num_candidates=2, tau=1), "tau"),
        (lambda: FactorizedController(0, 3), "num_fields"),
        (lambda: FactorizedController(2, 3, lr=0.0), "lr"),
        (lambda: FactorizedController(2, 3, entropy_weight=-1.0), "entropy_weight"),
        (lambda: FactorizedController(2, 3, init_logits=torch.zeros(3, 2)), "init_logits"),
        (lambda: LSTMController(2, 3, hidden=0), "hidden"),
        (lambda: FactorizedController(2, 3, betas=(1.0, 0.9)), "betas"),
        (lambda: FactorizedController(2, 3, lr_ramp=-1), "lr_ramp"),
        (lambda: FactorizedController(2, 3).update([(0, 3)], [1.0]), "architectures"),
        (lambda: FactorizedController(2, 3).update([(0, 1)], [[1.0]]), "advantages"),
        (lambda: FactorizedController(2, 3).update([], []), "architectures"),
        (lambda: FactorizedController(2, 3).propose(0), "propose"),
        (lambda: FactorizedController(2, 3).load_state_dict(
            LSTMController(2, 3).state_dict()), "controller state"),
    ],
)
def test_bad_input_is_a_one_line_config_error(call: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        call()  # type: ignore[operator]
    assert "\n" not in str(info.value)
