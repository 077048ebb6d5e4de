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
) -> Any:
    """Train a supernet (``kind="supernet"``) or a fixed-size model (``kind="fixed"``)."""
    from adass_ray.distributed.runtime import ensure_ray
    from adass_ray.distributed.train import fit
    from adass_ray.training import validate

    fm = FeatureMap.load(data)
    validate(fm, cfg, kind)
    sizes: tuple[int, ...] | None = None
    if kind == "fixed":
        sizes = read_sizes(sizes_file, fm) if sizes_file else (uniform or cfg.model.d,) * fm.num_fields
        if uniform is not None and uniform < 1:
            raise ConfigError(f"--uniform must be >= 1, got {uniform}")
    if out.exists() and (out / ".ray").exists() and not resume:
        raise AdassError(f"{out} already holds a training run; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    ensure_ray(num_cpus=_local_cpus(cfg), verbose=verbose)
    tracker = tracking.start(run_name=f"{kind}-{out.name}", default_experiment=fm.name, fallback_dir=out)
    try:
        tracker.log_params({"stage": kind, "data": str(data), "sizes": list(sizes) if sizes else None,
                            **cfgmod.flatten(cfgmod.to_dict(cfg))})
        spec = {"uri": getattr(tracker, "tracking_uri", None), "run_id": tracker.run_id}
        result = fit(data=data, out=out, cfg=cfg, kind=kind, sizes=sizes, tracking=spec, resume=resume)
        tracker.log_metrics({k: v for k, v in result.metrics.items()})
        for name in ("model.pt", "history.json", "metrics.json"):
            tracker.log_artifact(out / name)
        tracker.log_artifact(data / FEATURE_MAP_FILE)
    except BaseException:
        tracker.close(status="FAILED")
        raise
    tracker.close()
    return result


def _local_cpus(cfg: TrainConfig) -> int:
    """CPUs for a local Ray instance: the machine's (a config that needs more is refused)."""
    return os.cpu_count() or 1
