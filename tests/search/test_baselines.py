"""The evaluation harness's baselines and searches: budgets hold, evaluations are equal, the
saliency score means what it says."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adass_ray.data import synthetic
from adass_ray.model.config import ModelConfig
from adass_ray.search.agent import SearchConfig
from adass_ray.search.baselines import (
    card_rule,
    evolutionary_search,
    panel,
    random_search,
    saliency_sizes,
    uniform_matched,
)
from adass_ray.search.driver import search_local
from adass_ray.search.evaluator import CachedEvaluator
from adass_ray.search.space import SearchSpace
from adass_ray.train.config import TrainConfig
from adass_ray.train.local import train_local
from tests.search.test_evaluator import FM, make_batch, make_net

SPACE = SearchSpace.from_feature_map(FM, candidate_sizes=(4, 8, 16, 32))


def test_uniform_matched_is_the_largest_uniform_size_within_budget() -> None:
    budget = SPACE.uniform_cost(16) - 1
    assert uniform_matched(SPACE, budget) == (8,) * SPACE.num_fields
    assert uniform_matched(SPACE, SPACE.uniform_cost(32)) == (32,) * SPACE.num_fields


@pytest.mark.parametrize("ratio", [0.3, 0.8, 1.5])
def test_card_rule_fits_the_budget_and_grows_with_cardinality(ratio: float) -> None:
    budget = int(ratio * SPACE.uniform_cost(16))
    sizes, k = card_rule(SPACE, budget)
    assert k > 0 and set(sizes) <= {4, 8, 16, 32}
    assert sum(v * s for v, s in zip(SPACE.vocab_sizes, sizes, strict=True)) <= budget
    order = sorted(range(SPACE.num_fields), key=lambda f: SPACE.vocab_sizes[f])
    assert [sizes[f] for f in order] == sorted(
        sizes
    )  # a larger vocabulary never gets a smaller size
    bigger, _ = card_rule(SPACE, 2 * budget)
    assert (
        all(b >= a for a, b in zip(sizes, bigger, strict=True))
        and bigger != sizes
        or max(sizes) == 32
    )


def test_searches_respect_budget_and_use_equal_evaluations() -> None:
    torch.set_num_threads(1)
    net, batch = make_net("separate"), make_batch(rows=200)
    space = SearchSpace.from_feature_map(FM, candidate_sizes=net.candidate_sizes, allow_drop=True)
    budget = int(0.6 * space.uniform_cost(8))
    cfg = SearchConfig(controllers=2, iterations=5, archs_per_iter=6, val_rows=200)
    state, extra = search_local(CachedEvaluator(net, batch), space, budget, cfg)
    n = len(state.cache)
    assert 6 <= n <= 2 * 5 * 6
    assert all(r["cost"] <= budget for r in state.history)  # proposals are repaired first
    assert extra and all(space.cost(a) <= budget for a in extra)
    for search in (random_search, evolutionary_search):
        a = search(CachedEvaluator(net, batch), space, budget, n, seed=3)
        b = search(CachedEvaluator(net, batch), space, budget, n, seed=3)
        assert len({arch for arch, _ in a}) == n
        assert all(space.cost(arch) <= budget for arch, _ in a)
        assert a == b  # seeded
        assert all(q is not None for _, q in a)


def test_panel_holds_every_uniform_architecture_and_is_fixed() -> None:
    p = panel(SPACE, 12, seed=0)
    assert len(p) == len(set(p)) == 12
    assert all((k,) * SPACE.num_fields in p for k in range(SPACE.num_candidates))
    assert p == panel(SPACE, 12, seed=0)


def test_saliency_prunes_a_useless_field_to_the_smallest_size(tmp_path: Path) -> None:
    """A field whose table is all zeros contributes nothing: its dimensions have saliency 0, so
    the pruning gives it the smallest size; the result fits the budget."""
    data = tmp_path / "data"
    fm = synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=3000, seed=1), data)
    cfg = TrainConfig(model=ModelConfig(hidden=(16,), sparse=False), epochs=1, batch_size=256)
    space = SearchSpace.from_feature_map(fm)
    top = max(space.candidate_sizes)
    model, metrics = train_local(data, cfg, "fixed", (top,) * fm.num_fields)
    assert 0.0 <= metrics["test_auc"] <= 1.0 and metrics["embedding_params"] == space.uniform_cost(
        top
    )
    table = model.embeddings.field_params(2)[0]
    with torch.no_grad():
        table.zero_()
    budget = int(0.8 * space.uniform_cost(16))
    sizes, scores = saliency_sizes(model, data, space, budget, rows=1000)
    assert space.cost(space.arch_of(sizes)) <= budget
    assert max(scores[2]) == 0.0 and max(max(s) for s in scores) > 0
    assert sizes[2] == min(s for s in space.candidate_sizes if s > 0)


def test_greedy_sampler_gets_a_scorer_and_fills_its_pool_in_training(tmp_path: Path) -> None:
    """The training loop hands the greedy sampler held-out rows, so its pool fills (without that
    it silently stays uniform: the same model as the uniform sampler's)."""
    from adass_ray.sampling import SamplerConfig

    data = tmp_path / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=3000, seed=2), data)
    base = TrainConfig(model=ModelConfig(hidden=(16,)), epochs=1, batch_size=128, max_rows=2000)
    greedy = TrainConfig(
        **{
            **base.__dict__,
            "sampler": SamplerConfig(name="greedy", warmup_steps=2, greedy_refresh=2),
        }
    )
    uniform = TrainConfig(**{**base.__dict__, "sampler": SamplerConfig(name="uniform")})
    net_g, _ = train_local(data, greedy, "supernet")
    net_u, _ = train_local(data, uniform, "supernet")
    g = net_g.state_dict()
    assert any(not torch.equal(v, net_u.state_dict()[k]) for k, v in g.items())


def test_verdict_says_plainly_when_we_lose_and_when_a_win_is_noise() -> None:
    from adass_ray.harness.render import verdict
    from adass_ray.harness.stats import paired, verdict_of

    def row(method: str, ours: list[float], theirs: list[float]) -> dict:
        ci = paired(ours, theirs)
        return {
            "method": method,
            "group": "baseline",
            "vs_ours_auc": {**ci, "verdict": verdict_of(ci)},
        }

    ours_row = {"method": "AdaS&S (ours)", "group": "ours"}
    lose = verdict([ours_row, row("random search", [0.780, 0.781, 0.779], [0.785, 0.786, 0.784])])
    assert "**behind** random search" in lose
    noise = verdict(
        [ours_row, row("random search", [0.7801, 0.7790, 0.7812], [0.7800, 0.7805, 0.7798])]
    )
    assert "ties (inside the noise) with random search" in noise
    win = verdict([ours_row, row("random search", [0.79, 0.791, 0.789], [0.78, 0.781, 0.779])])
    assert "ahead of random search" in win and "behind" not in win


def test_warns_when_the_sampler_warm_up_outlasts_the_run(tmp_path: Path) -> None:
    from adass_ray.sampling import SamplerConfig
    from adass_ray.train.config import warmup_warning

    data = tmp_path / "data"
    fm = synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=3000, seed=2), data)
    steps = -(-fm.splits["train"].rows // 256) * 2
    # a warm-up given in steps (500) that outlasts the run; the default is a fraction of it
    short = TrainConfig(epochs=2, batch_size=256, sampler=SamplerConfig(warmup_steps=500))
    assert warmup_warning(fm, TrainConfig(epochs=2, batch_size=256)) is None
    msg = warmup_warning(fm, short)
    assert (
        msg is not None
        and f"the {steps} steps" in msg
        and "table sampling (ES) never starts" in msg
    )
    assert (
        warmup_warning(
            fm, TrainConfig(**{**short.__dict__, "sampler": SamplerConfig(warmup_steps=2)})
        )
        is None
    )
    assert (
        warmup_warning(
            fm, TrainConfig(**{**short.__dict__, "sampler": SamplerConfig(name="uniform")})
        )
        is None
    )
    greedy = TrainConfig(
        **{**short.__dict__, "sampler": SamplerConfig(name="greedy", warmup_steps=500)}
    )
    assert "greedy path pool never starts" in (warmup_warning(fm, greedy) or "")
