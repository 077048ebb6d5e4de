"""Training configuration, models from config, and the train wrappers that own the loss.

Pure torch: no Ray, no MLflow. :mod:`adass_ray.loop` runs these in one process or, through
:mod:`adass_ray.distributed.train`, on Ray Train workers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import ConfigError
from adass_ray.model.standalone import StandaloneModel
from adass_ray.model.supernet import Supernet
from adass_ray.sampling import Sampler, build_sampler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """The network: backbone, common width ``d`` and the candidate-table layout.

    ``candidate_sizes`` empty means: the feature map's candidate sizes. ``sparse``: embedding
    tables get sparse gradients and a lazy Adam (``torch.optim.SparseAdam``) that touches only the
    rows a step used; the network keeps dense Adam (see the README for the measurement).
    """

    backbone: str = "dnn"
    d: int = 16
    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.0
    cross_layers: int = 3
    layout: Literal["separate", "nested"] = "separate"
    candidate_sizes: tuple[int, ...] = ()
    sparse: bool = True


@dataclass(frozen=True)
class SamplerConfig:
    """Adaptive Sampling and friends (DESIGN.md §2.2); ``name``: uniform, adaptive or greedy."""

    name: str = "adaptive"
    tau: float = 1.0
    epsilon: float = 0.1
    gamma: float = 0.99
    warmup_steps: int = 500
    rho: float = 0.5
    rho_min: float = 0.1
    es: bool = True
    fs: bool = True
    greedy_paths: int = 10
    greedy_keep: int = 5
    greedy_pool: int = 64
    greedy_pool_prob: float = 0.8
    greedy_refresh: int = 50

    def build(self, *, num_fields: int, num_candidates: int) -> Sampler:
        """The sampler this config describes (constants checked by the sampler)."""
        common = {"num_fields": num_fields, "num_candidates": num_candidates}
        if self.name == "adaptive":
            return build_sampler(
                "adaptive", tau=self.tau, epsilon=self.epsilon, gamma=self.gamma,
                warmup_steps=self.warmup_steps, rho=self.rho, rho_min=self.rho_min,
                es=self.es, fs=self.fs, **common,
            )
        if self.name == "greedy":
            return build_sampler(
                "greedy", num_candidates_paths=self.greedy_paths, keep_top=self.greedy_keep,
                pool_size=self.greedy_pool, pool_prob=self.greedy_pool_prob,
                refresh_every=self.greedy_refresh, warmup_steps=self.warmup_steps, **common,
            )
        if self.name != "uniform":
            return build_sampler(self.name, **common)  # raises the one-line unknown-name error
        return build_sampler("uniform", **common)


@dataclass(frozen=True)
class TrainConfig:
    """One training run (supernet or fixed architecture).

    Attributes:
        epochs: maximum epochs; early stopping may end sooner.
        batch_size: rows per step over all workers (each worker takes ``batch_size // num_workers``).
        lr, weight_decay: Adam settings (dense Adam for tables and network; see the README).
        patience: stop after this many epochs without a better validation AUC (0 = never).
        checkpoint_every: also checkpoint every N steps (0 = only at epoch ends).
        num_workers: data-parallel Ray Train workers.
        cpus_per_worker: CPUs each worker reserves (and torch threads it uses).
        use_gpu: ``auto`` uses GPUs when the cluster has them.
        seed: model init, data order and sampling seed.
        max_rows: read at most this many rows per split (smoke tests).
        eval_rows: validate on at most this many rows.
        max_failures: worker-group restarts Ray Train may do before giving up.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    epochs: int = 10
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 2
    checkpoint_every: int = 0
    num_workers: int = 2
    cpus_per_worker: float = 1.0
    use_gpu: Literal["auto", "yes", "no"] = "auto"
    seed: int = 0
    max_rows: int | None = None
    eval_rows: int | None = None
    max_failures: int = 2

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.patience >= 0 and self.checkpoint_every >= 0, "patience and checkpoint_every must be >= 0"),
            (self.num_workers >= 1, f"num_workers must be >= 1, got {self.num_workers}"),
            (self.cpus_per_worker > 0, f"cpus_per_worker must be > 0, got {self.cpus_per_worker}"),
            (self.model.d >= 1, f"model.d must be >= 1, got {self.model.d}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)


def validate(fm: FeatureMap, cfg: TrainConfig, kind: str) -> None:
    """Check names and sizes on the driver, before any worker starts (cheap: no tables built).

    Raises:
        ConfigError: unknown backbone or sampler, bad candidate sizes, width or sampler constants.
    """
    from adass_ray.model.backbones import build_backbone
    from adass_ray.model.embeddings import LAYOUTS, validate_sizes

    m = cfg.model
    validate_sizes(m.candidate_sizes or fm.candidate_sizes, m.d)
    if m.layout not in LAYOUTS:
        raise ConfigError(f"model.layout {m.layout!r}; choose one of {', '.join(LAYOUTS)}")
    build_backbone(m.backbone, num_fields=fm.num_fields, d=m.d, num_dense=len(fm.numeric_fields),
                   hidden=m.hidden, dropout=m.dropout, cross_layers=m.cross_layers)
    if kind == "supernet":
        cfg.sampler.build(num_fields=fm.num_fields, num_candidates=len(m.candidate_sizes or fm.candidate_sizes))
        message = warmup_warning(fm, cfg)
        if message:
            logger.warning(message)


def warmup_warning(fm: FeatureMap, cfg: TrainConfig) -> str | None:
    """A warning when the sampler's warm-up outlasts the whole run (adaptive table sampling and
    the greedy pool would then never start: the supernet is trained with uniform paths)."""
    sampler = cfg.sampler
    if sampler.name not in ("adaptive", "greedy") or (sampler.name == "adaptive" and not sampler.es):
        return None
    split = fm.splits.get("train")
    if split is None:
        return None
    rows = min(split.rows, cfg.max_rows) if cfg.max_rows else split.rows
    steps = -(-rows // cfg.batch_size) * cfg.epochs
    if sampler.warmup_steps < steps:
        return None
    what = "table sampling (ES)" if sampler.name == "adaptive" else "the greedy path pool"
    return (f"sampler.warmup_steps={sampler.warmup_steps} >= the {steps} steps this run can take "
            f"({cfg.epochs} epochs of {-(-rows // cfg.batch_size)}): {what} never starts; "
            f"lower it, e.g. sampler.warmup_steps={max(1, steps // 5)}")


def build_supernet(fm: FeatureMap, cfg: ModelConfig) -> Supernet:
    return Supernet.from_feature_map(
        fm, d=cfg.d, backbone=cfg.backbone, candidate_sizes=cfg.candidate_sizes or None,
        layout=cfg.layout, sparse=cfg.sparse, hidden=cfg.hidden, dropout=cfg.dropout,
        cross_layers=cfg.cross_layers,
    )


def build_standalone(fm: FeatureMap, cfg: ModelConfig, sizes: tuple[int, ...]) -> StandaloneModel:
    return StandaloneModel.from_feature_map(
        fm, sizes=sizes, d=cfg.d, backbone=cfg.backbone, sparse=cfg.sparse, hidden=cfg.hidden,
        dropout=cfg.dropout, cross_layers=cfg.cross_layers,
    )


def is_table(name: str) -> bool:
    """Whether parameter ``name`` is an embedding table (the only sparse-gradient parameters)."""
    return ".tables." in f".{name}"


class Task:
    """A model plus how it is trained and scored; the loop only calls these methods."""

    model: nn.Module
    wants_holdout = False  # see SupernetTask.attach_holdout

    def attach_holdout(self, batch: Batch) -> None:
        """Receive held-out rows (called once, only when ``wants_holdout``)."""

    def train_step(self, batch: Batch, *, generator: torch.Generator,
                   reduce: Any) -> tuple[Tensor, dict[str, float]]:  # pragma: no cover - interface
        raise NotImplementedError

    def after_backward(self, reduce: Any) -> None:
        """Called after gradients are all-reduced, before the optimizer step."""

    def eval_heads(self) -> dict[str, Any]:  # pragma: no cover - interface
        """Named architectures to validate (``None`` for a fixed model)."""
        raise NotImplementedError

    def predict(self, batch: Batch, head: Any) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""


class FixedTask(Task):
    """A stand-alone model with one architecture (the uniform baseline, or searched sizes)."""

    def __init__(self, model: StandaloneModel) -> None:
        self.model = self.standalone = model

    def train_step(self, batch: Batch, *, generator: torch.Generator,
                   reduce: Any) -> tuple[Tensor, dict[str, float]]:
        logits = self.model(batch)
        loss = F.binary_cross_entropy_with_logits(logits, batch.label)
        return loss, {}

    def eval_heads(self) -> dict[str, Any]:
        return {"": None}

    def predict(self, batch: Batch, head: Any) -> Tensor:
        return self.model(batch)


class SupernetTask(Task):
    """The supernet trained with a path sampler (one architecture per row).

    Each step samples ``arch [B, F]``, keeps the unified field outputs to read the gradient norm
    reaching every field (feature sampling needs it), and reports per-(field, candidate) losses
    back to the sampler after the gradients are all-reduced, so every worker updates the sampler
    with the same statistics.
    """

    def __init__(self, model: Supernet, sampler: Sampler) -> None:
        self.model = self.supernet = model
        self.sampler = sampler
        # a sampler that scores paths on held-out rows (greedy): the loop then calls
        # attach_holdout once with rows of its validation slice
        self.wants_holdout = hasattr(sampler, "set_score_fn")
        self._pending: tuple[Tensor, Tensor, Tensor] | None = None

    def train_step(self, batch: Batch, *, generator: torch.Generator,
                   reduce: Any) -> tuple[Tensor, dict[str, float]]:
        arch = self.sampler.sample(len(batch), generator=generator).to(batch.label.device)
        unified = self.supernet.unified(batch, arch)
        unified.retain_grad()
        logits = self.supernet.forward_from_unified(unified, batch.dense)
        row_loss = F.binary_cross_entropy_with_logits(logits, batch.label, reduction="none")
        self._pending = (arch, row_loss.detach(), unified)
        return row_loss.mean(), {}

    def after_backward(self, reduce: Any) -> None:
        assert self._pending is not None, "after_backward without train_step"
        arch, row_loss, unified = self._pending
        self._pending = None
        grad = unified.grad
        norms = grad.pow(2).sum(dim=(0, 2)).sqrt() if grad is not None else None
        self.sampler.observe(arch, row_loss, norms, reduce=reduce)

    def attach_holdout(self, batch: Batch) -> None:
        """Give a path-scoring sampler its scorer: mean loss of each path on ``batch``."""
        net = self.supernet

        def score(archs: Tensor) -> Tensor:
            was = net.training
            net.eval()
            try:
                with torch.no_grad():
                    return torch.stack([F.binary_cross_entropy_with_logits(net(batch, tuple(a)), batch.label)
                                        for a in archs.tolist()])
            finally:
                net.train(was)

        self.sampler.set_score_fn(score)  # type: ignore[attr-defined]

    def eval_heads(self) -> dict[str, Any]:
        # every uniform architecture: a cheap, fixed panel that shows all sizes learning
        f = self.supernet.num_fields
        return {f"s{s}": [k] * f for k, s in enumerate(self.supernet.candidate_sizes) if s > 0}

    def predict(self, batch: Batch, head: Any) -> Tensor:
        return self.model(batch, head)

    def extra_state(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "sampler" in state:
            self.sampler.load_state_dict(state["sampler"])


def set_threads(cpus: float) -> int:
    """Use ``cpus`` torch threads (at least 1); Ray workers otherwise keep a stale count."""
    n = max(1, int(cpus))
    torch.set_num_threads(n)
    return n
