"""Ray Tune sweeps over the penalty strength λ and the budget, against one shared supernet.

Every trial is one controller searching the same frozen supernet: the driver puts the supernet's
weights and the validation rows in the object store once (``tune.with_parameters``), each trial
builds its cached evaluator from them, runs the REINFORCE search with its own ``(λ, budget)`` and
reports the selected architecture's cost and supernet AUC. Trials checkpoint their search state
(policy, reward baseline, history, evaluation memo, MLflow run id) every few iterations, so a
sweep whose driver was killed continues with :meth:`ray.tune.Tuner.restore` where each trial
stopped, and proposes exactly what it would have.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from adass_ray import configio
from adass_ray.data.feature_map import FeatureMap
from adass_ray.distributed import faults
from adass_ray.errors import AdassError
from adass_ray.model.checkpoint import load_plain
from adass_ray.model.config import ModelConfig, build_supernet
from adass_ray.search.agent import SearchConfig
from adass_ray.search.context import SearchContext
from adass_ray.search.driver import (
    AgentRunner,
    LocalRunner,
    SearchState,
    candidates,
    choose,
    drive,
)
from adass_ray.search.evaluator import CachedEvaluator
from adass_ray.search.space import Budget, SearchSpace
from adass_ray.tracking import NoopTracker, Tracker, TrackingSpec

logger = logging.getLogger(__name__)
TRIAL_STATE = "trial_state.pt"
EXPERIMENT = "sweep"


def trial_key(lam: float, budget: str) -> str:
    return f"lam={lam:g},budget={budget}"


def sweep_trial(config: dict[str, Any], shared: dict[str, Any]) -> None:
    """The Tune function trainable: one search with ``config["lam"]`` and ``config["budget"]``."""
    from ray import tune

    torch.set_num_threads(1)
    fm = FeatureMap.from_dict(shared["fm"])
    net = build_supernet(fm, configio.from_mapping(ModelConfig, shared["model_config"]))
    net.load_state_dict(shared["weights"])
    space = SearchSpace.from_feature_map(fm, candidate_sizes=net.candidate_sizes)
    lam, budget_spec = float(config["lam"]), str(config["budget"])
    cfg = configio.from_mapping(
        SearchConfig,
        {**shared["search"], "lam": lam, "lams": [], "controllers": 1, "mode": "tradeoff",
         "seed": shared["search"]["seed"] + _trial_index(shared, lam, budget_spec)},
    )
    budget = Budget.parse(budget_spec).resolve(space, d_base=cfg.d_base)
    evaluator = CachedEvaluator(net, shared["batch"])
    body = AgentRunner(evaluator=evaluator, space=space, budget=budget, config=cfg, index=0)
    state, run_id, resumed_at = SearchState.fresh(1), None, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # a restored sweep: continue this trial exactly
        with checkpoint.as_directory() as d:
            saved = load_plain(Path(d) / TRIAL_STATE, what="sweep trial state")
        state, run_id = SearchState.from_dict(saved["search"]), saved["run_id"]
        resumed_at = body.load(state.states[0], state.cache)
    tracker = _trial_tracker(shared["tracking"], run_id, lam, budget_spec, budget, cfg)
    every = max(1, cfg.iterations // 10)
    fault = shared.get("fault")
    t0 = time.perf_counter()

    def on_iteration(iteration: int, st: SearchState) -> None:
        feasible = [r["quality"] for r in st.history if r["feasible"]]
        metrics = {
            "iteration": iteration,
            "best_feasible_auc": max(feasible, default=math.nan),
            "scored": len(evaluator.cache),
            "done": 0,
        }
        tracker.log_metrics({k: float(v) for k, v in metrics.items()}, step=iteration)
        if iteration % every == 0 and iteration < cfg.iterations:
            _report(metrics, {"search": st.to_dict(), "run_id": tracker.run_id})
            faults.sweep_iteration(fault, lam=lam, iteration=iteration)

    with tracker:
        drive([LocalRunner(body)], state, iterations=cfg.iterations, on_iteration=on_iteration)
        score_b = CachedEvaluator(net, shared["batch_b"])
        chosen = choose(space, state, budget, score_b=score_b, top_k=cfg.top_k, lam=lam,
                        tie_se=cfg.tie_se)
        quality = float(chosen.quality_b if chosen.quality_b is not None else math.nan)
        sizes = dict(zip(fm.field_names, chosen.sizes, strict=True))
        final: dict[str, Any] = {
            "iteration": state.iteration(),
            "done": 1,
            "lam": lam,
            "budget": budget_spec,
            "budget_params": budget,
            "cost": chosen.cost,
            "quality": quality,
            "repaired": int(chosen.repaired),
            "sizes": json.dumps(sizes),
            "evaluations": len(evaluator.cache),
            "search_seconds": time.perf_counter() - t0,
            "resumed_at": resumed_at,
            "best_feasible_auc": quality,
            "shortlist": json.dumps(_shortlist(space, state, budget, shared["lams"], cfg.top_k)),
        }
        tracker.log_metrics(
            {k: float(final[k]) for k in ("cost", "quality", "evaluations", "budget_params")}
        )
        tracker.log_dict(
            {
                "sizes": sizes,
                "cost": chosen.cost,
                "budget": budget,
                "quality": quality,
                "repaired": chosen.repaired,
            },
            "sizes.json",
        )
    _report(final, {"search": state.to_dict(), "run_id": tracker.run_id})


def _trial_index(shared: dict[str, Any], lam: float, budget: str) -> int:
    """The trial's place in the λ × budget grid: its controller seed is the base seed plus it."""
    lams, budgets = list(shared["lams"]), list(shared["budgets"])
    return 1000 * budgets.index(budget) + lams.index(lam)


def _shortlist(space: SearchSpace, state: SearchState, budget: int, lams: Sequence[float],
               top_k: int) -> list[list[Any]]:
    """``[arch, Q_A]`` of the trial's best architectures for every λ of the sweep, plus its
    policy's candidates (Q_A None): what the driver pools into one front per budget."""
    from adass_ray.search.selection import top_k as best_of

    history = [(tuple(r["arch"]), r["quality"]) for r in state.history]
    q_a: dict[tuple[int, ...], float] = {}
    for a, q in history:
        q_a[a] = max(q, q_a.get(a, -math.inf))
    archs = {a for lam in lams for a in best_of(space, history, budget, top_k, lam=lam)}
    out: list[list[Any]] = [[list(a), q_a[a]] for a in sorted(archs)]
    out += [[list(a), None] for a in candidates(state) if a not in archs]
    return out


def _trial_tracker(
    spec: TrackingSpec | None,
    run_id: str | None,
    lam: float,
    budget_spec: str,
    budget: int,
    cfg: SearchConfig,
) -> Tracker:
    """The trial's child run: resumed when the checkpoint names one, else a new one."""
    if spec is None or not spec.enabled or not spec.parent_run_id:
        return NoopTracker()
    if run_id:
        return replace(spec, run_id=run_id).attach(owns_run=True)
    tracker = spec.start(
        run_name=f"trial-{trial_key(lam, budget_spec)}",
        default_experiment=spec.experiment or EXPERIMENT,
    )
    tracker.log_params(
        {
            "stage": "sweep-trial",
            "lam": lam,
            "budget": budget_spec,
            "budget_params": budget,
            **configio.flatten(configio.to_dict(cfg)),
        }
    )
    return tracker


def _report(metrics: dict[str, Any], state: dict[str, Any]) -> None:
    from ray import tune

    with tempfile.TemporaryDirectory() as tmp:
        torch.save(state, Path(tmp) / TRIAL_STATE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def run_tune(
    *,
    ctx: SearchContext,
    out: Path,
    lams: Sequence[float],
    budgets: Sequence[str],
    cfg: SearchConfig,
    resume: bool,
    tracking: TrackingSpec | None,
    cpus_per_trial: float = 1.0,
    verbose: bool = False,
) -> list[dict[str, Any]]:
    """Run (or restore) the Tune sweep; returns one record per finished trial.

    Raises:
        AdassError: ``out`` holds a sweep and ``resume`` is false, or every trial failed.
    """
    import os

    if (
        not verbose
    ):  # Tune's own tables and hints are noise here; our callback prints one line per trial
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune

    storage = (out / "tune").resolve()
    path = storage / EXPERIMENT
    space = ctx.space
    for b in budgets:  # a budget no architecture meets fails here, once, not in every trial
        Budget.parse(b).resolve(space, d_base=cfg.d_base)
    shared = {
        "fm": ctx.fm.to_dict(),
        "model_config": ctx.model_config,
        "weights": ctx.net.state_dict(),
        "batch": ctx.batch_a,
        "batch_b": ctx.batch_b,
        "lams": [float(x) for x in lams],
        "budgets": [str(b) for b in budgets],
        "search": configio.to_dict(cfg),
        "tracking": tracking,
        "fault": faults.spec("sweep"),
    }
    from adass_ray.distributed.runtime import require_resource

    require_resource(cfg.actor_resource)
    resources = {"CPU": cpus_per_trial, **({cfg.actor_resource: 1} if cfg.actor_resource else {})}
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, shared=shared), resources)
    if path.exists() and tune.Tuner.can_restore(str(path)):
        if not resume:
            raise AdassError(
                f"{out} already holds a sweep; pass --resume to continue it or choose another --out"
            )
        logger.info("restoring the sweep in %s", path)
        tuner = tune.Tuner.restore(
            str(path), trainable=trainable, resume_unfinished=True, resume_errored=True
        )
    else:
        total = len(lams) * len(budgets)
        tuner = tune.Tuner(
            trainable,
            param_space={
                "lam": tune.grid_search([float(x) for x in lams]),
                "budget": tune.grid_search([str(b) for b in budgets]),
            },
            tune_config=tune.TuneConfig(num_samples=1),
            run_config=tune.RunConfig(
                name=EXPERIMENT,
                storage_path=str(storage),
                verbose=1 if verbose else 0,
                callbacks=[_Progress(total)],
                failure_config=tune.FailureConfig(max_failures=1),
            ),
        )
    grid = tuner.fit()
    records, failed = [], 0
    for res in (grid[i] for i in range(len(grid))):
        m = res.metrics or {}
        if res.error is not None or not m.get("done"):
            failed += 1
            logger.warning(
                "trial %s did not finish: %s",
                m.get("trial_id", "?"),
                str(res.error).splitlines()[0] if res.error else "no final result",
            )
            continue
        records.append(
            {
                "key": trial_key(m["lam"], m["budget"]),
                "trial_id": m.get("trial_id"),
                **{
                    k: m[k]
                    for k in (
                        "lam",
                        "budget",
                        "budget_params",
                        "cost",
                        "quality",
                        "repaired",
                        "evaluations",
                        "search_seconds",
                        "resumed_at",
                    )
                },
                "sizes": json.loads(m["sizes"]),
                "shortlist": json.loads(m.get("shortlist") or "[]"),
            }
        )
    if not records:
        raise AdassError(f"all {failed} sweep trials failed; see the Tune logs in {path}")
    records.sort(key=lambda r: (r["budget_params"], r["lam"]))
    return records


class _Progress:
    """A Tune callback: one line per finished trial (the driver's progress)."""

    def __new__(cls, total: int) -> Any:
        from ray.tune import Callback

        class Progress(Callback):
            def __init__(self) -> None:
                self.finished = 0

            def on_trial_complete(
                self, iteration: int, trials: list[Any], trial: Any, **info: Any
            ) -> None:
                self.finished += 1
                m = trial.last_result or {}
                logger.info(
                    "sweep trial %d/%d finished: λ=%g budget=%s → %s params, supernet AUC %.4f",
                    self.finished,
                    total,
                    m.get("lam", math.nan),
                    m.get("budget", "?"),
                    f"{int(m['cost']):,}" if "cost" in m else "?",
                    m.get("quality", math.nan),
                )

            def on_trial_error(
                self, iteration: int, trials: list[Any], trial: Any, **info: Any
            ) -> None:
                logger.warning("sweep trial %s failed (it is retried once)", trial.trial_id)

        return Progress()
