"""The resource competition penalty (DESIGN.md §2.3), vectorised over a batch of N architectures.

Definitions, for budget B, costs C(α) and qualities Q(α):

* over(α) = max(0, C(α)/B − 1); share_f(α) = V_f·α_f / C(α) (0 when C = 0: all dropped);
* the global penalty P(α) = λ·over(α) + μ·C(α)/C_max, and the reward R(α) = Q(α) − P(α);
* with competition, field f's advantage is A_f = (Q − b) − F·share_f·P: the overage term is
  the design's λ·F·share_f·over, and the optional soft cost term μ·C/C_max is split the same way
  (−μ·F·share_f·C/C_max), so that a field pays for the parameters it holds in both terms;
* without competition (the ablation), every field gets A_f = R − b.

Because Σ_f share_f = 1 (or P = 0 when C = 0), Σ_f A_f = F·(R − b) in both modes: competition
does not change the total signal, only who carries the penalty. Arithmetic is float64 (costs are
exact int64 and can reach 1e10); reward and advantages come back in ``quality``'s float dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from adass_ray.errors import ConfigError
from adass_ray.search.space import SearchSpace

TensorLike = torch.Tensor | Sequence[float]


def overage(costs: torch.Tensor | Sequence[int], budget: float) -> torch.Tensor:
    """Relative excess over the budget, max(0, C/B − 1).

    Args:
        costs: C(α) per architecture, shape [N] (int or float).
        budget: B in parameters, > 0.

    Returns:
        float64 tensor [N]; 0 for every architecture within budget.

    Raises:
        ConfigError: ``budget`` is not positive and finite.
    """
    _check_positive("budget", budget)
    c = torch.as_tensor(costs).to(torch.float64)
    return torch.clamp(c / float(budget) - 1.0, min=0.0)


def shares(space: SearchSpace, archs: torch.Tensor) -> torch.Tensor:
    """Each field's share of its architecture's cost, V_f·α_f / C(α).

    Args:
        space: the search space (V_f and candidate sizes).
        archs: candidate indices, LongTensor [N, F].

    Returns:
        float64 tensor [N, F]; rows sum to 1, or are all 0 where C(α) = 0 (every field dropped).
    """
    per_field = space.field_costs(archs).to(torch.float64)
    total = per_field.sum(dim=1, keepdim=True)
    # clamp only guards the 0/0 of all-dropped rows, whose numerators are 0 anyway.
    return per_field / total.clamp(min=1.0)


def reward(
    quality: TensorLike,
    costs: torch.Tensor | Sequence[int],
    budget: float,
    *,
    lam: float,
    mu: float = 0.0,
    c_max: float | None = None,
) -> torch.Tensor:
    """R(α) = Q(α) − λ·over(α) − μ·C(α)/C_max.

    Args:
        quality: Q(α) per architecture, [N] (e.g. validation AUC from the frozen supernet).
        costs: C(α) per architecture, [N].
        budget: B in parameters.
        lam: λ >= 0, the overage penalty strength.
        mu: μ >= 0, the optional soft cost pressure (0 turns it off).
        c_max: C_max > 0 that normalises the soft cost (e.g. ``space.max_cost()``); needed when
            ``mu > 0``.

    Returns:
        Tensor [N] in ``quality``'s float dtype (float64 if ``quality`` is not floating-point).

    Raises:
        ConfigError: negative λ or μ, a non-positive budget, or μ > 0 without a positive C_max.
    """
    q = torch.as_tensor(quality)
    c = torch.as_tensor(costs)
    _check_shapes(q, c.shape[0] if c.dim() == 1 else -1)
    r = q.to(torch.float64) - _penalty(c, budget, lam=lam, mu=mu, c_max=c_max)
    return r.to(_out_dtype(q))


def field_advantages(
    quality: TensorLike,
    baseline: float,
    archs: torch.Tensor,
    space: SearchSpace,
    budget: float,
    *,
    lam: float,
    mu: float = 0.0,
    competition: bool = True,
    c_max: float | None = None,
) -> torch.Tensor:
    """Per-field policy-gradient advantages; with competition, big consumers pay the overage.

    Args:
        quality: Q(α) per architecture, [N].
        baseline: b, the controller's baseline (e.g. an EMA of past rewards).
        archs: candidate indices, LongTensor [N, F].
        space: the search space (V_f, sizes).
        budget: B in parameters.
        lam: λ >= 0. mu: μ >= 0 (soft cost term, split by share like the overage).
        competition: False gives every field the same advantage R − b (the ablation).
        c_max: C_max for the soft cost term; defaults to ``space.max_cost()``.

    Returns:
        Tensor [N, F] in ``quality``'s float dtype:
        A_f = (Q − b) − F·share_f·(λ·over + μ·C/C_max), or R − b in every column without
        competition.

    Raises:
        ConfigError: as :func:`reward`. ValueError: ``quality`` and ``archs`` disagree on N.
    """
    q = torch.as_tensor(quality)
    _check_shapes(q, archs.shape[0] if archs.dim() == 2 else -1)
    c_max = space.max_cost() if c_max is None else c_max
    costs = space.costs(archs)
    pen = _penalty(costs, budget, lam=lam, mu=mu, c_max=c_max).to(q.device)
    gain = q.to(torch.float64) - float(baseline)
    n, f = archs.shape
    if competition:
        adv = gain[:, None] - f * shares(space, archs).to(q.device) * pen[:, None]
    else:
        adv = (gain - pen)[:, None].expand(n, f).clone()
    return adv.to(_out_dtype(q))


def _penalty(
    costs: torch.Tensor, budget: float, *, lam: float, mu: float, c_max: float | None
) -> torch.Tensor:
    """P(α) = λ·over(α) + μ·C(α)/C_max, float64 [N] (the global term both modes share)."""
    if not (math.isfinite(lam) and lam >= 0) or not (math.isfinite(mu) and mu >= 0):
        raise ConfigError(f"penalty: lambda ({lam}) and mu ({mu}) must be finite and >= 0")
    pen = lam * overage(costs, budget)
    if mu > 0:
        if c_max is None:
            raise ConfigError("penalty: mu > 0 needs c_max (e.g. the search space's max_cost())")
        _check_positive("c_max", c_max)
        pen = pen + mu * costs.to(torch.float64) / float(c_max)
    return pen


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"penalty: {name} must be a positive number of parameters, got {value!r}")


def _check_shapes(quality: torch.Tensor, n: int) -> None:
    # Shape mismatches are caller bugs, not user input: a plain ValueError, raised early.
    if quality.dim() != 1 or quality.shape[0] != n:
        raise ValueError(f"quality {tuple(quality.shape)} must be [N], one per architecture (N={n})")


def _out_dtype(quality: torch.Tensor) -> torch.dtype:
    return quality.dtype if quality.is_floating_point() else torch.float64
