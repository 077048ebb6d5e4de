"""Tests every sampler shares: the protocol, option checks, determinism and checkpoints."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adass_ray.errors import ConfigError
from adass_ray.sampling import AdaptiveSampler, GreedySampler, Sampler, build_sampler
from tests.sampling.helpers import F, K, feed, gen


def test_samplers_satisfy_protocol() -> None:
    for name in ("uniform", "adaptive", "greedy"):
        s = build_sampler(name, num_fields=F, num_candidates=K)
        assert isinstance(s, Sampler) and s.name == name
        arch = s.sample(7, generator=gen())
        assert arch.shape == (7, F) and arch.dtype == torch.long
        assert s.distribution().shape == (F, K)


@pytest.mark.parametrize("name", ["uniform", "adaptive", "greedy"])
def test_determinism_and_state_dict_round_trip(name: str) -> None:
    kwargs: dict[str, Any] = {"uniform": {}, "adaptive": {"warmup_steps": 2},
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
        ("adaptive", {"gamma_fast": 1.0}),
        ("adaptive", {"warmup_frac": 1.5}),
        ("adaptive", {"ramp_frac": -0.1}),
        ("adaptive", {"adaptive_share": 2.0}),
        ("adaptive", {"sandwich_rows": -1}),
        ("adaptive", {"budget_frac": 1.1}),
        ("adaptive", {"budget_ratios": ()}),
        ("adaptive", {"budget_ratios": (0.5, 0.0)}),
        ("adaptive", {"budget_ratios": "0.5"}),
        ("adaptive", {"budget_low": 1.5}),
        ("greedy", {"keep_top": 0}),
        ("greedy", {"keep_top": 11, "num_candidates_paths": 10}),
        ("greedy", {"pool_prob": 2.0}),
        ("greedy", {"pool_size": 0}),
        ("greedy", {"refresh_every": 0}),
        ("greedy", {"warmup_frac": -0.5}),
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


def test_set_total_steps_on_every_sampler() -> None:
    for name in ("uniform", "adaptive", "greedy"):
        s = build_sampler(name, num_fields=F, num_candidates=K)
        s.set_total_steps(100)
        assert s.state_dict()["total_steps"] == 100
        with pytest.raises(ConfigError):
            s.set_total_steps(0)
