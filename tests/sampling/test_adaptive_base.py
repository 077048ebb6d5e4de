"""Tests for the adaptive sampler's base: balanced assignment, sandwich rows, budget region,
visit floor, warm-up as a fraction of the run, exact checkpoints, drop candidates."""

from __future__ import annotations

from typing import Any

import torch

from adass_ray.sampling import AdaptiveSampler
from adass_ray.sampling.adaptive import ADAPTIVE, BALANCED, BUDGET, SANDWICH
from tests.sampling.helpers import Rising, gen

SIZES = (0, 1, 2, 4, 8, 16)
VOCAB = (1000, 50, 3, 20_000, 7, 400, 1000, 2500)
F, K = len(VOCAB), len(SIZES)


def make(**kwargs: Any) -> AdaptiveSampler:
    return AdaptiveSampler(candidate_sizes=SIZES, vocab_sizes=VOCAB, d_base=16, **kwargs)


def train(s: AdaptiveSampler, steps: int, *, batch: int = 256, seed: int = 0,
          grad: torch.Tensor | None = None) -> None:
    """Sample, score with a field-0 loss where candidate 4 rises, observe."""
    g, loss = gen(seed), Rising([1.0, 0.9, 0.8, 0.7, 0.6, 0.5], rising=(4,), slope=0.002)
    if grad is None:
        grad = torch.ones(F)
        grad[0] = 8.0
    for _ in range(steps):
        arch = s.sample(batch, generator=g)
        s.observe(arch, loss(arch), grad)


def balanced_spread(arch: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Per field, max − min of the candidate counts over the entries where ``keep``."""
    counts = torch.stack([((arch == c) & keep).sum(0) for c in range(K)])  # [K, F]
    return counts.max(0).values - counts.min(0).values


def test_balanced_counts_per_field_per_step() -> None:
    s = make(warmup_steps=2, adaptive_share=0.8)
    train(s, 10)
    assert s.mix_share().min() > 0
    for n in (7, 64, 255, 256, 1000):
        arch, source = s.sample_with_source(n, generator=gen(n))
        assert (source == ADAPTIVE).any()
        assert balanced_spread(arch, source == BALANCED).max() <= 1
    # In warm-up every mixed entry is balanced.
    warm = make()
    arch, source = warm.sample_with_source(300, generator=gen())
    assert not (source == ADAPTIVE).any()
    assert balanced_spread(arch, source == BALANCED).max() <= 1


def test_sandwich_rows_present() -> None:
    s = make(sandwich_rows=3)
    arch, source = s.sample_with_source(256, generator=gen())
    rows = (source == SANDWICH).all(1)
    assert int(rows.sum()) == 6 and ((source == SANDWICH).any(1) == rows).all()
    sandwich = arch[rows]
    smallest = (sandwich == 1).all(1)  # index 1: size 1, the smallest that keeps the field
    assert int(smallest.sum()) == 3 and int((sandwich == K - 1).all(1).sum()) == 3
    # Small batches hold at most n // 8 of each; none below 8 rows.
    assert not (s.sample_with_source(7, generator=gen())[1] == SANDWICH).any()
    assert int((s.sample_with_source(16, generator=gen())[1] == SANDWICH).all(1).sum()) == 4


def test_budget_rows_within_budget() -> None:
    s = make(budget_frac=0.5)
    uniform = 16 * sum(VOCAB)
    arch, source = s.sample_with_source(4000, generator=gen())
    rows = (source == BUDGET).all(1)
    assert int(rows.sum()) == 2000
    cost = s.space.cost(arch[rows])
    assert (cost >= 0).all() and (cost <= 0.8 * uniform).all()
    ratio = cost / uniform
    in_region = torch.stack([(ratio >= 0.7 * r) & (ratio <= r) for r in (0.25, 0.5, 0.8)])
    assert in_region.any(0).double().mean() > 0.9
    # Without candidate sizes there are no costs, so no budget rows.
    legacy = AdaptiveSampler(F, K)
    assert not (legacy.sample_with_source(400, generator=gen())[1] == BUDGET).any()


def test_every_candidate_keeps_a_visit_floor() -> None:
    s = make()
    s.set_total_steps(300)
    train(s, 300)
    assert s.es_distribution()[0].argmax() == 4 and s.resample_prob()[0] == 1.0
    share = s.visits().double() / s.visits().sum(1, keepdim=True)
    assert (share >= 0.5 / K).all(), share
    assert int(s.visits().sum()) == 300 * 256 * F


def test_warmup_is_a_fraction_of_the_run() -> None:
    s = make(warmup_frac=0.1, ramp_frac=0.1)
    train(s, 40)
    assert s.warmup_length() is None and not s.warmed_up()  # run length unknown: base only
    assert torch.equal(s.mix_share(), torch.zeros(F, dtype=torch.float64))
    s = make(warmup_frac=0.1, ramp_frac=0.1)
    s.set_total_steps(100)
    assert s.warmup_length() == 10
    train(s, 9)
    assert s.ramp() == 0.0 and torch.allclose(s.es_distribution(), torch.full((F, K), 1 / K,
                                                                              dtype=torch.float64))
    train(s, 1, seed=1)
    assert s.warmed_up() and s.ramp() == 0.1
    train(s, 9, seed=2)
    assert s.ramp() == 1.0 and torch.allclose(s.mix_share(), s.adaptive_share * s.resample_prob())
    fixed = make(warmup_steps=3, warmup_frac=0.9)
    fixed.set_total_steps(1000)
    assert fixed.warmup_length() == 3
    none = make(warmup_frac=0.0, ramp_frac=0.0)
    none.set_total_steps(50)
    assert none.warmed_up() and none.ramp() == 1.0


def test_state_dict_round_trip_bit_for_bit() -> None:
    a = make()
    a.set_total_steps(40)
    train(a, 25)
    saved = a.state_dict()
    assert set(saved) >= {"loss_ema", "loss_fast", "loss_all", "grad_ema", "visits", "steps",
                          "total_steps"}
    assert saved["visits"].dtype == torch.long and saved["steps"] == 25
    b = make()
    b.load_state_dict(saved)
    for key, value in b.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == saved[key].dtype
            assert torch.equal(value.nan_to_num(-1.0), saved[key].nan_to_num(-1.0)), key
        else:
            assert value == saved[key], key
    train(a, 10, seed=7)
    train(b, 10, seed=7)
    for key in ("loss_ema", "loss_fast", "loss_all", "grad_ema", "visits"):
        assert torch.equal(a.state_dict()[key], b.state_dict()[key]), key
    assert torch.equal(a.sample(500, generator=gen(9)), b.sample(500, generator=gen(9)))
    # A total set by the loop before loading wins over the saved one.
    c = make()
    c.set_total_steps(1000)
    c.load_state_dict(saved)
    assert c.total_steps == 1000


def test_drop_candidates_handled() -> None:
    s = make(budget_ratios=(0.01,), budget_frac=0.5)
    arch, source = s.sample_with_source(512, generator=gen())
    rows = (source == BUDGET).all(1)
    budget = 0.01 * 16 * sum(VOCAB)
    cost = s.space.cost(arch[rows])
    assert (cost <= budget).all()
    assert (arch[rows][:, 3] == 0).all()  # the 20k-id field cannot fit even size 1: dropped
    assert (arch == 0).any(0).all()  # drop is trained in every field (balanced rows)
    assert s.space.smallest == 1
    only_drop = AdaptiveSampler(candidate_sizes=(0,), vocab_sizes=(3, 4))
    assert (only_drop.sample(20, generator=gen()) == 0).all()
