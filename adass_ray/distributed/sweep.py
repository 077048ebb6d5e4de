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
from pathlib import Path
from typing import Any

import torch

from adass_ray import config as cfgmod
from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import AdassError
from adass_ray.search.agent import SearchAgent, SearchConfig
from adass_ray.search.evaluator import CachedEvaluator
from adass_ray.search.space import Budget, SearchSpace, select

logger = logging.getLogger(__name__)
TRIAL_STATE = "trial_state.pt"
EXPERIMENT = "sweep"


def trial_key(lam: float, budget: str) -> str:
    return f"lam={lam:g},budget={budget}"


def sweep_trial(config: dict[str, Any], shared: dict[str, Any]) -> None:
    """The Tune function trainable: one search with ``config["lam"]`` and ``config["budget"]``."""
    from ray import tune

    from adass_ray.tracking import MlflowTracker, NoopTracker
    from adass_ray.training import ModelConfig, build_supernet

    torch.set_num_threads(1)
    fm = FeatureMap.from_dict(shared["fm"])
    net = build_supernet(fm, cfgmod.from_mapping(ModelConfig, shared["model_config"]))
    net.load_state_dict(shared["weights"])
    space = SearchSpace.from_feature_map(fm, candidate_sizes=net.candidate_sizes)
    lam, budget_spec = float(config["lam"]), str(config["budget"])
    cfg = cfgmod.from_mapping(SearchConfig, {**shared["search"], "lam": lam, "lams": [], "controllers": 1})
    budget = Budget.parse(budget_spec).resolve(space, d_base=cfg.d_base)
    evaluator = CachedEvaluator(net, shared["batch"])
    agent = SearchAgent(space=space, budget=budget, evaluator=evaluator.evaluate, config=cfg, index=0)
    history: list[dict[str, Any]] = []
    run_id, resumed_at = None, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # a restored sweep: continue this trial exactly
        with checkpoint.as_directory() as d:
            saved = torch.load(Path(d) / TRIAL_STATE, weights_only=False)
        agent.load_state_dict(saved["agent"])
        evaluator.load_cache(saved["cache"])
        history, run_id, resumed_at = saved["history"], saved["run_id"], agent.iteration
    track = shared.get("tracking") or {}
    tracker: Any = NoopTracker()
    if track.get("uri") and track.get("parent"):
        if run_id:
            tracker = MlflowTracker.attach(tracking_uri=track["uri"], run_id=run_id, owns_run=True)
        else:
            tracker = MlflowTracker.start(tracking_uri=track["uri"], experiment=track["experiment"],
                                          run_name=f"trial-{trial_key(lam, budget_spec)}",
                                          parent_run_id=track["parent"])
            tracker.log_params({"stage": "sweep-trial", "lam": lam, "budget": budget_spec,
                                "budget_params": budget, **cfgmod.flatten(cfgmod.to_dict(cfg))})
    every = max(1, cfg.iterations // 10)
    t0 = time.perf_counter()
    try:
        while agent.iteration < cfg.iterations:
            history.extend(agent.step())
            feasible = [r["quality"] for r in history if r["feasible"]]
            metrics = {"iteration": agent.iteration, "best_feasible_auc": max(feasible, default=math.nan),
                       "scored": len(evaluator.cache), "done": 0}
            tracker.log_metrics({k: float(v) for k, v in metrics.items()}, step=agent.iteration)
            if agent.iteration % every == 0 and agent.iteration < cfg.iterations:
                _report(metrics, {"agent": agent.state_dict(), "cache": evaluator.cache, "history": history,
                                  "run_id": tracker.run_id})
                _maybe_pause(shared.get("fault"), lam, agent.iteration)
        chosen = select(space, ((r["arch"], r["quality"]) for r in history), budget)
        quality = chosen.quality
        if quality is None:  # repaired: never proposed as such, so score it now
            quality = evaluator.evaluate([chosen.arch])[0]
        final: dict[str, Any] = {
            "iteration": agent.iteration, "done": 1, "lam": lam, "budget": budget_spec, "budget_params": budget,
            "cost": chosen.cost, "quality": quality,
            "repaired": int(chosen.repaired), "sizes": json.dumps(dict(zip(fm.field_names, chosen.sizes, strict=True))),
            "evaluations": len(evaluator.cache), "search_seconds": time.perf_counter() - t0,
            "resumed_at": resumed_at,
            "best_feasible_auc": quality,
        }
        tracker.log_metrics({k: float(final[k]) for k in ("cost", "quality", "evaluations", "budget_params")})
        tracker.log_dict({"sizes": json.loads(final["sizes"]), "cost": chosen.cost, "budget": budget,
                          "quality": quality, "repaired": chosen.repaired}, "sizes.json")
    except BaseException:
        tracker.close(status="FAILED")
        raise
    tracker.close()
    _report(final, {"agent": agent.state_dict(), "cache": evaluator.cache, "history": history,
                    "run_id": tracker.run_id})


def _maybe_pause(fault: dict[str, Any] | None, lam: float, iteration: int) -> None:
    """Fault injection for tests: the trial with ``fault["lam"]`` stops at ``fault["at"]`` (once),
    writes ``fault["marker"]`` and waits, so the test can kill the driver mid-sweep."""
    import os

    if fault and fault["lam"] == lam and iteration == fault["at"] and not os.path.exists(fault["marker"]):
        Path(fault["marker"]).write_text(str(iteration))
        time.sleep(fault.get("seconds", 120))


def _report(metrics: dict[str, Any], state: dict[str, Any]) -> None:
    from ray import tune

    with tempfile.TemporaryDirectory() as tmp:
        torch.save(state, Path(tmp) / TRIAL_STATE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def uniform_points(ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Q and cost of every uniform architecture (each field at one candidate size)."""
    space: SearchSpace = ctx["space"]
    evaluator = CachedEvaluator(ctx["net"], ctx["batch"])
    archs = [(k,) * space.num_fields for k in range(space.num_candidates) if space.candidate_sizes[k] > 0]
    return [{"size": space.candidate_sizes[a[0]], "cost": space.cost(a), "quality": q}
            for a, q in zip(archs, evaluator.evaluate(archs), strict=True)]


def run_tune(
    *,
    ctx: dict[str, Any],
    out: Path,
    lams: Sequence[float],
    budgets: Sequence[str],
    cfg: SearchConfig,
    resume: bool,
    tracking: dict[str, Any] | None,
    cpus_per_trial: float = 1.0,
    verbose: bool = False,
    fault: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run (or restore) the Tune sweep; returns one record per finished trial.

    Raises:
        AdassError: ``out`` holds a sweep and ``resume`` is false, or every trial failed.
    """
    import os

    if not verbose:  # Tune's own tables and hints are noise here; our callback prints one line per trial
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    from ray import tune

    storage = (out / "tune").resolve()
    path = storage / EXPERIMENT
    space: SearchSpace = ctx["space"]
    for b in budgets:  # a budget no architecture meets fails here, once, not in every trial
        Budget.parse(b).resolve(space, d_base=cfg.d_base)
    shared = {"fm": ctx["fm"].to_dict(), "model_config": ctx["model_config"],
              "weights": ctx["net"].state_dict(), "batch": ctx["batch"], "search": cfgmod.to_dict(cfg),
              "tracking": tracking, "fault": fault}
    from adass_ray.distributed.runtime import require_resource

    require_resource(cfg.actor_resource)
    resources = {"CPU": cpus_per_trial, **({cfg.actor_resource: 1} if cfg.actor_resource else {})}
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, shared=shared), resources)
    if path.exists() and tune.Tuner.can_restore(str(path)):
        if not resume:
            raise AdassError(f"{out} already holds a sweep; pass --resume to continue it or choose another --out")
        logger.info("restoring the sweep in %s", path)
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        total = len(lams) * len(budgets)
        tuner = tune.Tuner(
            trainable,
            param_space={"lam": tune.grid_search([float(x) for x in lams]),
                         "budget": tune.grid_search([str(b) for b in budgets])},
            tune_config=tune.TuneConfig(num_samples=1),
            run_config=tune.RunConfig(name=EXPERIMENT, storage_path=str(storage), verbose=1 if verbose else 0,
                                      callbacks=[_Progress(total)],
                                      failure_config=tune.FailureConfig(max_failures=1)),
        )
    grid = tuner.fit()
    records, failed = [], 0
    for res in (grid[i] for i in range(len(grid))):
        m = res.metrics or {}
        if res.error is not None or not m.get("done"):
            failed += 1
            logger.warning("trial %s did not finish: %s", m.get("trial_id", "?"),
                           str(res.error).splitlines()[0] if res.error else "no final result")
            continue
        records.append({"key": trial_key(m["lam"], m["budget"]), "trial_id": m.get("trial_id"),
                        **{k: m[k] for k in ("lam", "budget", "budget_params", "cost", "quality", "repaired",
                                             "evaluations", "search_seconds", "resumed_at")},
                        "sizes": json.loads(m["sizes"])})
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

            def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
                self.finished += 1
                m = trial.last_result or {}
                logger.info("sweep trial %d/%d finished: λ=%g budget=%s → %s params, supernet AUC %.4f",
                            self.finished, total, m.get("lam", math.nan), m.get("budget", "?"),
                            f"{int(m['cost']):,}" if "cost" in m else "?", m.get("quality", math.nan))

            def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
                logger.warning("sweep trial %s failed (it is retried once)", trial.trial_id)

        return Progress()
