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

from adass_ray import configio, record
from adass_ray import progress as bars
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.io import write_json
from adass_ray.data.loader import ShardLoader
from adass_ray.distributed import faults
from adass_ray.distributed.failures import fit_checked
from adass_ray.distributed.progress import progress_actor, step_reporter
from adass_ray.errors import AdassError, NonFiniteLossError
from adass_ray.model.checkpoint import MODEL_FILE, load_plain, save_model
from adass_ray.tracking import TrackingSpec
from adass_ray.train.comm import Comm, TorchDistComm
from adass_ray.train.config import TrainConfig, train_record
from adass_ray.train.loop import TrainLoop
from adass_ray.train.task import make_task, param_counts, set_threads

logger = logging.getLogger(__name__)
STATE_FILE = "state.pt"


def train_per_worker(config: dict[str, Any]) -> None:
    """The Ray Train worker function (see module docstring); ``config`` is plain data.

    One of our errors (bad data or config, a non-finite loss) is reported to the driver through
    the control actor and never repeated: a worker group restarted after it returns at once.
    """
    import ray
    import ray.train

    control = config.get("control")
    rank = ray.train.get_context().get_world_rank()
    if control is not None and ray.get(control.start.remote(rank)) is not None:
        return  # an earlier attempt hit one of our errors; a retry would only repeat it
    try:
        _train(config)
    except AdassError as e:
        if control is None:
            raise
        ray.get(control.fail.remote(type(e).__name__, str(e)))
        if isinstance(e, NonFiniteLossError):
            return  # every rank stopped at the same step: nothing to tear down, no retry
        raise


def _train(config: dict[str, Any]) -> None:
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
    progress = config.get("control") if rank == 0 else None

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
        on_mid_step=lambda step: faults.train_step(
            config.get("fault"), step=step, rank=rank, mid_step=True
        ),
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
    if loop.state.resumed_at:  # which checkpoint the last restore continued from
        final["resumed_from_step"] = float(loop.state.resumed_at[-1])
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
    extra_config = dict(extra_config or {})
    want = train_record(
        FeatureMap.load(data), cfg, kind, sizes, init_digest=extra_config.get("init_digest")
    )
    if check_run_folder(out, want, resume):
        shutil.rmtree(storage)
    out.mkdir(parents=True, exist_ok=True)
    use_gpu = _use_gpu(cfg)
    _check_resources(cfg, use_gpu)
    record.write(out, {**want, "status": "running"})
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
            "control": progress,
            "progress_steps": bars.active(),  # rows/s bars only when the driver draws them
            "fault": faults.spec("train"),
            **extra_config,
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
    result = fit_checked(trainer, progress, out, kind=kind)
    with result.checkpoint.as_directory() as d:
        for name in (MODEL_FILE, "history.json"):
            shutil.copy2(Path(d) / name, out / name)
    metrics = {k: float(v) for k, v in (result.metrics or {}).items() if isinstance(v, int | float)}
    write_json(out / "metrics.json", metrics)
    record.set_status(out, "done")
    return FitResult(out=out, metrics=metrics)


def check_run_folder(out: Path, want: dict[str, Any], resume: bool) -> bool:
    """Whether ``out`` may hold the run ``want``; True when a failed run's state must go first.

    A folder with Ray state needs ``--resume`` (and the same data, kind, sizes and config),
    except after a failed run: that one is started over, so a failure never forces ``--resume``.

    Raises:
        AdassError: Ray state from a run that did not fail, without ``resume``.
        ConfigError: ``resume`` of a run made with other settings (the difference named).
    """
    if not (out / ".ray").exists():
        return False
    found = record.read(out)
    if resume:
        record.check(out, want, action="resume")
        return False
    if found is not None and found.get("status") == "failed":
        logger.warning("the previous run in %s failed (%s); starting over", out, found.get("error"))
        return True
    raise AdassError(
        f"{out} already holds a training run; pass --resume to continue it or choose another --out"
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
