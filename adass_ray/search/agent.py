"""One search agent: a controller and an evaluator, stepped by a driver (DESIGN.md §2.3, v2).

Pure torch (no Ray): a Ray actor wraps one of these, and a single process can run one directly.
Each :meth:`SearchAgent.step`

1. proposes ``archs_per_iter`` architectures: uniform random ones during the RL warm-up
   (the first ``warmup_iters`` iterations), the policy's samples afterwards;
2. repairs every proposal to C ≤ B (:func:`~adass_ray.search.space.repair`) *before* scoring,
   so no evaluation is spent on an infeasible architecture, and scores the repaired ones (Q_A);
3. updates the policy on :class:`~adass_ray.search.penalty.Objective`, crediting the repaired
   architectures (their log-probabilities) with Q. During the warm-up the budget mode updates
   the cost term only (the policy learns to fill the budget before Q's gradient arrives) and
   the trade-off mode does not update at all (its cost term alone would only shrink the policy).

The agent's result is picked elsewhere: :meth:`SearchAgent.candidates` gives the policy's
constrained argmax for :func:`~adass_ray.search.selection.rerank`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from adass_ray.errors import ConfigError
from adass_ray.search.controller import CONTROLLERS, build_controller
from adass_ray.search.penalty import H_KINDS, MODES, Objective, tradeoff_reward
from adass_ray.search.rows import RowPlan
from adass_ray.search.selection import constrained_argmax
from adass_ray.search.space import Arch, SearchSpace, repair

logger = logging.getLogger(__name__)

MAX_CONTROLLERS = 1000  # controller seeds are 1000 · seed + i: distinct for i < 1000


def controller_seed(seed: int, index: int) -> int:
    """The seed of controller ``index`` in a search seeded ``seed``. With ``seed + index`` (the
    old rule) controller 1 of seed s was controller 0 of seed s + 1, so searches with adjacent
    seeds shared a controller run and were not independent replicates."""
    return MAX_CONTROLLERS * int(seed) + int(index)


@dataclass(frozen=True)
class SearchConfig:
    """Stage 2 settings (lr, top_k, h, warm-up and budget weight were chosen with
    ``bench/controller_probe.py``: lr 0.1 beat 0.05 and 0.2, h="dual" tied with "abs" on Q).

    Attributes:
        controller: ``factorized`` (per-field softmax) or ``lstm``.
        controllers: parallel controller actors (different seeds, or the ``lams`` below).
        iterations: iterations per controller (warm-up included).
        archs_per_iter: architectures each controller proposes and scores per iteration.
        lr, entropy_weight: the controller's peak Adam step (β1 = 0) and entropy bonus.
        baseline_decay: deprecated, ignored (the baseline is the batch's leave-one-out mean).
        lam: λ of ``mode="tradeoff"``: Q (AUC) per unit of C/B, e.g. 0 … 0.05; ``lams`` gives
            each controller its own. Ignored by the training in ``mode="budget"``.
        mu: deprecated, ignored (the cost term is exact now).
        competition: the exact, per-field expected-cost term (True) or its REINFORCE estimate
            shared by every field (False: the ablation).
        val_rows: rows of the validation split scored (split into search and selection halves).
        select_rows: rows of the selection half: where the validation split has more rows than
            ``val_rows``, the half is topped up with rows the search never scores, up to this
            many (0: the subsample's half only). Selection scores a short list, so rows are
            cheap there; its evaluator holds rows × fields × sizes × d floats.
        search_share: the search's subsample takes at most this share of the validation split,
            so that on a small split selection gets the rest (1, the default: ``val_rows``
            whatever the split's size). Opt-in: at 0.4 it helped on MovieLens and cost a little
            on the planted synthetic set (docs/results.md § Selection on more rows).
        d_base: the uniform baseline's size (budgets given as ratios refer to it).
        seed: controller ``i`` is seeded with ``1000 · seed + i`` (so searches with different
            seeds share no controller); the validation rows use ``seed``.
        actor_resource: a custom Ray resource each controller actor (and each sweep trial)
            also requests one unit of, e.g. ``search_slot`` on ``cluster.yaml``'s GPU nodes.
        mode: ``budget`` (hard cap + two-sided expected-cost term) or ``tradeoff`` (Q − λ·C/B
            under the hard cap, for λ sweeps).
        warmup_iters: iterations of repaired uniform-random proposals before the policy's.
        lr_ramp_iters: updates over which the learning rate rises linearly to ``lr``.
        top_k: architectures by Q_A that selection re-scores on Q_B.
        tie_se: selection's noise band in the budget mode: candidates whose Q_B is within this
            many paired-bootstrap standard errors of the best tie, and the one that uses the
            most budget wins (0, the default: the best point estimate wins). Off by default:
            at 1 it helped on MovieLens and cost 0.002-0.007 test AUC on the planted synthetic
            data, where the budget it fills goes to fields with no signal (docs/results.md).
        occam: selection's cost prior in the budget mode: the short list and the pick use
            Q − λ_o·C/B with λ_o = ``occam`` × the smallest AUC rate of a uniform size step
            within the budget, on the selection half (0: the best Q_B wins, whatever it costs).
            When it is on (λ_o > 0), ``tie_se``'s noise band, which applies at λ = 0 only, is not.
        budget_weight: λ_b of the budget term h(E[C]/B) (start value for ``h="dual"``).
        h: ``abs`` (|x − 1|) or ``dual`` (x − 1 with dual ascent on λ_b, step ``dual_lr``).
        dual_lr: step of the dual ascent on λ_b (``h="dual"`` only).
        adv_eps: added to the batch standard deviation of Q (AUC units).
    """

    controller: str = "factorized"
    controllers: int = 2
    iterations: int = 60
    archs_per_iter: int = 32
    lr: float = 0.1
    entropy_weight: float = 1e-3
    baseline_decay: float = 0.9
    lam: float = 0.0
    lams: tuple[float, ...] = ()
    mu: float = 0.0
    competition: bool = True
    val_rows: int = 10_000
    select_rows: int = 30_000
    search_share: float = 1.0
    d_base: int = 16
    seed: int = 0
    actor_resource: str = ""
    mode: str = "budget"
    warmup_iters: int = 5
    lr_ramp_iters: int = 10
    top_k: int = 16
    tie_se: float = 0.0
    occam: float = 0.0
    budget_weight: float = 1.0
    h: str = "abs"
    dual_lr: float = 0.1
    adv_eps: float = 1e-4

    def __post_init__(self) -> None:
        checks = [
            (str(self.controller).lower() in CONTROLLERS,
             f"controller {self.controller!r}: expected one of {sorted(CONTROLLERS)}"),
            (self.d_base >= 1, f"d_base must be >= 1, got {self.d_base}"),
            (self.lr > 0 and math.isfinite(self.lr) and self.entropy_weight >= 0
             and 0 <= self.baseline_decay < 1,
             "lr must be > 0, entropy_weight >= 0 and 0 <= baseline_decay < 1"),
            (1 <= self.controllers <= MAX_CONTROLLERS,
             f"controllers must be in 1..{MAX_CONTROLLERS}, got {self.controllers}"),
            (self.iterations >= 1, f"iterations must be >= 1, got {self.iterations}"),
            (self.archs_per_iter >= 2, f"archs_per_iter must be >= 2, got {self.archs_per_iter}"),
            (min(self.lam, self.mu, *self.lams, 0.0) >= 0, "lam, lams and mu must be >= 0"),
            (not self.lams or len(self.lams) == self.controllers,
             f"lams has {len(self.lams)} values for {self.controllers} controllers"),
            (self.val_rows >= 10, f"val_rows must be >= 10, got {self.val_rows}"),
            (self.select_rows >= 0, f"select_rows must be >= 0, got {self.select_rows}"),
            (0 < self.search_share <= 1,
             f"search_share must be in (0, 1], got {self.search_share}"),
            (self.mode in MODES, f"mode {self.mode!r}: expected one of {list(MODES)}"),
            (self.h in H_KINDS, f"h {self.h!r}: expected one of {list(H_KINDS)}"),
            (self.warmup_iters >= 0 and self.lr_ramp_iters >= 0 and self.top_k >= 0
             and self.tie_se >= 0 and self.occam >= 0 and math.isfinite(self.occam),
             "warmup_iters, lr_ramp_iters, top_k, tie_se and occam must be >= 0"),
            (self.budget_weight >= 0 and self.dual_lr >= 0 and self.adv_eps > 0
             and math.isfinite(self.budget_weight + self.dual_lr + self.adv_eps),
             "budget_weight and dual_lr must be >= 0 and adv_eps > 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    @property
    def rows(self) -> RowPlan:
        """The validation rows the search and its selection score."""
        return RowPlan(self.val_rows, self.select_rows, self.search_share)

    def lam_of(self, i: int) -> float:
        """λ of controller ``i`` (``lams[i]``, else ``lam``)."""
        return self.lams[i] if self.lams else self.lam

    def selection_lam(self, i: int = 0) -> float:
        """The λ that selection (:func:`~adass_ray.search.selection.rerank`) uses for
        controller ``i``: its λ in the trade-off mode, 0 in the budget mode."""
        return self.lam_of(i) if self.mode == "tradeoff" else 0.0


Evaluator = Callable[[Sequence[Arch]], Sequence[float]]


class SearchAgent:
    """A controller searching ``space`` under ``budget`` with quality from ``evaluator``.

    Args:
        space: the search space. budget: B in parameters (>= ``space.min_cost()``).
        evaluator: Q_A of a list of architectures (memoised, e.g. a ``CachedEvaluator``).
        config: the stage-2 settings. index: this controller's index (seed offset, λ).

    Raises:
        ConfigError: a budget below the smallest architecture, or a bad controller setting.
    """

    def __init__(self, *, space: SearchSpace, budget: int, evaluator: Evaluator,
                 config: SearchConfig, index: int) -> None:
        if budget < space.min_cost():
            raise ConfigError(f"budget {budget:,} params is below the smallest architecture "
                              f"({space.min_cost():,})")
        self.space, self.budget, self.evaluator, self.cfg = space, budget, evaluator, config
        self.index, self.lam = index, config.lam_of(index)
        self.controller = build_controller(
            config.controller, num_fields=space.num_fields, num_candidates=space.num_candidates,
            lr=config.lr, entropy_weight=config.entropy_weight,
            seed=controller_seed(config.seed, index), lr_ramp=config.lr_ramp_iters,
        )
        self.objective = Objective(mode=config.mode, lam=self.lam,
                                   budget_weight=config.budget_weight, h=config.h,
                                   eps=config.adv_eps, competition=config.competition)
        self.warmup_generator = torch.Generator().manual_seed(
            10_007 + controller_seed(config.seed, index))
        self.lam_b = float(config.budget_weight)
        self.iteration = 0
        self.last: dict[str, float] = {}

    def _uniform(self, n: int) -> list[Arch]:
        g, shape = self.warmup_generator, (n, self.space.num_fields)
        rows = torch.randint(0, self.space.num_candidates, shape, generator=g).tolist()
        return [tuple(r) for r in rows]

    def step(self) -> list[dict[str, Any]]:
        """One iteration: propose, repair, score, update.

        Returns:
            One record per scored (repaired) architecture: ``controller``, ``iteration``,
            ``arch`` (the repaired one, credited), ``quality`` (Q_A), ``cost``, ``reward``
            (Q, or Q − λ·C/B in the trade-off mode), ``feasible`` (always True), ``proposed``
            (the raw proposal), ``proposed_cost``, ``proposed_feasible`` and ``warmup``.
        """
        cfg, space = self.cfg, self.space
        warm = self.iteration < cfg.warmup_iters
        raw = self._uniform(cfg.archs_per_iter) if warm else [
            tuple(int(i) for i in a) for a in self.controller.propose(cfg.archs_per_iter)]
        archs = [repair(space, a, self.budget) for a in raw]
        quality = torch.tensor([float(q) for q in self.evaluator(archs)], dtype=torch.float64)
        costs = space.costs(torch.tensor(archs, dtype=torch.long))
        raw_costs = space.costs(torch.tensor(raw, dtype=torch.long))
        if not (warm and cfg.mode == "tradeoff"):
            self._update(archs, raw, quality, raw_costs, use_quality=not warm)
        lam = self.lam if cfg.mode == "tradeoff" else 0.0
        rewards = tradeoff_reward(quality, costs, self.budget, lam)
        self.iteration += 1
        self.last["mean_reward"] = float(rewards.mean())
        self.last["feasible_share"] = float((raw_costs <= self.budget).double().mean())
        return [
            {"controller": self.index, "iteration": self.iteration, "arch": list(a),
             "quality": float(q), "cost": int(c), "reward": float(r),
             "feasible": int(c) <= self.budget, "proposed": list(p), "proposed_cost": int(pc),
             "proposed_feasible": int(pc) <= self.budget, "warmup": warm}
            for a, q, c, r, p, pc in zip(archs, quality.tolist(), costs.tolist(),
                                         rewards.tolist(), raw, raw_costs.tolist(), strict=True)
        ]

    def _update(self, archs: list[Arch], raw: list[Arch], quality: torch.Tensor,
                raw_costs: torch.Tensor, *, use_quality: bool) -> None:
        ctrl = self.controller
        logp, entropy = ctrl.policy_terms(archs)
        raw_logp = ctrl.policy_terms(raw)[0].sum(1) if not self.cfg.competition else logp.sum(1)
        loss, stats = self.objective.loss(
            space=self.space, budget=self.budget, quality=quality, logp=logp.sum(1),
            probs=ctrl.marginals(), raw_logp=raw_logp, raw_costs=raw_costs, lam_b=self.lam_b,
            use_quality=use_quality)
        ctrl.apply(loss - ctrl.entropy_weight * entropy.to(loss.dtype))
        if self.cfg.h == "dual" and self.cfg.mode == "budget":
            step = self.cfg.dual_lr * (stats["expected_cost_ratio"] - 1.0)
            self.lam_b = max(0.0, self.lam_b + step)
        self.last.update(stats)

    def candidates(self) -> list[Arch]:
        """Selection candidates from the policy, for ``rerank(..., extra=...)``.

        Returns:
            Its constrained argmax (exact knapsack over the marginals, C ≤ B), then its
            repaired plain argmax if different; every one within the budget.
        """
        log_p = torch.log(self.controller.probs().double())
        best = constrained_argmax(self.space, log_p, self.budget)
        plain = repair(self.space, self.controller.argmax(), self.budget)
        return [best] if plain == best else [best, plain]

    def summary(self) -> dict[str, Any]:
        """The policy's argmax, its selection ``candidates`` (the constrained argmax first),
        entropy, E_π[C]/B, the raw proposals' feasible share, λ_b and the learning rate."""
        arch = tuple(self.controller.argmax())
        cands = self.candidates()
        best = cands[0]
        return {"argmax": list(arch), "argmax_cost": self.space.cost(arch),
                "constrained_argmax": list(best), "constrained_argmax_cost": self.space.cost(best),
                "candidates": [list(a) for a in cands],
                "entropy": self.controller.entropy(), "baseline": self.last.get("mean_reward"),
                "expected_cost_ratio": self.last.get("expected_cost_ratio"),
                "feasible_share": self.last.get("feasible_share"), "lam_b": self.lam_b,
                "lr": self.controller.current_lr()}

    def state_dict(self) -> dict[str, Any]:
        """Everything a restored agent needs to continue exactly (controller, RNG, λ_b)."""
        return {"controller": self.controller.state_dict(), "iteration": self.iteration,
                "index": self.index, "warmup_generator": self.warmup_generator.get_state(),
                "lam_b": self.lam_b, "last": dict(self.last)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (older states without the v2 keys load too)."""
        self.controller.load_state_dict(state["controller"])
        self.iteration = int(state["iteration"])
        if "warmup_generator" in state:
            gen = torch.as_tensor(state["warmup_generator"], dtype=torch.uint8)
            self.warmup_generator.set_state(gen)
        self.lam_b = float(state.get("lam_b", self.cfg.budget_weight))
        self.last = dict(state.get("last", {}))
