"""Tests for the uniform sampler."""

from __future__ import annotations

import torch

from adass_ray.sampling import UniformSampler
from tests.sampling.helpers import F, K, freq, gen


def test_uniform_frequencies() -> None:
    arch = UniformSampler(F, K).sample(40_000, generator=gen())
    assert torch.allclose(freq(arch), torch.full((F, K), 1 / K, dtype=torch.float64), atol=0.01)
