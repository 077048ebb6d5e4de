"""Tests for the greedy (GreedyNAS-style pool) sampler."""

from __future__ import annotations

import torch

from adass_ray.sampling import GreedySampler
from tests.sampling.helpers import F, K, feed, gen

PLANTED = torch.tensor([2, 0, 1, 2])


def planted_score(archs: torch.Tensor) -> torch.Tensor:
    return (archs != PLANTED).double().sum(1)  # Hamming distance: 0 only for the planted path


def test_greedy_pool_concentrates_on_planted_path() -> None:
    k = 3  # 81 paths: uniform hits the planted path 1.2 % of the time
    s = GreedySampler(F, k, score_fn=planted_score, num_candidates_paths=20, keep_top=2,
                      pool_size=4, pool_prob=0.8, refresh_every=1, rescore=2, warmup_steps=0)
    g = gen(11)
    for _ in range(60):
        arch = s.sample(32, generator=g)
        s.observe(arch, torch.ones(32), None)
    pool, scores = s.pool()
    assert pool.shape == (4, F) and torch.equal(pool[0], PLANTED) and scores[0] == 0
    assert (scores[1:] <= 1).all() and scores.diff().ge(0).all()
    hit = (s.sample(20_000, generator=gen()) == PLANTED).all(1).double().mean()
    assert hit > 0.15 > 1 / k**F
    assert s.distribution()[torch.arange(F), PLANTED].min() > 1 / k


def test_greedy_without_score_fn_is_uniform_and_reduce_used_per_refresh() -> None:
    s = GreedySampler(F, K, warmup_steps=0, refresh_every=3)
    feed(s, 5)
    assert s.pool()[0].shape == (0, F)
    assert torch.allclose(s.distribution(), torch.full((F, K), 1 / K, dtype=torch.float64))
    calls: list[torch.Tensor] = []
    s.set_score_fn(planted_score)

    def flip(t: torch.Tensor) -> torch.Tensor:
        calls.append(t)
        out = -t
        out[-1] = 1.0  # negate the scores: the worst path must now come first
        return out

    for _ in range(6):
        arch = torch.zeros(2, F, dtype=torch.long)
        s.observe(arch, torch.ones(2), None, reduce=flip)
    assert len(calls) == 2  # steps 6 and 9 (refresh_every=3)
    pool, scores = s.pool()
    assert torch.equal(scores, -planted_score(pool))


def test_greedy_warmup_is_a_fraction_of_the_run() -> None:
    calls: list[int] = []

    def score(archs: torch.Tensor) -> torch.Tensor:
        calls.append(len(archs))
        return planted_score(archs)

    s = GreedySampler(F, K, score_fn=score, refresh_every=5, warmup_frac=0.2)
    feed(s, 30)
    assert calls == []  # run length unknown: warm-up lasts
    s = GreedySampler(F, K, score_fn=score, refresh_every=5, warmup_frac=0.2)
    s.set_total_steps(100)
    assert s.warmup_length() == 20
    feed(s, 19)
    assert calls == []
    feed(s, 1)
    assert len(calls) == 1
    fixed = GreedySampler(F, K, score_fn=score, refresh_every=5, warmup_steps=3, warmup_frac=0.9)
    fixed.set_total_steps(100)
    assert fixed.warmup_length() == 3
