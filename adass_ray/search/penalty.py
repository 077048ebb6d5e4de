"""The stage-2 objective (DESIGN.md §2.3, v2): quality through REINFORCE, cost exactly.

The policy π minimises, in ``mode="budget"``,

    L = −E_π[Q]/σ + λ_b·h(E_π[C]/B),    h(x) = |x − 1|  (``h="abs"``)  or  x − 1  (``h="dual"``,
                                                          with λ_b raised by dual ascent),

and in ``mode="tradeoff"`` (the λ sweep) L = −(E_π[Q] − λ·E_π[C]/B)/σ, every proposal repaired to
C ≤ B first in both modes. Q's gradient is the REINFORCE estimate with a leave-one-out batch
baseline b_i = mean of the other N − 1 rewards, divided by σ = the batch standard deviation of Q
plus ``eps``; the cost term E_π[C] = Σ_f V_f Σ_k p_{f,k}·s_k is exact and differentiable in the
policy's probabilities, so each field's gradient carries its own expected cost (the resource
competition) without sampling noise (for the LSTM controller the probabilities are those along
its greedy path, an approximation of its marginals). Dividing the cost term of the trade-off by
the same σ keeps λ in units of Q per unit of C/B. ``competition=False`` is the ablation: the
cost term goes through REINFORCE on the raw proposals' sampled costs, shared by every field.

Arithmetic is float64 (costs are exact ints that can reach 1e10).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from adass_ray.errors import ConfigError
from adass_ray.search.space import SearchSpace

TensorLike = Tensor | Sequence[float]
MODES = ("budget", "tradeoff")
H_KINDS = ("abs", "dual")


def overage(costs: Tensor | Sequence[int], budget: float) -> Tensor:
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


def loo_baseline(rewards: TensorLike) -> Tensor:
    """Leave-one-out baseline b_i = (Σ_j r_j − r_i)/(N − 1).

    Args:
        rewards: [N] rewards, N >= 2.

    Returns:
        float64 tensor [N].

    Raises:
        ValueError: fewer than two rewards, or a non-finite one.
    """
    r = _vector(rewards)
    if r.numel() < 2:
        raise ValueError(f"a leave-one-out baseline needs >= 2 rewards, got {r.numel()}")
    return (r.sum() - r) / (r.numel() - 1)


def reward_scale(rewards: TensorLike, eps: float) -> float:
    """σ = the batch standard deviation (unbiased) of ``rewards`` plus ``eps`` (> 0).

    Raises:
        ValueError: fewer than two rewards, a non-finite one, or ``eps <= 0``.
    """
    r = _vector(rewards)
    if r.numel() < 2 or not eps > 0:
        raise ValueError(f"reward scale needs >= 2 rewards and eps > 0 (got {r.numel()}, {eps})")
    return float(r.std()) + float(eps)


def standardised_advantages(rewards: TensorLike, eps: float = 1e-4,
                            scale: float | None = None) -> Tensor:
    """A_i = (r_i − b_i)/σ with the leave-one-out baseline b_i.

    Args:
        rewards: [N] rewards, N >= 2.
        eps: added to the batch standard deviation (in reward units), when ``scale`` is None.
        scale: σ to divide by instead of :func:`reward_scale`.

    Returns:
        float64 tensor [N]; all zeros when every reward is equal.

    Raises:
        ValueError: as :func:`loo_baseline`, or a non-positive scale.
    """
    r = _vector(rewards)
    sigma = reward_scale(r, eps) if scale is None else float(scale)
    if not sigma > 0:
        raise ValueError(f"advantage scale must be > 0, got {sigma}")
    return (r - loo_baseline(r)) / sigma


def expected_cost(probs: Tensor, space: SearchSpace) -> Tensor:
    """E_π[C] = Σ_f V_f Σ_k p_{f,k}·s_k, differentiable in ``probs``.

    Args:
        probs: [F, K] per-field candidate probabilities (rows sum to 1).
        space: the search space (V_f, s_k).

    Returns:
        A float64 scalar tensor.

    Raises:
        ValueError: ``probs`` is not [F, K].
    """
    f, k = space.num_fields, space.num_candidates
    if probs.shape != (f, k):
        raise ValueError(f"probs must be [{f}, {k}], got {tuple(probs.shape)}")
    sizes = torch.tensor(space.candidate_sizes, dtype=torch.float64, device=probs.device)
    vocab = torch.tensor(space.vocab_sizes, dtype=torch.float64, device=probs.device)
    return (probs.to(torch.float64) @ sizes * vocab).sum()


def budget_term(ratio: Tensor, h: str = "abs") -> Tensor:
    """h(x) for x = E[C]/B: ``abs`` is |x − 1| (two-sided), ``dual`` is x − 1 (Lagrangian).

    Raises:
        ConfigError: an unknown ``h``.
    """
    if h == "abs":
        return (ratio - 1.0).abs()
    if h == "dual":
        return ratio - 1.0
    raise ConfigError(f"budget term h={h!r}: expected one of {list(H_KINDS)}")


def tradeoff_reward(quality: TensorLike, costs: Tensor | Sequence[int], budget: float,
                    lam: float) -> Tensor:
    """R(α) = Q(α) − λ·C(α)/B, the sweep's reward and selection score.

    Args:
        quality: [N] Q. costs: [N] C. budget: B > 0. lam: λ >= 0 (Q units per unit of C/B).

    Returns:
        float64 tensor [N].

    Raises:
        ConfigError: a bad budget or a negative λ.
    """
    _check_positive("budget", budget)
    if not (math.isfinite(lam) and lam >= 0):
        raise ConfigError(f"lambda must be finite and >= 0, got {lam}")
    q = torch.as_tensor(quality, dtype=torch.float64)
    return q - lam * torch.as_tensor(costs).to(torch.float64) / float(budget)


@dataclass(frozen=True)
class Objective:
    """The policy loss of one update (see the module docstring).

    Attributes:
        mode: ``budget`` or ``tradeoff``. lam: λ of the trade-off (Q per unit of C/B).
        budget_weight: λ_b of the budget term (for ``h="dual"``: its starting value).
        h: ``abs`` or ``dual``. eps: added to σ (Q units). competition: exact cost term (True)
            or its REINFORCE estimate, shared by the fields (False, the ablation).
    """

    mode: str = "budget"
    lam: float = 0.0
    budget_weight: float = 1.0
    h: str = "abs"
    eps: float = 1e-4
    competition: bool = True

    def __post_init__(self) -> None:
        ok = (self.mode in MODES and self.h in H_KINDS and self.eps > 0
              and min(self.lam, self.budget_weight) >= 0
              and math.isfinite(self.lam + self.budget_weight + self.eps))
        if not ok:
            raise ConfigError(f"objective mode={self.mode!r} h={self.h!r} lam={self.lam} "
                              f"budget_weight={self.budget_weight} eps={self.eps}: expected mode "
                              f"in {list(MODES)}, h in {list(H_KINDS)}, finite weights >= 0")

    def loss(self, *, space: SearchSpace, budget: int, quality: Tensor, logp: Tensor,
             probs: Tensor, raw_logp: Tensor, raw_costs: Tensor, lam_b: float | None = None,
             use_quality: bool = True) -> tuple[Tensor, dict[str, float]]:
        """The loss to minimise and a few numbers to log.

        Args:
            space, budget: the space and B. quality: [N] Q of the repaired (scored) archs.
            logp: [N] log π of the repaired archs (differentiable; they get Q's credit).
            probs: [F, K] differentiable marginals for E_π[C].
            raw_logp, raw_costs: [N] log π and C of the raw proposals (the ablation's term).
            lam_b: the current budget weight (dual ascent), default ``budget_weight``.
            use_quality: False drops the Q term (the RL warm-up's cost-only update).

        Returns:
            ``(loss, {"sigma", "expected_cost_ratio"})``.
        """
        sigma = reward_scale(quality, self.eps)
        adv = standardised_advantages(quality, scale=sigma).to(logp.dtype)
        q_term = -(adv.detach() * logp).mean() if use_quality else logp.sum() * 0.0
        ratio = expected_cost(probs, space) / float(budget)
        weight = self.lam / sigma if self.mode == "tradeoff" else (
            self.budget_weight if lam_b is None else lam_b)
        if self.competition:
            cost = ratio if self.mode == "tradeoff" else budget_term(ratio, self.h)
        else:
            x = raw_costs.to(torch.float64) / float(budget)
            y = x if self.mode == "tradeoff" else budget_term(x, self.h)
            cost_adv = (y - loo_baseline(y)).detach()
            cost = (cost_adv * raw_logp.to(torch.float64)).mean()
        loss = q_term.to(torch.float64) + weight * cost
        return loss, {"sigma": sigma, "expected_cost_ratio": float(ratio.detach())}


def _vector(x: TensorLike) -> Tensor:
    r = torch.as_tensor(x, dtype=torch.float64).detach().flatten()
    if not bool(torch.isfinite(r).all()):
        raise ValueError("rewards must be finite")
    return r


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"penalty: {name} must be a positive number of parameters, got {value!r}")
