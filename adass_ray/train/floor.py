"""The linear floor: a one-hot logistic regression on the same loader and split as the models.

Every stand-alone comparison (``run``'s report, the harness's table) carries the floor's row, and
the CLI warns when the embedding model does not beat it on validation: a model below a logistic
regression says the recipe failed on this data, and then no size comparison on it means anything.
"""

from __future__ import annotations

from dataclasses import replace

from adass_ray.train.config import TrainConfig

#: the floor's learning rate: a scalar per id from a zero start needs larger steps than the
#: embedding model's default 1e-3 (on MovieLens-100K, 10 epochs: validation AUC 0.753 at 1e-3,
#: 0.783 at 1e-2, 0.783 at 3e-2)
FLOOR_LR = 1e-2


def floor_config(cfg: TrainConfig) -> TrainConfig:
    """The floor's recipe: ``cfg`` (same data, batch, epochs, early stopping, seed and workers)
    with the floor's learning rate; the model settings are not read (the floor has none)."""
    return replace(cfg, lr=FLOOR_LR)


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
