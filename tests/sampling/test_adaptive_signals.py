"""Tests for the adaptive sampler's signals: ES (own-trend), FS (gradient norms), reduce."""

from __future__ import annotations

import pytest
import torch

from adass_ray.sampling import AdaptiveSampler
from tests.sampling.helpers import F, K, Rising, feed, freq, gen, skewed_loss

UNIFORM = torch.full((F, K), 1 / K, dtype=torch.float64)


def test_adaptive_uniform_during_warmup() -> None:
    s = AdaptiveSampler(F, K, warmup_steps=10, fs=False)
    loss = Rising([1.0] * K, rising=(1,))
    feed(s, 9, loss_fn=loss)
    assert torch.allclose(s.es_distribution(), UNIFORM)
    assert torch.equal(s.mix_share(), torch.zeros(F, dtype=torch.float64))
    feed(s, 1, loss_fn=loss)
    assert s.es_distribution()[0, 1] > 1 / K


def test_adaptive_rising_candidate_drawn_more_and_floor() -> None:
    s = AdaptiveSampler(F, K, warmup_steps=3, fs=False, adaptive_share=1.0)
    feed(s, 5, loss_fn=Rising([1.0] * K, rising=(1,)))
    fr = freq(s.sample(40_000, generator=gen()))
    others = torch.cat([fr[0, :1], fr[0, 2:]])
    assert fr[0, 1] > others.max() + 0.2
    # A field whose candidates all have the same loss EMA stays uniform.
    flat = AdaptiveSampler(F, K, warmup_steps=0, fs=False)
    feed(flat, 2, loss_fn=lambda a: torch.ones(a.shape[0]))
    assert torch.allclose(flat.es_distribution(), UNIFORM)
    q = s.es_distribution()
    assert torch.allclose(q.sum(1), torch.ones(F, dtype=torch.float64))
    assert (q >= s.epsilon / K - 1e-12).all()
    # A sharp temperature pushes the steady candidates onto the ε/K floor, not below.
    sharp = AdaptiveSampler(F, K, warmup_steps=0, fs=False, tau=1e-3, epsilon=0.2)
    feed(sharp, 2, loss_fn=Rising([1.0] * K, rising=(1,)))
    q = sharp.es_distribution()
    assert torch.allclose(q[0, [0, 2, 3, 4]], torch.full((4,), 0.2 / K, dtype=torch.float64))
    assert (q >= 0.2 / K - 1e-12).all()


def test_es_prefers_own_trend_over_loss_level() -> None:
    """Candidate 0 has a high but stable loss, candidate 2 a low loss that rises: ES picks 2."""
    s = AdaptiveSampler(F, K, warmup_steps=0, fs=False)
    feed(s, 30, loss_fn=Rising([3.0, 1.0, 1.0, 1.0, 1.0], rising=(2,), slope=0.01))
    q = s.es_distribution()[0]
    assert q[2] > 2 * q[0]
    assert torch.allclose(q[[0, 1, 3, 4]], q[0].expand(4))  # loss level alone draws nothing
    # The same when every candidate improves together and one falls behind (the common trend
    # of the field is removed): candidate 3 improves more slowly than its siblings.
    both = AdaptiveSampler(F, K, warmup_steps=0, fs=False)
    t = {"t": 0}

    def improving(arch: torch.Tensor) -> torch.Tensor:
        t["t"] += 1
        rate = torch.where(arch[:, 0] == 3, 0.001, 0.01)
        level = torch.tensor([3.0, 2.0, 1.5, 1.2, 1.0], dtype=torch.float64)[arch[:, 0]]
        return level * torch.exp(-rate * t["t"])

    feed(both, 30, loss_fn=improving)
    q = both.es_distribution()[0]
    assert q[3] > 2 * q[[0, 1, 2, 4]].max()


def test_unobserved_candidate_counts_as_worst() -> None:
    s = AdaptiveSampler(F, K, warmup_steps=0, fs=False)
    for step in range(3):
        arch = torch.zeros(8, F, dtype=torch.long)
        arch[4:] = 1  # candidates 2..4 are never used
        loss = torch.tensor([1.0] * 4 + [2.0 + step] * 4)  # candidate 1's loss rises
        s.observe(arch, loss, None)
    q = s.es_distribution()[0]
    # Never observed: tied with the field's most-deviating candidate, never behind it.
    assert torch.allclose(q[2:], q.max().expand(3)) and q[:2].min() < q.max()


def test_fs_higher_grad_norm_gets_more_adaptive_rows() -> None:
    s = AdaptiveSampler(F, K, es=False, rho=0.5, rho_min=0.1, warmup_steps=0)
    grad = torch.tensor([4.0, 1.0, 1.0, 1.0])
    feed(s, 3, grad=grad)
    rho = s.resample_prob()
    assert torch.allclose(rho, torch.tensor([1.0, 0.5 / 1.75, 0.5 / 1.75, 0.5 / 1.75],
                                            dtype=torch.float64))
    assert torch.allclose(s.mix_share(), s.adaptive_share * rho)
    _, source = s.sample_with_source(40_000, generator=gen())
    adaptive = (source == 1).double().mean(0)
    assert torch.allclose(adaptive, s.mix_share(), atol=0.01)
    assert adaptive[0] > adaptive[1:].max() + 0.1
    # No field is ever sent to a fixed size: every candidate keeps its balanced share.
    arch = s.sample(40_000, generator=gen(1))
    assert (freq(arch) > 0.9 / K).all()
    # rho_min floor: a field with no gradient is still adaptive sometimes.
    low = AdaptiveSampler(F, K, es=False, rho_min=0.2)
    feed(low, 1, grad=torch.tensor([1.0, 0.0, 1.0, 1.0]))
    assert low.resample_prob()[1] == pytest.approx(0.2)
    # rho_min = 0: a field with no gradient is balanced base only (no adaptive entry).
    zero = AdaptiveSampler(F, K, es=False, rho_min=0.0, warmup_steps=0)
    feed(zero, 1, grad=torch.tensor([1.0, 0.0, 1.0, 1.0]))
    _, source = zero.sample_with_source(1000, generator=gen())
    assert (source[:, 1] != 1).all() and (source[:, 0] == 1).any()


def test_fs_before_any_grad_is_uniform_rho() -> None:
    s = AdaptiveSampler(F, K, es=False, rho=0.3)
    assert torch.allclose(s.resample_prob(), torch.full((F,), 0.3, dtype=torch.float64))


def test_es_off_and_fs_off_switches() -> None:
    grad = torch.tensor([4.0, 1.0, 1.0, 1.0])
    es_off = AdaptiveSampler(F, K, es=False, warmup_steps=0)
    feed(es_off, 3, grad=grad, loss_fn=Rising([1.0] * K, rising=(1,)))
    assert torch.allclose(es_off.es_distribution(), UNIFORM)
    fs_off = AdaptiveSampler(F, K, fs=False, warmup_steps=0, adaptive_share=1.0)
    feed(fs_off, 3, grad=grad)
    assert torch.equal(fs_off.resample_prob(), torch.ones(F, dtype=torch.float64))
    assert torch.allclose(fs_off.distribution(), fs_off.es_distribution())
    arch = AdaptiveSampler(F, K, fs=False, es=False).sample(40_000, generator=gen())
    frac = (arch != K - 1).double().mean(0)
    assert torch.allclose(frac, torch.full((F,), (K - 1) / K, dtype=torch.float64), atol=0.01)
    both_off = AdaptiveSampler(F, K, fs=False, es=False)
    assert both_off.sample(100, generator=gen(3)).shape == (100, F)


def test_distribution_is_effective_marginal() -> None:
    s = AdaptiveSampler(F, K, warmup_steps=2)
    feed(s, 3, grad=torch.tensor([3.0, 1.0, 1.0, 0.5]), loss_fn=Rising([1.0] * K, rising=(1,)))
    assert torch.allclose(freq(s.sample(60_000, generator=gen())), s.distribution(), atol=0.01)


def test_reduce_called_once_and_its_output_is_used() -> None:
    arch = torch.randint(K, (64, F), generator=gen(5))
    loss, grad = skewed_loss(arch), torch.rand(F, generator=gen(6), dtype=torch.float64)
    plain = AdaptiveSampler(F, K)
    plain.observe(arch, loss, grad)
    calls: list[torch.Tensor] = []

    def double_counts(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.clone())
        t = t.clone()
        t[F * K : 2 * F * K] *= 2  # documented layout: [sums | counts | grads | grad flag]
        return t

    s = AdaptiveSampler(F, K)
    s.observe(arch, loss, grad, reduce=double_counts)
    assert len(calls) == 1 and calls[0].shape == (2 * F * K + F + 1,)
    assert torch.allclose(s.state_dict()["loss_ema"], plain.state_dict()["loss_ema"] / 2)
    assert torch.equal(s.visits(), 2 * plain.visits())
    # A reduce that drops everything leaves the EMAs unset.
    z = AdaptiveSampler(F, K)
    z.observe(arch, loss, grad, reduce=torch.zeros_like)
    assert torch.isnan(z.state_dict()["loss_ema"]).all()
    assert torch.isnan(z.state_dict()["grad_ema"]).all()


def test_reduce_sum_over_workers_equals_one_big_batch() -> None:
    """Two workers with an all-reduce(sum) end where one worker seeing both halves ends."""
    g, grad = gen(7), torch.tensor([2.0, 1.0, 0.5, 1.5])
    whole, w0, w1 = (AdaptiveSampler(F, K, gamma=0.5) for _ in range(3))
    for _ in range(4):
        arch = torch.randint(K, (128, F), generator=g)
        loss = torch.rand(128, generator=g, dtype=torch.float64) + skewed_loss(arch)
        parts = [(arch[:64], loss[:64]), (arch[64:], loss[64:])]
        sent: list[torch.Tensor] = []

        def gather(t: torch.Tensor, sent: list[torch.Tensor] = sent) -> torch.Tensor:
            sent.append(t)
            return t

        for a, lo in parts:  # what each worker contributes to the all-reduce
            AdaptiveSampler(F, K).observe(a, lo, grad, reduce=gather)

        def all_reduce(t: torch.Tensor, sent: list[torch.Tensor] = sent) -> torch.Tensor:
            return sent[0] + sent[1]

        w0.observe(*parts[0], grad, reduce=all_reduce)
        w1.observe(*parts[1], grad, reduce=all_reduce)
        whole.observe(arch, loss, grad)
    for key in ("loss_ema", "loss_fast", "loss_all", "grad_ema", "visits"):
        assert torch.equal(w0.state_dict()[key], w1.state_dict()[key])
        assert torch.allclose(w0.state_dict()[key], whole.state_dict()[key])
    assert int(w0.visits().sum()) == 4 * 128 * F


def test_non_finite_rows_ignored() -> None:
    s = AdaptiveSampler(F, K)
    arch = torch.zeros(4, F, dtype=torch.long)
    s.observe(arch, torch.tensor([1.0, float("nan"), 3.0, float("inf")]),
              torch.full((F,), torch.inf))
    assert torch.allclose(s.state_dict()["loss_ema"][:, 0],
                          torch.full((F,), 2.0, dtype=torch.float64))
    assert torch.isnan(s.state_dict()["grad_ema"]).all()
    assert torch.equal(s.visits()[:, 0], torch.full((F,), 2))
