"""One search agent: a controller, its reward baseline and an evaluator, stepped by a driver.

Pure torch (no Ray): the Ray actor in :mod:`adass_ray.distributed.search` wraps one of these, and
a single process can run one directly. Each :meth:`SearchAgent.step` proposes architectures,
scores them on the frozen supernet (cached), turns quality and cost into per-field advantages
with the resource competition penalty (DESIGN.md §2.3) and updates the policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from adass_ray.errors import ConfigError
from adass_ray.search.controller import RewardBaseline, build_controller
from adass_ray.search.penalty import field_advantages, reward
from adass_ray.search.space import Arch, SearchSpace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchConfig:
    """Stage 2 settings.

    Attributes:
        controller: ``factorized`` (per-field softmax) or ``lstm``.
        controllers: parallel controller actors (different seeds, or the ``lams`` below).
        iterations: policy updates per controller.
        archs_per_iter: architectures each controller proposes and scores per iteration.
        lr, entropy_weight: the controller's Adam step and entropy bonus.
        baseline_decay: EMA decay of the reward baseline.
        lam: strength λ of the over-budget penalty; ``lams`` gives each controller its own.
        mu: weight of the optional soft cost term μ·C/C_max.
        competition: per-field share of the overage in each field's advantage (off: ablation).
        val_rows: rows of the validation split that every architecture is scored on.
        d_base: the uniform baseline's size (budgets given as ratios refer to it).
        seed: controller seeds are ``seed + i``; the validation rows use ``seed``.
        actor_resource: a custom Ray resource each controller actor (and each sweep trial)
            also requests one unit of, e.g. ``search_slot`` on ``cluster.yaml``'s GPU nodes.
    """

    controller: str = "factorized"
    controllers: int = 2
    iterations: int = 60
    archs_per_iter: int = 32
    lr: float = 0.05
    entropy_weight: float = 1e-3
    baseline_decay: float = 0.9
    lam: float = 1.0
    lams: tuple[float, ...] = ()
    mu: float = 0.0
    competition: bool = True
    val_rows: int = 10_000
    d_base: int = 16
    seed: int = 0
    actor_resource: str = ""

    def __post_init__(self) -> None:
        checks = [
            (self.controllers >= 1, f"controllers must be >= 1, got {self.controllers}"),
            (self.iterations >= 1, f"iterations must be >= 1, got {self.iterations}"),
            (self.archs_per_iter >= 2, f"archs_per_iter must be >= 2, got {self.archs_per_iter}"),
            (self.lam >= 0 and self.mu >= 0, "lam and mu must be >= 0"),
            (not self.lams or len(self.lams) == self.controllers,
             f"lams has {len(self.lams)} values for {self.controllers} controllers"),
            (self.val_rows >= 10, f"val_rows must be >= 10, got {self.val_rows}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)

    def lam_of(self, i: int) -> float:
        return self.lams[i] if self.lams else self.lam


Evaluator = Callable[[Sequence[Arch]], list[float]]


class SearchAgent:
    """A controller searching ``space`` under ``budget`` with quality from ``evaluator``."""

    def __init__(self, *, space: SearchSpace, budget: int, evaluator: Evaluator, config: SearchConfig,
                 index: int) -> None:
        self.space, self.budget, self.evaluator, self.cfg = space, budget, evaluator, config
        self.index, self.lam = index, config.lam_of(index)
        self.controller = build_controller(
            config.controller, num_fields=space.num_fields, num_candidates=space.num_candidates,
            lr=config.lr, entropy_weight=config.entropy_weight, seed=config.seed + index,
        )
        self.baseline = RewardBaseline(config.baseline_decay)
        self.iteration = 0
        self.c_max = float(space.max_cost())

    def step(self) -> list[dict[str, Any]]:
        """One policy update; returns one record per proposed architecture."""
        archs = [tuple(int(a) for a in arch) for arch in self.controller.propose(self.cfg.archs_per_iter)]
        quality = torch.tensor(self.evaluator(archs), dtype=torch.float64)
        tensor = torch.tensor(archs, dtype=torch.long)
        costs = self.space.costs(tensor)
        rewards = reward(quality, costs, self.budget, lam=self.lam, mu=self.cfg.mu, c_max=self.c_max)
        # b baselines the reward R (the EMA before this batch): sum_f A_f = F * (R - b)
        b = self.baseline.update(rewards)
        adv = field_advantages(quality, b, tensor, self.space, self.budget, lam=self.lam, mu=self.cfg.mu,
                               competition=self.cfg.competition, c_max=self.c_max)
        self.controller.update(archs, adv)
        self.iteration += 1
        return [
            {"controller": self.index, "iteration": self.iteration, "arch": list(a), "quality": float(q),
             "cost": int(c), "reward": float(r), "feasible": int(c) <= self.budget}
            for a, q, c, r in zip(archs, quality.tolist(), costs.tolist(), rewards.tolist(), strict=True)
        ]

    def summary(self) -> dict[str, Any]:
        """The policy's current argmax and entropy (for progress lines and reports)."""
        arch = tuple(self.controller.argmax())
        return {"argmax": list(arch), "argmax_cost": self.space.cost(arch), "entropy": self.controller.entropy(),
                "baseline": self.baseline.value}

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "baseline": self.baseline.state_dict(),
                "iteration": self.iteration, "index": self.index}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.baseline.load_state_dict(state["baseline"])
        self.iteration = int(state["iteration"])
