"""The whole pipeline on one config: prepare → supernet → search → retrain the searched sizes and
the uniform baseline → report.

``adass-ray run`` calls :func:`run`. Each stage writes into its own folder under ``out`` and is
skipped when its output already exists, so a re-run continues where the last one stopped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from adass_ray import configio, record
from adass_ray.data.feature_map import FEATURE_MAP_FILE, FeatureMap
from adass_ray.data.io import write_json
from adass_ray.data.prepare import PrepareConfig, prepare
from adass_ray.errors import AdassError
from adass_ray.model.checkpoint import MODEL_FILE
from adass_ray.search.agent import SearchConfig
from adass_ray.stages.search import search, search_record
from adass_ray.stages.train import retrain, train
from adass_ray.tracking import TrackingSpec
from adass_ray.train.config import TrainConfig, train_record

logger = logging.getLogger(__name__)
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@dataclass
class PipelineResult:
    """Where a pipeline run put its outputs, and the headline metrics of each stage."""

    out: Path
    data: Path
    feature_map: FeatureMap
    stages: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def prepare_source(source: str, out: Path, *, seed: int = 0, rows: int = 100_000) -> FeatureMap:
    """Prepare a built-in source into ``out`` unless a prepared dataset is already there."""
    if (out / FEATURE_MAP_FILE).is_file():
        logger.info("reusing prepared data in %s", out)
        return FeatureMap.load(out)
    if source == "synthetic":
        from adass_ray.data import synthetic

        return synthetic.generate_dataset(
            synthetic.SyntheticSpec.preset("tiny", rows=rows, seed=seed), out
        )
    from adass_ray.data import sources

    if source not in sources.BUILTIN_SOURCES:
        names = ", ".join([*sources.BUILTIN_SOURCES, "synthetic"])
        raise AdassError(f"unknown source {source!r}; choose one of {names}")
    return prepare(sources.BUILTIN_SOURCES[source](), out, PrepareConfig(seed=seed))


def default_config(source: str) -> Path | None:
    """The shipped config for a built-in source, if there is one."""
    path = CONFIGS / f"{source}.yaml"
    return path if path.is_file() else None


def run(
    *,
    source: str = "movielens-100k",
    out: str | Path = "runs/demo",
    seed: int = 0,
    config: str | Path | None = None,
    overrides: tuple[str, ...] = (),
    search_overrides: tuple[str, ...] = (),
    budget: str = "0.8",
    seeds: int = 3,
    tracking: TrackingSpec = TrackingSpec(),
    verbose: bool = False,
    rows: int = 100_000,
) -> PipelineResult:
    """prepare → supernet → search (budget) → retrain the searched sizes and the uniform baseline
    (same config, ``seeds`` seeds each) → ``report.json``; outputs under ``out``.

    Every stage is skipped when its output exists and its ``run.json`` matches what this run
    would do (a mismatch is refused, naming it), so a re-run continues a stopped pipeline. With
    tracking on, a parent MLflow run holds the comparison and each stage is a child run.
    """
    out = Path(out)
    data = out / "data"
    cfg = configio.load(TrainConfig, config or default_config(source), [f"seed={seed}", *overrides])
    search_cfg = configio.load(SearchConfig, None, [f"seed={seed}", *search_overrides])
    # the data stage's record: a re-run with another source, seed or size must not reuse it
    data_record = record.make("pipeline-data", source=source, seed=seed, rows=rows)
    if (data / FEATURE_MAP_FILE).is_file():
        record.check(out, data_record, action="reuse the prepared data in")
    fm = prepare_source(source, data, seed=seed, rows=rows)
    record.write(out, data_record)
    result = PipelineResult(out=out, data=data, feature_map=fm, stages={"data": data})
    with tracking.start(
        run_name=f"pipeline-{out.name}", default_experiment=fm.name, fallback_dir=out
    ) as parent:
        child = tracking.children_of(parent, experiment=fm.name)
        parent.log_params(
            {
                "source": source,
                "budget": budget,
                "seeds": seeds,
                **configio.flatten(
                    {"train": configio.to_dict(cfg), "search": configio.to_dict(search_cfg)}
                ),
            }
        )
        sn = out / "supernet"
        if (sn / MODEL_FILE).is_file() and (sn / "metrics.json").is_file():
            record.check(sn, train_record(fm, cfg, "supernet", None), action="reuse")
            logger.info("stage supernet: reusing %s", sn)
            result.metrics["supernet"] = json.loads((sn / "metrics.json").read_text())
        else:
            logger.info("stage supernet: training into %s", sn)
            res = train(
                data=data,
                out=sn,
                cfg=cfg,
                kind="supernet",
                resume=(sn / ".ray").exists(),
                tracking=child,
                verbose=verbose,
            )
            result.metrics["supernet"] = res.metrics
        result.stages["supernet"] = sn
        found = out / "search"
        if (found / "sizes.json").is_file():
            record.check(
                found, search_record(fm, sn, budget, search_cfg), action="reuse"
            )
            logger.info("stage search: reusing %s", found)
        else:
            logger.info("stage search: %d controllers, budget %s", search_cfg.controllers, budget)
            search(
                data=data,
                supernet=sn,
                out=found,
                budget=budget,
                cfg=search_cfg,
                resume=(found / "search_state.pt").exists(),
                tracking=child,
                verbose=verbose,
            )
        result.stages["search"] = found
        sizes_doc = json.loads((found / "sizes.json").read_text())
        summaries = {}
        for name, kw in (
            ("searched", {"sizes_file": str(found / "sizes.json")}),
            ("uniform", {"uniform": search_cfg.d_base}),
        ):
            logger.info("stage retrain (%s sizes): %d seeds", name, seeds)
            summaries[name] = retrain(
                data=data,
                out=out / f"retrain-{name}",
                cfg=cfg,
                seeds=seeds,
                tracking=child,
                verbose=verbose,
                **kw,
            )
            result.stages[f"retrain-{name}"] = out / f"retrain-{name}"
        report = {
            "budget": sizes_doc["budget"],
            "uniform_cost": sizes_doc["uniform_baseline"]["cost"],
            "searched_cost": sizes_doc["cost"],
            "sizes": {k: v["size"] for k, v in sizes_doc["fields"].items()},
            **{
                f"{n}_{k}": v
                for n, sm in summaries.items()
                for k, v in sm.items()
                if k.startswith("test_") or k == "embedding_params"
            },
        }
        write_json(out / "report.json", report)
        parent.log_metrics({k: float(v) for k, v in report.items() if isinstance(v, int | float)})
        for path in (
            out / "report.json",
            found / "sizes.json",
            found / "history.json",
            found / "pareto.csv",
            found / "pareto.png",
            data / FEATURE_MAP_FILE,
        ):
            parent.log_artifact(path)
        result.metrics["report"] = report
    return result
