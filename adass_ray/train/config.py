"""Training configuration, checked on the driver before any worker starts.

:class:`TrainConfig` is frozen, plain data: it travels to Ray Train workers and Tune trials as a
mapping and comes back through :mod:`adass_ray.configio`. :func:`validate` builds nothing heavy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from adass_ray import configio, record
from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import ConfigError
from adass_ray.model.config import ModelConfig
from adass_ray.sampling import SamplerConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """One training run (supernet or fixed architecture).

    Attributes:
        epochs: maximum epochs; early stopping may end sooner.
        batch_size: rows per step over all workers (each worker takes
            ``batch_size // num_workers``).
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
        bf16: on CUDA, run the backbone of a training step under bfloat16 autocast (embeddings,
            unifiers, loss, optimizer and every evaluation stay float32); no effect on a CPU.
            Off by default until a GPU run has measured its speed and quality.
        memory_per_worker_gb: memory one worker may use, for the check before training
            (0: this machine's available memory shared by the workers).
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    epochs: int = 10
    # 512, not 2048: on small tables (UCI Adult, 39k training rows) 2048 gave an epoch of 19 steps
    # and a model below the linear floor (validation AUC 0.922 vs 0.929; 512: 0.928); see the
    # README, "Defaults vs the linear floor"
    batch_size: int = 512
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
    bf16: bool = False
    memory_per_worker_gb: float = 0.0

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (
                self.patience >= 0 and self.checkpoint_every >= 0,
                "patience and checkpoint_every must be >= 0",
            ),
            (self.num_workers >= 1, f"num_workers must be >= 1, got {self.num_workers}"),
            (self.cpus_per_worker > 0, f"cpus_per_worker must be > 0, got {self.cpus_per_worker}"),
            (self.model.d >= 1, f"model.d must be >= 1, got {self.model.d}"),
            (self.memory_per_worker_gb >= 0, "memory_per_worker_gb must be >= 0"),
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
    build_backbone(
        m.backbone,
        num_fields=fm.num_fields,
        d=m.d,
        num_dense=len(fm.numeric_fields),
        hidden=m.hidden,
        dropout=m.dropout,
        cross_layers=m.cross_layers,
    )
    if kind == "supernet":
        cfg.sampler.build(candidate_sizes=m.candidate_sizes or fm.candidate_sizes,
                          vocab_sizes=fm.vocab_sizes)
        message = warmup_warning(fm, cfg)
        if message:
            logger.warning(message)


def warmup_warning(fm: FeatureMap, cfg: TrainConfig) -> str | None:
    """A warning when the sampler's warm-up outlasts the whole run (adaptive table sampling and
    the greedy pool would then never start: the supernet is trained with uniform paths)."""
    sampler = cfg.sampler
    if sampler.name not in ("adaptive", "greedy") or (
        sampler.name == "adaptive" and not sampler.es
    ):
        return None
    split = fm.splits.get("train")
    if split is None:
        return None
    rows = min(split.rows, cfg.max_rows) if cfg.max_rows else split.rows
    steps = -(-rows // cfg.batch_size) * cfg.epochs
    if not sampler.warmup_steps or sampler.warmup_steps < steps:
        return None  # 0: the warm-up is a fraction of the run (always shorter than the run)
    what = "table sampling (ES)" if sampler.name == "adaptive" else "the greedy path pool"
    return (
        f"sampler.warmup_steps={sampler.warmup_steps} >= the {steps} steps this run can take "
        f"({cfg.epochs} epochs of {-(-rows // cfg.batch_size)}): {what} never starts; "
        f"lower it, e.g. sampler.warmup_steps={max(1, steps // 5)}"
    )


# settings that change how a run is executed, not what it computes
_EXECUTION_ONLY = (
    "max_failures", "cpus_per_worker", "use_gpu", "checkpoint_every", "memory_per_worker_gb"
)


def train_record(
    fm: FeatureMap,
    cfg: TrainConfig,
    kind: str,
    sizes: tuple[int, ...] | None,
    init_digest: str | None = None,
) -> dict[str, Any]:
    """What a training run is made of (see :mod:`adass_ray.record`): resumed or reused only
    when all of it matches."""
    config = {k: v for k, v in configio.to_dict(cfg).items() if k not in _EXECUTION_ONLY}
    return record.make(
        kind,
        fingerprint=fm.fingerprint(),
        sizes=list(sizes) if sizes else None,
        config=config,
        init=init_digest,
    )
