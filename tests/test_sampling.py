"""Tests for adass_ray.sampling: uniform, adaptive (ES + FS) and greedy samplers."""

from __future__ import annotations

import pytest
import torch

from adass_ray.errors import ConfigError
from adass_ray.sampling import (
    AdaptiveSampler,
    GreedySampler,
    Sampler,
    UniformSampler,
    build_sampler,
)

F, K = 4, 5


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def freq(arch: torch.Tensor, k: int = K) -> torch.Tensor:
    """``[F, K]`` empirical frequency of each candidate per field."""
    onehot = arch[..., None] == torch.arange(k)
    return onehot.double().mean(0)


def skewed_loss(arch: torch.Tensor) -> torch.Tensor:
    """Rows using candidate 1 of field 0 have a higher loss (an under-trained candidate)."""
    return 1.0 + 2.0 * (arch[:, 0] == 1).double()


def feed(sampler: Sampler, steps: int, *, seed: int = 1, grad: torch.Tensor | None = None,
         loss_fn=skewed_loss) -> None:
    g = gen(seed)
    for _ in range(steps):
        arch = torch.randint(K, (256, F), generator=g)
        sampler.observe(arch, loss_fn(arch), grad)


def test_samplers_satisfy_protocol() -> None:
    for name in ("uniform", "adaptive", "greedy"):
        s = build_sampler(name, num_fields=F, num_candidates=K)
        assert isinstance(s, Sampler) and s.name == name
        arch = s.sample(7, generator=gen())
        assert arch.shape == (7, F) and arch.dtype == torch.long
        assert s.distribution().shape == (F, K)


def test_uniform_frequencies() -> None:
    arch = UniformSampler(F, K).sample(40_000, generator=gen())
    assert torch.allclose(freq(arch), torch.full((F, K), 1 / K, dtype=torch.float64), atol=0.01)


def test_adaptive_uniform_during_warmup() -> None:
    s = AdaptiveSampler(F, K, warmup_steps=10, fs=False)
    feed(s, 9)
    assert torch.allclose(s.es_distribution(), torch.full((F, K), 1 / K, dtype=torch.float64))
    feed(s, 1)
    assert s.es_distribution()[0, 1] > 1 / K


def test_adaptive_high_loss_candidate_drawn_more_and_floor() -> None:
    s = AdaptiveSampler(F, K, warmup_steps=3, fs=False)
    feed(s, 5)
    fr = freq(s.sample(40_000, generator=gen()))
    others = torch.cat([fr[0, :1], fr[0, 2:]])
    assert fr[0, 1] > others.max() + 0.2
    # A field whose candidates all have the same loss EMA stays uniform.
    flat = AdaptiveSampler(F, K, warmup_steps=0, fs=False)
    feed(flat, 2, loss_fn=lambda a: torch.ones(a.shape[0]))
    assert torch.allclose(flat.es_distribution(), torch.full((F, K), 1 / K, dtype=torch.float64))
    q = s.es_distribution()
    assert torch.allclose(q.sum(1), torch.ones(F, dtype=torch.float64))
    assert (q >= s.epsilon / K - 1e-12).all()
    # A sharp temperature pushes the well-trained candidates onto the ε/K floor, not below.
    sharp = AdaptiveSampler(F, K, warmup_steps=0, fs=False, tau=1e-3, epsilon=0.2)
    feed(sharp, 2)
    q = sharp.es_distribution()
    assert torch.allclose(q[0, [0, 2, 3, 4]], torch.full((4,), 0.2 / K, dtype=torch.float64))
    assert (q >= 0.2 / K - 1e-12).all()


def test_unobserved_candidate_counts_as_worst() -> None:
    s = AdaptiveSampler(F, K, warmup_steps=0, fs=False)
    arch = torch.zeros(8, F, dtype=torch.long)
    arch[4:] = 1  # candidates 2..4 are never used
    loss = torch.tensor([1.0] * 4 + [2.0] * 4)
    s.observe(arch, loss, None)
    q = s.es_distribution()[0]
    assert q[0] < q[1] and torch.allclose(q[2:], q[1].expand(3))


def non_anchor_fraction(sampler: Sampler, n: int = 40_000) -> torch.Tensor:
    return (sampler.sample(n, generator=gen()) != K - 1).double().mean(0)


def test_fs_higher_grad_norm_resampled_more() -> None:
    s = AdaptiveSampler(F, K, es=False, rho=0.5, rho_min=0.1)
    grad = torch.tensor([4.0, 1.0, 1.0, 1.0])
    feed(s, 3, grad=grad)
    rho = s.resample_prob()
    assert torch.allclose(rho, torch.tensor([1.0, 0.5 / 1.75, 0.5 / 1.75, 0.5 / 1.75],
                                            dtype=torch.float64))
    frac = non_anchor_fraction(s)
    expected = rho * (K - 1) / K  # a resampled field lands on the anchor with q = 1/K
    assert torch.allclose(frac, expected, atol=0.01)
    assert frac[0] > frac[1:].max() + 0.4
    # rho_min floor: a field with no gradient is still resampled sometimes.
    low = AdaptiveSampler(F, K, es=False, rho_min=0.2)
    feed(low, 1, grad=torch.tensor([1.0, 0.0, 1.0, 1.0]))
    assert low.resample_prob()[1] == pytest.approx(0.2)
    # rho_min = 0: a field with no gradient always takes its anchor.
    zero = AdaptiveSampler(F, K, es=False, rho_min=0.0)
    feed(zero, 1, grad=torch.tensor([1.0, 0.0, 1.0, 1.0]))
    assert (zero.sample(1000, generator=gen())[:, 1] == K - 1).all()


def test_fs_before_any_grad_is_uniform_rho() -> None:
    s = AdaptiveSampler(F, K, es=False, rho=0.3)
    assert torch.allclose(s.resample_prob(), torch.full((F,), 0.3, dtype=torch.float64))


def test_es_off_and_fs_off_switches() -> None:
    grad = torch.tensor([4.0, 1.0, 1.0, 1.0])
    es_off = AdaptiveSampler(F, K, es=False, warmup_steps=0)
    feed(es_off, 3, grad=grad)
    assert torch.allclose(es_off.es_distribution(), torch.full((F, K), 1 / K, dtype=torch.float64))
    fs_off = AdaptiveSampler(F, K, fs=False, warmup_steps=0)
    feed(fs_off, 3, grad=grad)
    assert torch.equal(fs_off.resample_prob(), torch.ones(F, dtype=torch.float64))
    assert torch.allclose(fs_off.distribution(), fs_off.es_distribution())
    frac = non_anchor_fraction(AdaptiveSampler(F, K, fs=False, es=False))
    assert torch.allclose(frac, torch.full((F,), (K - 1) / K, dtype=torch.float64), atol=0.01)
    both_off = AdaptiveSampler(F, K, fs=False, es=False)
    assert both_off.sample(100, generator=gen(3)).shape == (100, F)


def test_distribution_is_effective_marginal() -> None:
    s = AdaptiveSampler(F, K, warmup_steps=2)
    feed(s, 3, grad=torch.tensor([3.0, 1.0, 1.0, 0.5]))
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
    for key in ("loss_ema", "grad_ema", "rows"):
        assert torch.equal(w0.state_dict()[key], w1.state_dict()[key])
        assert torch.allclose(w0.state_dict()[key], whole.state_dict()[key])


def test_non_finite_rows_ignored() -> None:
    s = AdaptiveSampler(F, K)
    arch = torch.zeros(4, F, dtype=torch.long)
    s.observe(arch, torch.tensor([1.0, float("nan"), 3.0, float("inf")]), torch.full((F,), torch.inf))
    assert torch.allclose(s.state_dict()["loss_ema"][:, 0], torch.full((F,), 2.0, dtype=torch.float64))
    assert torch.isnan(s.state_dict()["grad_ema"]).all()


@pytest.mark.parametrize("name", ["uniform", "adaptive", "greedy"])
def test_determinism_and_state_dict_round_trip(name: str) -> None:
    kwargs = {"uniform": {}, "adaptive": {"warmup_steps": 2},
              "greedy": {"warmup_steps": 2, "refresh_every": 2, "pool_size": 4}}[name]
    score = lambda a: (a != 2).double().sum(1)  # noqa: E731

    def make() -> Sampler:
        s = build_sampler(name, num_fields=F, num_candidates=K, **kwargs)
        if isinstance(s, GreedySampler):
            s.set_score_fn(score)
        return s

    a, b = make(), make()
    grad = torch.tensor([1.0, 2.0, 3.0, 4.0])
    feed(a, 5, grad=grad)
    feed(b, 5, grad=grad)
    assert torch.equal(a.sample(300, generator=gen(9)), b.sample(300, generator=gen(9)))
    saved = a.state_dict()
    assert not any(callable(v) for v in saved.values())
    c = make()
    c.load_state_dict(saved)
    feed(a, 4, seed=2, grad=grad)  # mutating a after saving must not touch the saved dict
    c2 = make()
    c2.load_state_dict(saved)
    feed(c, 4, seed=2, grad=grad)
    feed(c2, 4, seed=2, grad=grad)
    for other in (c, c2):
        assert torch.equal(a.sample(300, generator=gen(4)), other.sample(300, generator=gen(4)))
        assert torch.allclose(a.distribution(), other.distribution())


def test_load_state_dict_mismatch_raises() -> None:
    saved = AdaptiveSampler(F, K).state_dict()
    with pytest.raises(ConfigError):
        AdaptiveSampler(F + 1, K).load_state_dict(saved)
    with pytest.raises(ConfigError):
        GreedySampler(F, K).load_state_dict(saved)


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


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("adaptive", {"tau": 0.0}),
        ("adaptive", {"tau": -1.0}),
        ("adaptive", {"tau": float("nan")}),
        ("adaptive", {"epsilon": 1.5}),
        ("adaptive", {"epsilon": -0.1}),
        ("adaptive", {"gamma": 1.0}),
        ("adaptive", {"gamma": -0.1}),
        ("adaptive", {"grad_gamma": 1.0}),
        ("adaptive", {"rho": -0.5}),
        ("adaptive", {"rho_min": 1.5}),
        ("adaptive", {"warmup_steps": -1}),
        ("adaptive", {"warmup_steps": 2.5}),
        ("adaptive", {"tau": "hot"}),
        ("adaptive", {"pool_size": 3}),
        ("adaptive", {"es": "false"}),
        ("greedy", {"keep_top": 0}),
        ("greedy", {"keep_top": 11, "num_candidates_paths": 10}),
        ("greedy", {"pool_prob": 2.0}),
        ("greedy", {"pool_size": 0}),
        ("greedy", {"refresh_every": 0}),
        ("uniform", {"tau": 1.0}),
    ],
)
def test_bad_constants_raise_config_error(name: str, kwargs: dict) -> None:
    with pytest.raises(ConfigError) as e:
        build_sampler(name, num_fields=F, num_candidates=K, **kwargs)
    assert "\n" not in str(e.value)


def test_bad_name_and_dims_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="uniform, adaptive, greedy"):
        build_sampler("spos", num_fields=F, num_candidates=K)
    with pytest.raises(ConfigError):
        build_sampler("uniform", num_fields=0, num_candidates=K)
    with pytest.raises(ConfigError):
        AdaptiveSampler(F, 0)
