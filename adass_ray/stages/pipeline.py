"""The whole pipeline on one config: prepare → supernet → search → retrain the searched sizes and
the uniform baseline → the linear floor → report.

``adass-ray run`` calls :func:`run`. Each stage writes into its own folder under ``out`` and is
skipped when its output already exists, so a re-run continues where the last one stopped. The
data come from a built-in source, a prepared folder, or a raw file (:class:`DataInput`); a CSV or
parquet file without a schema gets an inferred one, written as ``out/schema.yaml``.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from adass_ray import configio, record
from adass_ray.data.feature_map import FEATURE_MAP_FILE, FeatureMap
from adass_ray.data.io import write_json
from adass_ray.data.prepare import PrepareConfig, prepare
from adass_ray.errors import AdassError, ConfigError
from adass_ray.model.checkpoint import MODEL_FILE
from adass_ray.search.agent import SearchConfig
from adass_ray.stages.search import search, search_record
from adass_ray.stages.train import retrain, train
from adass_ray.tracking import TrackingSpec
from adass_ray.train.config import TrainConfig, train_record
from adass_ray.train.floor import floor_config, floor_warning

logger = logging.getLogger(__name__)
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SCHEMA_FILE = "schema.yaml"


@dataclass
class PipelineResult:
    """Where a pipeline run put its outputs, and the headline metrics of each stage."""

    out: Path
    data: Path
    feature_map: FeatureMap
    stages: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    schema: Path | None = None


@dataclass(frozen=True)
class DataInput:
    """Where the pipeline's data come from: exactly one of ``source`` (built-in), ``data`` (a
    prepared folder) or ``input`` (a raw file in ``fmt``, with an optional ``schema`` file or,
    for csv / parquet, an optional ``label`` column for the inferred schema)."""

    source: str | None = None
    data: Path | None = None
    input: Path | None = None
    fmt: str | None = None
    schema: Path | None = None
    label: str | None = None

    def check(self) -> None:
        """Reject contradictory combinations with one actionable line.

        Raises:
            ConfigError: more or fewer than one data origin, or options that do not apply.
        """
        given = [n for n, v in (("--source", self.source), ("--data", self.data),
                                ("--input", self.input)) if v]
        if len(given) != 1:
            raise ConfigError(
                f"give exactly one of --source NAME, --data DIR or --input FILE "
                f"(got {', '.join(given) or 'none'})"
            )
        extra = [n for n, v in (("--format", self.fmt), ("--schema", self.schema),
                                ("--label", self.label)) if v]
        if not self.input and extra:
            raise ConfigError(f"{', '.join(extra)} only go with --input FILE")
        fmt = self.format_of()
        if fmt in ("criteo", "avazu") and (self.schema or self.label):
            raise ConfigError(f"--format {fmt} has a fixed schema; drop --schema / --label")
        if self.schema and self.label:
            raise ConfigError("--label names the label of an inferred schema; with --schema, "
                              "set 'label:' in the schema file instead")

    def format_of(self) -> str | None:
        """``fmt``, else guessed from the input's suffix (.csv/.tsv/.txt, .parquet)."""
        if self.fmt or not self.input:
            return self.fmt
        suffix = self.input.suffix.lower()
        if suffix in (".csv", ".tsv", ".txt"):
            return "csv"
        if suffix == ".parquet" or self.input.is_dir():
            return "parquet"
        raise ConfigError(
            f"cannot tell the format of {self.input}; add --format csv|parquet|criteo|avazu"
        )


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


def prepare_input(
    inp: DataInput, out: Path, *, seed: int = 0, rows: int = 100_000
) -> tuple[Path, FeatureMap, Path | None]:
    """The prepared data of ``inp`` under ``out`` (reused when there): ``(folder, feature map,
    inferred schema file or None)``.

    Raises:
        ConfigError: a bad combination (see :meth:`DataInput.check`) or an uninferable schema.
        DataError: an unreadable input.
    """
    inp.check()
    if inp.data:
        if not (inp.data / FEATURE_MAP_FILE).is_file():
            raise ConfigError(f"--data {inp.data} is not a prepared dataset (no "
                              f"{FEATURE_MAP_FILE}); prepare it, or pass the raw file as --input")
        return inp.data, FeatureMap.load(inp.data), None
    data = out / "data"
    if inp.source:
        return data, prepare_source(inp.source, data, seed=seed, rows=rows), None
    assert inp.input is not None
    from adass_ray.data import readers
    from adass_ray.data.schema import Schema

    fmt = inp.format_of() or ""
    written = None
    if (data / FEATURE_MAP_FILE).is_file():
        logger.info("reusing prepared data in %s", data)
        kept = out / SCHEMA_FILE
        return data, FeatureMap.load(data), kept if kept.is_file() and not inp.schema else None
    schema = Schema.load(inp.schema) if inp.schema else None
    if schema is None and fmt in ("csv", "parquet"):
        from adass_ray.data.infer import infer_schema, schema_yaml

        schema, notes = infer_schema(inp.input, fmt, label=inp.label)
        written = out / SCHEMA_FILE
        out.mkdir(parents=True, exist_ok=True)
        written.write_text(schema_yaml(schema, notes, source=inp.input.name))
        logger.info("inferred a schema for %s (label %r, %d categorical, %d numeric): %s; edit "
                    "it and pass --schema to change it", inp.input, schema.label,
                    len(schema.categorical), len(schema.numeric), written)
    raw = readers.open_input(inp.input, fmt, schema)  # text formats stream, as in `prepare`
    return data, prepare(raw, data, PrepareConfig(seed=seed)), written


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
    data_input: DataInput | None = None,
) -> PipelineResult:
    """prepare → supernet → search (budget) → retrain the searched sizes and the uniform baseline
    (same config, ``seeds`` seeds each) → the linear floor (same seeds) → ``report.json``;
    outputs under ``out``.

    ``data_input`` (default: the built-in ``source``) says where the data come from. Every stage
    is skipped when its output exists and its ``run.json`` matches what this run would do (a
    mismatch is refused, naming it), so a re-run continues a stopped pipeline. With tracking
    on, a parent MLflow run holds the comparison (the floor's AUCs included) and each stage is a
    child run. ``result.warnings`` says when a retrained model does not beat the floor on
    validation (also logged).
    """
    out = Path(out)
    inp = data_input or DataInput(source=source)
    inp.check()
    # the data stage's record: a re-run with another origin, seed or size must not reuse it
    origin = {"source": inp.source, "data": inp.data, "input": inp.input, "format": inp.fmt,
              "schema": inp.schema, "label": inp.label}
    data_record = record.make("pipeline-data", seed=seed, rows=rows,
                              **{k: str(v) for k, v in origin.items() if v is not None})
    if not inp.data and (out / "data" / FEATURE_MAP_FILE).is_file():
        record.check(out, data_record, action="reuse the prepared data in")
    data, fm, schema_file = prepare_input(inp, out, seed=seed, rows=rows)
    record.write(out, data_record)
    result = PipelineResult(
        out=out, data=data, feature_map=fm, stages={"data": data}, schema=schema_file
    )
    shipped = default_config(inp.source or fm.name) if not inp.input else None
    cfg = configio.load(TrainConfig, config or shipped, [f"seed={seed}", *overrides])
    search_cfg = configio.load(SearchConfig, None, [f"seed={seed}", *search_overrides])
    with tracking.start(
        run_name=f"pipeline-{out.name}", default_experiment=fm.name, fallback_dir=out
    ) as parent:
        child = tracking.children_of(parent, experiment=fm.name)
        parent.log_params(
            {
                "source": inp.source or str(inp.data or inp.input),
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
        result.stages["floor"] = out / "floor"
        floor = train_floor(data, out / "floor", cfg, seeds=seeds)
        for name, sm in summaries.items():
            if "best_val_auc_mean" in sm:
                message = floor_warning(sm["best_val_auc_mean"], floor["val_auc_mean"],
                                        what=f"the {name} model")
                if message:
                    logger.warning(message)
                    result.warnings.append(message)
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
            **{
                f"{n}_{k.removeprefix('best_')}": v
                for n, sm in summaries.items()
                for k, v in sm.items()
                if k.startswith("best_val_auc")
            },
            **{f"floor_{k}": v for k, v in floor.items() if k != "seeds"},
            "warnings": result.warnings,
        }
        write_json(out / "report.json", report)
        if result.warnings:  # visible on the parent run's page, beside the floor's metrics
            parent.set_tags({"floor_warning": " | ".join(result.warnings)})
        parent.log_metrics({k: float(v) for k, v in report.items() if isinstance(v, int | float)})
        for path in (
            out / "report.json",
            found / "sizes.json",
            found / "history.json",
            found / "pareto.csv",
            found / "pareto.png",
            data / FEATURE_MAP_FILE,
            *([schema_file] if schema_file else []),
        ):
            parent.log_artifact(path)
        result.metrics["report"] = report
    return result


def train_floor(data: Path, out: Path, cfg: TrainConfig, *, seeds: int) -> dict[str, Any]:
    """The linear floor on ``data``, once per seed (in this process: it is a small model);
    writes and returns ``out/summary.json`` (validation and test AUC per seed, mean and sd).
    A summary already there is reused."""
    from adass_ray.train.local import train_local

    path = out / "summary.json"
    if path.is_file():
        return dict(json.loads(path.read_text()))
    logger.info("stage floor (one-hot logistic regression): %d seeds", seeds)
    runs = [
        train_local(data, floor_config(replace(cfg, seed=cfg.seed + s)), "linear")[1]
        for s in range(seeds)
    ]
    summary: dict[str, Any] = {"seeds": [cfg.seed + s for s in range(seeds)]}
    for key, src in (("val_auc", "best_val_auc"), ("test_auc", "test_auc"),
                     ("test_logloss", "test_logloss")):
        values = [r[src] for r in runs]
        summary[key] = values
        summary[f"{key}_mean"] = statistics.fmean(values)
        summary[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    write_json(path, summary)
    return summary
