"""Pareto front of parameter count (lower is better) against AUC (higher is better).

Definitions (DESIGN.md §3), used by the sweep and the report:

* Point ``p`` *dominates* ``q`` when ``p.params <= q.params`` and ``p.auc >= q.auc`` with at
  least one of the two strict.
* *Duplicates* — points with exactly the same ``params`` and ``auc`` — do not dominate each
  other; the front keeps only the first of them in input order (the rest are reported as off the
  front), so the front never holds two points at the same spot.
* The front is every non-dominated point (after removing later duplicates), sorted by
  ``params`` ascending; along it both ``params`` and ``auc`` strictly increase.

The CSV writer is atomic (temp file in the target folder, then ``os.replace``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adass_ray.data.io import atomic_write_bytes
from adass_ray.errors import DataError

logger = logging.getLogger(__name__)

_BASE_COLUMNS = ("key", "params", "auc", "on_front")


@dataclass(frozen=True)
class ParetoPoint:
    """One evaluated configuration.

    Attributes:
        params: parameter count (embedding or total, as the caller chooses); lower is better.
        auc: quality; higher is better. Must not be NaN.
        key: an identifier (run id, trial name, architecture hash).
        payload: free-form extra columns (e.g. ``{"lambda": 0.1, "budget": 0.8}``); not compared.
    """

    params: int
    auc: float
    key: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict, compare=False)


def dominates(p: ParetoPoint, q: ParetoPoint) -> bool:
    """Return whether ``p`` dominates ``q`` (params <= and auc >=, at least one strict).

    Args:
        p: the candidate dominating point.
        q: the candidate dominated point.

    Returns:
        True if ``p`` dominates ``q``; False for duplicates (same params and auc).
    """
    return (p.params <= q.params and p.auc >= q.auc) and (p.params < q.params or p.auc > q.auc)


def front_mask(points: Sequence[ParetoPoint]) -> list[bool]:
    """Return, per input point, whether it is on the front (see the module docstring).

    Args:
        points: the evaluated points, in input order.

    Returns:
        A list of booleans, one per point; True for front members.

    Raises:
        DataError: if an AUC is NaN (it cannot be ordered).
    """
    for i, p in enumerate(points):
        if math.isnan(p.auc):
            raise DataError(f"pareto point {i} ({p.key or 'no key'}) has AUC NaN; drop it first")
    # Sweep by params ascending, then auc descending, then input order: a point is on the front
    # iff its auc beats every point before it. That drops same-params points with lower auc
    # (dominated), later exact duplicates (equal, not greater), and any point with more params
    # and no better auc (dominated).
    order = sorted(range(len(points)), key=lambda i: (points[i].params, -points[i].auc, i))
    mask = [False] * len(points)
    best = -math.inf
    for i in order:
        if points[i].auc > best:
            mask[i] = True
            best = points[i].auc
    return mask


def pareto_front(points: Sequence[ParetoPoint]) -> list[ParetoPoint]:
    """Return the non-dominated points, one per duplicate group, sorted by params ascending.

    Args:
        points: the evaluated points.

    Returns:
        The front members (the input objects themselves), params and auc strictly increasing.

    Raises:
        DataError: if an AUC is NaN.
    """
    mask = front_mask(points)
    front = [p for p, on in zip(points, mask, strict=True) if on]
    return sorted(front, key=lambda p: p.params)


def _encode(value: Any) -> str:
    """Encode a payload value so :func:`_decode` restores it (JSON unless a plain string)."""
    if isinstance(value, str) and value:
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, sort_keys=True, default=str)


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _membership(points: Sequence[ParetoPoint], front: Iterable[ParetoPoint]) -> list[bool]:
    """Mark the points that ``front`` holds: by identity first, else the first equal unmarked."""
    on = [False] * len(points)
    by_id = {id(p): i for i, p in enumerate(points)}
    for f in front:
        i = by_id.get(id(f))
        if i is None or on[i]:
            i = next((j for j, p in enumerate(points) if not on[j] and p == f), None)
        if i is None:
            raise DataError(f"front point {f.key or f} is not among the points; "
                            "pass the front computed from the same points")
        on[i] = True
    return on


def write_pareto_csv(path: str | os.PathLike[str], points: Sequence[ParetoPoint],
                     front: Iterable[ParetoPoint]) -> Path:
    """Write every point with an ``on_front`` column to a CSV file, atomically.

    Columns: ``key, params, auc, on_front`` then the union of payload keys (in first-seen
    order). AUC is written with ``repr`` so it reads back exactly; payload values that are not
    plain strings are JSON-encoded (as are strings that would parse as JSON, e.g. ``"1"``), so
    :func:`read_pareto_csv` restores them. Rows keep the input order.

    Args:
        path: target file; its folder must exist.
        points: all evaluated points.
        front: the front members (normally ``pareto_front(points)``), matched by identity, or
            by equality for copies.

    Returns:
        The written path.

    Raises:
        DataError: if a front point is not among ``points`` or a payload key clashes with a
            base column.
    """
    on_front = _membership(points, front)
    extra: dict[str, None] = {}
    for p in points:
        for k in p.payload:
            if k in _BASE_COLUMNS:
                raise DataError(f"payload key {k!r} clashes with a base column of the Pareto CSV")
            extra.setdefault(str(k), None)
    target = Path(path)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow([*_BASE_COLUMNS, *extra])
    for p, on in zip(points, on_front, strict=True):
        cells = [_encode(p.payload[k]) if k in p.payload else "" for k in extra]
        writer.writerow([p.key, str(int(p.params)), repr(float(p.auc)), str(int(on)), *cells])
    atomic_write_bytes(target, buf.getvalue().encode("utf-8"))
    logger.debug("wrote %d points (%d on the front) to %s", len(points), sum(on_front), target)
    return target


def read_pareto_csv(path: str | os.PathLike[str]) -> tuple[list[ParetoPoint], list[bool]]:
    """Read a file written by :func:`write_pareto_csv`.

    Args:
        path: the CSV file.

    Returns:
        ``(points, on_front)`` in file order; empty payload cells are omitted from the payload.

    Raises:
        DataError: if the file lacks the base columns.
    """
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _BASE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} is not a Pareto CSV: missing columns {missing}")
        points: list[ParetoPoint] = []
        on_front: list[bool] = []
        for row in reader:
            payload = {k: _decode(v) for k, v in row.items()
                       if k not in _BASE_COLUMNS and v not in ("", None)}
            points.append(ParetoPoint(params=int(row["params"]), auc=float(row["auc"]),
                                      key=row["key"], payload=payload))
            on_front.append(row["on_front"] == "1")
    return points, on_front


def auto_lams(uniform: Sequence[Mapping[str, float]], budgets: Sequence[int], *,
              count: int = 5, first_steps: Sequence[tuple[float, float]] = ()
              ) -> tuple[float, ...]:
    """A λ grid scaled to the data: 0 plus ``count`` values spread evenly in log scale over the
    trade-off rates the uniform architectures show.

    λ is AUC per unit of C/B, so its useful range depends on the dataset (how much AUC a size
    step buys) and on the budget (C/B shrinks as B grows). For every budget, each step between
    consecutive uniform architectures within it gives a rate ΔQ / Δ(C/B) (steps that lose AUC
    are skipped); the grid spans half the smallest rate to twice the largest, so its λ fall on
    either side of every uniform step and the sweep reaches from the costliest architecture
    that fits towards the cheapest. Values keep two significant digits (readable trial names),
    so fewer than ``count`` remain when two round to the same value.

    The uniform ladder's steepest step can still be shallower than one field's first step up
    from the cheapest architecture (a small table whose next size buys a lot of AUC), so the
    largest λ would stop short of the cheapest point. With ``first_steps`` one more λ is
    appended, twice the steepest of those single-field rates (when it exceeds the grid's top):
    at that λ no single field's first step pays, so the largest λ normally selects the cheapest
    architecture (a field whose second step gains much more than its first, or fields that
    only gain together, can still beat it: a heuristic margin, not a guarantee).

    Args:
        uniform: ``{"cost", "quality"}`` of each uniform architecture (as
            :func:`~adass_ray.search.context.uniform_points` gives). budgets: B in parameters.
        count: how many positive λ (>= 1).
        first_steps: ``(ΔQ, Δcost)`` of each single-field step up from the cheapest
            architecture (:func:`~adass_ray.search.context.first_steps`).

    Returns:
        The grid, ascending, starting with 0; just ``(0.0,)`` when no uniform step gains AUC
        (nothing to trade: the caller should say so or give λ itself).
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    rates = [r for budget in budgets for r in uniform_rates(uniform, budget)]
    if not rates:
        return (0.0,)
    lo, hi = min(rates) / 2, max(rates) * 2
    steps = [lo * (hi / lo) ** (i / max(1, count - 1)) for i in range(count)]
    grid = sorted({float(f"{x:.2g}") for x in steps})
    first = [dq * b / dc for b in budgets for dq, dc in first_steps if dq > 0 and dc > 0]
    top = float(f"{2 * max(first):.2g}") if first else 0.0
    return (0.0, *grid, *([top] if top > grid[-1] else []))


def uniform_rates(uniform: Sequence[Mapping[str, float]], budget: int) -> list[float]:
    """ΔQ / Δ(C/B) of each step up the uniform architectures within ``budget``, cheapest first:
    each architecture that beats the best quality so far gives the rate from that best one
    (an architecture that does not gain is skipped, and the next gain is measured from the
    best, not from the dip)."""
    pts = sorted((float(p["cost"]) / budget, float(p["quality"])) for p in uniform
                 if float(p["cost"]) <= budget and math.isfinite(float(p["quality"])))
    rates: list[float] = []
    if not pts:
        return rates
    best_c, best_q = pts[0]
    for c, q in pts[1:]:
        if q > best_q and c > best_c:
            rates.append((q - best_q) / (c - best_c))
            best_c, best_q = c, q
    return rates


def uniform_dominance(front: Sequence[ParetoPoint],
                      uniform: Sequence[Mapping[str, float]]) -> list[dict[str, Any]]:
    """For each uniform architecture: the cheapest front point at or below its cost with at
    least its quality (``None`` when the front has none), i.e. whether the front matches or
    beats the hand-picked size at equal cost."""
    cheapest_first = sorted(front, key=lambda p: p.params)
    out = []
    for u in uniform:
        cost, q = float(u["cost"]), float(u["quality"])
        hit = next((p for p in cheapest_first if p.params <= cost and p.auc >= q), None)
        out.append({"size": u.get("size"), "cost": int(cost), "quality": q,
                    "covered_by": hit.key if hit else None,
                    "front_params": hit.params if hit else None,
                    "front_quality": hit.auc if hit else None})
    return out
