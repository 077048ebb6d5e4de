"""Shared helpers of the sampler tests."""

from __future__ import annotations

from collections.abc import Callable

import torch

from adass_ray.sampling import Sampler

F, K = 4, 5

LossFn = Callable[[torch.Tensor], torch.Tensor]


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
         loss_fn: LossFn = skewed_loss) -> None:
    g = gen(seed)
    for _ in range(steps):
        arch = torch.randint(K, (256, F), generator=g)
        sampler.observe(arch, loss_fn(arch), grad)


class Rising:
    """Per-row loss by field 0's candidate: ``level[s]``, plus ``slope·t`` for ``rising`` ones.

    ``t`` counts calls, so each step the rising candidates' loss climbs against their own past.
    """

    def __init__(self, level: list[float], rising: tuple[int, ...], slope: float = 0.05) -> None:
        self.level = torch.tensor(level, dtype=torch.float64)
        self.rising = torch.tensor(rising, dtype=torch.long)
        self.slope = slope
        self.t = 0

    def __call__(self, arch: torch.Tensor) -> torch.Tensor:
        self.t += 1
        first = arch[:, 0]
        up = torch.isin(first, self.rising).double() * self.slope * self.t
        return self.level[first] + up
