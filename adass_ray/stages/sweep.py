"""Stage recipe ``sweep``: Ray Tune over λ × budget on one supernet, and the Pareto front.

Writes into ``out``: ``pareto.csv`` (the λ picks, each trial's own pick and the rest of the
pooled short lists, each scored on the selection half: embedding params, supernet validation
AUC, ``on_front``, λ, budget, sizes), ``pareto.png`` (the λ picks, the front, the uniform
baselines), ``sweep.json`` (trials, selections, pool, front, baselines, winner) and, with
``retrain_best`` seeds, the winner's
``best/sizes.json`` and its retrained models in ``best/``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from adass_ray import configio, record
from adass_ray.data.io import write_json
from adass_ray.errors import AdassError, ConfigError
from adass_ray.search.agent import SearchConfig
from adass_ray.search.context import SearchContext, first_steps, load_context, uniform_points
from adass_ray.stages.search import search_record
from adass_ray.tracking import Tracker, TrackingSpec
from adass_ray.train.config import TrainConfig

SWEEP_RUN_FILE = "sweep_run.json"
#: key prefix of a trial's own selection among the front's points (the rest are pooled picks)
TRIAL_PREFIX = "trial:"


def sweep(
    *,
    data: Path,
    supernet: Path,
    out: Path,
    lams: tuple[float, ...] | None,
    budgets: tuple[str, ...],
    cfg: SearchConfig,
    resume: bool = False,
    tracking: TrackingSpec = TrackingSpec(),
    verbose: bool = False,
    retrain_best: int = 0,
    train_cfg: TrainConfig | None = None,
    cpus_per_trial: float = 1.0,
) -> dict[str, Any]:
    """Ray Tune over λ × budget against one supernet; the Pareto front as CSV, PNG and MLflow.

    The winner is the λ pick or trial's own pick with the highest supernet AUC (ties: fewer
    parameters). The other pool points are on the front but cannot win: with ``tie_se`` the λ = 0
    pick is deliberately not the raw best Q_B, and the best of the whole pool on the same rows
    is the most optimistic score there is. A killed sweep continues with ``resume`` (its parent
    MLflow run too).
    ``lams=None`` scales the λ grid to the data (:func:`~adass_ray.pareto.auto_lams` over the
    uniform architectures' Q_B at these budgets and each field's first step up from the
    cheapest architecture); ``sweep.json`` records the grid used.
    """
    from adass_ray.distributed.runtime import ensure_ray
    from adass_ray.distributed.sweep import run_tune
    from adass_ray.pareto import (
        ParetoPoint,
        auto_lams,
        pareto_front,
        uniform_dominance,
        write_pareto_csv,
    )
    from adass_ray.plots import pareto_png
    from adass_ray.search.export import write_sizes_json
    from adass_ray.search.space import Budget
    from adass_ray.stages.train import retrain

    if (lams is not None and not lams) or not budgets:
        raise ConfigError("a sweep needs at least one λ (--lams) and one budget (--budgets)")
    if lams is not None and (any(not (math.isfinite(lam) and lam >= 0) for lam in lams)
                             or len(set(lams)) != len(lams)):
        raise ConfigError(f"--lams must be distinct finite numbers >= 0, got {list(lams)}")
    ensure_ray(num_cpus=os.cpu_count() or 1, verbose=verbose)
    ctx = load_context(data, supernet, rows=cfg.rows, seed=cfg.seed)
    fm, space = ctx.fm, ctx.space
    baselines = uniform_points(ctx)
    auto = lams is None
    recorded = record.read(out) if resume else None
    if lams is None and recorded and recorded.get("lams"):
        # a resumed sweep keeps the grid it was started with (a re-scored uniform ladder could
        # round one λ differently and refuse the resume)
        lams = tuple(float(x) for x in recorded["lams"])
    if lams is None:
        limits = [Budget.parse(b).resolve(space, d_base=cfg.d_base) for b in budgets]
        lams = auto_lams(baselines, limits, first_steps=first_steps(ctx))
        if len(lams) < 2:
            raise ConfigError("--lams auto: no uniform size step gains supernet AUC within "
                              "these budgets, so there is no trade-off to scale λ by; give "
                              "--lams explicitly (e.g. 0,0.002,0.005,0.01,0.02,0.05)")
    if (out / "tune").exists() and not resume:
        raise AdassError(
            f"{out} already holds a sweep; pass --resume to continue it or choose another --out"
        )
    # the sweep's record: a resumed sweep must be the same grid on the same supernet and data
    want = {**search_record(fm, supernet, ",".join(budgets), cfg), "stage": "sweep",
            "lams": list(lams)}
    if resume and (out / "tune").exists():
        record.check(out, want, action="resume")
    out.mkdir(parents=True, exist_ok=True)
    record.write(out, want)
    with _parent_run(out, tracking, resume, fm.name, data, supernet, lams, budgets, cfg) as parent:
        trials = tracking.children_of(parent, experiment=fm.name)
        records = run_tune(
            ctx=ctx,
            out=out,
            lams=lams,
            budgets=budgets,
            cfg=cfg,
            resume=resume,
            tracking=trials if trials.enabled else None,
            cpus_per_trial=cpus_per_trial,
            verbose=verbose,
        )
        selections, pool = _pooled_front(ctx, records, lams, cfg.top_k, cfg.tie_se)
        scored = [r for r in selections if not math.isnan(r["quality"])]
        # the front: every pooled (λ, budget) selection, every trial's own selection (a search
        # at its λ, scored on the same selection rows) and every other architecture of the
        # pooled short lists (scored there too), so a point between two λ picks is not lost:
        # Q − λ·C/B only ever selects the front's convex hull. Earlier sources are kept on
        # duplicates.
        own = [{**r, "key": f"{TRIAL_PREFIX}{r['key']}", "source": "trial"} for r in records
               if not math.isnan(float(r["quality"]))]
        candidates = [{**r, "source": "pooled"} for r in scored] + own + pool
        points = [
            ParetoPoint(
                params=int(r["cost"]),
                auc=float(r["quality"]),
                key=r["key"],
                payload={
                    "lam": r["lam"],
                    "budget": r["budget"],
                    "budget_params": r["budget_params"],
                    "repaired": bool(r["repaired"]),
                    "source": r["source"],
                    "sizes": r["sizes"],
                },
            )
            for r in candidates
        ]
        front = pareto_front(points)
        write_pareto_csv(out / "pareto.csv", points, front)
        front_keys = [p.key for p in front]
        front_records = [next(r for r in candidates if r["key"] == k) for k in front_keys]
        pareto_png(
            out / "pareto.png",
            trials=scored,
            front=front_records,
            baselines=baselines,
            title=f"{fm.name}: {len(scored)} sweep trials, {len(front)} on the front",
        )
        # the λ picks and the trials' own (pooled first on a tie); not the rest of the pool
        winner = max((r for r in candidates if r["source"] != "pool"),
                     key=lambda r: (r["quality"], -r["cost"]))
        summary: dict[str, Any] = {
            "trials": records,
            "selections": selections,
            "pool": pool,
            "lams": list(lams),
            "lams_auto": auto,
            "spearman_lam_cost": _spearman_by_budget(selections),
            "front": front_keys,
            "uniform": baselines,
            "uniform_covered": uniform_dominance(front, baselines),
            "winner": winner["key"],
            "supernet": str(supernet),
            "data": str(data),
        }
        if retrain_best:
            best = out / "best"
            sizes = tuple(winner["sizes"][n] for n in fm.field_names)
            write_sizes_json(
                best / "sizes.json",
                space,
                space.arch_of(sizes),
                budget=int(winner["budget_params"]),
                provenance={
                    "sweep": str(out),
                    "trial": winner["key"],
                    "quality": winner["quality"],
                },
                d_base=cfg.d_base,
            )
            summary["winner_retrained"] = retrain(
                data=data,
                out=best,
                cfg=train_cfg or TrainConfig(),
                sizes_file=str(best / "sizes.json"),
                seeds=retrain_best,
                tracking=trials,
                verbose=verbose,
            )
        write_json(out / "sweep.json", summary)
        parent.log_metrics(
            {
                "trials": float(len(records)),
                "front_size": float(len(front)),
                "best_quality": float(winner["quality"]),
                "best_cost": float(winner["cost"]),
            }
        )
        for name in ("pareto.csv", "pareto.png", "sweep.json"):
            parent.log_artifact(out / name)
    return summary


def _parent_run(
    out: Path,
    tracking: TrackingSpec,
    resume: bool,
    experiment: str,
    data: Path,
    supernet: Path,
    lams: tuple[float, ...],
    budgets: tuple[str, ...],
    cfg: SearchConfig,
) -> Tracker:
    """The sweep's parent run: the one a killed sweep had (on resume), else a new one."""
    meta_path = out / SWEEP_RUN_FILE
    meta = json.loads(meta_path.read_text()) if resume and meta_path.is_file() else {}
    if meta.get("parent_run_id") and tracking.enabled:
        spec = replace(
            tracking, uri=meta.get("tracking_uri") or tracking.uri, run_id=meta["parent_run_id"]
        )
        parent = spec.attach(owns_run=True, fallback_dir=out)
    else:
        parent = tracking.start(
            run_name=f"sweep-{out.name}", default_experiment=experiment, fallback_dir=out
        )
        parent.log_params(
            {
                "stage": "sweep",
                "data": str(data),
                "supernet": str(supernet),
                "lams": list(lams),
                "budgets": list(budgets),
                **configio.flatten(configio.to_dict(cfg)),
            }
        )
    write_json(meta_path, {"parent_run_id": parent.run_id, "tracking_uri": parent.tracking_uri})
    return parent


def _pooled_front(ctx: SearchContext, records: list[dict[str, Any]], lams: tuple[float, ...],
                  top_k: int, tie_se: float = 0.0
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One selection per (λ, budget) from the pooled shortlists of every trial of that budget,
    scored once on the selection half: the chosen cost cannot rise with λ (see
    :func:`~adass_ray.search.selection.rerank_front`). Also returns every other scored
    architecture of those pools (``source`` "pool", no λ), once each."""
    from adass_ray.distributed.sweep import trial_key
    from adass_ray.search.selection import rerank_front

    space, score_b = ctx.space, ctx.evaluator_b
    out: list[dict[str, Any]] = []
    pool: dict[tuple[int, ...], dict[str, Any]] = {}
    picked: set[tuple[int, ...]] = set()
    for budget in sorted({r["budget"] for r in records}, key=str):
        group = [r for r in records if r["budget"] == budget]
        limit = int(group[0]["budget_params"])
        history = [(tuple(a), q) for r in group for a, q in r["shortlist"] if q is not None]
        extra = [tuple(a) for r in group for a, q in r["shortlist"] if q is None]
        if not history and not extra:  # trials of an older sweep: their own selections
            history = [(space.arch_of(tuple(r["sizes"][n] for n in ctx.fm.field_names)),
                        r["quality"]) for r in group]
        grid = sorted({float(r["lam"]) for r in group})
        chosen = rerank_front(space, limit, history, score_b, grid, top_k=top_k, extra=extra,
                              tie_se=tie_se)
        for lam, sel in zip(grid, chosen, strict=True):
            q_b = float(sel.quality_b) if sel.quality_b is not None else math.nan
            out.append({"key": trial_key(lam, budget), "lam": lam, "budget": budget,
                        "budget_params": limit, "cost": sel.cost, "quality": q_b,
                        "repaired": int(sel.repaired),
                        "sizes": dict(zip(ctx.fm.field_names, sel.sizes, strict=True))})
        picked.update(sel.arch for sel in chosen)
        picked.update(space.arch_of(tuple(r["sizes"][n] for n in ctx.fm.field_names))
                      for r in group)  # the trials' own picks are on the front already
        cands = [a for a in chosen[0].candidates if a not in pool] if chosen else []
        for arch, q_b in zip(cands, score_b(cands), strict=True):  # memoised: no new scoring
            if math.isnan(float(q_b)):
                continue
            sizes = space.sizes(arch)
            pool[arch] = {"key": f"pool:{'-'.join(map(str, sizes))}", "lam": None,
                          "budget": budget, "budget_params": limit, "cost": space.cost(arch),
                          "quality": float(q_b), "repaired": 0, "source": "pool",
                          "sizes": dict(zip(ctx.fm.field_names, sizes, strict=True))}
    return out, [r for a, r in pool.items() if a not in picked]


def _spearman_by_budget(selections: list[dict[str, Any]]) -> dict[str, float]:
    """Spearman correlation of λ and the selected cost, per budget (NaN when either is constant)."""
    from adass_ray.metrics import spearman

    out = {}
    for budget in sorted({r["budget"] for r in selections}, key=str):
        rows = [r for r in selections if r["budget"] == budget]
        out[budget] = spearman([r["lam"] for r in rows], [float(r["cost"]) for r in rows])
    return out
