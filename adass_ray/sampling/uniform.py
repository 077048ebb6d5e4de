"""The uniform sampler: SPOS / OptEmbed baseline (DESIGN.md §2.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from adass_ray.sampling._common import (
    F64,
    Reduce,
    check_int,
    load_state,
    save_state,
    uniform_arch,
)


class UniformSampler:
    """Every field of every row uniform over the K candidates (SPOS / OptEmbed baseline).

    Args:
        num_fields: F.
        num_candidates: K.

    Raises:
        ConfigError: F or K below 1.
    """

    name = "uniform"

    def __init__(self, num_fields: int, num_candidates: int) -> None:
        self.num_fields = check_int("num_fields", num_fields, 1)
        self.num_candidates = check_int("num_candidates", num_candidates, 1)
        self._steps = 0
        self._total_steps: int | None = None

    def set_total_steps(self, total_steps: int) -> None:
        """Record the run length (nothing here depends on it).

        Args:
            total_steps: the run's planned steps (>= 1).

        Raises:
            ConfigError: not an integer >= 1.
        """
        self._total_steps = check_int("total_steps", total_steps, 1)

    def sample(self, batch_size: int, *, generator: torch.Generator) -> Tensor:
        """Return ``[batch_size, F]`` int64 candidate indices on ``generator.device``."""
        return uniform_arch(batch_size, self.num_fields, self.num_candidates, generator)

    def observe(self, arch: Tensor, row_loss: Tensor, field_grad_norm: Tensor | None,
                *, reduce: Reduce | None = None) -> None:
        """Count the step; nothing is learned, so ``reduce`` is never called."""
        self._steps += 1

    def state_dict(self) -> dict[str, Any]:
        """Return the step counters."""
        return save_state(self, ())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output.

        Raises:
            ConfigError: the state is another sampler's.
        """
        load_state(self, state, ())

    def distribution(self) -> Tensor:
        """Return ``[F, K]`` float64, all ``1/K``."""
        return torch.full((self.num_fields, self.num_candidates), 1.0 / self.num_candidates,
                          dtype=F64)
