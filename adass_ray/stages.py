"""Stage functions shared by the CLI, the pipeline and the jobs: each starts or joins Ray, opens
an MLflow run, calls the distributed code and leaves its outputs in one folder."""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adass_ray import config as cfgmod
from adass_ray.data.feature_map import FEATURE_MAP_FILE, FeatureMap
from adass_ray.errors import AdassError, ConfigError
from adass_ray.training import TrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingOptions:
    """Where runs are logged; ``enabled=False`` logs nothing."""

    enabled: bool = True
    uri: str | None = None
    experiment: str | None = None
    parent_run_id: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrackingOptions:
        return cls(enabled=not args.no_tracking, uri=args.tracking_uri, experiment=args.experiment)

    def start(self, *, run_name: str, default_experiment: str, fallback_dir: Path) -> Any:
        from adass_ray.tracking import MlflowTracker, NoopTracker

        if not self.enabled:
            return NoopTracker()
        return MlflowTracker.start(
            tracking_uri=self.uri, experiment=self.experiment or default_experiment,
            run_name=run_name, parent_run_id=self.parent_run_id, fallback_dir=fallback_dir,
        )


def smoke_data(out: Path) -> Path:
    """Tiny synthetic data for ``--smoke-test`` runs (made once, beside the outputs)."""
    from adass_ray.data import synthetic

    data = out.parent / f".{out.name}-smoke-data"
    if not (data / FEATURE_MAP_FILE).is_file():
        synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=3000, seed=0), data, overwrite=True)
    return data


def read_sizes(path: str | Path, fm: FeatureMap) -> tuple[int, ...]:
    """Per-field sizes from a ``sizes.json`` (``{"fields": {name: {"size": s}}}``) in field order.

    Raises:
        ConfigError: unreadable file, or fields that do not match the dataset.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        fields = data["fields"]
        sizes = {name: int(v["size"] if isinstance(v, dict) else v) for name, v in fields.items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not a sizes file ({type(e).__name__}: {e})") from None
    missing = [n for n in fm.field_names if n not in sizes]
    extra = [n for n in sizes if n not in fm.field_names]
    if missing or extra:
        raise ConfigError(f"{path}: fields do not match the dataset (missing {missing}, unknown {extra})")
    if any(s < 0 for s in sizes.values()):
        raise ConfigError(f"{path}: sizes must be >= 0")
    return tuple(sizes[n] for n in fm.field_names)


def train(
    *,
    data: Path,
    out: Path,
    cfg: TrainConfig,
    kind: str,
    sizes_file: str | None = None,
    uniform: int | None = None,
    resume: bool = False,
    tracking: TrackingOptions = TrackingOptions(),
    verbose: bool = False,
    sizes: tuple[int, ...] | None = None,
    init_from: Path | None = None,
) -> Any:
    """Train a supernet (``kind="supernet"``) or a fixed-size model (``kind="fixed"``).

    ``sizes`` (or ``sizes_file``, or ``uniform``) fix a fixed model's architecture;
    ``init_from`` names a supernet folder whose weights the fixed model inherits.
    """
    from adass_ray.distributed.runtime import ensure_ray
    from adass_ray.distributed.train import fit
    from adass_ray.training import validate

    fm = FeatureMap.load(data)
    validate(fm, cfg, kind)
    if kind == "fixed" and sizes is None:
        sizes = read_sizes(sizes_file, fm) if sizes_file else (uniform or cfg.model.d,) * fm.num_fields
        if uniform is not None and uniform < 1:
            raise ConfigError(f"--uniform must be >= 1, got {uniform}")
    if out.exists() and (out / ".ray").exists() and not resume:
        raise AdassError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    ensure_ray(num_cpus=os.cpu_count() or 1, verbose=verbose)
    tracker = tracking.start(run_name=f"{kind}-{out.name}", default_experiment=fm.name, fallback_dir=out)
    try:
        tracker.log_params({"stage": kind, "data": str(data), "sizes": list(sizes) if sizes else None,
                            **cfgmod.flatten(cfgmod.to_dict(cfg))})
        spec = {"uri": getattr(tracker, "tracking_uri", None), "run_id": tracker.run_id}
        extra = {"init_state": str(_inherited_state(init_from, fm, sizes, out))} if init_from else None
        result = fit(data=data, out=out, cfg=cfg, kind=kind, sizes=sizes, tracking=spec, resume=resume,
                     extra_config=extra)
        tracker.log_metrics({k: v for k, v in result.metrics.items()})
        for name in ("model.pt", "history.json", "metrics.json"):
            tracker.log_artifact(out / name)
        tracker.log_artifact(data / FEATURE_MAP_FILE)
        if kind == "fixed":  # the retrained model, loadable with mlflow.pytorch.load_model
            from adass_ray.artifacts import load_model

            tracker.log_model(load_model(out, fm)[0], "model")
    except BaseException:
        tracker.close(status="FAILED")
        raise
    tracker.close()
    return result


def _inherited_state(supernet_dir: Path, fm: FeatureMap, sizes: tuple[int, ...] | None, out: Path) -> Path:
    """Stand-alone weights cut from a trained supernet for ``sizes`` (saved for the workers)."""
    import torch

    from adass_ray.artifacts import load_model
    from adass_ray.model.standalone import StandaloneModel
    from adass_ray.model.supernet import Supernet

    net, _ = load_model(supernet_dir, fm)
    if not isinstance(net, Supernet) or sizes is None:
        raise ConfigError(f"{supernet_dir} does not hold a supernet; give the train-supernet output folder")
    model = StandaloneModel.from_supernet(net, sizes)
    path = out / "inherited.pt"
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def retrain(
    *,
    data: Path,
    out: Path,
    cfg: TrainConfig,
    sizes_file: str | None = None,
    uniform: int | None = None,
    seeds: int = 3,
    init_from: Path | None = None,
    tracking: TrackingOptions = TrackingOptions(),
    verbose: bool = False,
) -> dict[str, Any]:
    """Train the stand-alone model with fixed sizes once per seed; writes ``summary.json``.

    Each seed's run lives in ``out/seed-<s>`` (finished seeds are reused on a re-run).
    Returns the summary: per-seed test AUC / logloss and their mean and standard deviation.
    """
    import json
    import statistics

    from adass_ray.artifacts import write_json

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    fm = FeatureMap.load(data)
    sizes = read_sizes(sizes_file, fm) if sizes_file else (uniform or cfg.model.d,) * fm.num_fields
    runs: list[dict[str, float]] = []
    for s in range(seeds):
        seed_out = out / f"seed-{s}"
        if (seed_out / "metrics.json").is_file():
            runs.append(json.loads((seed_out / "metrics.json").read_text()))
            continue
        seed_cfg = TrainConfig(**{**cfg.__dict__, "seed": cfg.seed + s})
        res = train(data=data, out=seed_out, cfg=seed_cfg, kind="fixed", sizes=sizes,
                    resume=(seed_out / ".ray").exists(), tracking=tracking, verbose=verbose,
                    init_from=init_from)
        runs.append(res.metrics)
    summary: dict[str, Any] = {
        "sizes": dict(zip(fm.field_names, sizes, strict=True)),
        "embedding_params": sum(v * a for v, a in zip(fm.vocab_sizes, sizes, strict=True)),
        "seeds": [cfg.seed + s for s in range(seeds)],
        "inherited_from": str(init_from) if init_from else None,
    }
    for key in ("test_auc", "test_logloss"):
        values = [r[key] for r in runs]
        summary[key] = values
        summary[f"{key}_mean"] = statistics.fmean(values)
        summary[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    write_json(out / "summary.json", summary)
    return summary


def search(
    *,
    data: Path,
    supernet: Path,
    out: Path,
    budget: str,
    cfg: Any,
    resume: bool = False,
    tracking: TrackingOptions = TrackingOptions(),
    verbose: bool = False,
    fault: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Stage 2: parallel controllers on Ray, then selection under the hard budget.

    Writes ``sizes.json`` (the selected sizes + provenance), ``history.json`` (every scored
    architecture) and ``search_state.pt`` (for ``--resume``) into ``out``.
    """
    import time

    from adass_ray.artifacts import write_json
    from adass_ray.distributed.runtime import ensure_ray
    from adass_ray.distributed.search import run_search
    from adass_ray.search.export import write_sizes_json
    from adass_ray.search.space import select

    ensure_ray(num_cpus=os.cpu_count() or 1, verbose=verbose)
    fm = FeatureMap.load(data)
    tracker = tracking.start(run_name=f"search-{out.name}", default_experiment=fm.name, fallback_dir=out)
    t0 = time.perf_counter()

    def progress(iteration: int, history: list[dict[str, Any]], summaries: list[dict[str, Any]]) -> None:
        feasible = [r["quality"] for r in history if r["feasible"]]
        best = max(feasible) if feasible else float("nan")
        every = max(1, cfg.iterations // 10)
        if iteration % every == 0 or iteration == cfg.iterations:
            ent = ", ".join(f"{s.get('entropy', float('nan')):.2f}" for s in summaries)
            logger.info("search iteration %d/%d: %d architectures scored, best feasible AUC %.4f, "
                        "policy entropy [%s]", iteration, cfg.iterations, len(history), best, ent)
        tracker.log_metrics({"best_feasible_auc": best, "scored": float(len(history))}, step=iteration)

    try:
        tracker.log_params({"stage": "search", "data": str(data), "supernet": str(supernet), "budget": budget,
                            **cfgmod.flatten(cfgmod.to_dict(cfg))})
        state = run_search(data=data, supernet=supernet, out=out, budget_spec=budget, config=cfg,
                           resume=resume, fault=fault, on_iteration=progress)
        space, limit = state["space"], state["budget"]
        chosen = select(space, ((r["arch"], r["quality"]) for r in state["history"]), limit)
        provenance = {
            "data": str(data), "supernet": str(supernet), "budget_spec": budget,
            "search": cfgmod.to_dict(cfg), "evaluations": len(state["cache"]),
            "proposals": len(state["history"]), "seconds": round(time.perf_counter() - t0, 1),
            "quality": chosen.quality, "repaired": chosen.repaired,
            "policy_argmax": [s.get("argmax") for s in state["summaries"]],
        }
        doc = write_sizes_json(out / "sizes.json", space, chosen.arch, budget=limit, provenance=provenance,
                               d_base=cfg.d_base)
        write_json(out / "history.json", state["history"])
        _search_front(out, cfg, state["history"], space, state["context"])
        tracker.log_metrics({"selected_quality": chosen.quality or float("nan"), "selected_cost": float(chosen.cost),
                             "budget": float(limit), "evaluations": float(len(state["cache"]))})
        tracker.log_artifact(out / "sizes.json")
        for name in ("history.json", "pareto.csv", "pareto.png"):
            tracker.log_artifact(out / name)
    except BaseException:
        tracker.close(status="FAILED")
        raise
    tracker.close()
    return {"sizes": doc, "selection": chosen, "history": state["history"]}


def _search_front(out: Path, cfg: Any, history: list[dict[str, Any]], space: Any, ctx: dict[str, Any]) -> None:
    """``pareto.csv`` / ``pareto.png`` of a search: every distinct architecture it scored (embedding
    params against supernet AUC), the front, and the uniform architectures on the same supernet."""
    from adass_ray.distributed.sweep import uniform_points
    from adass_ray.pareto import ParetoPoint, pareto_front, write_pareto_csv
    from adass_ray.plots import pareto_png

    seen: dict[tuple[int, ...], dict[str, Any]] = {}
    for r in history:
        seen.setdefault(tuple(r["arch"]), {"cost": r["cost"], "quality": r["quality"],
                                            "lam": cfg.lam_of(r["controller"]), "feasible": r["feasible"]})
    records = list(seen.values())
    points = [ParetoPoint(params=int(r["cost"]), auc=float(r["quality"]), key=",".join(map(str, space.sizes(a))),
                          payload={"lam": r["lam"], "feasible": r["feasible"]}) for a, r in seen.items()]
    front = pareto_front(points)
    write_pareto_csv(out / "pareto.csv", points, front)
    keys = {id(p) for p in front}
    front_records = sorted((r for r, p in zip(records, points, strict=True) if id(p) in keys), key=lambda r: r["cost"])
    baselines = uniform_points(ctx)
    pareto_png(out / "pareto.png", trials=records, front=front_records, baselines=baselines, point_label="scored",
               title=f"search: {len(records)} architectures scored, {len(front)} on the front")


def stability(
    *,
    data: Path,
    supernet: Path,
    out: Path,
    budget: str,
    cfg: Any,
    repeats: int = 3,
    tracking: TrackingOptions = TrackingOptions(),
    verbose: bool = False,
) -> dict[str, Any]:
    """The same search repeated with ``repeats`` seeds; agreement of the selected sizes.

    Writes ``stability.json`` (DESIGN.md §3: per-field exact agreement, mean |log2 α − log2 α'|,
    Kendall τ of the size vectors, over all pairs of repeats) and one search folder per seed.
    """
    from dataclasses import replace

    from adass_ray.artifacts import write_json
    from adass_ray.metrics import stability as stability_of

    if repeats < 2:
        raise ConfigError(f"--repeats must be >= 2 to compare searches, got {repeats}")
    fm = FeatureMap.load(data)
    runs = []
    for r in range(repeats):
        seed_out = out / f"seed-{r}"
        run_cfg = replace(cfg, seed=cfg.seed + 1000 * r)
        if (seed_out / "sizes.json").is_file():
            sizes_doc = json.loads((seed_out / "sizes.json").read_text())
            runs.append(tuple(sizes_doc["fields"][n]["size"] for n in fm.field_names))
            continue
        res = search(data=data, supernet=supernet, out=seed_out, budget=budget, cfg=run_cfg,
                     resume=(seed_out / "search_state.pt").exists(), tracking=tracking, verbose=verbose)
        runs.append(tuple(res["selection"].sizes))
    smallest = min(s for s in fm.candidate_sizes if s > 0)  # a dropped field counts one step below
    report: dict[str, Any] = dict(stability_of(runs, min_size=smallest))
    report.update({"fields": list(fm.field_names), "sizes": [list(r) for r in runs], "budget": budget})
    write_json(out / "stability.json", report)
    return report


SWEEP_RUN_FILE = "sweep_run.json"


def sweep(
    *,
    data: Path,
    supernet: Path,
    out: Path,
    lams: tuple[float, ...],
    budgets: tuple[str, ...],
    cfg: Any,
    resume: bool = False,
    tracking: TrackingOptions = TrackingOptions(),
    verbose: bool = False,
    retrain_best: int = 0,
    train_cfg: TrainConfig | None = None,
    cpus_per_trial: float = 1.0,
    fault: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Ray Tune over λ × budget against one supernet; the Pareto front as CSV, PNG and MLflow.

    Writes into ``out``: ``pareto.csv`` (every trial: embedding params, supernet validation AUC,
    ``on_front``, λ, budget, sizes), ``pareto.png`` (trials, the front, the uniform baselines),
    ``sweep.json`` (trials, front, baselines, winner) and, with ``retrain_best`` seeds, the
    winner's ``best/sizes.json`` and its retrained models in ``best/``. The winner is the trial
    with the highest supernet AUC (ties: fewer parameters): the top of the front.
    """
    import math

    from adass_ray.artifacts import write_json
    from adass_ray.distributed.runtime import ensure_ray
    from adass_ray.distributed.search import search_context
    from adass_ray.distributed.sweep import run_tune, uniform_points
    from adass_ray.pareto import ParetoPoint, pareto_front, write_pareto_csv
    from adass_ray.plots import pareto_png
    from adass_ray.search.export import write_sizes_json

    if not lams or not budgets:
        raise ConfigError("a sweep needs at least one λ (--lams) and one budget (--budgets)")
    if any(lam < 0 for lam in lams):
        raise ConfigError(f"--lams must be >= 0, got {list(lams)}")
    ensure_ray(num_cpus=os.cpu_count() or 1, verbose=verbose)
    ctx = search_context(data, supernet, cfg)
    fm, space = ctx["fm"], ctx["space"]
    tune_dir = out / "tune"
    if tune_dir.exists() and not resume:
        raise AdassError(f"{out} already holds a sweep; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / SWEEP_RUN_FILE
    meta = json.loads(meta_path.read_text()) if resume and meta_path.is_file() else {}
    if meta.get("parent_run_id") and tracking.enabled:
        from adass_ray.tracking import MlflowTracker

        parent: Any = MlflowTracker.attach(tracking_uri=meta.get("tracking_uri") or tracking.uri,
                                           run_id=meta["parent_run_id"], fallback_dir=out, owns_run=True)
    else:
        parent = tracking.start(run_name=f"sweep-{out.name}", default_experiment=fm.name, fallback_dir=out)
        parent.log_params({"stage": "sweep", "data": str(data), "supernet": str(supernet), "lams": list(lams),
                           "budgets": list(budgets), **cfgmod.flatten(cfgmod.to_dict(cfg))})
    write_json(meta_path, {"parent_run_id": parent.run_id, "tracking_uri": getattr(parent, "tracking_uri", None)})
    trial_tracking = None
    if parent.run_id:
        trial_tracking = {"uri": parent.tracking_uri, "parent": parent.run_id,
                          "experiment": tracking.experiment or fm.name}
    try:
        baselines = uniform_points(ctx)
        records = run_tune(ctx=ctx, out=out, lams=lams, budgets=budgets, cfg=cfg, resume=resume,
                           tracking=trial_tracking, cpus_per_trial=cpus_per_trial, verbose=verbose,
                           fault=fault)
        scored = [r for r in records if not math.isnan(r["quality"])]
        points = [ParetoPoint(params=int(r["cost"]), auc=float(r["quality"]), key=r["key"],
                              payload={"lam": r["lam"], "budget": r["budget"], "budget_params": r["budget_params"],
                                       "repaired": bool(r["repaired"]), "sizes": r["sizes"]})
                  for r in scored]
        front = pareto_front(points)
        write_pareto_csv(out / "pareto.csv", points, front)
        front_keys = [p.key for p in front]
        front_records = [next(r for r in scored if r["key"] == k) for k in front_keys]
        pareto_png(out / "pareto.png", trials=scored, front=front_records, baselines=baselines,
                   title=f"{fm.name}: {len(scored)} sweep trials, {len(front)} on the front")
        winner = max(scored, key=lambda r: (r["quality"], -r["cost"]))
        summary: dict[str, Any] = {"trials": records, "front": front_keys, "uniform": baselines,
                                   "winner": winner["key"], "supernet": str(supernet), "data": str(data)}
        if retrain_best:
            best = out / "best"
            sizes = tuple(winner["sizes"][n] for n in fm.field_names)
            write_sizes_json(best / "sizes.json", space, space.arch_of(sizes), budget=int(winner["budget_params"]),
                             provenance={"sweep": str(out), "trial": winner["key"], "quality": winner["quality"]},
                             d_base=cfg.d_base)
            child = TrackingOptions(enabled=parent.run_id is not None, uri=tracking.uri,
                                    experiment=tracking.experiment or fm.name, parent_run_id=parent.run_id)
            summary["winner_retrained"] = retrain(
                data=data, out=best, cfg=train_cfg or TrainConfig(), sizes_file=str(best / "sizes.json"),
                seeds=retrain_best, tracking=child, verbose=verbose)
        write_json(out / "sweep.json", summary)
        parent.log_metrics({"trials": float(len(records)), "front_size": float(len(front)),
                            "best_quality": float(winner["quality"]), "best_cost": float(winner["cost"])})
        for name in ("pareto.csv", "pareto.png", "sweep.json"):
            parent.log_artifact(out / name)
    except BaseException:
        parent.close(status="FAILED")
        raise
    parent.close()
    return summary
