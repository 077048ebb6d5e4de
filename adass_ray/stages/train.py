"""Stage recipes that train: ``train-supernet`` / ``train`` (one model) and ``retrain`` (seeds).

Each recipe checks its input on the driver, starts or joins Ray, opens its MLflow run as a
context manager (FAILED if anything raises) and leaves its outputs in one folder.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from adass_ray import configio, record
from adass_ray.data.feature_map import FEATURE_MAP_FILE, FeatureMap
from adass_ray.data.io import write_json
from adass_ray.errors import ConfigError
from adass_ray.search.export import read_sizes
from adass_ray.tracking import TrackingSpec
from adass_ray.train.config import TrainConfig, train_record, validate
from adass_ray.train.memory import MemoryPlan, available_per_worker, check_fits, plan_memory

logger = logging.getLogger(__name__)


def fixed_sizes(
    fm: FeatureMap, cfg: TrainConfig, *, sizes_file: str | None = None, uniform: int | None = None
) -> tuple[int, ...]:
    """A fixed model's sizes: from ``sizes_file``, else ``uniform`` (default ``model.d``).

    Raises:
        ConfigError: an unreadable or mismatched sizes file, ``uniform < 1``, a size above
            ``model.d`` (the model's width: no table may be wider) or every field dropped.
    """
    if sizes_file:
        sizes = read_sizes(sizes_file, fm)
        where = str(sizes_file)
    else:
        if uniform is not None and uniform < 1:
            raise ConfigError(f"--uniform must be >= 1, got {uniform}")
        sizes, where = (cfg.model.d if uniform is None else uniform,) * fm.num_fields, "--uniform"
    d = cfg.model.d
    wide = {n: s for n, s in zip(fm.field_names, sizes, strict=True) if s > d}
    if wide:
        name, size = next(iter(wide.items()))
        raise ConfigError(
            f"{where}: size {size:,} for field {name!r} is above the model width model.d={d} "
            f"({len(wide)} field(s) over); sizes must be 0..{d}, or raise model.d"
        )
    if not any(sizes):
        raise ConfigError(f"{where}: every field has size 0 (all dropped); the model would "
                          "have no embeddings")
    return sizes


def memory_plan(
    *, data: Path, cfg: TrainConfig, kind: str, sizes_file: str | None = None,
    uniform: int | None = None,
) -> MemoryPlan:
    """What one worker of this run will hold (``--dry-run``), after the driver-side checks."""
    fm = FeatureMap.load(data)
    validate(fm, cfg, kind)
    sizes = None
    if kind == "fixed":
        sizes = fixed_sizes(fm, cfg, sizes_file=sizes_file, uniform=uniform)
    return plan_memory(fm, cfg, kind, sizes)


def train(
    *,
    data: Path,
    out: Path,
    cfg: TrainConfig,
    kind: str,
    sizes_file: str | None = None,
    uniform: int | None = None,
    resume: bool = False,
    tracking: TrackingSpec = TrackingSpec(),
    verbose: bool = False,
    sizes: tuple[int, ...] | None = None,
    init_from: Path | None = None,
) -> Any:
    """Train a supernet (``kind="supernet"``) or a fixed-size model (``kind="fixed"``).

    ``sizes`` (or ``sizes_file``, or ``uniform``) fix a fixed model's architecture;
    ``init_from`` names a supernet folder whose weights the fixed model inherits.
    """
    from adass_ray.distributed.runtime import ensure_ray
    from adass_ray.distributed.train import check_run_folder, fit

    fm = FeatureMap.load(data)
    validate(fm, cfg, kind)
    if kind == "fixed" and sizes is None:
        sizes = fixed_sizes(fm, cfg, sizes_file=sizes_file, uniform=uniform)
    plan = plan_memory(fm, cfg, kind, sizes)
    logger.info("%s", plan.summary())
    check_fits(plan, available_per_worker(cfg))  # before Ray or any worker starts
    init_digest = _init_digest(init_from)
    # refused before Ray starts and before an MLflow run is opened (fit checks again)
    check_run_folder(out, train_record(fm, cfg, kind, sizes, init_digest), resume)
    out.mkdir(parents=True, exist_ok=True)
    ensure_ray(num_cpus=os.cpu_count() or 1, verbose=verbose)
    # a retrain seed is named with its folder: "fixed-retrain-searched-seed-0", not "fixed-seed-0"
    # twice (searched and uniform) in the same MLflow run list
    name = f"{out.parent.name}-{out.name}" if out.name.startswith("seed-") else out.name
    with tracking.start(
        run_name=f"{kind}-{name}", default_experiment=fm.name, fallback_dir=out
    ) as tracker:
        tracker.log_params(
            {
                "stage": kind,
                "data": str(data),
                "sizes": list(sizes) if sizes else None,
                **configio.flatten(configio.to_dict(cfg)),
            }
        )
        extra = None
        if init_from:
            extra = {
                "init_state": str(_inherited_state(init_from, fm, sizes, out)),
                "init_digest": init_digest,
            }
        result = fit(
            data=data,
            out=out,
            cfg=cfg,
            kind=kind,
            sizes=sizes,
            tracking=tracking.into(tracker),
            resume=resume,
            extra_config=extra,
        )
        tracker.log_metrics(dict(result.metrics))
        for name in ("model.pt", "history.json", "metrics.json"):
            tracker.log_artifact(out / name)
        tracker.log_artifact(data / FEATURE_MAP_FILE)
        if kind == "fixed":
            log_model_folder(tracker, out / "model.pt", data / FEATURE_MAP_FILE)
    return result


def log_model_folder(tracker: Any, model_file: Path, feature_map_file: Path) -> None:
    """Log a retrained model as the run's ``model/`` artifact folder, without pickle.

    ``model/`` holds ``model.pt`` (tensors and plain data only), ``feature_map.json`` and
    ``model.json`` (kind, sizes, model config, readable); rebuild the model with
    :func:`adass_ray.model.checkpoint.load_model_folder` on the downloaded folder.
    """
    from adass_ray.model.checkpoint import describe_model

    tracker.log_artifact(model_file, artifact_path="model")
    tracker.log_artifact(feature_map_file, artifact_path="model")
    tracker.log_dict(describe_model(model_file), "model/model.json")


def _init_digest(init_from: Path | None) -> str | None:
    """The identity of the supernet a model inherits from (part of its run record)."""
    from adass_ray.model.checkpoint import MODEL_FILE

    if init_from is None:
        return None
    path = init_from / MODEL_FILE if init_from.is_dir() else init_from
    if not path.is_file():
        raise ConfigError(f"--inherit {init_from}: no {MODEL_FILE} there; give the "
                          "train-supernet output folder")
    return record.file_digest(path)


def _inherited_state(
    supernet_dir: Path, fm: FeatureMap, sizes: tuple[int, ...] | None, out: Path
) -> Path:
    """Stand-alone weights cut from a trained supernet for ``sizes`` (saved for the workers)."""
    import torch

    from adass_ray.model.checkpoint import load_model
    from adass_ray.model.standalone import StandaloneModel
    from adass_ray.model.supernet import Supernet

    net, _ = load_model(supernet_dir, fm)
    if not isinstance(net, Supernet) or sizes is None:
        raise ConfigError(
            f"{supernet_dir} does not hold a supernet; give the train-supernet output folder"
        )
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
    tracking: TrackingSpec = TrackingSpec(),
    verbose: bool = False,
) -> dict[str, Any]:
    """Train the stand-alone model with fixed sizes once per seed; writes ``summary.json``.

    Each seed's run lives in ``out/seed-<s>``; a finished seed is reused on a re-run only when
    its ``run.json`` says it was made with these data, sizes, config and seed.
    Returns the summary: per-seed test AUC / logloss and their mean and standard deviation.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    fm = FeatureMap.load(data)
    sizes = fixed_sizes(fm, cfg, sizes_file=sizes_file, uniform=uniform)
    runs: list[dict[str, float]] = []
    init_digest = _init_digest(init_from)
    for s in range(seeds):
        seed_out = out / f"seed-{s}"
        seed_cfg = replace(cfg, seed=cfg.seed + s)
        if (seed_out / "metrics.json").is_file():
            want = train_record(fm, seed_cfg, "fixed", sizes, init_digest)
            record.check(seed_out, want, action="reuse")
            if (record.read(seed_out) or {}).get("status") == "done":
                runs.append(json.loads((seed_out / "metrics.json").read_text()))
                continue
        res = train(
            data=data,
            out=seed_out,
            cfg=seed_cfg,
            kind="fixed",
            sizes=sizes,
            resume=(seed_out / ".ray").exists(),
            tracking=tracking,
            verbose=verbose,
            init_from=init_from,
        )
        runs.append(res.metrics)
    summary: dict[str, Any] = {
        "sizes": dict(zip(fm.field_names, sizes, strict=True)),
        "embedding_params": sum(v * a for v, a in zip(fm.vocab_sizes, sizes, strict=True)),
        "seeds": [cfg.seed + s for s in range(seeds)],
        "inherited_from": str(init_from) if init_from else None,
    }
    for key in ("test_auc", "test_logloss", "best_val_auc"):
        if not all(key in r for r in runs):
            continue  # best_val_auc: absent from runs written before it was recorded
        values = [r[key] for r in runs]
        summary[key] = values
        summary[f"{key}_mean"] = statistics.fmean(values)
        summary[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    write_json(out / "summary.json", summary)
    return summary
