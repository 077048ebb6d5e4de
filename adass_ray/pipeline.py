"""The whole pipeline on one config: prepare → supernet → uniform baseline (→ search, retrain and
report as those stages land).

``adass-ray run`` calls :func:`run`. Each stage writes into its own folder under ``out`` and is
skipped when its output already exists, so a re-run continues where the last one stopped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from adass_ray import config as cfgmod
from adass_ray.artifacts import MODEL_FILE
from adass_ray.data.feature_map import FEATURE_MAP_FILE, FeatureMap
from adass_ray.data.prepare import PrepareConfig, prepare
from adass_ray.errors import AdassError
from adass_ray.training import TrainConfig

logger = logging.getLogger(__name__)
CONFIGS = Path(__file__).resolve().parent.parent / "configs"


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

        return synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=rows, seed=seed), out)
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
    tracking: object | None = None,
    verbose: bool = False,
    rows: int = 100_000,
) -> PipelineResult:
    """Run every stage that exists on ``source``; outputs under ``out``."""
    from adass_ray import stages

    out = Path(out)
    data = out / "data"
    fm = prepare_source(source, data, seed=seed, rows=rows)
    result = PipelineResult(out=out, data=data, feature_map=fm, stages={"data": data})
    cfg_path = config or default_config(source)
    cfg = cfgmod.load(TrainConfig, cfg_path, [f"seed={seed}", *overrides])
    track = tracking if isinstance(tracking, stages.TrackingOptions) else stages.TrackingOptions()
    for name, kind in (("supernet", "supernet"), ("uniform", "fixed")):
        stage_out = out / name
        if (stage_out / MODEL_FILE).is_file():
            logger.info("stage %s: reusing %s", name, stage_out)
            metrics = json.loads((stage_out / "metrics.json").read_text())
        else:
            logger.info("stage %s: training into %s", name, stage_out)
            res = stages.train(data=data, out=stage_out, cfg=cfg, kind=kind, resume=(stage_out / ".ray").exists(),
                               tracking=track, verbose=verbose)
            metrics = res.metrics
        result.stages[name] = stage_out
        result.metrics[name] = metrics
    return result
