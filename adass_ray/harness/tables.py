"""Turn the harness's unit results into its tables (plain data, what ``results.json`` holds)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adass_ray.data.feature_map import FeatureMap
from adass_ray.harness import methods as M
from adass_ray.harness.stats import hypervolume, paired, percentile, verdict_of, widen
from adass_ray.harness.units import is_exhaustive
from adass_ray.metrics import kendall_tau, stability
from adass_ray.search.agent import SearchConfig
from adass_ray.search.space import Arch, SearchSpace


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def tables(
    *,
    data: Path,
    fm: FeatureMap,
    space: SearchSpace,
    methods: list[M.Method],
    budgets: tuple[str, ...],
    limits: dict[str, int],
    seeds: list[int],
    found: Callable[[str, str, int], Any],
    retrained: Callable[[Sequence[int], int], Any],
    scored: dict[str, Any],
    selected: dict[str, list[Any]],
    trained: dict[str, Any],
    panel_archs: list[Arch],
    variants: list[str],
    work: Path,
    search_cfg: SearchConfig,
    population_limit: int,
) -> dict[str, Any]:
    """Every table of the report as plain data."""
    smallest = min(s for s in space.candidate_sizes if s > 0)
    per_budget = []
    for b in budgets:
        sc = scored[b]
        q_ref = dict(zip(map(tuple, selected[b]), sc["selected_q"], strict=True))
        rows = []
        for m in methods:
            units = [found(m.name, b, s) for s in seeds]
            runs = [retrained(u["sizes"], s) for u, s in zip(units, seeds, strict=True)]
            row: dict[str, Any] = {
                "method": m.name,
                "group": m.group,
                "rule": m.rule,
                "sizes": [u["sizes"] for u in units],
            }
            row["kind"] = m.kind
            row["val_auc"] = [r.get("best_val_auc", math.nan) for r in runs]
            for key in ("test_auc", "test_logloss", "embedding_params", "total_params"):
                row[key] = [r.get(key, math.nan) for r in runs]
            if not any(runs):  # not retrained: the embedding params are the selection's cost
                row["embedding_params"] = [float(u["cost"]) for u in units]
            for key in ("val_auc", "test_auc", "test_logloss", "embedding_params",
                        "total_params"):
                row[f"{key}_mean"], row[f"{key}_std"] = _mean_std(row[key])
            # the floor has no architecture on the supernet: no Q_B, no percentile
            row["quality_b_ref"] = [q_ref.get(tuple(u["sizes"]), math.nan) if m.kind == "fixed"
                                    else math.nan for u in units]
            row["percentile"] = [percentile(q, sc["population_q"]) for q in row["quality_b_ref"]]
            row["percentile_mean"], _ = _mean_std(row["percentile"])
            row["percentile_random"] = [percentile(q, sc["random_q"])
                                        for q in row["quality_b_ref"]]
            row["percentile_random_mean"], _ = _mean_std(row["percentile_random"])
            row["quality_b_ref_mean"], row["quality_b_ref_std"] = _mean_std(
                row["quality_b_ref"])
            row["cost_ratio"] = [u["cost"] / limits[b] for u in units]
            row["cost_ratio_mean"], _ = _mean_std(row["cost_ratio"])
            evals = [u.get("evaluations", 0) for u in units]
            row["evaluations"] = evals if m.variant else None
            row["search_seconds"] = statistics.fmean(u["seconds"] for u in units)
            row["stability"] = (
                dict(stability(row["sizes"], min_size=smallest)) if len(seeds) > 1 else None
            )
            rows.append(row)
        ours = next(r for r in rows if r["method"] == M.OURS)
        for r in rows:
            if r is ours:
                continue
            r["vs_ours_auc"] = paired(ours["test_auc"], r["test_auc"])
            r["vs_ours_auc"]["verdict"] = verdict_of(r["vs_ours_auc"])
            r["vs_ours_percentile"] = paired(ours["percentile"], r["percentile"])
            r["vs_ours_percentile"]["verdict"] = verdict_of(r["vs_ours_percentile"])
            # the rows are one sample: widen the seed interval by the row-sampling noise of a
            # Q_B difference (paired bootstrap), or a fixed rule's interval would be zero-wide
            r["vs_ours_qb"] = widen(paired(ours["quality_b_ref"], r["quality_b_ref"]),
                                    1.96 * sc["bootstrap_se"])
            r["vs_ours_qb"]["verdict"] = verdict_of(r["vs_ours_qb"])
        distinct = len(sc["population_q"])
        per_budget.append(
            {
                "spec": b,
                "budget": limits[b],
                "methods": rows,
                "population": distinct,
                "bootstrap_se": sc["bootstrap_se"],
                "exhaustive": is_exhaustive(space, population_limit),
                "single_architecture": distinct <= 1,
            }
        )
    return {
        "dataset": fm.name,
        "rows": {k: v.rows for k, v in fm.splits.items()},
        "fields": list(fm.field_names),
        "vocab_sizes": list(fm.vocab_sizes),
        "uniform_cost": space.uniform_cost(search_cfg.d_base),
        "d_base": search_cfg.d_base,
        "seeds": seeds,
        "budgets": per_budget,
        "hypervolume": _hypervolume(per_budget, space.uniform_cost(search_cfg.d_base)),
        "ranking": _ranking(data, trained, panel_archs, variants, work, search_cfg)
        if panel_archs else None,
        "panel": [list(space.sizes(a)) for a in panel_archs],
        "planted": _planted(
            fm, {(p["spec"], r["method"]): r["sizes"] for p in per_budget for r in p["methods"]
                 if r["kind"] == "fixed"}
        ),
        "floor_warnings": floor_warnings(per_budget),
    }


def floor_warnings(per_budget: list[dict[str, Any]]) -> list[str]:
    """One warning per (budget, method) whose mean validation AUC does not beat the floor's."""
    from adass_ray.train.floor import floor_warning

    out = []
    for p in per_budget:
        floor = next((r for r in p["methods"] if r["kind"] == "linear"), None)
        if floor is None or math.isnan(floor["val_auc_mean"]):
            continue
        for r in p["methods"]:
            if r["kind"] == "fixed" and not math.isnan(r["val_auc_mean"]):
                message = floor_warning(r["val_auc_mean"], floor["val_auc_mean"],
                                        what=f"{r['method']} @ {p['spec']}")
                if message:
                    out.append(message)
    return out


def _hypervolume(per_budget: list[dict[str, Any]], uniform_cost: int) -> dict[str, float]:
    """Per method: the area its (params, mean test AUC) points over the budgets dominate."""
    # the floor has no embedding params: its point would dominate the whole front
    names = [r["method"] for r in per_budget[0]["methods"] if r.get("kind", "fixed") == "fixed"]
    aucs = [r["test_auc_mean"] for p in per_budget for r in p["methods"] if r["method"] in names]
    if any(math.isnan(a) for a in aucs):  # not retrained: no front to measure
        return {}
    floor = min(aucs) - 1e-3
    out = {}
    for name in names:
        pts = [
            (r["embedding_params_mean"], r["test_auc_mean"])
            for p in per_budget
            for r in p["methods"]
            if r["method"] == name
        ]
        out[name] = hypervolume(pts, (float(uniform_cost), floor)) / uniform_cost
    return out


def _ranking(
    data: Path,
    trained: dict[str, Any],
    panel_archs: list[Arch],
    variants: list[str],
    work: Path,
    search_cfg: SearchConfig,
) -> dict[str, Any]:
    """Kendall τ of each supernet's Q against the stand-alone AUC (2-seed mean) over the panel,
    next to the ceiling: τ between the two stand-alone seeds."""
    from adass_ray.harness.units import SPLIT_SEED, evaluators, supernet_dir
    from adass_ray.search.context import load_context

    seed0 = [trained[f"panel-{i}-seed0"]["test_auc"] for i in range(len(panel_archs))]
    seed1 = [trained[f"panel-{i}-seed1"]["test_auc"] for i in range(len(panel_archs))]
    target = [(a + b) / 2 for a, b in zip(seed0, seed1, strict=True)]
    rows = []
    for v in variants:
        ctx = load_context(
            data, supernet_dir(work, v), rows=search_cfg.rows, seed=SPLIT_SEED
        )
        _, ev_b = evaluators(ctx)
        q = ev_b.evaluate(list(panel_archs))
        rows.append(
            {
                "variant": v,
                "kendall_tau": kendall_tau(q, target),
                "quality": q,
                "supernet_val_auc": trained[f"supernet-{v}"]["best_val_auc"],
                "supernet_seconds": trained[f"supernet-{v}"]["seconds"],
            }
        )
    return {"seed_tau": kendall_tau(seed0, seed1), "panel_test_auc": target, "variants": rows}


def _planted(
    fm: FeatureMap, sizes: dict[tuple[str, str], list[list[int]]]
) -> dict[str, Any] | None:
    """On synthetic data: do informative fields get larger sizes than noise fields, per seed?"""
    truth = fm.metadata.get("ground_truth") if fm.metadata else None
    if not truth:
        return None
    names = list(fm.field_names)
    inf = [names.index(n) for n in truth["informative"]]
    noise = [names.index(n) for n in truth["noise"]]
    out = {}
    for (budget, m), per_seed in sizes.items():
        checks = []
        for sz in per_seed:
            mi = statistics.fmean(sz[i] for i in inf)
            mn = statistics.fmean(sz[i] for i in noise)
            checks.append(
                {
                    "mean_informative": mi,
                    "mean_noise": mn,
                    "mean_larger": mi > mn,
                    "strict": min(sz[i] for i in inf) > max(sz[i] for i in noise),
                }
            )
        out[f"{m} @ {budget}"] = {
            "per_seed": checks,
            "mean_larger_every_seed": all(c["mean_larger"] for c in checks),
            "strict_every_seed": all(c["strict"] for c in checks),
        }
    return {
        "informative": [names[i] for i in inf],
        "noise": [names[i] for i in noise],
        "methods": out,
    }
