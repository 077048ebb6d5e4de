"""``adass-ray report``: every method under several budgets, seeds paired, noise floor first.

Protocol (the same for every method): sizes come from a method under one budget and seed; a
search scores architectures on the search half of the validation rows (Q_A) and its result is
re-ranked on the selection half (Q_B) — ours, random search and evolution alike, the last two at
exactly our evaluation count for that seed and budget. Each selection is also scored on the
reference supernet's Q_B and placed in a fixed population of feasible architectures (the
exhaustive ranking when it is small): its Q_B percentile separates the search's efficiency from
the supernet's quality. Every method's sizes are retrained from scratch with one TrainConfig
per seed; differences against ours are paired by seed, with a 95 % t interval.

Each unit of work is a 1-CPU Ray task writing ``work/<unit>.json``, reused on a re-run.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from adass_ray import configio
from adass_ray import progress as bars
from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import ConfigError
from adass_ray.harness import methods as M
from adass_ray.harness.render import write_outputs
from adass_ray.harness.tables import tables
from adass_ray.harness.units import population, run_unit
from adass_ray.search.agent import SearchConfig
from adass_ray.search.baselines import panel
from adass_ray.search.space import Budget, SearchSpace
from adass_ray.stages import smoke
from adass_ray.tracking import TrackingSpec
from adass_ray.train.config import TrainConfig

logger = logging.getLogger(__name__)
POPULATION = 7000  # the exhaustive ranking when 3^F is at most this, else this many random ones
QUICK_POPULATION = 200
RANDOM_POPULATION = 2000


def run_report(
    *,
    data: Path,
    out: Path,
    train_cfg: TrainConfig,
    search_cfg: SearchConfig,
    budgets: tuple[str, ...] = ("0.8",),
    seeds: int = 3,
    quick: bool = False,
    ablations: bool = True,
    panel_size: int = 12,
    methods: tuple[str, ...] = (),
    retrain: bool = True,
    tracking: TrackingSpec | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Run the harness on a prepared dataset; writes ``report.md``, ``results.json`` and plots.

    Raises:
        ConfigError: bad seeds / panel size, or a budget below the smallest architecture.
    """
    from adass_ray.distributed.tasks import run_parallel

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if panel_size < 4:
        raise ConfigError(f"--panel must be >= 4 architectures, got {panel_size}")
    if not budgets:
        raise ConfigError("give at least one budget")
    fm = FeatureMap.load(data)
    if quick:
        train_cfg = _with(TrainConfig, train_cfg, smoke.QUICK_TRAIN)
        search_cfg = _with(SearchConfig, search_cfg, smoke.QUICK_SEARCH)
        ablations = False
    space = SearchSpace.from_feature_map(
        fm, candidate_sizes=train_cfg.model.candidate_sizes or None
    )
    limits = {b: Budget.parse(b).resolve(space, d_base=search_cfg.d_base) for b in budgets}
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    tcfg, scfg = configio.to_dict(train_cfg), configio.to_dict(search_cfg)
    chosen = M.chosen(ablations=ablations, quick=quick, names=methods)
    variants = [v for v in M.VARIANTS if any(m.variant == v for m in chosen)]
    seed_list = list(range(seeds))
    t_start = time.perf_counter()
    base = {"data": str(data), "work": str(work)}

    def stage(what: str, calls: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
        count = {"n": 0}
        bar = bars.bar(total=len(calls), desc=f"report {what}", unit="unit")

        def on_done(name: str, res: dict[str, Any]) -> None:
            count["n"] += 1
            bar.update(1)
            logger.info(
                "report %s %d/%d: %s (%.0f s elapsed)",
                what,
                count["n"],
                len(calls),
                name,
                time.perf_counter() - t_start,
            )

        items = [
            {"kind": kind, "kwargs": {**base, **kw, "_name": name}} for name, kind, kw in calls
        ]
        with bars.closing(bar):
            results = run_parallel(
                _run, items, names=[n for n, _, _ in calls], on_done=on_done, verbose=verbose
            )
        return dict(zip([n for n, _, _ in calls], results, strict=True))

    # 1. supernets and the panel (each panel architecture on two seeds: the τ noise floor)
    panel_archs = panel(space, panel_size, seed=0) if retrain else []
    trained = stage(
        "train",
        [
            *[
                (f"supernet-{v}", "supernet", {"variant": v, "cfg": _variant(tcfg, v)})
                for v in variants
            ],
            *[
                (
                    f"panel-{i}-seed{s}",
                    "retrain",
                    {"seed": s, "sizes": list(space.sizes(a)), "cfg": tcfg},
                )
                for i, a in enumerate(panel_archs)
                for s in (0, 1)
            ],
        ],
    )

    # 2. every method's sizes per budget and seed; equal-evaluation baselines after ours
    def method_calls(ms: list[M.Method], evals: dict[tuple[str, int], int] | None) -> list[Any]:
        return [
            (
                _unit_name(m.name, b, s),
                "method",
                {
                    "method": m.name,
                    "seed": s,
                    "budget": limits[b],
                    "search": scfg,
                    "train": tcfg,
                    "evaluations": evals[(b, s)] if evals is not None else None,
                },
            )
            for b in budgets
            for m in ms
            for s in seed_list
        ]

    found = stage("search", method_calls([m for m in chosen if not m.equal_evals], None))
    ours_evals = {
        (b, s): int(found[_unit_name(M.OURS, b, s)]["evaluations"])
        for b in budgets
        for s in seed_list
    }
    found.update(stage("search", method_calls([m for m in chosen if m.equal_evals], ours_evals)))

    # 3. Q_B on the reference supernet: the selections and the population, per budget
    limit = QUICK_POPULATION if quick else POPULATION
    pops = {b: population(space, limits[b], limit=limit) for b in budgets}
    # the same number of random feasible architectures over every size (what random search
    # draws from): the percentile that still separates methods when every selection beats all
    # of the small-size architectures
    randoms = {b: population(space, limits[b], limit=RANDOM_POPULATION, exhaustive=False)
               for b in budgets}
    selected = {
        b: [found[_unit_name(m.name, b, s)]["sizes"]
            for m in chosen if m.kind == "fixed" for s in seed_list]
        for b in budgets
    }
    scored = stage(
        "score",
        [
            (
                f"score-{b}",
                "score",
                {
                    "budget": limits[b],
                    "population": pops[b],
                    "search": scfg,
                    "archs": [list(space.arch_of(sz)) for sz in selected[b]],
                },
            )
            for b in budgets
        ]
        + [
            (f"score-random-{b}", "score", {"budget": limits[b], "population": randoms[b],
                                            "search": scfg, "archs": []})
            for b in budgets
        ],
    )

    # 4. retrain every distinct (sizes, seed) once
    unique: dict[tuple[tuple[int, ...], int], str] = {}
    kinds: dict[str, str] = {}
    for b in budgets:
        for m in chosen:
            for s in seed_list:
                sizes = tuple(found[_unit_name(m.name, b, s)]["sizes"])
                if retrain:
                    # the floor's all-zero marker is no architecture: its own unit name
                    tag = "linear" if m.kind == "linear" else "-".join(map(str, sizes))
                    name = unique.setdefault((sizes, s), f"retrain-{tag}-seed{s}")
                    kinds[name] = m.kind
    retrained = stage(
        "retrain",
        [
            (name, "retrain", {"seed": s, "sizes": list(sz), "cfg": tcfg, "kind": kinds[name]})
            for (sz, s), name in unique.items()
        ],
    )

    results = tables(
        data=data,
        fm=fm,
        space=space,
        methods=chosen,
        budgets=budgets,
        limits=limits,
        seeds=seed_list,
        found=lambda m, b, s: found[_unit_name(m, b, s)],
        retrained=lambda sz, s: retrained.get(unique.get((tuple(sz), s), ""), {}),
        scored={b: {**scored[f"score-{b}"],
                    "random_q": scored[f"score-random-{b}"]["population_q"]} for b in budgets},
        selected=selected,
        trained=trained,
        panel_archs=panel_archs,
        variants=variants,
        work=work,
        search_cfg=search_cfg,
        population_limit=limit,
    )
    results.update(
        {
            "data": str(data),
            "quick": quick,
            "train": tcfg,
            "search": scfg,
            "seconds": time.perf_counter() - t_start,
        }
    )
    write_outputs(out, results)
    if tracking is not None:
        with tracking.start(
            run_name=f"report-{out.name}", default_experiment=fm.name, fallback_dir=out
        ) as tracker:
            tracker.log_params(
                {
                    "stage": "report",
                    "data": str(data),
                    "budgets": list(budgets),
                    "seeds": seeds,
                    "quick": quick,
                }
            )
            for per in results["budgets"]:
                for r in per["methods"]:
                    key = f"{M.slug(r['method'])}.b{per['spec']}.test_auc"
                    tracker.log_metrics({key: r["test_auc_mean"]})
            for name in ("report.md", "results.json", "auc_vs_params.png", "sizes_heatmap.png"):
                tracker.log_artifact(out / name)
    return results


def _run(kind: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    return run_unit(kind, kwargs)


def _unit_name(method: str, budget: str, seed: int) -> str:
    return f"method-{M.slug(method)}-b{budget}-seed{seed}"


def _with(cls: type[Any], cfg: Any, overrides: list[str]) -> Any:
    merged = configio.merge(configio.to_dict(cfg), configio.parse_overrides(overrides))
    return configio.from_mapping(cls, merged)


def _variant(tcfg: dict[str, Any], variant: str) -> dict[str, Any]:
    return configio.merge(tcfg, configio.parse_overrides(list(M.VARIANTS[variant])))
