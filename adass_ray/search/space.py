"""Search space, cost model, budget and hard-budget selection (DESIGN.md §2, §2.3).

An architecture is a ``tuple[int, ...]`` of candidate *indices*, one per field: hashable, so it keys
caches and logs as-is. Cost C(α) = Σ_f V_f·α_f parameters, exact (Python ints / int64 tensors).

Budget rule (:meth:`Budget.parse`): ``abs:N`` is N parameters (whole; ``abs:2.5e5`` works);
``ratio:x`` is x times the uniform baseline's cost (every field at ``d_base``); a bare number is a
ratio if ``0 < x <= 1``, else a (whole) parameter count, so ratios above 1 need the prefix.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Literal

import numpy as np
import torch

from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import ConfigError

Arch = tuple[int, ...]
History = Iterable[tuple[Sequence[int], float | None]]  # (arch, quality); None/NaN = unscored


@dataclass(frozen=True)
class SearchSpace:
    """Fields, their vocabulary sizes V_f and the candidate sizes every field chooses from.

    Attributes (invalid values raise ConfigError):
        field_names: one name per field (F of them).
        vocab_sizes: V_f per field (ids including OOV), each >= 1.
        candidate_sizes: strictly increasing sizes (K of them); a leading 0 iff ``allow_drop``.
        allow_drop: whether index 0 means "drop the field" (size 0, zero cost).
    """

    field_names: tuple[str, ...]
    vocab_sizes: tuple[int, ...]
    candidate_sizes: tuple[int, ...]
    allow_drop: bool = False

    def __post_init__(self) -> None:
        f, v, s = self.field_names, self.vocab_sizes, self.candidate_sizes
        if not f or len(f) != len(v):
            raise ConfigError(f"search space: {len(f)} field names but {len(v)} vocab sizes")
        if any(not _is_int(x) or x < 1 for x in v):
            raise ConfigError(f"search space: vocab sizes must be integers >= 1, got {list(v)}")
        increasing = all(b > a for a, b in zip(s, s[1:], strict=False))
        if not s or not increasing or any(not _is_int(x) or x < 0 for x in s):
            raise ConfigError(f"candidate sizes {list(s)}: need non-negative, increasing integers")
        if (s[0] == 0) != self.allow_drop or (self.allow_drop and len(s) < 2):
            msg = "a leading 0 (drop) needs allow_drop=True and a positive size, and only then"
            raise ConfigError(f"candidate sizes {list(s)}: {msg}")

    @classmethod
    def from_feature_map(
        cls, fm: FeatureMap, *, candidate_sizes: Sequence[int] | None = None,
        allow_drop: bool = False,
    ) -> SearchSpace:
        """The search space of a prepared dataset.

        Args:
            fm: the feature map (field names and V_f).
            candidate_sizes: overrides ``fm.candidate_sizes``; 0 is prepended when ``allow_drop``.
            allow_drop: let the search drop fields (size 0); implied by sizes that start with 0
                (a supernet trained with ``model.candidate_sizes=[0, ...]``).
        """
        sizes = tuple(fm.candidate_sizes if candidate_sizes is None else candidate_sizes)
        allow_drop = allow_drop or sizes[:1] == (0,)
        sizes = (0, *sizes) if allow_drop and sizes[:1] != (0,) else sizes
        return cls(fm.field_names, fm.vocab_sizes, sizes, allow_drop)

    @property
    def num_fields(self) -> int:  # F
        return len(self.field_names)

    @property
    def num_candidates(self) -> int:  # K
        return len(self.candidate_sizes)

    def validate(self, arch: Sequence[int]) -> Arch:
        """``arch`` as a tuple of ints; ConfigError if it does not fit (it may come from a file)."""
        a = tuple(int(i) for i in arch)
        if len(a) != self.num_fields or any(i < 0 or i >= self.num_candidates for i in a):
            need = f"{self.num_fields} candidate indices in 0..{self.num_candidates - 1}"
            raise ConfigError(f"architecture {list(a)} does not fit the space: need {need}")
        return a

    def sizes(self, arch: Sequence[int]) -> tuple[int, ...]:
        """Embedding size per field of ``arch``."""
        return tuple(self.candidate_sizes[i] for i in self.validate(arch))

    def arch_of(self, sizes: Sequence[int]) -> Arch:
        """Inverse of :meth:`sizes`; ConfigError for a wrong length or a non-candidate size."""
        index = {s: i for i, s in enumerate(self.candidate_sizes)}
        if len(sizes) != self.num_fields or any(s not in index for s in sizes):
            need = f"{self.num_fields} values from {list(self.candidate_sizes)}"
            raise ConfigError(f"sizes {list(sizes)} do not fit the space: need {need}")
        return tuple(index[s] for s in sizes)

    def field_cost(self, arch: Sequence[int]) -> tuple[int, ...]:
        """V_f·α_f per field (exact ints)."""
        return tuple(v * s for v, s in zip(self.vocab_sizes, self.sizes(arch), strict=True))

    def cost(self, arch: Sequence[int]) -> int:
        """C(α) = Σ_f V_f·α_f embedding parameters."""
        return sum(self.field_cost(arch))

    def cost_bytes(self, arch: Sequence[int], dtype_bytes: int = 4) -> int:
        """Bytes of ``arch``'s tables at ``dtype_bytes`` per value."""
        return self.cost(arch) * dtype_bytes

    def min_cost(self) -> int:
        """Cost of the smallest architecture (every field at the first candidate)."""
        return self.candidate_sizes[0] * sum(self.vocab_sizes)

    def max_cost(self) -> int:
        """Cost of the largest architecture (every field at the last candidate)."""
        return self.candidate_sizes[-1] * sum(self.vocab_sizes)

    def uniform_cost(self, size: int) -> int:
        """Cost of every field at ``size`` (need not be a candidate: the baseline's d_base)."""
        return int(size) * sum(self.vocab_sizes)

    def uniform_archs(self, budget: int | None = None) -> list[Arch]:
        """Every uniform architecture (all fields at one positive candidate size), cheapest
        first; only those costing at most ``budget`` when it is given."""
        archs = [(k,) * self.num_fields for k, s in enumerate(self.candidate_sizes) if s > 0]
        return [a for a in archs if budget is None or self.cost(a) <= budget]

    def cost_table(self) -> np.ndarray:
        """``[F, K]`` int64 parameters of field f at candidate k (V_f · s_k)."""
        return np.outer(np.asarray(self.vocab_sizes, dtype=np.int64),
                        np.asarray(self.candidate_sizes, dtype=np.int64))

    def random_arch(self, rng: np.random.Generator) -> Arch:
        """A uniformly random architecture drawn from ``rng``."""
        return tuple(int(i) for i in rng.integers(0, self.num_candidates, size=self.num_fields))

    @cached_property
    def _tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        # Built once; cached_property writes the instance __dict__, which a frozen dataclass allows.
        return (torch.tensor(self.candidate_sizes), torch.tensor(self.vocab_sizes))

    def field_costs(self, archs: torch.Tensor) -> torch.Tensor:
        """Vectorised V_f·α_f: indices LongTensor [N, F] -> params LongTensor [N, F]."""
        if archs.dim() != 2 or archs.shape[1] != self.num_fields:
            raise ValueError(f"archs must be [N, {self.num_fields}], got {tuple(archs.shape)}")
        sizes, vocab = (t.to(archs.device) for t in self._tables)  # archs may live on a GPU
        return sizes[archs.long()] * vocab

    def costs(self, archs: torch.Tensor) -> torch.Tensor:
        """Vectorised C(α): indices LongTensor [N, F] -> LongTensor [N] (int64, exact)."""
        return self.field_costs(archs).sum(dim=1)


@dataclass(frozen=True)
class Budget:
    """A memory budget as the user wrote it; :meth:`resolve` turns it into parameters.

    Attributes:
        kind: ``"ratio"`` (of the uniform baseline's cost) or ``"abs"`` (parameters).
        value: the ratio (> 0) or the parameter count (whole, >= 1).
    """

    kind: Literal["ratio", "abs"]
    value: float

    def __post_init__(self) -> None:
        if self.kind not in ("ratio", "abs") or not (math.isfinite(self.value) and self.value > 0):
            raise ConfigError(f"budget {self.kind}:{self.value!r}: expected a positive, "
                              "finite value")

    @classmethod
    def parse(cls, spec: str | float | Budget) -> Budget:
        """Parse ``"0.8"``, ``0.8``, ``"ratio:1.5"``, ``"abs:2.5e5"`` or ``250000`` (module rule).

        Raises:
            ConfigError: unparsable, non-positive or non-finite, or a non-whole parameter count.
        """
        if isinstance(spec, Budget):
            return spec
        kind, _, num = str(spec).strip().lower().replace("_", "").rpartition(":")
        try:
            x = float(num)
        except ValueError:
            x = math.nan
        if kind not in ("", "abs", "ratio") or not math.isfinite(x) or x <= 0:
            raise ConfigError(f"budget {spec!r}: expected a ratio (0.8, ratio:1.5) or abs:N params")
        if kind == "ratio" or (kind == "" and x <= 1):
            return cls("ratio", x)
        if x != int(x):
            raise ConfigError(f"budget {spec!r}: a parameter count must be whole (or: ratio:{num})")
        return cls("abs", int(x))

    def resolve(self, space: SearchSpace, d_base: int = 16) -> int:
        """Absolute budget B in parameters; a ratio x gives ``floor(x · uniform_cost(d_base))``.

        Args:
            space: the search space. d_base: the uniform baseline's size.

        Raises:
            ConfigError: B below ``space.min_cost()`` (no architecture meets it), or a bad d_base.
        """
        if not _is_int(d_base) or d_base < 1:
            raise ConfigError(f"d_base {d_base!r}: expected a positive integer size")
        uniform, lo = space.uniform_cost(d_base), space.min_cost()
        # Fraction(str(x)) is the decimal the user wrote, so 0.7 × 1000 floors to 700, not 699.
        b = (int(self.value) if self.kind == "abs"
             else math.floor(Fraction(str(self.value)) * uniform))
        if b < lo:
            # Round the suggested ratio *up* to 2 decimals so that following the advice works.
            need = Fraction(math.ceil(Fraction(100 * lo, uniform)), 100)
            hint = f"{float(need):g}" if need <= 1 else f"ratio:{float(need):g}"
            smallest = f"{lo:,} params: every field at size {space.candidate_sizes[0]}"
            raise ConfigError(f"budget {b:,} params is below the smallest architecture "
                              f"({smallest}); raise --budget to at least {hint} (or abs:{lo})")
        return b


def repair(space: SearchSpace, arch: Sequence[int], budget: int) -> Arch:
    """Shrink the largest consumers of ``arch`` until C ≤ ``budget``; unchanged if already within.

    Each step moves the field with the largest V_f·α_f that can still shrink (ties: lowest field
    index) down one candidate (to 0 only if drops are allowed). Every step lowers an index, so it
    ends within F·(K−1) steps, feasible whenever ``budget >= space.min_cost()``.

    Args:
        space: the search space. arch: candidate indices, one per field. budget: B in params.

    Returns:
        The repaired architecture.

    Raises:
        ConfigError: ``budget < space.min_cost()``, or ``arch`` does not fit the space.
    """
    a = list(space.validate(arch))
    fc = list(space.field_cost(a))
    total = sum(fc)
    if total <= budget:
        return tuple(a)
    if budget < space.min_cost():
        raise ConfigError(f"cannot repair to {budget:,} params: the minimum is "
                          f"{space.min_cost():,}")
    # Max-heap on (cost, -index): the biggest consumer pays first; equal costs go by field order.
    heap = [(-c, f) for f, c in enumerate(fc) if a[f] > 0]
    heapq.heapify(heap)
    while total > budget:
        _, f = heapq.heappop(heap)
        a[f] -= 1
        new = space.vocab_sizes[f] * space.candidate_sizes[a[f]]
        total, fc[f] = total - (fc[f] - new), new
        if a[f] > 0:
            heapq.heappush(heap, (-new, f))
    assert total <= budget and total == space.cost(a)
    return tuple(a)


@dataclass(frozen=True)
class Selection:
    """The architecture a search hands on; ``cost <= budget`` always.

    Attributes:
        arch, sizes, cost: the architecture, its size per field and C(arch); budget: B (params).
        quality: Q(arch) from the history; None when repaired (never scored) or unscored.
        repaired: no seen architecture was feasible, so the best one (``repaired_from``) was.
        quality_b: Q_B(arch) on the selection half when chosen by
            :func:`~adass_ray.search.selection.rerank`, else None.
        lam: the λ of the trade-off the choice was made under (0: the budget mode).
        candidates: the architectures re-ranked on the selection half (empty for ``select``).
        ties: how many candidates tied with the best Q_B inside the row noise (1: none else).
    """

    arch: Arch
    sizes: tuple[int, ...]
    cost: int
    quality: float | None
    budget: int
    repaired: bool = False
    repaired_from: Arch | None = None
    quality_b: float | None = None
    lam: float = 0.0
    candidates: tuple[Arch, ...] = ()
    ties: int = 1


def select(space: SearchSpace, history: History, budget: int) -> Selection:
    """The best feasible architecture seen, or the repaired best one when none is feasible.

    Ranking: higher quality first (None/NaN = unscored, below every number), then lower cost,
    then the lexicographically smaller architecture, so history order does not matter.

    Args:
        space: the search space. budget: B in parameters.
        history: ``(arch, quality)`` pairs in any order; duplicates allowed.

    Returns:
        A :class:`Selection` with ``cost <= budget``.

    Raises:
        ConfigError: empty history, or ``budget < space.min_cost()`` when a repair is needed.
    """
    # Keys sort best-first: (unscored?, -quality, cost, arch).
    keys = [_rank_key(space, space.validate(arch), q) for arch, q in history]
    if not keys:
        raise ConfigError("select: the search evaluated no architectures; "
                          "run at least one iteration")
    feasible = [k for k in keys if k[2] <= budget]
    if feasible:
        unscored, neg_q, cost, a = min(feasible)
        return Selection(a, space.sizes(a), cost, None if unscored else -neg_q, budget)
    fixed = repair(space, src := min(keys)[3], budget)
    return Selection(fixed, space.sizes(fixed), space.cost(fixed), None, budget, True, src)


def _rank_key(space: SearchSpace, a: Arch, q: float | None) -> tuple[bool, float, int, Arch]:
    unscored = q is None or math.isnan(q)
    return (unscored, 0.0 if q is None or unscored else -float(q), space.cost(a), a)


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)
