"""The linear floor: a one-hot logistic regression on the same loader and split as the models.

Every stand-alone comparison (``run``'s report, the harness's table) carries the floor's row, and
the CLI warns when the embedding model does not beat it on validation: a model below a logistic
regression says the recipe failed on this data, and then no size comparison on it means anything.
"""

from __future__ import annotations

from dataclasses import replace

from adass_ray.train.config import TrainConfig

#: the floor's recipe: a scalar per id from a zero start needs larger and more steps than the
#: embedding network (UCI Adult, all 14 columns as ids, validation AUC after early stopping:
#: batch 2048 / lr 1e-2 / 10 epochs 0.923, still rising; batch 512 / lr 1e-2 / up to 30 epochs
#: 0.929, best at epoch 10; MovieLens-100K 0.783 either way)
FLOOR_LR = 1e-2
FLOOR_MAX_BATCH = 512
FLOOR_MIN_EPOCHS = 20


def floor_config(cfg: TrainConfig) -> TrainConfig:
    """The floor's recipe: ``cfg`` (same data, rows, early stopping, seed and workers) with the
    floor's learning rate, a batch of at most 512 rows and at least 20 epochs (early stopping
    ends it sooner); the model settings are not read (the floor has none)."""
    return replace(
        cfg,
        lr=FLOOR_LR,
        batch_size=min(cfg.batch_size, FLOOR_MAX_BATCH),
        epochs=max(cfg.epochs, FLOOR_MIN_EPOCHS),
        patience=cfg.patience or 2,  # a 20-epoch floor without early stopping would overfit
    )


def floor_warning(model_val_auc: float, floor_val_auc: float, *, what: str = "the model") -> str:
    """The warning when ``what`` does not beat the floor on validation, else ``""``."""
    if model_val_auc > floor_val_auc:
        return ""
    return (
        f"{what} does not beat the linear floor on validation (AUC {model_val_auc:.4f} <= "
        f"{floor_val_auc:.4f} for a one-hot logistic regression): the training recipe does not "
        "fit this data, so size comparisons on it mean little; try model.dropout=0.3, "
        "a smaller model.hidden, weight_decay or model.wide=true"
    )
