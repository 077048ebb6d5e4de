"""Building blocks shared by the supernet and the stand-alone model (DESIGN.md §2.1).

* the size rules: candidate sizes are positive and increasing, optionally after a leading 0
  (= drop the field), and none exceeds the unified width ``d`` (the capacity rule: with
  ``s > d``, ``E @ W`` spans the same ``V x d`` matrices as ``s = d``);
* the mean-pooled lookup of multi-valued fields;
* the unifier ``LN(E[x] @ W)`` and the initial values of tables and unifier weights.

Sizes 1 and 2 go through the same code as any other size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adass_ray.errors import ConfigError


def capacity_error(what: str, above: Sequence[object], largest: int, d: int) -> ConfigError:
    """The one-line refusal of sizes above the unified width ``d`` (the capacity rule).

    Args:
        what: what holds the sizes, e.g. ``candidate sizes`` or ``stand-alone sizes``.
        above: the offending sizes (or ``field=size`` labels).
        largest: the largest offending size.
        d: the unified width.

    Returns:
        The error to raise: it names the sizes and ``d`` and says what to do.
    """
    return ConfigError(
        f"{what} {', '.join(map(str, above))} exceed the unified width d={d}: a size above d "
        f"costs parameters but adds no capacity (E·W spans the same V×d matrices as size d); "
        f"raise model.d to at least {largest} or drop the sizes above {d}"
    )


def validate_sizes(candidate_sizes: Sequence[int], d: int) -> tuple[int, ...]:
    """Check candidate sizes against the width ``d`` of the unifiers.

    Sizes must be positive and strictly increasing, optionally after a leading 0 (= drop the
    field), and none may exceed ``d`` (the capacity rule, DESIGN.md §2.1).

    Args:
        candidate_sizes: ``(s_1 < ... < s_K)``, optionally starting with 0.
        d: the common width every unifier maps to.

    Returns:
        The sizes as a tuple.

    Raises:
        ConfigError: a one-line message naming the offending values.
    """
    sizes = tuple(candidate_sizes)
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        raise ConfigError(f"embedding width d={d!r}: must be a positive integer")
    positive = sizes[1:] if sizes[:1] == (0,) else sizes
    if not positive:
        raise ConfigError(f"candidate sizes {list(sizes)}: give at least one positive size")
    if any(not isinstance(s, int) or isinstance(s, bool) or s <= 0 for s in positive):
        raise ConfigError(
            f"candidate sizes {list(sizes)}: sizes must be positive integers (0 only first, = drop)"
        )
    if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
        raise ConfigError(f"candidate sizes {list(sizes)}: must be strictly increasing")
    above = [s for s in sizes if s > d]
    if above:
        raise capacity_error("candidate sizes", above, above[-1], d)
    return sizes


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """``t`` on ``device`` without a blocking copy: a CPU tensor goes to CUDA pinned and
    non-blocking (a plain copy would make the host wait for the GPU)."""
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def lookup(flat: Tensor, table: Tensor, *, sparse: bool) -> Tensor:
    """``table[flat]`` (``[..., s]``). A dense lookup on CUDA is an ``index_select``: its
    backward is an atomic ``index_add_``, while ``F.embedding``'s dense CUDA backward reads a
    segment count back to the host (a sync every step). Elsewhere, ``F.embedding``."""
    if flat.is_cuda and not sparse:
        return table.index_select(0, flat.reshape(-1)).view(*flat.shape, table.shape[1])
    return F.embedding(flat, table, sparse=sparse)


def pooled_lookup(table: Tensor, ids: Tensor, offset: Tensor | int, *, sparse: bool) -> Tensor:
    """Mean of a multi-valued field's vectors over its non-padding ids.

    Args:
        table: flat table ``[R, s]``.
        ids: ``[N, L]`` field-local ids, ``-1`` = padding (id 0, the OOV id, is looked up).
        offset: the field's first row in ``table`` (int or 0-d tensor).
        sparse: produce a sparse gradient for ``table``.

    Returns:
        ``[N, s]``; an all-padding row gives a zero vector.
    """
    valid = ids >= 0
    count = valid.sum(dim=1, keepdim=True).clamp_min(1)
    weights = valid.to(table.dtype) / count
    # Padding reads the field's OOV row with weight 0: exact zero contribution and zero gradient.
    flat = torch.where(valid, ids, 0) + offset
    return F.embedding_bag(flat, table, mode="sum", per_sample_weights=weights, sparse=sparse)


def unify(emb: Tensor, proj: Tensor, ln_weight: Tensor, ln_bias: Tensor) -> Tensor:
    """Per-group unifier ``LN(emb @ W)`` with per-group LayerNorm affine.

    Args:
        emb: ``[G, N, s]`` looked-up vectors of G groups (a group = one field's weights).
        proj: ``[G, s, d]``; ln_weight, ln_bias: ``[G, d]``.

    Returns:
        ``[G, N, d]``.
    """
    x = torch.bmm(emb, proj)
    x = F.layer_norm(x, (x.shape[-1],))
    return torch.addcmul(ln_bias.unsqueeze(1), x, ln_weight.unsqueeze(1))


def init_table(table: Tensor) -> None:
    """Initial values of an embedding table (small normal; the unifier's LN fixes the scale)."""
    nn.init.normal_(table, std=0.01)


def init_proj(proj: Tensor) -> None:
    """Initial unifier weights ``[..., s, d]``: variance ``1/s`` keeps ``E @ W`` at E's scale."""
    nn.init.normal_(proj, std=proj.shape[-2] ** -0.5)
