"""Evaluation metrics used everywhere in the project (DESIGN.md §3).

Pure numpy; torch tensors are accepted as inputs and converted (detached, on the CPU). Every
function returns a plain Python ``float`` (or a dict of them) so results can be logged directly.

* :func:`auc` — exact ROC AUC by the rank-sum (Mann–Whitney U) formula, ties get average ranks,
  so a tied positive/negative pair counts one half.
* :func:`logloss` — mean binary cross-entropy with probabilities clipped to ``[eps, 1 - eps]``.
* :func:`kendall_tau` — Kendall's tau-b (tie-corrected), as ``scipy.stats.kendalltau`` computes
  by default.
* :func:`stability` — how much repeated searches (different seeds) agree on the sizes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from adass_ray.errors import DataError

logger = logging.getLogger(__name__)

# Pairwise sign matrices are built in row blocks of at most this many cells (bounds memory for
# large inputs; the inputs this project feeds are a few hundred long).
_BLOCK_CELLS = 1 << 22


def _as_1d(name: str, values: Any) -> npt.NDArray[Any]:
    """Return ``values`` (numpy array, torch tensor or sequence) as a 1-D numpy array."""
    # torch.Tensor, without importing torch
    if hasattr(values, "detach") and hasattr(values, "cpu"):
        values = values.detach().cpu()
        if values.is_floating_point():  # bfloat16/float16 have no numpy dtype
            values = values.double()
        values = values.numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {tuple(arr.shape)}")
    return arr


def _binary_labels(labels: Any) -> npt.NDArray[np.bool_]:
    """Return labels as a boolean array (True = positive); they must be 0/1 (or bool)."""
    arr = _as_1d("labels", labels)
    if arr.dtype == np.bool_:
        return arr
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = arr[~np.isin(arr, (0, 1))][0]
        raise DataError(f"labels must be 0 or 1, found {bad!r}; binarize the labels first")
    return arr == 1


def _float_values(name: str, values: Any, n: int) -> npt.NDArray[np.float64]:
    arr = _as_1d(name, values).astype(np.float64)
    if arr.shape[0] != n:
        raise DataError(f"labels and {name} differ in length ({n} vs {arr.shape[0]})")
    if np.isnan(arr).any():
        raise DataError(f"{name} contain NaN at index {int(np.flatnonzero(np.isnan(arr))[0])}")
    return arr


def average_ranks(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Return 1-based ranks of ``values`` with ties given the mean of the ranks they span.

    Args:
        values: 1-D array-like of comparable numbers (no NaN).

    Returns:
        float64 array of the same length; e.g. ``[10, 20, 20, 30] -> [1, 2.5, 2.5, 4]``.
    """
    arr = np.asarray(values)
    _, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
    # The group of tied values occupying ranks a..b gets (a + b) / 2 = cumsum - (count - 1) / 2.
    ends = np.cumsum(counts).astype(np.float64)
    return (ends - (counts - 1) / 2.0)[inverse.reshape(-1)]


def auc(labels: Any, scores: Any) -> float:
    """Exact ROC AUC: P(score of a random positive > that of a random negative), ties count 1/2.

    Computed by the rank-sum formula ``(R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` with
    average ranks for tied scores, which equals the brute-force pairwise count.

    Args:
        labels: ``[N]`` 0/1 or bool labels (numpy array, torch tensor or sequence).
        scores: ``[N]`` real-valued scores, higher means more likely positive (logits or
            probabilities; only their order matters).

    Returns:
        The AUC in ``[0, 1]``: 1 for a perfect ranking, 0 for a reversed one, 0.5 when all tied.

    Raises:
        DataError: if inputs are not 1-D, differ in length, labels are not 0/1, scores contain
            NaN, or only one class is present.
    """
    y = _binary_labels(labels)
    s = _float_values("scores", scores, y.shape[0])
    n_pos = int(y.sum())
    n_neg = int(y.shape[0] - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise DataError(
            f"AUC needs both classes, got {n_pos} positive and {n_neg} negative labels; "
            "evaluate on a larger or stratified sample"
        )
    rank_sum = float(average_ranks(s)[y].sum())
    u = rank_sum - n_pos * (n_pos + 1) / 2.0
    return u / (float(n_pos) * float(n_neg))


def logloss(labels: Any, probs: Any, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy (natural log) of predicted probabilities.

    Args:
        labels: ``[N]`` 0/1 or bool labels.
        probs: ``[N]`` predicted probabilities of the positive class (not logits).
        eps: probabilities are clipped to ``[eps, 1 - eps]`` so a confident mistake costs
            ``-log(eps)`` instead of infinity.

    Returns:
        ``mean(-(y log p + (1 - y) log(1 - p)))``.

    Raises:
        DataError: on shape/length mismatch, labels not 0/1, NaN or out-of-``[0, 1]``
            probabilities, or empty input.
    """
    if not 0.0 < eps < 0.5:
        raise DataError(f"logloss eps must be in (0, 0.5), got {eps!r}")
    y = _binary_labels(labels)
    p = _float_values("probs", probs, y.shape[0])
    if y.shape[0] == 0:
        raise DataError("logloss of an empty set is undefined; pass at least one row")
    if (p < 0).any() or (p > 1).any():
        raise DataError("probs must lie in [0, 1]; apply a sigmoid to logits first")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


def spearman(x: Any, y: Any) -> float:
    """Spearman's rank correlation (average ranks for ties): Pearson's r of the ranks.

    Returns:
        rho in ``[-1, 1]``; ``nan`` when undefined (fewer than 2 items, or x or y constant).

    Raises:
        DataError: if inputs are not 1-D, differ in length, or contain NaN.
    """
    a = _as_1d("x", x).astype(np.float64)
    b = _as_1d("y", y).astype(np.float64)
    if a.shape != b.shape:
        raise DataError(f"x and y differ in length: {a.shape[0]} vs {b.shape[0]}")
    if a.shape[0] < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    ra, rb = _average_ranks(a), _average_ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def _average_ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty_like(v)
    ranks[order] = np.arange(v.shape[0], dtype=np.float64)
    for value in np.unique(v):  # ties share their mean rank
        tied = v == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def kendall_tau(x: Any, y: Any) -> float:
    """Kendall's tau-b rank correlation (tie-corrected), the variant scipy computes by default.

    ``tau_b = (C - D) / sqrt((P - T_x) (P - T_y))`` with C/D the concordant/discordant pairs, P
    all pairs and T_x/T_y the pairs tied in x/y. Pairs are compared with vectorized sign
    matrices, O(n^2) time in row blocks (fine for the few hundred items compared here).

    Args:
        x: ``[n]`` numbers.
        y: ``[n]`` numbers.

    Returns:
        tau-b in ``[-1, 1]``; ``nan`` when undefined (fewer than 2 items, or x or y constant).

    Raises:
        DataError: if inputs are not 1-D, differ in length, or contain NaN.
    """
    a = _as_1d("x", x).astype(np.float64)
    b = _as_1d("y", y).astype(np.float64)
    if a.shape[0] != b.shape[0]:
        raise DataError(f"kendall_tau needs equal lengths, got {a.shape[0]} and {b.shape[0]}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise DataError("kendall_tau inputs contain NaN")
    n = a.shape[0]
    if n < 2:
        return math.nan
    numer = 0
    untied_x = 0
    untied_y = 0
    block = max(1, _BLOCK_CELLS // n)
    for start in range(0, n, block):
        # Full rows: every pair appears twice (i, j) and (j, i) with the same product, which
        # cancels in the ratio; the diagonal contributes zeros.
        sx = np.sign(a[start:start + block, None] - a[None, :]).astype(np.int8)
        sy = np.sign(b[start:start + block, None] - b[None, :]).astype(np.int8)
        numer += int(np.sum(sx * sy, dtype=np.int64))
        untied_x += int(np.count_nonzero(sx))
        untied_y += int(np.count_nonzero(sy))
    if untied_x == 0 or untied_y == 0:
        return math.nan
    tau = numer / math.sqrt(float(untied_x) * float(untied_y))
    return min(1.0, max(-1.0, tau))


class Stability(TypedDict):
    """Result of :func:`stability`; all rates and distances are averaged over pairs of runs."""

    n_runs: int
    n_pairs: int
    agreement_per_field: list[float]
    agreement: float
    mean_abs_log2_diff: float
    kendall_tau: float


def stability(size_vectors: Sequence[Sequence[int]], *, min_size: int | None = None) -> Stability:
    """How much R repeated searches agree on the chosen sizes (DESIGN.md §3).

    Every statistic is averaged over all ``R (R - 1) / 2`` unordered pairs of runs.

    A size of 0 means the field was dropped. For the log distance it counts as half the smallest
    candidate size (``log2(0) := log2(min_size / 2)``): one doubling step below the smallest
    size, so dropping a field when another run kept it at the smallest size is as far as a 4
    vs 8 disagreement. For agreement and Kendall tau 0 is just the smallest value.

    Args:
        size_vectors: ``R >= 2`` architectures, each ``F >= 1`` non-negative integer sizes in the
            same field order.
        min_size: the smallest candidate size of the search space; default the smallest
            positive size seen (pass it when runs may never pick the smallest candidate).

    Returns:
        :class:`Stability` with ``agreement_per_field`` (``[F]``: fraction of pairs choosing the
        same size for the field), ``agreement`` (its mean over fields), ``mean_abs_log2_diff``
        (mean over pairs and fields of ``|log2 a_f - log2 a'_f|``), and ``kendall_tau`` (mean
        tau-b between the two runs' size vectors over the pairs where it is defined; ``nan`` if
        none is, e.g. every run chose one size for all fields).

    Raises:
        DataError: fewer than two runs, ragged vectors, no fields, or negative / non-integer sizes.
    """
    if len(size_vectors) < 2:
        raise DataError(f"stability needs at least 2 runs, got {len(size_vectors)}")
    lengths = {len(v) for v in size_vectors}
    if len(lengths) != 1:
        raise DataError(f"size vectors differ in length: {sorted(lengths)}; pass one per run")
    arr = np.asarray(size_vectors)
    if arr.shape[1] == 0:
        raise DataError("size vectors are empty; pass at least one field")
    if not np.issubdtype(arr.dtype, np.integer) or (arr < 0).any():
        raise DataError("sizes must be non-negative integers (0 = dropped field)")
    positive = arr[arr > 0]
    if min_size is None:
        min_size = int(positive.min()) if positive.size else 1
    elif min_size <= 0 or (positive.size and min_size > int(positive.min())):
        raise DataError(f"min_size must be in [1, smallest chosen size], got {min_size}")

    first, second = np.triu_indices(arr.shape[0], k=1)
    per_field = (arr[first] == arr[second]).mean(axis=0)
    logs = np.log2(np.where(arr > 0, arr, min_size / 2.0).astype(np.float64))
    log_diff = float(np.abs(logs[first] - logs[second]).mean())
    taus = np.array([kendall_tau(arr[i], arr[j]) for i, j in zip(first, second, strict=True)])
    defined = taus[~np.isnan(taus)]
    if defined.size < taus.size:
        logger.debug("kendall tau undefined for %d of %d run pairs (constant size vector)",
                     taus.size - defined.size, taus.size)
    return Stability(
        n_runs=int(arr.shape[0]),
        n_pairs=int(first.shape[0]),
        agreement_per_field=[float(v) for v in per_field],
        agreement=float(per_field.mean()),
        mean_abs_log2_diff=log_diff,
        kendall_tau=float(defined.mean()) if defined.size else math.nan,
    )


def weighted_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of one score vector under many row weightings at once (ties count 1/2).

    With integer weights this is the AUC of the sample that repeats row ``i`` ``weights[r, i]``
    times, so multinomial weights give bootstrap replicates without copying rows.

    Args:
        labels: ``[N]`` 0/1 labels. scores: ``[N]`` scores. weights: ``[R, N]`` non-negative.

    Returns:
        ``[R]`` AUCs (NaN for a weighting that leaves one class empty).
    """
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind="mergesort")
    s = np.asarray(scores, dtype=np.float64)[order]
    pos = np.asarray(labels)[order].astype(bool)
    w = np.asarray(weights, dtype=np.float64)[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first position of each tied group
    g_pos = np.add.reduceat(w * pos, starts, axis=1)  # [R, G]
    g_neg = np.add.reduceat(w * ~pos, starts, axis=1)
    below = np.cumsum(g_neg, axis=1) - g_neg  # negative weight strictly below each group
    num = (g_pos * (below + 0.5 * g_neg)).sum(axis=1)
    den = g_pos.sum(axis=1) * g_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def paired_bootstrap_se(labels: np.ndarray, scores: np.ndarray, ref: int, *, reps: int = 200,
                        seed: int = 0) -> np.ndarray:
    """Bootstrap standard error of ``AUC(scores[ref]) − AUC(scores[m])`` for every ``m``.

    Every model is scored on the same resampled rows (a paired bootstrap), so the shared row
    noise cancels and what remains is the noise of the difference itself.

    Args:
        labels: ``[N]`` 0/1 labels. scores: ``[M, N]`` scores of ``M`` models on the same rows.
        ref: the row of ``scores`` the differences are taken against. reps: replicates.
        seed: the resampling seed (fixed, so a selection is reproducible).

    Returns:
        ``[M]`` standard errors (0 for ``ref`` itself; NaN if too few usable replicates).
    """
    n = int(np.asarray(labels).shape[0])
    rows = np.random.default_rng(seed).integers(0, n, (reps, n))  # each replicate's row draw
    weights = np.stack([np.bincount(r, minlength=n) for r in rows])
    aucs = np.stack([weighted_auc(labels, row, weights) for row in np.asarray(scores)])  # [M, R]
    diff = aucs[ref][None, :] - aucs
    ok = ~np.isnan(diff).any(axis=0)
    if ok.sum() < 2:
        return np.full(len(aucs), np.nan)
    return np.asarray(diff[:, ok].std(axis=1, ddof=1))
