"""The whole pipeline on one config: prepare → (later stages as they land) → report.

``adass-ray run`` calls :func:`run`. Each stage writes into its own folder under ``out`` and is
skipped when its output already exists (so a re-run continues where it stopped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from adass_ray.data.feature_map import FEATURE_MAP_FILE, FeatureMap
from adass_ray.data.prepare import PrepareConfig, prepare
from adass_ray.errors import AdassError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineResult:
    """Where a pipeline run put its outputs."""

    out: Path
    data: Path
    feature_map: FeatureMap


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


def run(*, source: str = "movielens-100k", out: str | Path = "runs/demo", seed: int = 0) -> PipelineResult:
    """Run every stage that exists on ``source``; outputs under ``out``."""
    out = Path(out)
    data = out / "data"
    fmap = prepare_source(source, data, seed=seed)
    return PipelineResult(out=out, data=data, feature_map=fmap)
