"""Small statistics for the harness: paired differences with a t confidence interval, the
percentile of a score in a population, and the 2-D hypervolume of an (params ↓, AUC ↑) front."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

# two-sided 95 % Student t quantiles, by degrees of freedom (1..30); larger: the normal 1.96
_T95 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean of ``a − b`` over pairs and its 95 % t interval (NaN bounds with one pair).

    Returns:
        ``{"mean", "lo", "hi", "n"}``; the difference is a tie when ``lo <= 0 <= hi``.
    """
    d = [x - y for x, y in zip(a, b, strict=True)]
    n = len(d)
    if n == 0 or any(math.isnan(x) for x in d):
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    mean = statistics.fmean(d)
    if n < 2:
        return {"mean": mean, "lo": math.nan, "hi": math.nan, "n": n}
    half = (_T95[n - 2] if n - 1 <= len(_T95) else 1.96) * statistics.stdev(d) / math.sqrt(n)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n}


def widen(ci: dict[str, float], half: float) -> dict[str, float]:
    """``ci`` with ``half`` (an independent error, e.g. 1.96 × a bootstrap SE) added in
    quadrature to its half-width; one pair's undefined interval becomes ``mean ± half``."""
    if math.isnan(ci["mean"]) or math.isnan(half):
        return dict(ci)
    own = 0.0 if math.isnan(ci["lo"]) else (ci["hi"] - ci["lo"]) / 2
    total = math.sqrt(own * own + half * half)
    return {**ci, "lo": ci["mean"] - total, "hi": ci["mean"] + total}


def verdict_of(ci: dict[str, float]) -> str:
    """``ahead``, ``behind`` or ``tie`` for a paired difference (ours − theirs); ``n/a`` when
    there is nothing to compare (not measured)."""
    if math.isnan(ci["mean"]):
        return "n/a"
    if math.isnan(ci["lo"]) or ci["lo"] <= 0 <= ci["hi"]:
        return "tie"
    return "ahead" if ci["mean"] > 0 else "behind"


def percentile(value: float, population: Sequence[float]) -> float:
    """Share (in %) of ``population`` strictly below ``value``, plus half of the ties."""
    if not population or math.isnan(value):
        return math.nan
    below = sum(1 for p in population if p < value)
    ties = sum(1 for p in population if p == value)
    return 100.0 * (below + 0.5 * ties) / len(population)


def hypervolume(points: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``(params, auc)`` points (fewer params and higher AUC are better)
    above the reference ``(max params, min auc)``; points outside the reference count 0."""
    pts = sorted((p, a) for p, a in points if p <= ref[0] and a >= ref[1])
    area = 0.0
    # sweep from the largest params down: each point adds the strip between its params and
    # the next larger point's, at the best AUC reachable with at most that many params
    for i in range(len(pts)):
        p = pts[i][0]
        best_here = max(x[1] for x in pts[: i + 1])
        nxt = pts[i + 1][0] if i + 1 < len(pts) else ref[0]
        area += (nxt - p) * (best_here - ref[1])
    return area
