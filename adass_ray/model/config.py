"""The network's configuration and the builders that turn it into modules.

:class:`ModelConfig` is plain, frozen data (it travels to Ray workers and into ``model.pt``);
:func:`build_supernet` and :func:`build_standalone` are the only places a config becomes a
module, so the supernet, the stand-alone model and a loaded checkpoint are built the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from adass_ray.data.feature_map import FeatureMap
from adass_ray.model.standalone import StandaloneModel
from adass_ray.model.supernet import Supernet
from adass_ray.model.wide import LinearModel


@dataclass(frozen=True)
class ModelConfig:
    """The network: backbone, common width ``d`` and the candidate-table layout.

    ``candidate_sizes`` empty means: the feature map's candidate sizes. ``sparse``: embedding
    tables get sparse gradients and a lazy Adam (``torch.optim.SparseAdam``) that touches only
    the rows a step used; the network keeps dense Adam (see the README for the measurement).
    ``wide``: add a first-order term (one scalar per id, :mod:`adass_ray.model.wide`) to the
    backbone's logit, in the supernet and in every stand-alone model.
    """

    backbone: str = "dnn"
    d: int = 16
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.0
    cross_layers: int = 3
    layout: Literal["separate", "nested"] = "separate"
    candidate_sizes: tuple[int, ...] = ()
    sparse: bool = True
    wide: bool = False


def build_supernet(fm: FeatureMap, cfg: ModelConfig) -> Supernet:
    """The supernet ``cfg`` describes for the fields of ``fm``."""
    return Supernet.from_feature_map(
        fm,
        d=cfg.d,
        backbone=cfg.backbone,
        candidate_sizes=cfg.candidate_sizes or None,
        layout=cfg.layout,
        sparse=cfg.sparse,
        wide=cfg.wide,
        hidden=cfg.hidden,
        dropout=cfg.dropout,
        cross_layers=cfg.cross_layers,
    )


def build_standalone(fm: FeatureMap, cfg: ModelConfig, sizes: tuple[int, ...]) -> StandaloneModel:
    """The stand-alone model with one embedding size per field (``sizes``, in field order)."""
    return StandaloneModel.from_feature_map(
        fm,
        sizes=sizes,
        d=cfg.d,
        backbone=cfg.backbone,
        sparse=cfg.sparse,
        wide=cfg.wide,
        hidden=cfg.hidden,
        dropout=cfg.dropout,
        cross_layers=cfg.cross_layers,
    )


def build_linear(fm: FeatureMap, cfg: ModelConfig) -> LinearModel:
    """The linear floor for ``fm``: the first-order term alone (a one-hot logistic regression)."""
    return LinearModel.from_feature_map(fm, sparse=cfg.sparse)
