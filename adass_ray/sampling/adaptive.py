"""Adaptive Sampling v2 (DESIGN.md §2.2): a base that trains every candidate, plus ES and FS.

A step of ``n`` rows is laid out as (then the rows are shuffled):

- sandwich rows: ``sandwich_rows`` all-smallest (smallest size that keeps the field) and as many
  all-largest, at most ``n // 8`` each;
- budget-region rows: ``round(budget_frac · n)`` uniform paths repaired into ``[low·B, B]``
  (:func:`adass_ray.sampling.base.budget_region`); only when the candidate sizes are known;
- mixed rows, the rest: per field f, ``m_f`` of the entries are drawn from the ES distribution
  ``q_f`` and the others are a balanced assignment
  (:func:`adass_ray.sampling.base.balanced_mix_from`).

``m_f = adaptive_share · ρ_f · ramp``: FS decides how much of field f follows ES, never sending a
field to a fixed size. ``ρ_f = clip(ρ·w_f/mean(w), ρ_min, 1)``, ``w`` the EMA of the gradient
norm at each field's unified output. ``ramp`` is 0 during the warm-up, then rises linearly to 1
over ``ramp_frac`` of the run. So every candidate keeps at least
``(1 - adaptive_share)/K`` of the mixed rows, i.e. ``(1 - budget_frac)(1 - adaptive_share)/K`` of
all rows up to the sandwich rows (0.525/K with the defaults).

ES: ``q_f(s) = (1-ε)·softmax_s(z_{f,s}/τ) + ε/K``. Our choice of ``z`` (the design asks only that
a candidate be compared with its own trend): each candidate keeps a fast (``gamma_fast``) and a
slow (``gamma``) EMA of the mean loss of the rows that used it; its trend is the relative gap
``t = (fast - slow)/|slow|`` (> 0: its loss rises against its own history; < 0: still improving).
The drift every candidate shares (the whole model improving: the same EMAs of the step's mean
loss give ``t_all``) is removed, and ``dev = |t - t_all|`` — a candidate improving faster than the
model or falling behind it — is standardised across the field's candidates into ``z``. Loss levels
never enter: a small size with a higher but stable loss draws no extra rows. A candidate never
observed takes its field's largest ``dev``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from adass_ray.errors import ConfigError
from adass_ray.sampling._common import (
    F64,
    Reduce,
    WarmupMixin,
    check_flag,
    check_int,
    check_real,
    ema,
    load_state,
    pack_stats,
    save_state,
)
from adass_ray.sampling.ahead import DrawAhead
from adass_ray.sampling.base import (
    PathSpace,
    balanced_mix_draws,
    balanced_mix_from,
    budget_region,
)

logger = logging.getLogger(__name__)

#: Where an entry of a sampled path came from (see :meth:`AdaptiveSampler.sample_with_source`).
BALANCED, ADAPTIVE, SANDWICH, BUDGET = 0, 1, 2, 3


class _Draws(NamedTuple):
    """A step's random numbers (see :meth:`AdaptiveSampler._draws`)."""

    budget: Tensor | None  # [n_bud, F] budget-region paths (they use no statistics)
    u: Tensor  # [F, n_mix] uniforms for the ES inverse CDF
    jitter: Tensor  # [F] rounding of each field's adaptive count
    offset: Tensor  # [F, 1] balanced assignment's offsets
    perm: Tensor  # [F, n_mix] one shuffle per field
    order: Tensor  # [B] the rows' shuffle


def inverse_cdf(cdf: Tensor, u: Tensor) -> Tensor:
    """Per row of ``cdf [F, K-1]`` (nondecreasing cut points), how many lie at or below each of
    ``u [F, n]``: int64 ``[F, n]``, what ``torch.searchsorted(cdf, u, right=True)`` returns. K - 1
    comparisons are several times faster than ``searchsorted`` on a CPU for small K."""
    cuts = cdf.shape[1]
    if cuts > 255:  # the counts would not fit the narrow accumulator
        return torch.searchsorted(cdf, u, right=True)
    fill = torch.zeros(u.shape, dtype=torch.uint8, device=u.device)
    for j in range(cuts):
        fill += cdf[:, j : j + 1] <= u
    return fill.long()


def _trend(fast: Tensor, slow: Tensor) -> Tensor:
    """Return ``(fast - slow)/|slow|`` elementwise (0 where ``slow`` is unset or 0)."""
    gap = (fast - slow) / slow.abs()
    return torch.where(torch.isfinite(gap), gap, 0.0)


class AdaptiveSampler(WarmupMixin):
    """Balanced base + sandwich + budget region, with ES and FS on top (DESIGN.md §2.2).

    See the module docstring for the layout of a step and the ES signal. State (all CPU, all
    reduced across workers before it changes): slow and fast loss EMAs ``[F, K]`` and of the step's
    mean loss ``[2]``, the gradient norm EMA ``[F]``, visits ``[F, K]`` int64, the step count and
    the run length.

    Args:
        num_fields: F (or None with ``vocab_sizes``).
        num_candidates: K (or None with ``candidate_sizes``).
        candidate_sizes: the K sizes, strictly increasing, 0 allowed first (= drop). None: costs
            unknown, so no budget-region rows (their share goes to the mixed rows).
        vocab_sizes: ``V_f`` per field; None: all ones.
        d_base: uniform baseline size; budgets are ``budget_ratios · d_base · Σ_f V_f``.
        tau: softmax temperature (> 0). Default 1.
        epsilon: uniform mixing of ``q`` in [0, 1]. Default 0.1.
        gamma: slow loss-EMA decay in [0, 1). Default 0.99 (a ~100-step memory).
        gamma_fast: fast loss-EMA decay in [0, 1). Default 0.9 (a ~10-step memory).
        grad_gamma: gradient-norm EMA decay in [0, 1); None uses ``gamma``.
        warmup_steps: observations of balanced base only; None (default) takes ``warmup_frac``
            of the run told by ``set_total_steps`` (base only until then). Overrides the fraction.
        warmup_frac: warm-up as a fraction of the run, in [0, 1]. Default 0.1.
        ramp_frac: after the warm-up, ``m_f`` rises linearly over this fraction of the run, in
            [0, 1]. Default 0.1 (0, or an unknown run length: no ramp).
        rho: mean FS rate (>= 0). Default 0.5.
        rho_min: floor of ``ρ_f`` in [0, 1]. Default 0.1.
        adaptive_share: largest share of a field's mixed entries drawn from ES, in [0, 1].
            Default 0.3.
        sandwich_rows: all-smallest rows per step, and as many all-largest (>= 0). Default 2.
        budget_frac: share of a step's rows in the budget region, in [0, 1]. Default 0.25.
        budget_ratios: budgets as fractions of the uniform ``d_base`` cost (> 0).
            Default (0.25, 0.5, 0.8).
        budget_low: the region's lower edge as a fraction of B, in [0, 1]. Default 0.7.
        es: False makes ``q`` uniform (FS-only ablation).
        fs: False sets ``ρ_f = 1`` for every field (ES-only ablation).

    Raises:
        ConfigError: a constant out of range, or inconsistent fields and sizes.
    """

    name = "adaptive"
    _KEYS = ("loss_ema", "loss_fast", "loss_all", "grad_ema", "visits")

    def __init__(self, num_fields: int | None = None, num_candidates: int | None = None, *,
                 candidate_sizes: Sequence[int] | None = None,
                 vocab_sizes: Sequence[int] | None = None, d_base: int = 16,
                 tau: float = 1.0, epsilon: float = 0.1, gamma: float = 0.99,
                 gamma_fast: float = 0.9, grad_gamma: float | None = None,
                 warmup_steps: int | None = None, warmup_frac: float = 0.1,
                 ramp_frac: float = 0.1, rho: float = 0.5, rho_min: float = 0.1,
                 adaptive_share: float = 0.3, sandwich_rows: int = 2, budget_frac: float = 0.25,
                 budget_ratios: Sequence[float] = (0.25, 0.5, 0.8), budget_low: float = 0.7,
                 es: bool = True, fs: bool = True) -> None:
        self.space = PathSpace(num_fields, num_candidates, candidate_sizes=candidate_sizes,
                               vocab_sizes=vocab_sizes, d_base=d_base)
        self.num_fields = f = self.space.num_fields
        self.num_candidates = k = self.space.num_candidates
        self.tau = check_real("tau", tau, 0.0, math.inf, lo_open=True, hi_open=True)
        self.epsilon = check_real("epsilon", epsilon, 0.0, 1.0)
        self.gamma = check_real("gamma", gamma, 0.0, 1.0, hi_open=True)
        self.gamma_fast = check_real("gamma_fast", gamma_fast, 0.0, 1.0, hi_open=True)
        self.grad_gamma = check_real("grad_gamma", gamma if grad_gamma is None else grad_gamma,
                                     0.0, 1.0, hi_open=True)
        self.warmup_steps = None if warmup_steps is None else check_int(
            "warmup_steps", warmup_steps, 0)
        self.warmup_frac = check_real("warmup_frac", warmup_frac, 0.0, 1.0)
        self.ramp_frac = check_real("ramp_frac", ramp_frac, 0.0, 1.0)
        self.rho = check_real("rho", rho, 0.0, math.inf, hi_open=True)
        self.rho_min = check_real("rho_min", rho_min, 0.0, 1.0)
        self.adaptive_share = check_real("adaptive_share", adaptive_share, 0.0, 1.0)
        self.sandwich_rows = check_int("sandwich_rows", sandwich_rows, 0)
        self.budget_frac = check_real("budget_frac", budget_frac, 0.0, 1.0)
        self.budget_low = check_real("budget_low", budget_low, 0.0, 1.0)
        if (isinstance(budget_ratios, (str, bytes)) or not isinstance(budget_ratios, Sequence)
                or not budget_ratios):
            raise ConfigError(f"sampler option budget_ratios must be a non-empty list of numbers "
                              f"> 0, got {budget_ratios!r}")
        self.budget_ratios = tuple(check_real("budget_ratios", r, 0.0, math.inf, lo_open=True,
                                              hi_open=True) for r in budget_ratios)
        self.es, self.fs = check_flag("es", es), check_flag("fs", fs)
        self._loss_ema = torch.full((f, k), torch.nan, dtype=F64)  # slow
        self._loss_fast = torch.full((f, k), torch.nan, dtype=F64)
        self._loss_all = torch.full((2,), torch.nan, dtype=F64)  # (slow, fast) of the step mean
        self._grad_ema = torch.full((f,), torch.nan, dtype=F64)
        self._visits = torch.zeros(f, k, dtype=torch.long)
        self._steps = 0
        self._total_steps: int | None = None
        self._ahead: DrawAhead[_Draws] | None = None

    # -- the distributions ---------------------------------------------------------------------

    def es_distribution(self) -> Tensor:
        """Return ``q`` ``[F, K]`` float64: the law of an adaptive entry (uniform in warm-up)."""
        f, k = self.num_fields, self.num_candidates
        if not self.es or not self.warmed_up():
            return torch.full((f, k), 1.0 / k, dtype=F64)
        slow, fast = self._loss_ema, self._loss_fast
        seen = ~torch.isnan(slow)
        trend = _trend(fast, slow)
        drift = _trend(self._loss_all[1], self._loss_all[0])
        dev = torch.where(seen, (trend - drift).abs(), -torch.inf)
        worst = torch.where(seen.any(1, keepdim=True), dev.amax(1, keepdim=True), 0.0)
        dev = torch.where(seen, dev, worst)
        mean, std = dev.mean(1, keepdim=True), dev.std(1, keepdim=True, correction=0)
        z = torch.where(std > 0, (dev - mean) / std.clamp_min(1e-300), 0.0)
        return (1.0 - self.epsilon) * torch.softmax(z / self.tau, 1) + self.epsilon / k

    def resample_prob(self) -> Tensor:
        """Return ``ρ`` ``[F]`` float64: ``clip(ρ·w_f/mean(w), ρ_min, 1)`` (``ρ`` before a norm)."""
        w, ones = self._grad_ema, torch.ones(self.num_fields, dtype=F64)
        if not self.fs:
            return ones
        ratio = w / w.mean() if not torch.isnan(w).any() and w.mean() > 0 else ones
        return (self.rho * ratio).clamp(self.rho_min, 1.0)

    def ramp(self) -> float:
        """Return the schedule factor in [0, 1]: 0 in warm-up, then linear over ``ramp_frac``."""
        warmup = self.warmup_length()
        if warmup is None or self._steps < warmup:
            return 0.0
        length = 0 if self._total_steps is None else math.ceil(self.ramp_frac * self._total_steps)
        return 1.0 if length == 0 else min(1.0, (self._steps - warmup + 1) / length)

    def mix_share(self) -> Tensor:
        """Return ``m`` ``[F]`` float64: share of each field's mixed entries drawn from ES."""
        return self.adaptive_share * self.ramp() * self.resample_prob()

    def distribution(self) -> Tensor:
        """Return ``[F, K]`` float64: the marginal of the mixed rows, ``(1-m_f)/K + m_f·q_f``.

        Sandwich and budget-region rows are left out; :meth:`visits` counts every row.
        """
        m = self.mix_share()[:, None]
        return (1.0 - m) / self.num_candidates + m * self.es_distribution()

    def visits(self) -> Tensor:
        """Return ``[F, K]`` int64: rows (finite loss, all workers) that used each candidate."""
        return self._visits.clone()

    # -- sampling ------------------------------------------------------------------------------

    def layout(self, batch_size: int) -> tuple[int, int, int]:
        """Return rows per part of a step: ``(sandwich each, budget region, mixed)``."""
        n_sw = min(self.sandwich_rows, batch_size // 8)
        n_bud = 0
        if self.space.known:
            n_bud = min(math.floor(self.budget_frac * batch_size + 0.5), batch_size - 2 * n_sw)
        return n_sw, n_bud, batch_size - 2 * n_sw - n_bud

    def sample(self, batch_size: int, *, generator: torch.Generator,
               next_generator: torch.Generator | None = None) -> Tensor:
        """Return ``[batch_size, F]`` int64 candidate indices on ``generator.device``."""
        return self.sample_with_source(batch_size, generator=generator,
                                       next_generator=next_generator)[0]

    def sample_with_source(self, batch_size: int, *, generator: torch.Generator,
                           next_generator: torch.Generator | None = None
                           ) -> tuple[Tensor, Tensor]:
        """Draw a step's paths and say where each entry came from.

        Args:
            batch_size: rows (>= 0).
            generator: the only source of randomness; paths are drawn on its device.
            next_generator: the generator the next step will be given, when it is not this one
                carried on (the training loop seeds one per step); with :meth:`draw_ahead`, the
                next step's draws start from its state. Never advanced here.

        Returns:
            ``arch [batch_size, F]`` int64 and ``source [batch_size, F]`` int8, each entry one of
            ``BALANCED``, ``ADAPTIVE``, ``SANDWICH``, ``BUDGET``; both on ``generator.device``.
        """
        draws = self._ahead.take(batch_size, generator) if self._ahead is not None else None
        if draws is None:
            draws = self._draws(batch_size, generator)
        if self._ahead is not None:  # the next step's draws begin where this generator stands
            self._ahead.start(batch_size, generator if next_generator is None else next_generator)
        dev, f, k = generator.device, self.num_fields, self.num_candidates
        n_sw, n_bud, n_mix = self.layout(batch_size)
        parts, sources = [], []
        for index in (self.space.smallest, self.space.largest):
            parts.append(torch.full((n_sw, f), index, dtype=torch.long, device=dev))
            sources.append(torch.full((n_sw, f), SANDWICH, dtype=torch.int8, device=dev))
        if draws.budget is not None:
            parts.append(draws.budget)
            sources.append(torch.full((n_bud, f), BUDGET, dtype=torch.int8, device=dev))
        cdf = self.es_distribution().cumsum(1)[:, :-1].to(dev).contiguous()  # [F, K-1]
        fill = inverse_cdf(cdf, draws.u)
        n_fill = (self.mix_share().to(dev) * n_mix + draws.jitter).floor().long().clamp(0, n_mix)
        mixed, adaptive = balanced_mix_from(fill, n_fill, k, draws.offset, draws.perm)
        parts.append(mixed)
        sources.append(torch.where(adaptive, ADAPTIVE, BALANCED).to(torch.int8))
        return torch.cat(parts)[draws.order], torch.cat(sources)[draws.order]

    def _draws(self, batch_size: int, generator: torch.Generator) -> _Draws:
        """Every random number a step of ``batch_size`` rows uses, in the order drawn; they
        depend on nothing but the batch size (which is what lets :meth:`draw_ahead` work)."""
        dev, f, k = generator.device, self.num_fields, self.num_candidates
        _, n_bud, n_mix = self.layout(batch_size)
        budget = None
        if n_bud:
            ratios = torch.tensor(self.budget_ratios, dtype=F64)
            budget = budget_region(n_bud, self.space, ratios, self.budget_low, generator)[0]
        u = torch.rand((f, n_mix), generator=generator, device=dev, dtype=F64)
        jitter = torch.rand(f, generator=generator, device=dev, dtype=F64)
        offset, perm = balanced_mix_draws(f, n_mix, k, generator)
        order = torch.randperm(batch_size, generator=generator, device=dev)
        return _Draws(budget, u, jitter, offset, perm, order)

    def draw_ahead(self, on: bool = True) -> None:
        """Draw the next step's random numbers on a worker thread while this step runs.

        The paths are the same with it or without it (:mod:`adass_ray.sampling.ahead`). For
        GPU training, where the host's draws hold the step up; off by default, since on a CPU
        the thread takes cores from the step itself.
        """
        if on and self._ahead is None:
            self._ahead = DrawAhead(self._draws)
        elif not on:
            self._ahead = None

    # -- learning ------------------------------------------------------------------------------

    def observe(self, arch: Tensor, row_loss: Tensor, field_grad_norm: Tensor | None,
                *, reduce: Reduce | None = None) -> None:
        """Update the loss and gradient-norm EMAs and the visit counts from one step.

        Args:
            arch: ``[B, F]`` int64 paths the rows used.
            row_loss: ``[B]`` per-row loss.
            field_grad_norm: ``[F]`` gradient norm at each field's unified output, or None.
            reduce: called exactly once with the packed 1-D float64 statistics
                ``[loss sums F·K | row counts F·K | grad norms F | grad flag 1]`` on
                ``row_loss.device``; its output updates the state (a summing all-reduce: visits
                count every worker's rows). None is the identity.

        Raises:
            ValueError: shapes do not match ``[B, F]`` / ``[B]`` / ``[F]``.
        """
        f, k = self.num_fields, self.num_candidates
        packed = pack_stats(arch, row_loss, field_grad_norm, f, k)
        packed = (packed if reduce is None else reduce(packed)).detach().to("cpu", F64)
        sums, counts = packed[: f * k].view(f, k), packed[f * k : 2 * f * k].view(f, k)
        used = counts > 0
        mean = sums / torch.where(used, counts, 1.0)
        self._loss_ema = ema(self._loss_ema, mean, self.gamma, used)
        self._loss_fast = ema(self._loss_fast, mean, self.gamma_fast, used)
        self._visits += counts.round().to(torch.long)
        rows = counts[0].sum()  # every row counts once per field: field 0 sees them all
        if rows > 0:
            step_mean = sums[0].sum() / rows
            gammas = torch.tensor([self.gamma, self.gamma_fast], dtype=F64)
            blended = torch.where(torch.isnan(self._loss_all), step_mean,
                                  gammas * self._loss_all + (1.0 - gammas) * step_mean)
            self._loss_all = blended
        if packed[-1] > 0:
            # Mean over the workers that sent a norm (DDP norms agree, so sum and mean both work).
            grad = packed[2 * f * k : -1] / packed[-1]
            if torch.isfinite(grad).all():
                self._grad_ema = ema(self._grad_ema, grad, self.grad_gamma)
        self._steps += 1
        if self._steps == self.warmup_length() and (self.es or self.fs):
            logger.info("adaptive sampler: warm-up over after %d steps, ES/FS active", self._steps)

    def state_dict(self) -> dict[str, Any]:
        """Return EMAs, visits and step counters (CPU tensors and ints; no generator)."""
        return save_state(self, self._KEYS)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output exactly.

        Raises:
            ConfigError: the state is another sampler's, or of other fields or sizes.
        """
        load_state(self, state, self._KEYS)
