"""In-process training (one worker, no Ray): the evaluation harness's units run this.

The same :func:`~adass_ray.train.task.make_task` and :class:`~adass_ray.train.loop.TrainLoop`
as on Ray Train, so a model trained here and one trained by ``train-supernet`` / ``retrain`` with
one worker follow the same recipe.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.loader import ShardLoader
from adass_ray.train.config import TrainConfig, validate
from adass_ray.train.loop import TrainLoop
from adass_ray.train.task import make_task, param_counts

EVAL_BATCH = 16_384


def train_local(
    data: Path, cfg: TrainConfig, kind: str, sizes: tuple[int, ...] | None = None, threads: int = 1
) -> tuple[torch.nn.Module, dict[str, float]]:
    """Train one model in this process (the same loop as on Ray Train, one worker).

    Args:
        data: a prepared dataset folder. cfg: the training recipe.
        kind: ``"supernet"`` or ``"fixed"``. sizes: a fixed model's size per field.
        threads: torch threads to use.

    Returns:
        The trained model (best validation epoch) and its metrics: test AUC / logloss, best
        validation AUC, epochs run, seconds, and the parameter counts.

    Raises:
        ConfigError: a bad config, or a fixed model without sizes.
    """
    torch.set_num_threads(threads)
    fm = FeatureMap.load(data)
    validate(fm, cfg, kind)
    task = make_task(fm, cfg, kind, sizes)
    eval_rows = cfg.eval_rows or cfg.max_rows
    loader = {
        split: ShardLoader(
            data, fm, split=split, batch_size=EVAL_BATCH, shuffle=False, max_rows=eval_rows
        )
        for split in ("valid", "test")
    }
    train = ShardLoader(
        data,
        fm,
        split="train",
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        max_rows=cfg.max_rows,
        drop_last=False,
    )
    loop = TrainLoop(task=task, config=cfg, train=train, valid=loader["valid"])
    t0 = time.perf_counter()
    state = loop.run()
    metrics = {
        **loop.evaluate(loader["test"], "test"),
        "seconds": time.perf_counter() - t0,
        "epochs": float(state.epoch),
        "best_val_auc": state.best_score,
        **param_counts(task),
    }
    return task.model, {k: float(v) for k, v in metrics.items()}
