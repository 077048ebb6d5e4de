"""Ray Train glue for stage 1 (supernet) and fixed-architecture training.

``train_per_worker`` runs on every worker: it builds the task, slices the data by rank, resumes
from ``ray.train.get_checkpoint()`` when there is one, and hands a :class:`TrainLoop` the
collectives and a checkpoint callback. ``fit`` builds the ``TorchTrainer`` on the driver and
copies the final model out of Ray's storage into the stage's output folder.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adass_ray import configio
from adass_ray import progress as bars
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.io import write_json
from adass_ray.data.loader import ShardLoader
from adass_ray.distributed import faults
from adass_ray.distributed.progress import fit_with_progress, progress_actor, step_reporter
from adass_ray.errors import AdassError
from adass_ray.model.checkpoint import MODEL_FILE, check_fingerprint, load_plain, save_model
from adass_ray.tracking import TrackingSpec
from adass_ray.train.comm import Comm, TorchDistComm
from adass_ray.train.config import TrainConfig
from adass_ray.train.loop import TrainLoop
from adass_ray.train.task import make_task, param_counts, set_threads

logger = logging.getLogger(__name__)
STATE_FILE = "state.pt"


def train_per_worker(config: dict[str, Any]) -> None:
    """The Ray Train worker function (see module docstring); ``config`` is plain data."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    cfg = configio.from_mapping(TrainConfig, config["train"])
    set_threads(cfg.cpus_per_worker)
    data = Path(config["data"])
    fm = FeatureMap.load(data)
    sizes = tuple(config["sizes"]) if config.get("sizes") else None
    task = make_task(fm, cfg, config["kind"], sizes)
    device = ray.train.torch.get_device()
    if config.get("init_state"):  # inherited supernet weights (retrain option)
        task.model.load_state_dict(load_plain(config["init_state"], what="weights file"))
    task.model.to(device)
    loaders = _loaders(data, fm, cfg, rank, world)
    spec = config.get("tracking")
    tracker = (
        spec.attach() if rank == 0 and spec is not None else TrackingSpec(enabled=False).attach()
    )
    progress = config.get("progress") if rank == 0 else None

    on_step = None
    if progress is not None and config.get("progress_steps"):
        on_step = step_reporter(progress, per_rank_rows=loaders["train"].num_rows, world=world,
                                 batch=loaders["train"].batch_size, epochs=cfg.epochs)

    def on_metrics(metrics: dict[str, float], step: int) -> None:
        tracker.log_metrics(metrics, step=step)
        if progress is not None:
            if on_step is not None:
                progress.at.remote(None)  # the epoch is over: its bar gives way to its line
            progress.put.remote(
                f"{config['kind']} epoch {int(metrics['epoch']) + 1}/{cfg.epochs}: "
                f"train_loss {metrics['train_loss']:.4f}  val_auc {metrics['val_auc']:.4f}  "
                f"({metrics['epoch_seconds']:.1f} s)"
            )

    def on_checkpoint(state: dict[str, Any], metrics: dict[str, float]) -> None:
        faults.train_step(config.get("fault"), step=loop.state.global_step, rank=rank)
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                torch.save(state, Path(tmp) / STATE_FILE)
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint)

    loop = TrainLoop(
        task=task,
        config=cfg,
        train=loaders["train"],
        valid=loaders["valid"],
        comm=TorchDistComm() if world > 1 else Comm(),
        device=device,
        on_checkpoint=on_checkpoint,
        on_metrics=on_metrics,
        on_step=on_step,
    )
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            loop.load_state_dict(
                load_plain(Path(d) / STATE_FILE, what="training checkpoint", map_location=device)
            )
        logger.info(
            "rank %d resumed at epoch %d step %d", rank, loop.state.epoch, loop.state.global_step
        )
        if progress is not None:
            progress.put.remote(f"resumed from the checkpoint at step {loop.state.global_step}")
    loop.run()
    final = {**loop.evaluate(loaders["test"], "test"), **param_counts(task)}
    final.update(
        {f"best_{k}": v for k, v in loop.state.history[loop.state.best_epoch].items()}
        if loop.state.best_epoch >= 0
        else {}
    )
    tracker.log_metrics({k: v for k, v in final.items() if isinstance(v, float | int)})
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            extra = task.extra_state()
            save_model(
                Path(tmp) / MODEL_FILE,
                kind=config["kind"],
                model=task.model,
                model_config=cfg.model,
                fm=fm,
                sizes=sizes,
                extra=extra,
            )
            write_json(Path(tmp) / "history.json", loop.state.history)
            torch.save(loop.state_dict(), Path(tmp) / STATE_FILE)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report({**final, "done": 1.0}, checkpoint=checkpoint)


def _loaders(
    data: Path, fm: FeatureMap, cfg: TrainConfig, rank: int, world: int
) -> dict[str, ShardLoader]:
    eval_rows = cfg.eval_rows or cfg.max_rows
    return {
        # batch_size is the global batch: each of the world workers takes its share
        "train": ShardLoader(
            data,
            fm,
            split="train",
            batch_size=max(1, cfg.batch_size // world),
            seed=cfg.seed,
            max_rows=cfg.max_rows,
            drop_last=False,
            rank=rank,
            world_size=world,
        ),
        "valid": ShardLoader(
            data,
            fm,
            split="valid",
            batch_size=16384,
            shuffle=False,
            max_rows=eval_rows,
            rank=rank,
            world_size=world,
        ),
        "test": ShardLoader(
            data,
            fm,
            split="test",
            batch_size=16384,
            shuffle=False,
            max_rows=eval_rows,
            rank=rank,
            world_size=world,
        ),
    }


@dataclass(frozen=True)
class FitResult:
    out: Path
    metrics: dict[str, float]


def fit(
    *,
    data: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    kind: str,
    sizes: tuple[int, ...] | None = None,
    tracking: TrackingSpec | None = None,
    resume: bool = False,
    extra_config: dict[str, Any] | None = None,
) -> FitResult:
    """Train on Ray Train and leave ``model.pt``, ``metrics.json``, ``history.json`` in ``out``.

    Ray's own run state lives in ``out/.ray``; ``resume`` continues from its latest checkpoint.

    Raises:
        AdassError: ``out`` has a finished or partial run and ``resume`` is false, or the
            cluster has fewer CPUs than the workers need.
    """
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    from adass_ray.distributed.torch_loopback import LoopbackTorchConfig, is_loopback_instance

    out = Path(out).resolve()
    storage = out / ".ray"
    if storage.exists() and not resume:
        raise AdassError(
            f"{out} already holds a training run; pass --resume to continue it "
            "or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    _check_or_record_run(out, FeatureMap.load(data), kind, sizes, resume)
    use_gpu = _use_gpu(cfg)
    _check_resources(cfg, use_gpu)
    progress = progress_actor()
    trainer = TorchTrainer(
        train_per_worker,
        # a local (loopback) instance keeps torch's rendezvous store on loopback too
        torch_config=LoopbackTorchConfig() if is_loopback_instance() else None,
        train_loop_config={
            "data": str(Path(data).resolve()),
            "kind": kind,
            "sizes": list(sizes) if sizes else None,
            "train": configio.to_dict(cfg),
            "tracking": tracking,
            "progress": progress,
            "progress_steps": bars.active(),  # rows/s bars only when the driver draws them
            "fault": faults.spec("train"),
            **(extra_config or {}),
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.num_workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": cfg.cpus_per_worker, **({"GPU": 1} if use_gpu else {})},
        ),
        run_config=ray.train.RunConfig(
            name="train",
            storage_path=str(storage),
            failure_config=ray.train.FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    )
    result = fit_with_progress(trainer, progress, kind=kind)
    if result.error is not None or result.checkpoint is None:
        raise AdassError(
            f"training failed: {type(result.error).__name__}: "
            f"{str(result.error).splitlines()[0] if result.error else 'no checkpoint'}"
        )
    with result.checkpoint.as_directory() as d:
        for name in (MODEL_FILE, "history.json"):
            shutil.copy2(Path(d) / name, out / name)
    metrics = {k: float(v) for k, v in (result.metrics or {}).items() if isinstance(v, int | float)}
    write_json(out / "metrics.json", metrics)
    return FitResult(out=out, metrics=metrics)


def _check_or_record_run(
    out: Path, fm: FeatureMap, kind: str, sizes: tuple[int, ...] | None, resume: bool
) -> None:
    """A resumed run must be the same kind of run on the same data; record what a new one is."""
    record = out / "run.json"
    if resume and record.is_file():
        import json

        prev = json.loads(record.read_text())
        check_fingerprint(prev["fingerprint"], fm, source=f"the run in {out}")
        if prev["kind"] != kind or prev.get("sizes") != (list(sizes) if sizes else None):
            raise AdassError(
                f"the run in {out} is a {prev['kind']} run with sizes {prev.get('sizes')}; "
                "resume it with the same stage and sizes, or choose another --out"
            )
        return
    write_json(
        record,
        {"kind": kind, "sizes": list(sizes) if sizes else None, "fingerprint": fm.fingerprint()},
    )


def _use_gpu(cfg: TrainConfig) -> bool:
    import ray

    if cfg.use_gpu == "yes":
        return True
    if cfg.use_gpu == "no":
        return False
    return float(ray.cluster_resources().get("GPU", 0)) >= cfg.num_workers


def _check_resources(cfg: TrainConfig, use_gpu: bool) -> None:
    """A trainer asking for more CPUs than the cluster has waits forever: refuse it up front."""
    import ray

    have = float(ray.cluster_resources().get("CPU", 0))
    need = cfg.num_workers * cfg.cpus_per_worker
    if need > have + 1e-9:
        raise AdassError(
            f"{cfg.num_workers} workers × {cfg.cpus_per_worker} CPU need {need:g} CPUs but the Ray "
            f"cluster has {have:g}; lower num_workers or cpus_per_worker"
        )
