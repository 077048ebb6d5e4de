"""Shared helpers of the samplers: option checks, the observe statistics, EMAs, checkpoints.

Everything here is private to :mod:`adass_ray.sampling`. State lives on the CPU in float64 (or
int64 for counts); samples are drawn on ``generator.device``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from adass_ray.errors import ConfigError

Reduce = Callable[[Tensor], Tensor]
ScoreFn = Callable[[Tensor], Tensor]
F64 = torch.float64


def check_real(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
               hi_open: bool = False) -> float:
    """Check a real option against an interval (NaN-safe).

    Args:
        name: option name, for the message.
        value: the value given.
        lo, hi: interval bounds.
        lo_open, hi_open: whether each bound is excluded.

    Returns:
        ``value`` as a float.

    Raises:
        ConfigError: not a number, or outside the interval.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = (ok and (value > lo if lo_open else value >= lo)
          and (value < hi if hi_open else value <= hi))
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"sampler option {name} must be a number in {interval}, got {value!r}")
    return float(value)


def check_int(name: str, value: Any, lo: int) -> int:
    """Check an integer option ``>= lo``.

    Args:
        name: option name, for the message.
        value: the value given (bool is refused).
        lo: smallest allowed value.

    Returns:
        ``value``.

    Raises:
        ConfigError: not an integer, or below ``lo``.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise ConfigError(f"sampler option {name} must be an integer >= {lo}, got {value!r}")
    return value


def check_ints(name: str, values: Any, lo: int) -> tuple[int, ...]:
    """Check a non-empty sequence of integers ``>= lo``.

    Args:
        name: option name, for the message.
        values: the sequence given.
        lo: smallest allowed element.

    Returns:
        The elements as a tuple.

    Raises:
        ConfigError: not a non-empty sequence of such integers.
    """
    ok = isinstance(values, Sequence) and not isinstance(values, str) and len(values) > 0
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v >= lo
                         for v in values):
        raise ConfigError(f"sampler option {name} must be a non-empty list of integers >= {lo}, "
                          f"got {values!r}")
    return tuple(values)


def check_flag(name: str, value: Any) -> bool:
    """Check a boolean option.

    Raises:
        ConfigError: not a bool.
    """
    if not isinstance(value, bool):
        raise ConfigError(f"sampler option {name} must be true or false, got {value!r}")
    return value


class WarmupMixin:
    """Warm-up as a fraction of the run, or a fixed step count (DESIGN.md §2.2).

    Subclasses set ``warmup_steps`` (``None`` or an int >= 0), ``warmup_frac``, ``_steps`` and
    ``_total_steps`` (``None`` until :meth:`set_total_steps`).
    """

    warmup_steps: int | None
    warmup_frac: float
    _steps: int
    _total_steps: int | None

    def set_total_steps(self, total_steps: int) -> None:
        """Tell the sampler how many training steps (``observe`` calls) the whole run has.

        Args:
            total_steps: the run's planned steps over all epochs (>= 1), counted from step 0 even
                when resuming; fractions of the run (warm-up, ramp) are taken of it.

        Raises:
            ConfigError: ``total_steps`` is not an integer >= 1.
        """
        self._total_steps = check_int("total_steps", total_steps, 1)

    @property
    def total_steps(self) -> int | None:
        """Steps of the whole run, or None while unknown."""
        return self._total_steps

    def warmup_length(self) -> int | None:
        """Steps of warm-up: ``warmup_steps`` when set, else ``ceil(warmup_frac · total)``.

        Returns:
            The count, or None (warm-up lasts forever) while the total is unknown.
        """
        if self.warmup_steps is not None:
            return self.warmup_steps
        if self._total_steps is None:
            return None
        return math.ceil(self.warmup_frac * self._total_steps)

    def warmed_up(self) -> bool:
        """Whether the warm-up is over at the current step count."""
        length = self.warmup_length()
        return length is not None and self._steps >= length


def save_state(sampler: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """Snapshot ``name``, the step counters and the tensors ``_<key>`` (cloned).

    Args:
        sampler: a sampler with ``name``, ``_steps`` and optionally ``_total_steps``.
        keys: tensor attribute names without the leading underscore.

    Returns:
        A dict of plain values and CPU tensors (no callables, no generators).
    """
    return {"name": sampler.name, "steps": sampler._steps,
            "total_steps": getattr(sampler, "_total_steps", None),
            **{k: getattr(sampler, "_" + k).clone() for k in keys}}


def load_state(sampler: Any, state: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """Load ``keys`` after checking every tensor matches this sampler (a pool's length may vary).

    A total step count already set on ``sampler`` (by :meth:`WarmupMixin.set_total_steps`) is
    kept; otherwise the saved one (if any) is taken.

    Args:
        sampler: the sampler to fill.
        state: what :func:`save_state` returned.
        keys: tensor attribute names without the leading underscore.

    Raises:
        ConfigError: another sampler, or tensors of other shapes (other fields or sizes).
    """
    def fits(k: str) -> bool:
        got, cur = state.get(k), getattr(sampler, "_" + k)
        skip = 1 if k.startswith("pool") else 0
        return isinstance(got, Tensor) and got.shape[skip:] == cur.shape[skip:]

    if state.get("name") != sampler.name or "steps" not in state or not all(map(fits, keys)):
        raise ConfigError(f"sampler checkpoint ({state.get('name')!r}) does not match this run "
                          f"({sampler.name!r}, F={sampler.num_fields}, K={sampler.num_candidates});"
                          " resume with the sampler, fields and sizes it was saved with")
    sampler._steps = int(state["steps"])
    saved_total = state.get("total_steps")
    if getattr(sampler, "_total_steps", None) is None and saved_total is not None:
        sampler._total_steps = int(saved_total)
    for k in keys:
        cur = getattr(sampler, "_" + k)
        setattr(sampler, "_" + k, state[k].detach().to("cpu", cur.dtype).clone())


def uniform_arch(batch_size: int, f: int, k: int, generator: torch.Generator) -> Tensor:
    """Return ``[batch_size, f]`` int64 indices uniform over ``0..k-1`` on ``generator.device``."""
    return torch.randint(k, (batch_size, f), generator=generator, device=generator.device)


def pack_stats(arch: Tensor, row_loss: Tensor, grad: Tensor | None, f: int, k: int) -> Tensor:
    """Pack ``[loss sums F·K | row counts F·K | grad norms F | grad flag 1]`` (float64).

    Rows with a non-finite loss are left out, so one diverging row cannot poison the EMAs. On CUDA
    ``index_add_`` sums in arbitrary order (workers still agree: they share the reduced tensor);
    ``torch.use_deterministic_algorithms`` makes it bitwise reproducible run to run.

    Args:
        arch: ``[B, F]`` int64 paths.
        row_loss: ``[B]`` per-row loss.
        grad: ``[F]`` gradient norm per field, or None.
        f: F.
        k: K.

    Returns:
        ``[2·F·K + F + 1]`` float64 on ``row_loss.device``.

    Raises:
        ValueError: shapes do not match.
    """
    if (arch.dim() != 2 or arch.shape[1] != f or tuple(row_loss.shape) != (arch.shape[0],)
            or (grad is not None and grad.numel() != f)):
        raise ValueError(f"expected arch [B, {f}], row_loss [B], field_grad_norm [{f}]; got "
                         f"{tuple(arch.shape)}, {tuple(row_loss.shape)}, "
                         f"{None if grad is None else tuple(grad.shape)}")
    dev = row_loss.device
    loss = row_loss.detach().to(F64)
    ok = torch.isfinite(loss)
    loss = torch.where(ok, loss, torch.zeros_like(loss))
    cell = (arch.to(dev) + torch.arange(f, device=dev) * k).reshape(-1)  # row-major [B*F]
    zeros = torch.zeros(2, f * k, dtype=F64, device=dev)
    sums = zeros[0].index_add_(0, cell, loss.repeat_interleave(f))
    counts = zeros[1].index_add_(0, cell, ok.to(F64).repeat_interleave(f))
    flag = torch.full((1,), float(grad is not None), dtype=F64, device=dev)
    g = torch.zeros(f, dtype=F64, device=dev) if grad is None else grad.detach().to(dev, F64)
    return torch.cat([sums, counts, g.reshape(f), flag])


def ema(old: Tensor, new: Tensor, gamma: float, mask: Tensor | None = None) -> Tensor:
    """One EMA step where ``mask`` (default: everywhere); an unset (NaN) entry starts at ``new``.

    Args:
        old: current EMA, any shape, NaN where unset.
        new: the new observation, same shape.
        gamma: decay in [0, 1).
        mask: bool, same shape, or None.

    Returns:
        The updated EMA, same shape.
    """
    blended = torch.where(torch.isnan(old), new, gamma * old + (1.0 - gamma) * new)
    return blended if mask is None else torch.where(mask, blended, old)
