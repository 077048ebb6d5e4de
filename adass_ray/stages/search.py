"""Stage recipes for stage 2: ``search`` (one search under a budget) and ``stability`` (the same
search over seeds).

``search`` resolves the budget, runs the controllers on Ray (:mod:`adass_ray.distributed.
search`), selects under the hard budget and writes ``sizes.json``, ``history.json`` and the
search's own Pareto CSV / PNG, all logged to the stage's MLflow run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from adass_ray import configio, record
from adass_ray import progress as bars
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.io import write_json
from adass_ray.errors import AdassError, ConfigError
from adass_ray.search.agent import SearchConfig
from adass_ray.search.context import SearchContext, load_context, uniform_points
from adass_ray.search.driver import SearchState, choose
from adass_ray.search.space import Budget
from adass_ray.tracking import TrackingSpec

logger = logging.getLogger(__name__)


def search(
    *,
    data: Path,
    supernet: Path,
    out: Path,
    budget: str,
    cfg: SearchConfig,
    resume: bool = False,
    tracking: TrackingSpec = TrackingSpec(),
    verbose: bool = False,
) -> dict[str, Any]:
    """Stage 2: parallel controllers on Ray, then selection under the hard budget.

    Writes ``sizes.json`` (the selected sizes + provenance), ``history.json`` (every scored
    architecture) and ``search_state.pt`` (for ``--resume``) into ``out``.
    """
    from adass_ray.distributed.runtime import ensure_ray
    from adass_ray.distributed.search import STATE_FILE, run_search
    from adass_ray.search.export import write_sizes_json

    # the inputs are checked before Ray starts: a bad file fails in a second, not after a start
    want = search_record(FeatureMap.load(data), supernet, budget, cfg)
    if resume and (out / STATE_FILE).exists():  # same data, supernet, budget and config only
        record.check(out, want, action="resume")
    elif (out / STATE_FILE).exists():
        raise AdassError(
            f"{out} already holds a search; pass --resume to continue it or choose another --out"
        )
    ctx = load_context(data, supernet, rows=cfg.rows, seed=cfg.seed)
    limit = Budget.parse(budget).resolve(ctx.space, d_base=cfg.d_base)
    ensure_ray(num_cpus=os.cpu_count() or 1, verbose=verbose)
    t0 = time.perf_counter()
    total = cfg.iterations * cfg.controllers * cfg.archs_per_iter
    with tracking.start(
        run_name=f"search-{out.name}", default_experiment=ctx.fm.name, fallback_dir=out
    ) as tracker, bars.closing(
        bars.bar(total=total, desc=f"search {out.name}", unit="arch")
    ) as bar:

        def progress(iteration: int, state: SearchState) -> None:
            feasible = [r["quality"] for r in state.history if r["feasible"]]
            best = max(feasible) if feasible else float("nan")
            bar.update(len(state.history) - bar.n)  # architectures proposed and scored
            bar.set_postfix_str(f"best feasible AUC {best:.4f}")
            every = max(1, cfg.iterations // 10)
            if iteration % every == 0 or iteration == cfg.iterations:
                ent = ", ".join(f"{s.get('entropy', float('nan')):.2f}" for s in state.summaries)
                logger.info(
                    "search iteration %d/%d: %d architectures scored, best feasible AUC "
                    "%.4f, policy entropy [%s]",
                    iteration,
                    cfg.iterations,
                    len(state.history),
                    best,
                    ent,
                )
            tracker.log_metrics(
                {"best_feasible_auc": best, "scored": float(len(state.history))}, step=iteration
            )

        tracker.log_params(
            {
                "stage": "search",
                "data": str(data),
                "supernet": str(supernet),
                "budget": budget,
                **configio.flatten(configio.to_dict(cfg)),
            }
        )
        record.write(out, {**want, "status": "running"})
        state = run_search(
            ctx=ctx, out=out, budget=limit, config=cfg, resume=resume, on_iteration=progress
        )
        lam = cfg.lam if cfg.mode == "tradeoff" else 0.0
        chosen = choose(ctx.space, state, limit, score_b=ctx.evaluator_b,
                        top_k=cfg.top_k, lam=lam, tie_se=cfg.tie_se,
                        occam=cfg.occam if cfg.mode == "budget" else 0.0)
        provenance = {
            "data": str(data),
            "supernet": str(supernet),
            "budget_spec": budget,
            "search": configio.to_dict(cfg),
            "evaluations": len(state.cache),
            "proposals": len(state.history),
            "seconds": round(time.perf_counter() - t0, 1),
            "quality": chosen.quality,
            "quality_b": chosen.quality_b,
            "repaired": chosen.repaired,
            "policy_argmax": [s.get("argmax") for s in state.summaries],
            "resumed_at_iteration": state.resumed_at,
        }
        doc = write_sizes_json(
            out / "sizes.json",
            ctx.space,
            chosen.arch,
            budget=limit,
            provenance=provenance,
            d_base=cfg.d_base,
        )
        write_json(out / "history.json", state.history)
        _search_front(out, cfg, state.history, ctx)
        tracker.log_metrics(
            {
                "selected_quality": chosen.quality or float("nan"),
                "selected_quality_b": chosen.quality_b or float("nan"),
                "selected_cost": float(chosen.cost),
                "budget": float(limit),
                "evaluations": float(len(state.cache)),
            }
        )
        for name in ("sizes.json", "history.json", "pareto.csv", "pareto.png"):
            tracker.log_artifact(out / name)
    record.set_status(out, "done")
    return {"sizes": doc, "selection": chosen, "history": state.history}


def search_record(
    fm: FeatureMap, supernet: Path, budget: str, cfg: SearchConfig
) -> dict[str, Any]:
    """What a search is made of (see :mod:`adass_ray.record`): the data, the supernet's file,
    the budget and the config; resumed or reused only when all of it matches."""
    from adass_ray.model.checkpoint import MODEL_FILE

    model = supernet / MODEL_FILE if supernet.is_dir() else supernet
    config = {k: v for k, v in configio.to_dict(cfg).items() if k != "actor_resource"}
    return record.make(
        "search",
        fingerprint=fm.fingerprint(),
        supernet=record.file_digest(model) if model.is_file() else None,
        budget=budget,
        config=config,
    )


def _search_front(
    out: Path, cfg: SearchConfig, history: list[dict[str, Any]], ctx: SearchContext
) -> None:
    """``pareto.csv`` / ``pareto.png`` of a search: every distinct architecture it scored
    (embedding params against supernet AUC), the front, and the uniform architectures on the
    same supernet."""
    from adass_ray.pareto import ParetoPoint, pareto_front, write_pareto_csv
    from adass_ray.plots import pareto_png

    space = ctx.space
    seen: dict[tuple[int, ...], dict[str, Any]] = {}
    for r in history:
        seen.setdefault(
            tuple(r["arch"]),
            {
                "cost": r["cost"],
                "quality": r["quality"],
                "lam": cfg.lam_of(r["controller"]),
                "feasible": r["feasible"],
            },
        )
    records = list(seen.values())
    points = [
        ParetoPoint(
            params=int(r["cost"]),
            auc=float(r["quality"]),
            key=",".join(map(str, space.sizes(a))),
            payload={"lam": r["lam"], "feasible": r["feasible"]},
        )
        for a, r in seen.items()
    ]
    front = pareto_front(points)
    write_pareto_csv(out / "pareto.csv", points, front)
    keys = {id(p) for p in front}
    front_records = sorted(
        (r for r, p in zip(records, points, strict=True) if id(p) in keys), key=lambda r: r["cost"]
    )
    pareto_png(
        out / "pareto.png",
        trials=records,
        front=front_records,
        baselines=uniform_points(ctx),
        point_label="scored",
        title=f"search: {len(records)} architectures scored, {len(front)} on the front",
    )


def stability(
    *,
    data: Path,
    supernet: Path,
    out: Path,
    budget: str,
    cfg: SearchConfig,
    repeats: int = 3,
    tracking: TrackingSpec = TrackingSpec(),
    verbose: bool = False,
) -> dict[str, Any]:
    """The same search repeated with ``repeats`` seeds; agreement of the selected sizes.

    Writes ``stability.json`` (DESIGN.md §3: per-field exact agreement, mean |log2 α − log2 α'|,
    Kendall τ of the size vectors, over all pairs of repeats) and one search folder per seed.
    """
    from adass_ray.metrics import stability as stability_of

    if repeats < 2:
        raise ConfigError(f"--repeats must be >= 2 to compare searches, got {repeats}")
    fm = FeatureMap.load(data)
    runs = []
    for r in range(repeats):
        seed_out = out / f"seed-{r}"
        run_cfg = replace(cfg, seed=cfg.seed + 1000 * r)
        if (seed_out / "sizes.json").is_file():
            record.check(seed_out, search_record(fm, supernet, budget, run_cfg), action="reuse")
            sizes_doc = json.loads((seed_out / "sizes.json").read_text())
            runs.append(tuple(sizes_doc["fields"][n]["size"] for n in fm.field_names))
            continue
        res = search(
            data=data,
            supernet=supernet,
            out=seed_out,
            budget=budget,
            cfg=run_cfg,
            resume=(seed_out / "search_state.pt").exists(),
            tracking=tracking,
            verbose=verbose,
        )
        runs.append(tuple(res["selection"].sizes))
    smallest = min(s for s in fm.candidate_sizes if s > 0)  # a dropped field: one step below
    report: dict[str, Any] = dict(stability_of(runs, min_size=smallest))
    report.update(
        {"fields": list(fm.field_names), "sizes": [list(r) for r in runs], "budget": budget}
    )
    write_json(out / "stability.json", report)
    return report
