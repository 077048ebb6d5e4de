"""Selection robust to noise (DESIGN.md §2.3): re-rank a short list on held-out rows.

A search scores architectures on the search half of the validation rows (Q_A). Picking the
maximum of thousands of noisy Q_A is a winner's curse, so the result is chosen in two stages:

1. candidates: the top ``top_k`` distinct feasible architectures of the history by Q_A (by
   Q_A − λ·C/B in the trade-off mode), plus ``extra`` ones (a controller's constrained argmax,
   :func:`constrained_argmax`), each repaired to the budget, plus the uniform architecture of
   the largest size that fits (the hand-picked answer a search must beat, so a selection is
   never worse than it on Q_B beyond the noise);
2. the result: the candidate with the best Q_B − λ·C/B on the selection half; ties go to the
   lower cost, then to the lexicographically smaller architecture;
3. in the budget mode (λ = 0), when the scorer can give per-row logits, the candidates whose
   Q_B is within ``tie_se`` paired-bootstrap standard errors of the best are ties, and the one
   that uses the most of the budget wins (then the higher Q_B): a Q_B lead far inside the
   noise of the selection rows is no reason to leave capacity unused.

Any method can call :func:`rerank` with its own history (random search and evolution have no
policy, hence no ``extra``), so the comparison between methods stays fair. The budget is a hard
guarantee: every candidate, hence the result, costs at most B.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from adass_ray.errors import ConfigError
from adass_ray.metrics import paired_bootstrap_se
from adass_ray.search.knapsack import solve_mckp
from adass_ray.search.space import Arch, History, SearchSpace, Selection, repair, select

ScoreFn = Callable[[Sequence[Arch]], Sequence[float]]


@runtime_checkable
class PairedScorer(Protocol):
    """A scorer that also gives per-row logits on its rows (e.g. a ``CachedEvaluator``), so
    selection can tell a real Q_B lead from row noise."""

    labels: np.ndarray

    def __call__(self, archs: Sequence[Arch]) -> Sequence[float]: ...

    def logits(self, archs: Sequence[Arch]) -> torch.Tensor: ...


logger = logging.getLogger(__name__)
# Log-probabilities below this are treated as this (a probability that underflowed to 0).
LOG_FLOOR = -1e6


def constrained_argmax(space: SearchSpace, log_probs: torch.Tensor | np.ndarray,
                       budget: int) -> Arch:
    """The most probable architecture of a factorised policy with C ≤ B (exact knapsack).

    Maximises Σ_f log p_{f,α_f} subject to Σ_f V_f·s_{α_f} ≤ B; ties: lower cost, then the
    lexicographically smaller architecture.

    Args:
        space: the search space. log_probs: ``[F, K]`` per-field log-probabilities (−inf is
            allowed and treated as ``LOG_FLOOR``). budget: B in parameters.

    Returns:
        The architecture (candidate indices).

    Raises:
        ConfigError: ``budget < space.min_cost()`` (nothing fits).
        ValueError: ``log_probs`` of the wrong shape or with a NaN.
    """
    lp = torch.as_tensor(log_probs).detach().cpu().double().numpy()
    f, k = space.num_fields, space.num_candidates
    if lp.shape != (f, k) or np.isnan(lp).any():
        raise ValueError(f"log_probs must be [{f}, {k}] without NaN, got {lp.shape}")
    if budget < space.min_cost():
        raise ConfigError(f"budget {budget:,} params is below the smallest architecture "
                          f"({space.min_cost():,}); nothing fits")
    arch = solve_mckp(np.maximum(lp, LOG_FLOOR), space.cost_table(), int(budget))
    assert arch is not None and space.cost(arch) <= budget
    return arch


def top_k(space: SearchSpace, history: History, budget: int, k: int, *,
          lam: float = 0.0) -> list[Arch]:
    """The ``k`` best distinct feasible architectures of ``history`` by Q − λ·C/B.

    Unscored entries (None/NaN) are skipped; an architecture seen twice keeps its best score;
    ties go to the lower cost, then the lexicographically smaller architecture.

    Args:
        space: the search space. history: ``(arch, Q_A)`` pairs. budget: B. k: how many (>= 0).
        lam: λ of the trade-off (0 in the budget mode).

    Returns:
        Up to ``k`` architectures, best first.

    Raises:
        ConfigError: an architecture that does not fit the space.
    """
    best: dict[Arch, float] = {}
    for arch, q in history:
        a = space.validate(arch)
        if q is None or math.isnan(q) or space.cost(a) > budget:
            continue
        best[a] = max(float(q), best.get(a, -math.inf))
    keyed = sorted((-_score(space, a, q, budget, lam), space.cost(a), a) for a, q in best.items())
    return [a for _, _, a in keyed[:max(0, k)]]


def rerank(space: SearchSpace, budget: int, history_a: History,
           score_b: ScoreFn | PairedScorer, *, top_k: int = 8,
           extra: Iterable[Sequence[int]] = (), lam: float = 0.0,
           tie_se: float = 0.0, occam: float = 0.0) -> Selection:
    """Choose among the top-k by Q_A (plus ``extra``) by Q_B − λ·C/B on held-out rows.

    When the history has no feasible scored architecture and ``extra`` is empty, the best
    architecture seen (as :func:`~adass_ray.search.space.select` ranks it) is repaired and is
    the only candidate (``repaired=True``).

    Args:
        space: the search space. budget: B in parameters.
        history_a: ``(arch, Q_A)`` pairs from the search half, any order, duplicates allowed.
        score_b: scores a list of architectures on the selection half (e.g. a
            :class:`~adass_ray.search.evaluator.CachedEvaluator` built on it).
        top_k: how many history architectures to re-score (>= 0).
        extra: more candidates (e.g. :func:`constrained_argmax`), repaired to the budget.
        lam: λ >= 0 of the trade-off mode (Q units per unit of C/B); 0 in the budget mode.
        tie_se: the noise band in paired-bootstrap standard errors of Q_B differences (needs a
            :class:`PairedScorer`; 0 or a plain score function: the point estimate decides).
        occam: in the budget mode (λ = 0) only, select (and short-list) by Q − λ_o·C/B with
            λ_o = ``occam`` × the smallest AUC rate of a uniform size step within the budget
            (:func:`occam_lam`): a parameter must buy at least that share of what the least
            useful uniform step buys, so capacity that Q cannot tell from noise is not bought.

    Returns:
        A :class:`Selection` (``quality`` = Q_A where known, ``quality_b`` = Q_B), cost ≤ B.

    Raises:
        ConfigError: no candidate at all (empty history and no extra), a negative ``top_k`` or
            λ, or ``budget < space.min_cost()`` where a repair is needed.
    """
    if (top_k < 0 or not (math.isfinite(lam) and lam >= 0) or not tie_se >= 0
            or not (math.isfinite(occam) and occam >= 0)):
        raise ConfigError(f"rerank: top_k={top_k}, lam={lam}, tie_se={tie_se}, "
                          f"occam={occam}; need each >= 0")
    history = [(space.validate(a), q) for a, q in history_a]
    q_a = _best_q(history)
    if lam == 0 and occam > 0:
        lam = occam_lam(space, budget, score_b, occam)
    top = top_k_fn(space, history, budget, top_k, lam=lam)
    cands = _with_uniform(space, budget, [*top, *(repair(space, a, budget) for a in extra)])
    repaired_from: Arch | None = None
    if not cands:  # nothing feasible and scored: fall back on select()'s choice
        if not history:
            raise ConfigError("rerank: no candidates; run at least one search iteration")
        fallback = select(space, history, budget)
        cands, repaired_from = [fallback.arch], fallback.repaired_from
    return _choose(space, budget, cands, _score_b(score_b, cands), lam, q_a, repaired_from,
                   _band(score_b, tie_se))


def rerank_front(space: SearchSpace, budget: int, history_a: History,
                 score_b: ScoreFn | PairedScorer, lams: Sequence[float], *, top_k: int = 8,
                 extra: Iterable[Sequence[int]] = (), tie_se: float = 0.0) -> list[Selection]:
    """One selection per λ from one shared, once-scored candidate pool: a monotone front.

    The pool is the union over ``lams`` of the top ``top_k`` by Q_A − λ·C/B, plus, for every
    uniform architecture within the budget, the top ``top_k`` by Q_A among those costing no
    more than it (a point of a non-convex stretch of the front, which no λ selects, still gets
    scored where a hand-picked size has to be matched), plus ``extra`` (repaired), the largest
    uniform architecture that fits and, when some λ > 0, the cheapest architecture (where a
    large λ leads). Each selection's ``candidates`` is that whole pool. Each candidate is
    scored on the selection half once,
    and each λ takes the best Q_B − λ·C/B (ties: lower cost, then lexicographic). With the
    scores fixed, the chosen cost can only fall as λ grows (if x1 wins at λ1 < λ2 and x2 at λ2,
    adding the two optimality inequalities gives (λ2 − λ1)·(C1 − C2) >= 0), so a sweep's front
    is monotone by construction. Pass the pooled history (and candidates) of every trial of the
    sweep. The noise band (``tie_se``) applies at λ = 0 only, where it can only raise the chosen
    cost, so the front stays monotone.

    Args:
        space, budget, history_a, score_b, top_k, extra, tie_se: as :func:`rerank`.
        lams: the λ grid (each >= 0), any order.

    Returns:
        One :class:`Selection` per λ, in the order of ``lams``.

    Raises:
        ConfigError: as :func:`rerank`, or an empty ``lams``.
    """
    if not lams or any(not (math.isfinite(x) and x >= 0) for x in lams):
        raise ConfigError(f"rerank_front: lams {list(lams)}: need at least one, each >= 0")
    history = [(space.validate(a), q) for a, q in history_a]
    tops = [a for lam in lams for a in top_k_fn(space, history, budget, top_k, lam=lam)]
    tops += [a for u in space.uniform_archs(budget)
             for a in top_k_fn(space, history, space.cost(u), top_k)]
    pool = _with_uniform(space, budget, tops + [repair(space, a, budget) for a in extra])
    if pool and max(lams) > 0:  # the end a large λ heads for: the cheapest architecture
        pool = _dedupe([*pool, (0,) * space.num_fields])
    repaired_from: Arch | None = None
    if not pool:  # nothing feasible and scored: fall back on select()'s choice, as rerank does
        if not history:
            raise ConfigError("rerank_front: no candidates; run at least one search iteration")
        fallback = select(space, history, budget)
        pool, repaired_from = [fallback.arch], fallback.repaired_from
    scores = _score_b(score_b, pool)
    q_a = _best_q(history)
    band = _band(score_b, tie_se)
    return [_choose(space, budget, pool, scores, lam, q_a, repaired_from, band) for lam in lams]


top_k_fn = top_k  # rerank's keyword argument shadows the function's name


def occam_lam(space: SearchSpace, budget: int, score_b: ScoreFn, share: float) -> float:
    """λ_o of the budget mode's selection: ``share`` × the smallest ΔQ_B / Δ(C/B) between
    consecutive uniform architectures within the budget (steps that lose Q_B are skipped; 0
    when no step gains, i.e. nothing to scale by). Scores at most one architecture per size."""
    from adass_ray.pareto import uniform_rates

    fits = space.uniform_archs(budget)
    if share <= 0 or len(fits) < 2:
        return 0.0
    points = [{"cost": space.cost(a), "quality": q}
              for a, q in zip(fits, _score_b(score_b, fits), strict=True)]
    rates = uniform_rates(points, budget)
    return share * min(rates) if rates else 0.0


def _best_q(history: Iterable[tuple[Arch, float | None]]) -> dict[Arch, float]:
    """Each architecture's best scored Q (unscored entries are skipped)."""
    out: dict[Arch, float] = {}
    for a, q in history:
        if q is not None and not math.isnan(q):
            out[a] = max(float(q), out.get(a, -math.inf))
    return out


def _score_b(score_b: ScoreFn, cands: list[Arch]) -> list[float]:
    scores = [float(x) for x in score_b(cands)]
    if len(scores) != len(cands):
        raise ValueError(f"score_b returned {len(scores)} scores for {len(cands)} candidates")
    return scores


BandFn = Callable[[list[Arch], list[float], int], list[bool]]


def _band(score_b: ScoreFn | PairedScorer, tie_se: float) -> BandFn | None:
    """Which candidates tie with the best one (index ``best``) inside the row noise."""
    if tie_se <= 0 or not isinstance(score_b, PairedScorer):
        return None
    scorer = score_b

    def band(cands: list[Arch], scores: list[float], best: int) -> list[bool]:
        logits = scorer.logits(cands).detach().double().cpu().numpy()
        se = paired_bootstrap_se(np.asarray(scorer.labels), logits, best)
        return [bool(scores[best] - q <= tie_se * s) if math.isfinite(q) else False
                for q, s in zip(scores, se, strict=True)]

    return band


def _choose(space: SearchSpace, budget: int, cands: list[Arch], scores: list[float],
            lam: float, q_a: dict[Arch, float], repaired_from: Arch | None,
            band: BandFn | None = None) -> Selection:
    """The best candidate by Q_B − λ·C/B (NaN last), then lower cost, then lexicographic; at
    λ = 0 with a ``band``, the costliest candidate tied with that one (then the higher Q_B)."""
    keyed = sorted((_worst_if_nan(-_score(space, a, q, budget, lam)), space.cost(a), a, q)
                   for a, q in zip(cands, scores, strict=True))
    _, cost, arch, qb = keyed[0]
    ties = 1
    if band is not None and lam == 0 and len(cands) > 1 and math.isfinite(qb):
        tied = band(cands, scores, cands.index(arch))
        ties = sum(tied)
        pick = min((-space.cost(a), -q, a) for a, q, t in zip(cands, scores, tied, strict=True)
                   if t)
        if pick[2] != arch:
            logger.info("selection: %d of %d candidates tie with the best Q_B %.4f inside the "
                        "row noise; taking the one that uses the most budget (%s params, Q_B "
                        "%.4f) over %s params", ties, len(cands), qb, f"{-pick[0]:,}", -pick[1],
                        f"{cost:,}")
        cost, arch, qb = -pick[0], pick[2], -pick[1]
    return Selection(arch, space.sizes(arch), cost, None if repaired_from else q_a.get(arch),
                     budget, repaired_from is not None, repaired_from, quality_b=qb, lam=lam,
                     candidates=tuple(cands), ties=ties)


def _score(space: SearchSpace, arch: Arch, q: float, budget: int, lam: float) -> float:
    return q - lam * space.cost(arch) / budget if lam else q


def _worst_if_nan(x: float) -> float:
    return math.inf if math.isnan(x) else x


def _with_uniform(space: SearchSpace, budget: int, cands: list[Arch]) -> list[Arch]:
    """``cands`` (deduplicated) plus the uniform architecture of the largest positive size
    within the budget; nothing is added to an empty list (there was no search to compare)."""
    if not cands:
        return []
    return _dedupe([*cands, *space.uniform_archs(budget)[-1:]])


def _dedupe(archs: Iterable[Arch]) -> list[Arch]:
    return list(dict.fromkeys(archs))
