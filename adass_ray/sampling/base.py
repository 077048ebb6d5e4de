"""The base every adaptive draw stands on (DESIGN.md §2.2, item 0), as vectorised tensor code.

- :func:`balanced_mix_from` (its random numbers from :func:`balanced_mix_draws`): per field, an
  equal share of the rows for each candidate (FairNAS-style), optionally with some entries taken
  from an adaptive distribution instead;
- sandwich rows (all-smallest, all-largest), from :class:`PathSpace`;
- :func:`budget_region`: uniform paths repaired into ``[low·B, B]`` for a budget ``B`` drawn per
  row, the region the stage-2 search visits. Cost ``C(α) = Σ_f V_f·size(α_f)``.

The repair here is our own (no import from :mod:`adass_ray.search`): shrink the field with the
largest ``V_f·size`` by one candidate until ``C ≤ B`` (:func:`shrink_to_budget`), then grow rows
left below ``low·B`` towards a random target in ``[low·B, B]`` without passing ``B``: level by
level, in a random field order per row, skipping fields whose next step does not fit
(:func:`grow_towards`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from adass_ray.errors import ConfigError
from adass_ray.sampling._common import F64, check_int, check_ints


class PathSpace:
    """What costs depend on: candidate sizes, vocabulary sizes and the uniform width ``d_base``.

    Args:
        num_fields: F, or None to take ``len(vocab_sizes)``.
        num_candidates: K, or None to take ``len(candidate_sizes)``.
        candidate_sizes: ``(s_1 < ... < s_K)``, 0 allowed first (= drop the field); None when
            unknown (then ``known`` is False, the smallest candidate is index 0 and costs are
            meaningless).
        vocab_sizes: ``V_f`` per field (>= 1); None means all ones.
        d_base: the uniform baseline's size (>= 1); budgets are fractions of ``d_base · Σ_f V_f``.

    Raises:
        ConfigError: inconsistent lengths, sizes not strictly increasing, or bad values.
    """

    def __init__(self, num_fields: int | None, num_candidates: int | None, *,
                 candidate_sizes: Sequence[int] | None = None,
                 vocab_sizes: Sequence[int] | None = None, d_base: int = 16) -> None:
        sizes = None if candidate_sizes is None else check_ints(
            "candidate_sizes", candidate_sizes, 0)
        vocab = None if vocab_sizes is None else check_ints("vocab_sizes", vocab_sizes, 1)
        f = num_fields if num_fields is not None else (None if vocab is None else len(vocab))
        k = num_candidates if num_candidates is not None else (None if sizes is None
                                                               else len(sizes))
        if f is None or k is None:
            raise ConfigError("sampler needs the fields and sizes: give vocab_sizes and "
                              "candidate_sizes (or num_fields and num_candidates)")
        self.num_fields = check_int("num_fields", f, 1)
        self.num_candidates = check_int("num_candidates", k, 1)
        self.d_base = check_int("d_base", d_base, 1)
        if vocab is not None and len(vocab) != f:
            raise ConfigError(f"sampler got {len(vocab)} vocab_sizes for {f} fields")
        if sizes is not None and len(sizes) != k:
            raise ConfigError(f"sampler got {len(sizes)} candidate_sizes for {k} candidates")
        if sizes is not None and any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
            raise ConfigError(f"sampler candidate_sizes {list(sizes)} must be strictly increasing")
        self.known = sizes is not None
        self.candidate_sizes: tuple[int, ...] = sizes or tuple(range(1, k + 1))
        self.vocab_sizes: tuple[int, ...] = vocab or (1,) * f
        positive = [i for i, s in enumerate(self.candidate_sizes) if s > 0]
        # "all-smallest" means the smallest size that keeps the field: a row with every field
        # dropped touches no table at all.
        self.smallest = positive[0] if positive else 0
        self.largest = k - 1
        self.uniform_cost = float(self.d_base * sum(self.vocab_sizes))
        self._sizes = torch.tensor(self.candidate_sizes, dtype=F64)
        self._vocab = torch.tensor(self.vocab_sizes, dtype=F64)

    def tensors(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """Return ``sizes [K]`` and ``vocab [F]`` as float64 on ``device``."""
        return self._sizes.to(device), self._vocab.to(device)

    def cost(self, arch: Tensor) -> Tensor:
        """Return ``C(α) = Σ_f V_f·size(α_f)`` per row.

        Args:
            arch: ``[R, F]`` int64 candidate indices.

        Returns:
            ``[R]`` float64 on ``arch.device`` (exact for costs below 2**53).
        """
        sizes, vocab = self.tensors(arch.device)
        return path_cost(arch, sizes, vocab)


def path_cost(arch: Tensor, sizes: Tensor, vocab: Tensor) -> Tensor:
    """Return ``[R]`` float64 costs of ``arch [R, F]`` given ``sizes [K]`` and ``vocab [F]``."""
    return (sizes[arch] * vocab).sum(1)


def shrink_to_budget(arch: Tensor, budget: Tensor, sizes: Tensor, vocab: Tensor) -> Tensor:
    """Repair rows over budget: shrink the largest consumer by one candidate until ``C ≤ B``.

    The greedy process takes, among fields, the one with the largest ``V_f·size(α_f)``; since a
    field's consumption only falls as it shrinks, its steps come in the merge of every field's
    decreasing sequence of keys ``V_f·s_j`` — one order for all rows, as the keys do not depend on
    the row (a row only decides which of them it can still take). Each row then takes the
    shortest prefix of its available steps whose savings bring it to its budget. Ties go to the
    lower field index. A row whose all-smallest path still exceeds ``B`` ends all-smallest.

    Args:
        arch: ``[R, F]`` int64 candidate indices.
        budget: ``[R]`` float64 budgets.
        sizes: ``[K]`` float64 candidate sizes, strictly increasing.
        vocab: ``[F]`` float64 vocabulary sizes.

    Returns:
        ``[R, F]`` int64, each entry ≤ the input's.
    """
    r, f = arch.shape
    k = sizes.numel()
    if k == 1 or r == 0:
        return arch
    step = torch.arange(1, k, device=arch.device)  # event j: shrink from j to j-1
    key = (vocab[:, None] * sizes[1:]).reshape(-1)  # [E = F·(K-1)], field-major
    order = torch.sort(key, descending=True, stable=True).indices
    saving = (vocab[:, None] * (sizes[1:] - sizes[:-1])).reshape(-1)[order]
    valid = (step <= arch[:, :, None]).reshape(r, -1)[:, order]  # [R, E]
    saved = torch.where(valid, saving, 0.0)
    before = saved.cumsum(1) - saved  # savings made before each event
    over = (path_cost(arch, sizes, vocab) - budget)[:, None]
    take = valid & (before < over)
    field = (order // (k - 1)).expand(r, -1)
    return arch - torch.zeros_like(arch).scatter_add_(1, field, take.to(arch.dtype))


def grow_towards(arch: Tensor, target: Tensor, budget: Tensor, sizes: Tensor, vocab: Tensor,
                 generator: torch.Generator, *, passes: int = 4) -> Tensor:
    """Grow rows below ``target`` one candidate at a time, never past ``budget``.

    Fields grow level by level (every field at index 0 one step, then every field at index 1,
    ...) in a random field order per row, up to the first step that reaches ``target``. A step
    that would pass ``budget`` freezes its field (costs only rise, so it never fits later) and the
    next pass goes on without it; after ``passes`` passes a row may stay below ``target``. Rows at
    or above ``target`` are left alone.

    Args:
        arch: ``[R, F]`` int64 candidate indices on ``generator.device``.
        target: ``[R]`` float64 costs to reach.
        budget: ``[R]`` float64 costs never to pass.
        sizes: ``[K]`` float64 candidate sizes, strictly increasing.
        vocab: ``[F]`` float64 vocabulary sizes.
        generator: draws a field order per row (the same draws whatever the data).
        passes: at most this many frozen fields per row are skipped (>= 1).

    Returns:
        ``[R, F]`` int64, each entry ≥ the input's.
    """
    r, f = arch.shape
    k = sizes.numel()
    field_order = random_orders(r, f, generator)  # [R, F]: drawn whatever the data
    if k == 1 or r == 0:
        return arch
    arch = arch.clone()
    rows = torch.nonzero(path_cost(arch, sizes, vocab) < target).squeeze(1)
    step = torch.arange(k - 1, device=arch.device)  # event j: grow from j to j+1
    inc_fj = (vocab[:, None] * (sizes[1:] - sizes[:-1])).reshape(-1)
    frozen = torch.zeros(rows.numel(), f, dtype=torch.bool, device=arch.device)
    for _ in range(passes):
        if rows.numel() == 0:
            break
        sub, n = arch[rows], rows.numel()
        # Level-major order [n, E]: event (f, j) at j·F + the place of f in the row's order.
        order = (field_order[rows][:, None, :] * (k - 1) + step[None, :, None]).reshape(n, -1)
        field = order // (k - 1)
        valid = ((step >= sub[:, :, None]) & ~frozen[:, :, None]).reshape(n, -1).gather(1, order)
        added = torch.where(valid, inc_fj[order], 0.0)
        after = added.cumsum(1)
        cost = path_cost(sub, sizes, vocab)[:, None]
        want = valid & (cost + after - added < target[rows, None])
        fits = cost + after <= budget[rows, None]
        grown = torch.zeros_like(sub).scatter_add_(1, field, (want & fits).to(sub.dtype))
        arch[rows] = sub + grown
        blocked = want & ~fits  # the first such event is the one that stopped the row
        stopped = blocked.any(1)
        first = field.gather(1, blocked.to(torch.int32).argmax(1, keepdim=True))
        frozen.scatter_(1, first, stopped[:, None])
        rows, frozen = rows[stopped], frozen[stopped]
    return arch


def budget_region(n: int, space: PathSpace, ratios: Tensor, low: float,
                  generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw ``n`` paths in the region the search visits: uniform, repaired into ``[low·B, B]``.

    ``B = ratio · d_base · Σ_f V_f`` with ``ratio`` uniform over ``ratios`` per row. Rows over
    ``B`` are shrunk (:func:`shrink_to_budget`); rows then below ``low·B`` grow towards a target
    uniform in ``[low·B, B]`` (:func:`grow_towards`). A row can stay below ``low·B`` when no field
    can grow without passing ``B`` (within the passes), and above ``B`` when even the all-smallest
    path costs more.

    Args:
        n: rows to draw (>= 0).
        space: sizes, vocabularies and ``d_base``.
        ratios: ``[M]`` float64 budget ratios (> 0).
        low: lower edge of the region as a fraction of ``B``, in [0, 1].
        generator: source of randomness; the paths are drawn on its device.

    Returns:
        ``arch [n, F]`` int64 and ``budget [n]`` float64, on ``generator.device``.
    """
    dev, f, k = generator.device, space.num_fields, space.num_candidates
    sizes, vocab = space.tensors(dev)
    arch = torch.randint(k, (n, f), generator=generator, device=dev)
    pick = torch.randint(ratios.numel(), (n,), generator=generator, device=dev)
    budget = ratios.to(dev, F64)[pick] * space.uniform_cost
    lift = torch.rand(n, generator=generator, device=dev, dtype=F64)
    arch = shrink_to_budget(arch, budget, sizes, vocab)
    below = path_cost(arch, sizes, vocab) < low * budget
    target = torch.where(below, budget * (low + (1.0 - low) * lift), -torch.inf)
    return grow_towards(arch, target, budget, sizes, vocab, generator), budget


def random_orders(rows: int, n: int, generator: torch.Generator) -> Tensor:
    """Return ``[rows, n]`` int64: each row an independent uniform permutation of ``0..n-1``.

    On the CPU long rows use one ``randperm`` per row (several times faster than sorting random
    keys there); otherwise random keys are sorted. Which one depends only on the shape and device.

    Args:
        rows: number of permutations.
        n: their length.
        generator: source of randomness; the result is on its device.

    Returns:
        The permutations.
    """
    dev = generator.device
    if dev.type == "cpu" and n >= 128 and rows > 0:
        return torch.stack([torch.randperm(n, generator=generator) for _ in range(rows)])
    return torch.rand((rows, n), generator=generator, device=dev).argsort(1)


def balanced_mix_draws(f: int, n: int, k: int,
                       generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The random numbers :func:`balanced_mix_from` uses: ``offset [F, 1]`` in ``[0, K)`` and
    ``perm [F, n]`` (one permutation per field), drawn in that order. They depend only on the
    shapes, so they can be drawn ahead of the data."""
    offset = torch.randint(k, (f, 1), generator=generator, device=generator.device)
    return offset, random_orders(f, n, generator)


def balanced_mix_from(fill: Tensor, n_fill: Tensor, k: int, offset: Tensor,
                      perm: Tensor) -> tuple[Tensor, Tensor]:
    """Per field, a balanced assignment of the rows with ``n_fill[f]`` entries taken from ``fill``.

    Field f's column holds ``n - n_fill[f]`` balanced entries (candidate ``(p + o_f) mod K`` at
    position p, a random offset ``o_f``: the counts of any two candidates differ by at most 1)
    and ``n_fill[f]`` entries of ``fill``; each column is then shuffled on its own, so fields are
    independent across rows. No randomness here: ``o`` and the shuffles come from
    :func:`balanced_mix_draws`.

    Args:
        fill: ``[F, n]`` int64 candidates drawn from the adaptive distribution.
        n_fill: ``[F]`` int64 in ``[0, n]``: how many entries of each field come from ``fill``.
        k: K.
        offset: ``[F, 1]`` offsets ``o``; perm: ``[F, n]`` one permutation per field.

    Returns:
        ``arch [n, F]`` int64 and ``from_fill [n, F]`` bool (True where the entry is adaptive).
    """
    n = fill.shape[1]
    pos = torch.arange(n, device=fill.device)[None, :]
    is_fill = pos >= (n - n_fill)[:, None]
    column = torch.where(is_fill, fill, (pos + offset) % k)
    return column.gather(1, perm).T, is_fill.gather(1, perm).T
