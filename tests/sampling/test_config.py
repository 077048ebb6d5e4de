"""Tests for SamplerConfig: the new build from sizes and vocabularies, and the older form."""

from __future__ import annotations

import pytest

from adass_ray.errors import ConfigError
from adass_ray.sampling import AdaptiveSampler, GreedySampler, SamplerConfig, UniformSampler

SIZES = (0, 1, 2, 4, 8, 16)
VOCAB = (100, 20, 3)


def test_build_from_sizes_and_vocab() -> None:
    s = SamplerConfig().build(candidate_sizes=SIZES, vocab_sizes=VOCAB, d_base=16)
    assert isinstance(s, AdaptiveSampler)
    assert (s.num_fields, s.num_candidates) == (3, 6) and s.space.known
    assert s.space.uniform_cost == 16 * 123 and s.warmup_steps is None
    assert s.budget_ratios == (0.25, 0.5, 0.8) and s.adaptive_share == 0.3
    s = SamplerConfig(warmup_steps=7, budget_ratios=[0.5]).build(  # type: ignore[arg-type]
        candidate_sizes=SIZES, vocab_sizes=VOCAB)
    assert isinstance(s, AdaptiveSampler) and s.warmup_steps == 7 and s.budget_ratios == (0.5,)
    g = SamplerConfig(name="greedy").build(candidate_sizes=SIZES, vocab_sizes=VOCAB)
    assert isinstance(g, GreedySampler) and g.warmup_steps is None and g.num_fields == 3
    u = SamplerConfig(name="uniform").build(candidate_sizes=SIZES, vocab_sizes=VOCAB)
    assert isinstance(u, UniformSampler) and u.num_candidates == 6


def test_build_older_form() -> None:
    s = SamplerConfig(es=False).build(num_fields=5, num_candidates=4)
    assert isinstance(s, AdaptiveSampler) and not s.space.known and s.num_fields == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"candidate_sizes": (4, 2, 1), "vocab_sizes": VOCAB},
        {"candidate_sizes": (1, 1, 2), "vocab_sizes": VOCAB},
        {"candidate_sizes": SIZES, "vocab_sizes": (10, 0)},
        {"candidate_sizes": SIZES, "vocab_sizes": VOCAB, "num_fields": 4},
        {"candidate_sizes": SIZES, "vocab_sizes": VOCAB, "d_base": 0},
        {"vocab_sizes": VOCAB},
        {},
    ],
)
def test_bad_build_arguments_raise_one_line(kwargs: dict) -> None:
    for name in ("adaptive", "uniform"):
        with pytest.raises(ConfigError) as e:
            SamplerConfig(name=name).build(**kwargs)
        assert "\n" not in str(e.value)


def test_unknown_name_and_bad_constant() -> None:
    with pytest.raises(ConfigError, match="valid names"):
        SamplerConfig(name="spos").build(candidate_sizes=SIZES, vocab_sizes=VOCAB)
    with pytest.raises(ConfigError, match="budget_low"):
        SamplerConfig(budget_low=2.0).build(candidate_sizes=SIZES, vocab_sizes=VOCAB)
    with pytest.raises(ConfigError, match="warmup_steps"):
        SamplerConfig(warmup_steps=-1).build(candidate_sizes=SIZES, vocab_sizes=VOCAB)
