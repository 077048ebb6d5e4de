"""Per-row path samplers for supernet training (DESIGN.md §2.2).

An architecture row holds one candidate index per field (``0..K-1``, sizes ascending). Each step
the loop draws ``sample(B) -> [B, F]``, runs the supernet and reports the per-row loss and
per-field gradient norms to ``observe``, which packs every statistic it uses into one 1-D float64
tensor and passes it through ``reduce`` (a data-parallel all-reduce) before any state changes, so
every worker keeps identical state. Before training the loop calls ``set_total_steps(n)`` with the
run's planned steps: warm-ups and ramps are fractions of the run.

Samplers: ``uniform`` (SPOS / OptEmbed baseline), ``adaptive`` (balanced base + sandwich + budget
region, with ES and FS on top) and ``greedy`` (GreedyNAS-style pool).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from adass_ray.errors import ConfigError
from adass_ray.sampling._common import Reduce, ScoreFn
from adass_ray.sampling.adaptive import AdaptiveSampler
from adass_ray.sampling.base import PathSpace
from adass_ray.sampling.greedy import GreedySampler
from adass_ray.sampling.uniform import UniformSampler

__all__ = [
    "AdaptiveSampler", "GreedySampler", "PathSpace", "Reduce", "Sampler", "SamplerConfig",
    "ScoreFn", "UniformSampler", "build_sampler",
]


@runtime_checkable
class Sampler(Protocol):
    """Draws per-row architectures and learns from per-row feedback."""

    name: str

    def set_total_steps(self, total_steps: int) -> None:
        """Tell the sampler the run's planned number of steps (``observe`` calls)."""
        ...

    def sample(self, batch_size: int, *, generator: torch.Generator) -> Tensor:
        """Return ``[batch_size, F]`` int64 candidate indices on ``generator.device``."""
        ...

    def observe(self, arch: Tensor, row_loss: Tensor, field_grad_norm: Tensor | None,
                *, reduce: Reduce | None = None) -> None:
        """Learn from ``arch [B, F]``, ``row_loss [B]``, ``field_grad_norm [F]`` (or None)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Return the sampler's state (plain values and CPU tensors)."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        ...

    def distribution(self) -> Tensor:
        """Return ``[F, K]`` marginal probability of each candidate per field (for logging)."""
        ...


_SAMPLERS: dict[str, Callable[..., Sampler]] = {
    "uniform": UniformSampler, "adaptive": AdaptiveSampler, "greedy": GreedySampler}


def build_sampler(name: str, *, num_fields: int | None = None, num_candidates: int | None = None,
                  candidate_sizes: Sequence[int] | None = None,
                  vocab_sizes: Sequence[int] | None = None, d_base: int | None = None,
                  **kwargs: Any) -> Sampler:
    """Build a sampler by name.

    Fields and candidates come from ``vocab_sizes`` / ``candidate_sizes`` (the adaptive sampler's
    budget region needs them) or, the older form, from ``num_fields`` / ``num_candidates``.

    Args:
        name: "uniform", "adaptive" or "greedy".
        num_fields: F, or None to take ``len(vocab_sizes)``.
        num_candidates: K, or None to take ``len(candidate_sizes)``.
        candidate_sizes: the K sizes (used by "adaptive" only).
        vocab_sizes: ``V_f`` per field (used by "adaptive" only).
        d_base: uniform baseline size (used by "adaptive" only); None: its default, 16.
        **kwargs: the sampler's keyword-only options (see each class).

    Returns:
        The sampler.

    Raises:
        ConfigError: unknown name or option, inconsistent fields and sizes, or a constant out of
            range.
    """
    cls = _SAMPLERS.get(name)
    if cls is None:
        raise ConfigError(f"unknown sampler {name!r}; valid names: {', '.join(_SAMPLERS)}")
    space_keys = {"candidate_sizes", "vocab_sizes", "d_base"}
    params = inspect.signature(cls).parameters.values()
    allowed = [p.name for p in params
               if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in space_keys]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(f"sampler {name!r} has no option {', '.join(unknown)}; "
                          f"valid options: {', '.join(allowed) or 'none'}")
    space = PathSpace(num_fields, num_candidates, candidate_sizes=candidate_sizes,
                      vocab_sizes=vocab_sizes, d_base=16 if d_base is None else d_base)
    if cls is AdaptiveSampler:
        return AdaptiveSampler(space.num_fields, space.num_candidates,
                               candidate_sizes=candidate_sizes, vocab_sizes=vocab_sizes,
                               d_base=space.d_base, **kwargs)
    return cls(space.num_fields, space.num_candidates, **kwargs)


@dataclass(frozen=True)
class SamplerConfig:
    """Adaptive Sampling and friends (DESIGN.md §2.2); ``name``: uniform, adaptive or greedy.

    ``warmup_steps`` > 0 overrides ``warmup_frac`` (adaptive and greedy); 0 means: use the
    fraction of the run the loop tells the sampler through ``set_total_steps``. The remaining
    fields are the options of :class:`AdaptiveSampler` (``greedy_*``: :class:`GreedySampler`).
    """

    name: str = "adaptive"
    tau: float = 1.0
    epsilon: float = 0.1
    gamma: float = 0.99
    warmup_steps: int = 0
    rho: float = 0.5
    rho_min: float = 0.1
    es: bool = True
    fs: bool = True
    greedy_paths: int = 10
    greedy_keep: int = 5
    greedy_pool: int = 64
    greedy_pool_prob: float = 0.8
    greedy_refresh: int = 50
    gamma_fast: float = 0.9
    warmup_frac: float = 0.1
    ramp_frac: float = 0.1
    adaptive_share: float = 0.3
    sandwich_rows: int = 2
    budget_frac: float = 0.25
    budget_ratios: tuple[float, ...] = (0.25, 0.5, 0.8)
    budget_low: float = 0.7

    def build(self, *, candidate_sizes: Sequence[int] | None = None,
              vocab_sizes: Sequence[int] | None = None, d_base: int = 16,
              num_fields: int | None = None, num_candidates: int | None = None) -> Sampler:
        """The sampler this config describes (constants checked by the sampler).

        Args:
            candidate_sizes: the K candidate sizes of the supernet.
            vocab_sizes: ``V_f`` per field, in field order.
            d_base: the uniform baseline size budgets are fractions of.
            num_fields, num_candidates: the older form, without costs (no budget-region rows);
                kept until every caller passes the sizes.

        Returns:
            The sampler; call ``set_total_steps`` on it before training.

        Raises:
            ConfigError: unknown sampler, bad constants, or inconsistent fields and sizes.
        """
        common: dict[str, Any] = {
            "num_fields": num_fields, "num_candidates": num_candidates,
            "candidate_sizes": candidate_sizes, "vocab_sizes": vocab_sizes, "d_base": d_base}
        warmup = self.warmup_steps if self.warmup_steps else None
        if self.name == "adaptive":
            ratios = self.budget_ratios
            if isinstance(ratios, Sequence) and not isinstance(ratios, str):
                ratios = tuple(ratios)
            return build_sampler(
                "adaptive", tau=self.tau, epsilon=self.epsilon, gamma=self.gamma,
                gamma_fast=self.gamma_fast, warmup_steps=warmup, warmup_frac=self.warmup_frac,
                ramp_frac=self.ramp_frac, rho=self.rho, rho_min=self.rho_min,
                adaptive_share=self.adaptive_share, sandwich_rows=self.sandwich_rows,
                budget_frac=self.budget_frac, budget_ratios=ratios, budget_low=self.budget_low,
                es=self.es, fs=self.fs, **common,
            )
        if self.name == "greedy":
            return build_sampler(
                "greedy", num_candidates_paths=self.greedy_paths, keep_top=self.greedy_keep,
                pool_size=self.greedy_pool, pool_prob=self.greedy_pool_prob,
                refresh_every=self.greedy_refresh, warmup_steps=warmup,
                warmup_frac=self.warmup_frac, **common,
            )
        return build_sampler(self.name, **common)  # uniform, or the one-line unknown-name error
