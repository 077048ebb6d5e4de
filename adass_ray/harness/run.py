"""``adass-ray report``: baselines, ablations, stability and ranking consistency on one dataset.

Protocol (the same for every method): sizes come from a method under one budget; each method's
sizes are retrained from scratch with the same TrainConfig for every seed; the table gives test
AUC / logloss mean ± std over the seeds. Supernets are trained once per sampler variant (seed 0);
searches are repeated per seed (search seed = the seed), so "stability" is across search seeds
on a fixed supernet. Random search and evolution get exactly as many distinct supernet
evaluations as our search used with the same seed.

Every unit of work (a supernet, a search, a retraining, a panel model) is a 1-CPU Ray task that
writes ``work/<unit>.json`` (and a model where later units need it); a re-run reuses finished
units, so a stopped report continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from adass_ray import config as cfgmod
from adass_ray.artifacts import load_model, save_model, write_json
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.loader import ShardLoader
from adass_ray.errors import ConfigError
from adass_ray.search.agent import SearchConfig
from adass_ray.search.space import Budget, SearchSpace
from adass_ray.training import TrainConfig

logger = logging.getLogger(__name__)

# sampler / layout variants of the supernet: name -> TrainConfig overrides
VARIANTS: dict[str, list[str]] = {
    "adaptive": [],
    "uniform": ["sampler.name=uniform"],
    "es-only": ["sampler.fs=false"],
    "fs-only": ["sampler.es=false"],
    "greedy": ["sampler.name=greedy"],
    "nested": ["model.layout=nested"],
}
# searching methods: name -> (supernet variant, search kind, SearchConfig overrides)
SEARCHES: dict[str, tuple[str, str, list[str]]] = {
    "AdaS&S (ours)": ("adaptive", "rl", []),
    "random search": ("adaptive", "random", []),
    "uniform sampling + evolution": ("uniform", "evolution", []),
    "ablation: uniform sampler + RL": ("uniform", "rl", []),
    "ablation: ES only + RL": ("es-only", "rl", []),
    "ablation: FS only + RL": ("fs-only", "rl", []),
    "ablation: greedy sampler + RL": ("greedy", "rl", []),
    "ablation: nested tables + RL": ("nested", "rl", []),
    "ablation: no competition term": ("adaptive", "rl", ["competition=false"]),
}
FIXED = ("uniform d_base", "uniform matched to budget", "card^0.25 rule", "SSEDS-style saliency")
QUICK_TRAIN = ["epochs=2", "patience=0"]
QUICK_SEARCH = ["iterations=10", "archs_per_iter=8", "val_rows=2000"]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


# ------------------------------------------------------------------------- units (Ray tasks)


def unit_supernet(*, data: str, work: str, variant: str, cfg: dict[str, Any]) -> dict[str, Any]:
    from adass_ray.harness import train_local

    out = Path(work) / f"supernet-{variant}"
    train_cfg = cfgmod.from_mapping(TrainConfig, cfg)
    fm = FeatureMap.load(data)
    model, metrics = train_local(Path(data), train_cfg, "supernet")
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "model.pt", kind="supernet", model=model, model_config=train_cfg.model, fm=fm)
    return {"variant": variant, **metrics}


def unit_search(*, data: str, work: str, method: str, seed: int, budget: int, search: dict[str, Any],
                evaluations: int | None = None) -> dict[str, Any]:
    from adass_ray.distributed.search import search_context
    from adass_ray.harness import evolutionary_search, random_search, rl_search
    from adass_ray.search.evaluator import CachedEvaluator

    variant, kind, _ = SEARCHES[method]
    base = cfgmod.from_mapping(SearchConfig, search)
    # the validation rows are the same for every seed (seed 0); the seed drives the search only
    ctx = search_context(Path(data), Path(work) / f"supernet-{variant}", replace(base, seed=0))
    cfg, space = replace(base, seed=seed), ctx["space"]
    evaluator = CachedEvaluator(ctx["net"], ctx["batch"])
    if kind == "rl":
        res = rl_search(evaluator, space, budget, cfg)
    elif kind == "random":
        res = random_search(evaluator, space, budget, evaluations or 1, seed)
    else:
        res = evolutionary_search(evaluator, space, budget, evaluations or 1, seed)
    return {"method": method, "seed": seed, **res}


def unit_panel(*, data: str, work: str, sizes: list[int], cfg: dict[str, Any]) -> dict[str, Any]:
    from adass_ray.harness import train_local

    _, metrics = train_local(Path(data), cfgmod.from_mapping(TrainConfig, cfg), "fixed", tuple(sizes))
    return {"sizes": sizes, **metrics}


def unit_saliency(*, data: str, work: str, seed: int, budget: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """Train a uniform model at the largest candidate size, then prune it to the budget."""
    from adass_ray.harness import saliency_sizes, train_local

    fm = FeatureMap.load(data)
    train_cfg = cfgmod.from_mapping(TrainConfig, cfg)
    train_cfg = replace(train_cfg, seed=seed, model=replace(train_cfg.model, sparse=False))
    space = SearchSpace.from_feature_map(fm, candidate_sizes=train_cfg.model.candidate_sizes or None)
    top = max(space.candidate_sizes)
    t0 = time.perf_counter()
    model, metrics = train_local(Path(data), train_cfg, "fixed", (top,) * fm.num_fields)
    sizes, _ = saliency_sizes(model, Path(data), space, budget)
    return {"method": "SSEDS-style saliency", "seed": seed, "sizes": list(sizes), "cost": space.cost(space.arch_of(sizes)),
            "seconds": time.perf_counter() - t0, "evaluations": 0, "base_test_auc": metrics["test_auc"]}


def unit_retrain(*, data: str, work: str, method: str, seed: int, sizes: list[int],
                 cfg: dict[str, Any]) -> dict[str, Any]:
    from adass_ray.harness import train_local

    train_cfg = replace(cfgmod.from_mapping(TrainConfig, cfg), seed=seed)
    _, metrics = train_local(Path(data), train_cfg, "fixed", tuple(sizes))
    return {"method": method, "seed": seed, "sizes": sizes, **metrics}


UNITS: dict[str, Any] = {"supernet": unit_supernet, "search": unit_search, "panel": unit_panel, "saliency": unit_saliency,
         "retrain": unit_retrain}


def run_unit(kind: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run one unit unless its result file exists; write the result atomically."""
    path = Path(kwargs["work"]) / f"{kwargs.pop('_name')}.json"
    if path.is_file():
        return dict(json.loads(path.read_text()))
    result = UNITS[kind](**kwargs)
    write_json(path, result)
    return result


# ------------------------------------------------------------------------- the harness


def run_report(
    *,
    data: Path,
    out: Path,
    train_cfg: TrainConfig,
    search_cfg: SearchConfig,
    budget_spec: str = "0.8",
    seeds: int = 3,
    quick: bool = False,
    ablations: bool = True,
    panel_size: int = 12,
    tracking: Any = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Run the harness on a prepared dataset; writes ``report.md``, ``results.json`` and plots."""
    from adass_ray.distributed.tasks import run_parallel

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if panel_size < 4:
        raise ConfigError(f"--panel must be >= 4 architectures, got {panel_size}")
    fm = FeatureMap.load(data)
    if quick:
        train_cfg = cfgmod.from_mapping(TrainConfig, cfgmod.merge(cfgmod.to_dict(train_cfg),
                                                                  cfgmod.parse_overrides(QUICK_TRAIN)))
        search_cfg = cfgmod.from_mapping(SearchConfig, cfgmod.merge(cfgmod.to_dict(search_cfg),
                                                                    cfgmod.parse_overrides(QUICK_SEARCH)))
        ablations = False
    space = SearchSpace.from_feature_map(fm, candidate_sizes=train_cfg.model.candidate_sizes or None)
    budget = Budget.parse(budget_spec).resolve(space, d_base=search_cfg.d_base)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    base = {"data": str(data), "work": str(work)}
    tcfg = cfgmod.to_dict(train_cfg)
    scfg = cfgmod.to_dict(search_cfg)
    searches = [m for m in SEARCHES if ablations or not m.startswith("ablation")]
    variants = sorted({SEARCHES[m][0] for m in searches}, key=list(VARIANTS).index)
    seed_list = list(range(seeds))
    t_start = time.perf_counter()
    done = {"n": 0}

    def stage(what: str, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        total = len(calls)
        done["n"] = 0

        def on_done(name: str, res: dict[str, Any]) -> None:
            done["n"] += 1
            shown = f"test AUC {res['test_auc']:.4f}" if "test_auc" in res else \
                f"{res.get('evaluations', 0)} evaluations" if "evaluations" in res else ""
            logger.info("report %s %d/%d: %s %s (%.0f s elapsed)", what, done["n"], total, name, shown,
                        time.perf_counter() - t_start)

        work_items = [{"kind": kw["_kind"], "kwargs": {**base, **{k: v for k, v in kw.items() if k != "_kind"},
                                                        "_name": name}} for name, kw in calls]
        return run_parallel(run_unit, work_items, names=[n for n, _ in calls], on_done=on_done, verbose=verbose)

    # 1. supernets per variant, saliency base models per seed, the ranking panel (independent)
    panel_archs = _panel(space, panel_size)
    first = stage("train", [
        *[(f"supernet-{v}", {"_kind": "supernet", "variant": v, "cfg": _variant_cfg(tcfg, v)}) for v in variants],
        *[(f"saliency-seed{s}", {"_kind": "saliency", "seed": s, "budget": budget, "cfg": tcfg}) for s in seed_list],
        *[(f"panel-{i}", {"_kind": "panel", "sizes": list(space.sizes(a)), "cfg": tcfg})
          for i, a in enumerate(panel_archs)],
    ])
    by_name = dict(zip([f"supernet-{v}" for v in variants] + [f"saliency-seed{s}" for s in seed_list]
                       + [f"panel-{i}" for i in range(len(panel_archs))], first, strict=True))

    # 2. searches: ours and the ablations first, then the equal-evaluation baselines
    rl = [m for m in searches if SEARCHES[m][1] == "rl"]
    second = stage("search", [(f"search-{_slug(m)}-seed{s}", {"_kind": "search", "method": m, "seed": s,
                                                               "budget": budget, "search": _search_cfg(scfg, m)})
                              for m in rl for s in seed_list])
    found = {(r["method"], r["seed"]): r for r in second}
    others = [m for m in searches if SEARCHES[m][1] != "rl"]
    third = stage("search", [(f"search-{_slug(m)}-seed{s}", {
        "_kind": "search", "method": m, "seed": s, "budget": budget, "search": scfg,
        "evaluations": found[("AdaS&S (ours)", s)]["evaluations"]}) for m in others for s in seed_list])
    found.update({(r["method"], r["seed"]): r for r in third})
    for s in seed_list:
        found[("SSEDS-style saliency", s)] = by_name[f"saliency-seed{s}"]

    # 3. the sizes every method hands on, per seed
    from adass_ray.harness import card_rule, uniform_matched

    card, card_k = card_rule(space, budget)
    fixed_sizes = {"uniform d_base": (search_cfg.d_base,) * fm.num_fields,
                   "uniform matched to budget": uniform_matched(space, budget), "card^0.25 rule": card}
    methods = [*FIXED, *searches]
    sizes_of: dict[tuple[str, int], list[int]] = {}
    for m in methods:
        for s in seed_list:
            sizes_of[(m, s)] = list(fixed_sizes[m]) if m in fixed_sizes else list(found[(m, s)]["sizes"])

    # 4. retrain everything, every seed (identical sizes are trained once per seed)
    unique: dict[tuple[tuple[int, ...], int], str] = {}
    calls = []
    for (m, s), sz in sizes_of.items():
        key = (tuple(sz), s)
        if key not in unique:
            unique[key] = f"retrain-{'-'.join(map(str, sz))}-seed{s}"
            calls.append((unique[key], {"_kind": "retrain", "method": m, "seed": s, "sizes": sz, "cfg": tcfg}))
    retrained = dict(zip([n for n, _ in calls], stage("retrain", calls), strict=True))

    # 5. tables
    from adass_ray.metrics import kendall_tau, stability

    rows = []
    smallest = min(s for s in space.candidate_sizes if s > 0)
    for m in methods:
        runs = [retrained[unique[(tuple(sizes_of[(m, s)]), s)]] for s in seed_list]
        row: dict[str, Any] = {"method": m, "group": "ablation" if m.startswith("ablation") else
                               "ours" if m == "AdaS&S (ours)" else "baseline"}
        for metric in ("test_auc", "test_logloss", "embedding_params", "total_params"):
            vals = [r[metric] for r in runs]
            row[f"{metric}_mean"] = statistics.fmean(vals)
            row[f"{metric}_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
            row[metric] = vals
        searched = [found[(m, s)] for s in seed_list if (m, s) in found]
        row["search_seconds"] = statistics.fmean(r["seconds"] for r in searched) if searched else None
        row["evaluations"] = statistics.fmean(r["evaluations"] for r in searched) if searched else None
        row["sizes"] = [sizes_of[(m, s)] for s in seed_list]
        row["stability"] = dict(stability(row["sizes"], min_size=smallest)) if len(seed_list) > 1 else None
        rows.append(row)
    standalone = [by_name[f"panel-{i}"]["test_auc"] for i in range(len(panel_archs))]
    ranking = []
    from adass_ray.harness import supernet_qualities
    from adass_ray.search.evaluator import validation_subsample

    batch = validation_subsample(ShardLoader(data, fm, split="valid", shuffle=False), search_cfg.val_rows, 0)
    for v in variants:
        net, _ = load_model(work / f"supernet-{v}", fm)
        q = supernet_qualities(net, batch, panel_archs)  # type: ignore[arg-type]
        ranking.append({"variant": v, "kendall_tau": kendall_tau(q, standalone), "quality": q,
                        "supernet_val_auc": by_name[f"supernet-{v}"]["best_val_auc"],
                        "supernet_seconds": by_name[f"supernet-{v}"]["seconds"]})
    planted = _planted(fm, {m: row["sizes"] for m, row in zip(methods, rows, strict=True)})
    results = {
        "dataset": fm.name, "data": str(data), "rows": {k: v.rows for k, v in fm.splits.items()},
        "fields": list(fm.field_names), "vocab_sizes": list(fm.vocab_sizes), "budget": budget,
        "budget_spec": budget_spec, "uniform_cost": space.uniform_cost(search_cfg.d_base), "seeds": seed_list,
        "quick": quick, "card_k": card_k, "train": tcfg, "search": scfg, "methods": rows,
        "panel": [list(space.sizes(a)) for a in panel_archs], "panel_test_auc": standalone, "ranking": ranking,
        "planted": planted, "seconds": time.perf_counter() - t_start,
    }
    _write_outputs(out, results)
    if tracking is not None:
        tracker = tracking.start(run_name=f"report-{out.name}", default_experiment=fm.name, fallback_dir=out)
        try:
            tracker.log_params({"stage": "report", "data": str(data), "budget": budget_spec, "seeds": seeds,
                                "quick": quick})
            for r in rows:
                tracker.log_metrics({f"{_slug(r['method'])}.test_auc": r["test_auc_mean"]})
            for name in ("report.md", "results.json", "auc_vs_params.png", "sizes_heatmap.png"):
                tracker.log_artifact(out / name)
        finally:
            tracker.close()
    return results


def _variant_cfg(tcfg: dict[str, Any], variant: str) -> dict[str, Any]:
    return cfgmod.merge(tcfg, cfgmod.parse_overrides(VARIANTS[variant]))


def _search_cfg(scfg: dict[str, Any], method: str) -> dict[str, Any]:
    return cfgmod.merge(scfg, cfgmod.parse_overrides(SEARCHES[method][2]))


def _panel(space: SearchSpace, n: int) -> list[tuple[int, ...]]:
    from adass_ray.harness import panel

    return panel(space, n, seed=0)


def _planted(fm: FeatureMap, sizes: dict[str, list[list[int]]]) -> dict[str, Any] | None:
    """On synthetic data: do informative fields get larger sizes than noise fields, per seed?"""
    truth = fm.metadata.get("ground_truth") if fm.metadata else None
    if not truth:
        return None
    names = list(fm.field_names)
    inf = [names.index(n) for n in truth["informative"]]
    noise = [names.index(n) for n in truth["noise"]]
    out = {}
    for m, per_seed in sizes.items():
        checks = []
        for sz in per_seed:
            mi = statistics.fmean(sz[i] for i in inf)
            mn = statistics.fmean(sz[i] for i in noise)
            checks.append({"mean_informative": mi, "mean_noise": mn, "mean_larger": mi > mn,
                           "strict": min(sz[i] for i in inf) > max(sz[i] for i in noise)})
        out[m] = {"per_seed": checks, "mean_larger_every_seed": all(c["mean_larger"] for c in checks),
                  "strict_every_seed": all(c["strict"] for c in checks)}
    return {"informative": [names[i] for i in inf], "noise": [names[i] for i in noise], "methods": out}


# ------------------------------------------------------------------------- outputs


def _pm(mean: float, std: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def render_markdown(res: dict[str, Any]) -> str:
    """The report as markdown tables (what ``report.md`` holds)."""
    lines = [f"# Evaluation report: {res['dataset']}", ""]
    rows = res["rows"]
    lines.append(f"Data: `{res['data']}` (rows {rows}); budget {res['budget']:,} embedding params "
                 f"({res['budget_spec']} of uniform-{res['search']['d_base']} = {res['uniform_cost']:,}); "
                 f"seeds {res['seeds']}; {'QUICK settings (smoke only, not results)' if res['quick'] else 'full settings'}; "
                 f"{res['seconds'] / 60:.1f} min.")
    lines += ["", "| method | embedding params | total params | test AUC (mean ± std) | test logloss | "
                  "search s | evaluations | stability: agreement / τ |",
              "|---|---|---|---|---|---|---|---|"]
    best = max(r["test_auc_mean"] for r in res["methods"])
    for r in res["methods"]:
        auc = _pm(r["test_auc_mean"], r["test_auc_std"])
        if r["test_auc_mean"] == best:
            auc = f"**{auc}**"
        st = r["stability"]
        stab = "—" if st is None else f"{st['agreement']:.2f} / {st['kendall_tau']:.2f}"
        if st is not None and r["method"] in FIXED[:3]:
            stab = "fixed rule"
        secs = "—" if r["search_seconds"] is None else f"{r['search_seconds']:.1f}"
        evals = "—" if r["evaluations"] is None else f"{r['evaluations']:.0f}"
        lines.append(
            f"| {r['method']} | {r['embedding_params_mean']:,.0f} | {r['total_params_mean']:,.0f} | {auc} | "
            f"{_pm(r['test_logloss_mean'], r['test_logloss_std'])} | {secs} | {evals} | {stab} |")
    lines += ["", "Verdict: " + verdict(res["methods"])]
    lines += ["", "## Ranking consistency", "",
              f"Kendall τ between the supernet's Q(α) (validation subsample) and the stand-alone test AUC "
              f"of the same α trained from scratch (seed 0), over a fixed panel of {len(res['panel'])} "
              "architectures (every uniform one plus seeded random ones).", "",
              "| supernet sampler / layout | Kendall τ | supernet mean val AUC | supernet train s |", "|---|---|---|---|"]
    for r in res["ranking"]:
        lines.append(f"| {r['variant']} | {r['kendall_tau']:.3f} | {r['supernet_val_auc']:.4f} | "
                     f"{r['supernet_seconds']:.0f} |")
    if res.get("planted"):
        p = res["planted"]
        lines += ["", "## Planted structure (synthetic)", "",
                  f"Informative fields: {', '.join(p['informative'])}; noise fields: {', '.join(p['noise'])}.", "",
                  "| method | mean size informative / noise per seed | informative > noise (means), every seed | "
                  "every informative > every noise, every seed |", "|---|---|---|---|"]
        for m, v in p["methods"].items():
            per = "; ".join(f"{c['mean_informative']:.1f} / {c['mean_noise']:.1f}" for c in v["per_seed"])
            lines.append(f"| {m} | {per} | {'yes' if v['mean_larger_every_seed'] else '**no**'} | "
                         f"{'yes' if v['strict_every_seed'] else 'no'} |")
    lines += ["", "## Sizes per method and seed", "", "| method | seed | " + " | ".join(res["fields"]) + " |",
              "|---|---|" + "---|" * len(res["fields"])]
    for r in res["methods"]:
        for s, sz in zip(res["seeds"], r["sizes"], strict=True):
            lines.append(f"| {r['method']} | {s} | " + " | ".join(map(str, sz)) + " |")
    lines.append("")
    return "\n".join(lines)


def verdict(methods: list[dict[str, Any]]) -> str:
    """One plain sentence: does our method's mean test AUC beat the baselines', and is the margin
    larger than the seed spread (the larger of the two standard deviations)?"""
    ours = next(r for r in methods if r["method"] == "AdaS&S (ours)")
    baselines = [r for r in methods if r["group"] == "baseline"]
    best = max(baselines, key=lambda r: r["test_auc_mean"])
    margin = ours["test_auc_mean"] - best["test_auc_mean"]
    spread = max(ours["test_auc_std"], best["test_auc_std"])
    beaten = [r["method"] for r in baselines if r["test_auc_mean"] >= ours["test_auc_mean"]]
    if beaten:
        head = (f"AdaS&S's mean test AUC ({ours['test_auc_mean']:.4f}) does **not** beat "
                f"{', '.join(beaten)}; the best baseline, {best['method']}, is ahead by {-margin:.4f}")
    else:
        head = (f"AdaS&S's mean test AUC ({ours['test_auc_mean']:.4f}) is above every baseline's; the margin "
                f"over the best one, {best['method']}, is {margin:.4f}")
    signif = "larger" if abs(margin) > spread else "**smaller**"
    tail = "" if abs(margin) > spread else ", so the difference is not significant with these seeds"
    return f"{head}, {signif} than the seed std ({spread:.4f}){tail}."


def _write_outputs(out: Path, res: dict[str, Any]) -> None:
    from adass_ray.data.io import atomic_write_bytes
    from adass_ray.plots import scatter_methods_png, size_heatmap_png

    write_json(out / "results.json", res)
    atomic_write_bytes(out / "report.md", render_markdown(res).encode("utf-8"))
    scatter_methods_png(out / "auc_vs_params.png", res["methods"],
                        title=f"{res['dataset']}: test AUC vs embedding params ({len(res['seeds'])} seeds)")
    heat = {f"{r['method'][:30]} s{s}": sz for r in res["methods"] if r["method"] not in FIXED[:3]
            for s, sz in zip(res["seeds"], r["sizes"], strict=True)}
    size_heatmap_png(out / "sizes_heatmap.png", res["fields"], heat,
                     title=f"{res['dataset']}: sizes per field, method and seed")

