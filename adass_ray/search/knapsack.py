"""Exact multiple-choice knapsack (MCKP): one item per group, maximise value under a cost cap.

Used for the policy's constrained argmax (DESIGN.md §2.3: maximise Σ_f log p_{f,α_f} subject to
Σ_f V_f·s_{α_f} ≤ B) and for the noise-free optimum of separable oracles in the benchmarks.

Method: a dynamic programme over groups that keeps only the Pareto-optimal partial solutions
(no other partial solution is at most as costly and at least as valuable), pruned by an upper
bound: the LP relaxation of the remaining groups (their upper convex hulls, filled greedily by
slope), which is a concave piecewise-linear function of the remaining budget precomputed once per
suffix. A partial solution whose value plus that bound cannot reach a known feasible solution
(the LP solution rounded down) is dropped. Both prunings are exact, so the result is optimal;
costs are exact integers (int64), values float64.

Ties: among equally valuable solutions the cheaper one wins, then the lexicographically smaller
choice vector, so the answer does not depend on the order of anything but the input.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def _chain(values: FloatArray, costs: IntArray) -> IntArray:
    """Indices of one group's undominated items, by increasing cost (and strictly increasing value).

    Equal cost: the most valuable, then the lowest index, survives; an item is kept only if it is
    strictly more valuable than every cheaper (or equally cheap, earlier) one.
    """
    order = np.lexsort((np.arange(len(values)), -values, costs))
    kept: list[int] = []
    best = -np.inf
    for i in order:
        if values[i] > best:
            kept.append(int(i))
            best = values[i]
    return np.asarray(kept, dtype=np.int64)


def _hull_segments(c: IntArray, v: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(Δcost, Δvalue) of the upper concave hull of the points (c, v), by decreasing slope."""
    hull = [0]
    for i in range(1, len(c)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b lies on or under the chord a -> i: drop it (cross-multiplied, costs > 0 apart).
            if (v[b] - v[a]) * (c[i] - c[a]) <= (v[i] - v[a]) * (c[b] - c[a]):
                hull.pop()
            else:
                break
        hull.append(i)
    h = np.asarray(hull)
    return np.diff(c[h]).astype(np.float64), np.diff(v[h])


class _Bound:
    """The LP relaxation of a set of groups as a function of the budget left for them."""

    def __init__(self, base_cost: int, base_value: float, dc: FloatArray, dv: FloatArray) -> None:
        order = np.argsort(-(dv / dc), kind="stable")
        self.base_cost, self.base_value = base_cost, base_value
        self.x = np.concatenate([[0.0], np.cumsum(dc[order])])
        self.y = np.concatenate([[0.0], np.cumsum(dv[order])])

    def __call__(self, left: NDArray[np.int64]) -> FloatArray:
        """Upper bound on the value reachable with ``left`` budget (-inf where infeasible)."""
        room = (left - self.base_cost).astype(np.float64)
        out = self.base_value + np.interp(room, self.x, self.y)
        return np.where(room < 0, -np.inf, out)

    def rounded_down(self, room: float) -> float:
        """Value of the LP solution without its fractional segment (a feasible lower bound)."""
        full = int(np.searchsorted(self.x, room, side="right")) - 1
        return self.base_value + float(self.y[max(full, 0)])


def solve_mckp(values: ArrayLike, costs: ArrayLike, budget: int) -> tuple[int, ...] | None:
    """The exact best choice of one item per group under a total cost cap.

    Args:
        values: ``[G, K]`` finite item values (e.g. log-probabilities), to maximise in sum.
        costs: ``[G, K]`` non-negative integer item costs.
        budget: the cap on the total cost (inclusive).

    Returns:
        The chosen item index per group, or None when even the cheapest choice exceeds ``budget``.

    Raises:
        ValueError: mismatched or empty shapes, non-finite values or negative costs.
    """
    val = np.asarray(values, dtype=np.float64)
    cost = np.asarray(costs)
    if val.ndim != 2 or val.shape != cost.shape or val.size == 0:
        raise ValueError(f"values {val.shape} and costs {cost.shape} must both be [G, K], K >= 1")
    if not np.isfinite(val).all() or (cost < 0).any() or not np.issubdtype(cost.dtype, np.integer):
        raise ValueError("values must be finite and costs non-negative integers")
    cost = cost.astype(np.int64)
    g = val.shape[0]
    chains = [_chain(val[f], cost[f]) for f in range(g)]
    cheapest = np.array([cost[f, ch[0]] for f, ch in enumerate(chains)], dtype=np.int64)
    if int(cheapest.sum()) > budget:
        return None
    bounds = _suffix_bounds(val, cost, chains)
    # A feasible solution's value (LP rounded down) that every kept partial must be able to reach;
    # the tolerance keeps rounding in the bound from ever pruning an optimal partial solution.
    lower = bounds[0].rounded_down(float(budget - bounds[0].base_cost))
    tol = 1e-9 * (1.0 + float(np.abs(val).max(axis=1).sum()))
    s_cost = np.zeros(1, dtype=np.int64)
    s_val = np.zeros(1)
    s_rank = np.zeros(1, dtype=np.int64)  # lexicographic rank of each partial choice vector
    parents: list[IntArray] = []
    picks: list[IntArray] = []
    k_max = val.shape[1]
    for f in range(g):
        items = chains[f]
        n_c = (s_cost[:, None] + cost[f, items][None, :]).ravel()
        n_v = (s_val[:, None] + val[f, items][None, :]).ravel()
        parent = np.repeat(np.arange(len(s_cost)), len(items))
        choice = np.tile(items, len(s_cost))
        keep = n_v + bounds[f + 1](budget - n_c) >= lower - tol
        n_c, n_v, parent, choice = n_c[keep], n_v[keep], parent[keep], choice[keep]
        lex = s_rank[parent] * k_max + choice
        order = np.lexsort((lex, -n_v, n_c))
        n_v_sorted = n_v[order]
        prev_best = np.concatenate([[-np.inf], np.maximum.accumulate(n_v_sorted)[:-1]])
        order = order[n_v_sorted > prev_best]  # the Pareto filter (see _chain for the tie rule)
        s_cost, s_val = n_c[order], n_v[order]
        lex = lex[order]
        s_rank = np.empty(len(lex), dtype=np.int64)
        s_rank[np.argsort(lex, kind="stable")] = np.arange(len(lex))
        parents.append(parent[order])
        picks.append(choice[order])
    # Survivors are sorted by cost with strictly increasing value: the last one is the optimum.
    i = len(s_cost) - 1
    arch = [0] * g
    for f in range(g - 1, -1, -1):
        arch[f] = int(picks[f][i])
        i = int(parents[f][i])
    return tuple(arch)


def _suffix_bounds(val: FloatArray, cost: IntArray, chains: list[IntArray]) -> list[_Bound]:
    """``bounds[f]`` bounds groups f..G-1; ``bounds[G]`` is the empty suffix (value 0)."""
    g = len(chains)
    out: list[_Bound] = [_Bound(0, 0.0, np.zeros(0), np.zeros(0))]
    base_c, base_v = 0, 0.0
    dcs: list[FloatArray] = []
    dvs: list[FloatArray] = []
    for f in range(g - 1, -1, -1):
        ch = chains[f]
        c, v = cost[f, ch], val[f, ch]
        dc, dv = _hull_segments(c, v)
        dcs.append(dc)
        dvs.append(dv)
        base_c += int(c[0])
        base_v += float(v[0])
        out.append(_Bound(base_c, base_v, np.concatenate(dcs), np.concatenate(dvs)))
    return out[::-1]
