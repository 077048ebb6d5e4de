"""SearchAgent v2: repair before scoring, repaired archs credited, warm-up, modes, resume."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import replace

import pytest
import torch

from adass_ray.errors import ConfigError
from adass_ray.search.agent import MAX_CONTROLLERS, SearchAgent, SearchConfig, controller_seed
from adass_ray.search.selection import rerank
from adass_ray.search.space import Arch, SearchSpace, repair

SPACE = SearchSpace(("user", "item", "zip", "age", "sex"), (943, 1682, 795, 61, 2),
                    (0, 1, 2, 4, 8, 16), allow_drop=True)
BUDGET = int(0.5 * SPACE.uniform_cost(16))
WEIGHT = (0.03, 0.04, 0.004, 0.005, 0.003)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def oracle(archs: Sequence[Arch]) -> list[float]:
    """A saturating, noise-free quality: every field gains with size, big vocabularies slower."""
    out = []
    for a in archs:
        q = 0.7
        for f, k in enumerate(a):
            tau = max(0.3, math.log2(SPACE.vocab_sizes[f]) / 3)
            q += WEIGHT[f] * (1 - math.exp(-SPACE.candidate_sizes[k] / tau))
        out.append(q)
    return out


def config(**kw: object) -> SearchConfig:
    base = SearchConfig(controllers=1, iterations=30, archs_per_iter=16, lr=0.1, warmup_iters=2,
                        lr_ramp_iters=3)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_every_scored_arch_is_repaired_and_within_budget() -> None:
    agent = SearchAgent(space=SPACE, budget=BUDGET, evaluator=oracle, config=config(), index=0)
    records = [r for _ in range(4) for r in agent.step()]
    assert len(records) == 4 * 16
    assert sum(r["warmup"] for r in records) == 2 * 16
    assert not all(r["proposed_feasible"] for r in records)  # some raw proposals were over B
    for r in records:
        assert r["feasible"] and r["cost"] <= BUDGET and r["cost"] == SPACE.cost(r["arch"])
        assert tuple(r["arch"]) == repair(SPACE, r["proposed"], BUDGET)
        assert r["reward"] == r["quality"]  # budget mode: the reward is Q
        assert set(r) >= {"controller", "iteration", "arch", "quality", "cost", "reward"}


def test_the_repaired_architecture_is_credited(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[Arch]] = []
    agent = SearchAgent(space=SPACE, budget=BUDGET, evaluator=oracle,
                        config=config(warmup_iters=0), index=0)
    original = agent.controller.policy_terms

    def spy(archs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        seen.append([tuple(a) for a in archs])
        return original(archs)

    monkeypatch.setattr(agent.controller, "policy_terms", spy)
    records = agent.step()
    assert seen[0] == [tuple(r["arch"]) for r in records]  # the log-probs of the repaired ones
    assert any(r["proposed"] != r["arch"] for r in records)
    assert agent.controller.updates == 1


def test_evaluator_only_ever_sees_feasible_architectures() -> None:
    def strict(archs: Sequence[Arch]) -> list[float]:
        assert all(SPACE.cost(a) <= BUDGET for a in archs)
        return oracle(archs)

    agent = SearchAgent(space=SPACE, budget=BUDGET, evaluator=strict, config=config(), index=0)
    for _ in range(3):
        agent.step()


def test_budget_mode_fills_the_budget_and_learns() -> None:
    agent = SearchAgent(space=SPACE, budget=BUDGET, evaluator=oracle,
                        config=config(iterations=40), index=0)
    history = [(tuple(r["arch"]), r["quality"]) for _ in range(40) for r in agent.step()]
    s = agent.summary()
    assert s["expected_cost_ratio"] == pytest.approx(1.0, abs=0.15)  # two-sided: fills B
    assert s["entropy"] < 0.7 * SPACE.num_fields * math.log(SPACE.num_candidates)
    sel = rerank(SPACE, BUDGET, history, oracle, top_k=4, extra=agent.candidates())
    assert 0.9 * BUDGET <= sel.cost <= BUDGET
    assert SPACE.cost(agent.candidates()[0]) <= BUDGET


def test_tradeoff_lambda_lowers_the_selected_cost() -> None:
    costs = []
    for lam in (0.0, 0.01, 0.05):
        cfg = config(mode="tradeoff", lam=lam, iterations=25)
        agent = SearchAgent(space=SPACE, budget=BUDGET, evaluator=oracle, config=cfg, index=0)
        history = [(tuple(r["arch"]), r["quality"]) for _ in range(25) for r in agent.step()]
        sel = rerank(SPACE, BUDGET, history, oracle, top_k=4, extra=agent.candidates(), lam=lam)
        costs.append(sel.cost)
    assert costs[0] > costs[1] > costs[2]


def test_warmup_in_tradeoff_mode_does_not_update() -> None:
    agent = SearchAgent(space=SPACE, budget=BUDGET, evaluator=oracle,
                        config=config(mode="tradeoff", lam=0.01, warmup_iters=2), index=0)
    agent.step()
    assert agent.controller.updates == 0
    budget_agent = SearchAgent(space=SPACE, budget=BUDGET, evaluator=oracle,
                               config=config(warmup_iters=2), index=0)
    budget_agent.step()  # budget mode: the cost term trains during the warm-up
    assert budget_agent.controller.updates == 1


@pytest.mark.parametrize("kw", [{}, {"controller": "lstm"}, {"h": "dual"},
                                {"competition": False}, {"mode": "tradeoff", "lam": 0.01}])
def test_state_dict_round_trip_continues_identically(kw: dict[str, object]) -> None:
    cfg = config(**kw)
    a = SearchAgent(space=SPACE, budget=BUDGET, evaluator=oracle, config=cfg, index=1)
    a.step()  # in the warm-up: the warm-up generator is part of the state
    b = SearchAgent(space=SPACE, budget=BUDGET, evaluator=oracle, config=cfg, index=1)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        assert b.step() == a.step()
    assert b.summary() == a.summary()
    assert b.lam_b == a.lam_b


def test_config_errors_are_one_line() -> None:
    for kw in ({"mode": "pareto"}, {"h": "square"}, {"warmup_iters": -1}, {"adv_eps": 0.0},
               {"lam": -0.1}, {"archs_per_iter": 1}):
        with pytest.raises(ConfigError) as info:
            config(**kw)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="below the smallest"):
        tiny = SearchSpace(("a",), (10,), (4, 8))
        SearchAgent(space=tiny, budget=10, evaluator=oracle, config=config(), index=0)


def test_searches_with_adjacent_seeds_share_no_controller() -> None:
    # controller 1 of seed 0 and controller 0 of seed 1 used to be one and the same run, so two
    # harness seeds were not independent replicates of the search
    def first_proposals(seed: int, index: int) -> list[Arch]:
        agent = SearchAgent(space=SPACE, budget=BUDGET, evaluator=oracle,
                            config=config(seed=seed), index=index)
        return [tuple(r["arch"]) for r in agent.step()]

    assert first_proposals(0, 1) != first_proposals(1, 0)
    assert first_proposals(1, 0) == first_proposals(1, 0)  # still reproducible
    assert len({controller_seed(s, i) for s in range(50) for i in range(8)}) == 400
    with pytest.raises(ConfigError, match="controllers"):
        SearchConfig(controllers=MAX_CONTROLLERS + 1)
