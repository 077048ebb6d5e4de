"""Which validation rows a search scores: a seeded subsample, split into the search half (A)
and the selection half (B), with B topped up from the rows the subsample left out.

Q_A drives the search's thousands of scores, so its rows are few (``val_rows / 2``); Q_B only
re-ranks a short list (:func:`~adass_ray.search.selection.rerank`), so it can afford more rows,
and every row it adds lowers the noise of the pick.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from adass_ray.data.batch import Batch
from adass_ray.errors import ConfigError, DataError

if TYPE_CHECKING:
    from adass_ray.data.loader import ShardLoader

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowPlan:
    """How many validation rows a search and its selection score (SearchConfig's
    ``val_rows``, ``select_rows`` and ``search_share``; see
    :func:`search_and_selection_rows`)."""

    val_rows: int
    select_rows: int
    search_share: float


def validation_subsample(loader_or_batch: ShardLoader | Batch, rows: int, seed: int) -> Batch:
    """A seeded subset of rows (kept in their original order).

    Args:
        loader_or_batch: a :class:`~adass_ray.data.loader.ShardLoader` (its ``full_batch()``
            is used) or a :class:`Batch`.
        rows: how many rows; all of them when the source has fewer.
        seed: picks the rows (the same seed gives the same rows).

    Returns:
        A :class:`Batch` of ``min(rows, N)`` rows.

    Raises:
        ConfigError: ``rows < 1``.
    """
    batch = loader_or_batch if isinstance(loader_or_batch, Batch) else loader_or_batch.full_batch()
    return _take(batch, subsample_index(len(batch), rows, seed))


def subsample_index(n: int, rows: int, seed: int) -> Tensor:
    """The sorted row indices :func:`validation_subsample` keeps out of ``n`` rows.

    Raises:
        ConfigError: ``rows < 1``.
    """
    if rows < 1:
        raise ConfigError(f"validation subsample of rows={rows}: need >= 1")
    if rows >= n:
        if rows > n:
            logger.info("validation subsample: %d rows asked, the source has %d; using all",
                        rows, n)
        return torch.arange(n)
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=g)[:rows].sort().values


def split_rows(batch: Batch, *, seed: int, fraction: float = 0.5) -> tuple[Batch, Batch]:
    """Split validation rows into a search half (A) and a selection half (B), by label.

    Each label class is shuffled (seeded) and ``round(fraction · n_class)`` of its rows go to A,
    the rest to B, so both halves keep the label rate; rows keep their original order. Build one
    :class:`CachedEvaluator` per half: Q_A drives the search, Q_B re-ranks its short list
    (:func:`~adass_ray.search.selection.rerank`).

    Args:
        batch: the validation rows. seed: picks the split. fraction: the share that goes to A.

    Returns:
        ``(batch_a, batch_b)``: disjoint, together every row of ``batch``.

    Raises:
        ConfigError: ``fraction`` outside (0, 1).
        DataError: a half would miss a label class (too few rows of one class).
    """
    idx_a, idx_b = split_index(batch.label, seed=seed, fraction=fraction)
    return _take(batch, idx_a), _take(batch, idx_b)


def split_index(label: Tensor, *, seed: int, fraction: float = 0.5) -> tuple[Tensor, Tensor]:
    """The sorted row indices of :func:`split_rows`' two halves, given the rows' labels.

    Raises:
        ConfigError: ``fraction`` outside (0, 1).
        DataError: a half would miss a label class.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"split fraction={fraction}: need 0 < fraction < 1")
    g = torch.Generator().manual_seed(int(seed))
    label = label.detach().cpu()
    parts: tuple[list[Tensor], list[Tensor]] = ([], [])
    for value in (0.0, 1.0):
        rows = torch.nonzero(label == value).flatten()
        rows = rows[torch.randperm(len(rows), generator=g)]
        cut = int(round(fraction * len(rows)))
        if cut < 1 or cut >= len(rows):
            raise DataError(f"cannot split {len(label)} validation rows into two halves with "
                            f"both labels ({len(rows)} rows of label {value:g}); use more rows")
        parts[0].append(rows[:cut])
        parts[1].append(rows[cut:])
    idx_a, idx_b = (torch.cat(p).sort().values for p in parts)
    return idx_a, idx_b


def subsample_rows(plan: RowPlan, n: int) -> int:
    """The rows the search's subsample asks for out of a validation split of ``n`` rows
    (``val_rows``, capped at ``search_share`` of the split); two plans whose counts agree, or
    both reach ``n``, draw the same subsample and the same A for a seed.

    Raises:
        ConfigError: ``search_share`` outside (0, 1].
    """
    if not 0.0 < plan.search_share <= 1.0:
        raise ConfigError(f"search_share={plan.search_share}: need 0 < share <= 1")
    if plan.search_share == 1.0:
        return plan.val_rows
    return min(plan.val_rows, max(2, int(plan.search_share * n)))


def search_and_selection_rows(full: Batch, plan: RowPlan, *,
                              seed: int) -> tuple[Batch, Batch, Batch]:
    """The rows a search scores: ``(subsample, A, B)``.

    ``subsample`` is :func:`validation_subsample` of ``full`` (``plan.val_rows`` rows, but at
    most ``plan.search_share`` of ``full``), and A and B are :func:`split_rows`' halves of it.
    Where ``full`` has rows outside the subsample and ``plan.select_rows`` is above B's size, B
    also takes seeded rows of ``full`` outside the subsample, up to ``select_rows`` in all. The
    share matters on a small validation split: of 10,000 rows, with a share of 0.4, A gets
    2,000 and B 8,000 rather than 5,000 each. Those rows are never scored by the search, so
    the selection stays held out, and B's noise shrinks with the square root of its rows.
    Selection scores a short list of tens of architectures, so rows are cheap there, while
    the search's thousands of scores stay on A.

    Raises:
        ConfigError: ``val_rows < 1``, or ``search_share`` outside (0, 1].
        DataError: a half would miss a label class.
    """
    sub = subsample_index(len(full), subsample_rows(plan, len(full)), seed)
    idx_a, idx_b = split_index(full.label[sub], seed=seed)
    idx_a, idx_b = sub[idx_a], sub[idx_b]
    room = plan.select_rows - len(idx_b)
    if room > 0 and len(sub) < len(full):
        outside = torch.ones(len(full), dtype=torch.bool)
        outside[sub] = False
        rest = torch.nonzero(outside).flatten()
        g = torch.Generator().manual_seed(int(seed) + 1)
        extra = rest[torch.randperm(len(rest), generator=g)[:room]]
        idx_b = torch.cat([idx_b, extra]).sort().values
    return _take(full, sub), _take(full, idx_a), _take(full, idx_b)


def _take(batch: Batch, idx: Tensor) -> Batch:
    """The rows ``idx`` of ``batch`` (on its device)."""
    idx = idx.to(batch.label.device)
    return Batch(ids=batch.ids[idx], multi=tuple(m[idx] for m in batch.multi),
                 dense=batch.dense[idx], label=batch.label[idx])

