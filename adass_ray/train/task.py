"""The one task builder: a model plus how it is trained and scored, and its parameter counts.

Pure torch (no Ray, no MLflow). :class:`~adass_ray.train.loop.TrainLoop` runs a task in one
process (:mod:`adass_ray.train.local`) or on every Ray Train worker
(:mod:`adass_ray.distributed.train`); both get it from :func:`make_task`.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import ConfigError
from adass_ray.model.config import build_linear, build_standalone, build_supernet
from adass_ray.model.standalone import StandaloneModel
from adass_ray.model.supernet import Supernet
from adass_ray.model.unifier import to_device
from adass_ray.model.wide import LinearModel
from adass_ray.sampling import Sampler
from adass_ray.train.config import TrainConfig

logger = logging.getLogger(__name__)


def is_table(name: str) -> bool:
    """Whether parameter ``name`` is an embedding table (the only sparse-gradient parameters)."""
    return ".tables." in f".{name}"


class Task:
    """A model plus how it is trained and scored; the loop only calls these methods."""

    model: nn.Module
    wants_holdout = False  # see SupernetTask.attach_holdout

    def attach_holdout(self, batch: Batch) -> None:
        """Receive held-out rows (called once, only when ``wants_holdout``)."""

    def train_step(
        self, batch: Batch, *, generator: torch.Generator, reduce: Any
    ) -> tuple[Tensor, dict[str, float]]:  # pragma: no cover - interface
        raise NotImplementedError

    def after_backward(self, reduce: Any) -> None:
        """Called after gradients are all-reduced, before the optimizer step."""

    def set_total_steps(self, steps: int) -> None:
        """Told once, before training, how many steps the whole run takes."""

    def visits(self) -> torch.Tensor | None:
        """Rows each (field, candidate) was trained on, ``[F, K]``; None when not counted."""
        return None

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
    """A stand-alone model with one architecture (the uniform baseline, or searched sizes), or
    the linear floor."""

    def __init__(self, model: StandaloneModel | LinearModel) -> None:
        self.model = self.standalone = model

    def train_step(
        self, batch: Batch, *, generator: torch.Generator, reduce: Any
    ) -> tuple[Tensor, dict[str, float]]:
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
        # "auto": a sampler that can draw the next step's random numbers on a worker thread
        # does so once the batches are on CUDA (same paths; the host's draws then overlap the
        # device's work). True: on any device (tests); False: never (the GPU bench's comparison).
        self.draw_ahead: str | bool = "auto"
        self._ahead_on = False
        self._next_seed: int | None = None

    def set_total_steps(self, steps: int) -> None:
        """Warm-ups and decays of the sampler are fractions of the run: tell it the run."""
        setter = getattr(self.sampler, "set_total_steps", None)
        if setter is not None:
            setter(steps)

    def visits(self) -> torch.Tensor | None:
        """Rows each (field, candidate) was trained on so far, ``[F, K]`` (when counted)."""
        counter = getattr(self.sampler, "visits", None)
        return counter() if counter is not None else None

    def set_next_seed(self, seed: int) -> None:
        """Say the seed of the generator the next step will be given (the loop seeds a fresh one
        every step), so that a sampler drawing ahead starts from it during this step."""
        self._next_seed = seed

    def train_step(
        self, batch: Batch, *, generator: torch.Generator, reduce: Any
    ) -> tuple[Tensor, dict[str, float]]:
        next_seed, self._next_seed = self._next_seed, None
        if not self._ahead_on and (self.draw_ahead is True
                                   or (self.draw_ahead == "auto" and batch.label.is_cuda)):
            switch = getattr(self.sampler, "draw_ahead", None)
            if switch is not None:
                switch(True)
            self._ahead_on = switch is not None
        if self._ahead_on:  # the next step's draws start from its seed (else from generator)
            after = None if next_seed is None else torch.Generator().manual_seed(next_seed)
            host = self.sampler.sample(len(batch), generator=generator,  # type: ignore[call-arg]
                                       next_generator=after)
        else:
            host = self.sampler.sample(len(batch), generator=generator)
        # the CPU paths route the lookups (no device-to-host copy in the step); the sampler's
        # statistics read the device copy
        unified = self.supernet.unified(batch, host)
        arch = to_device(host, batch.label.device)
        unified.retain_grad()
        logits = self.supernet.forward_from_unified(
            unified, batch.dense, self.supernet.wide_logits(batch)
        )
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
                    return torch.stack(
                        [
                            F.binary_cross_entropy_with_logits(net(batch, tuple(a)), batch.label)
                            for a in archs.tolist()
                        ]
                    )
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


def make_task(
    fm: FeatureMap, cfg: TrainConfig, kind: str, sizes: tuple[int, ...] | None = None
) -> Task:
    """The task a stage trains: the supernet with its sampler, or a fixed architecture.

    The global torch seed is set to ``cfg.seed`` first, so every worker (and an in-process run)
    starts from identical weights.

    ``kind``: ``supernet``, ``fixed`` (needs ``sizes``) or ``linear`` (the linear floor: one
    scalar per id, no tables to size, no backbone).

    Raises:
        ConfigError: a fixed-architecture task without ``sizes``.
    """
    torch.manual_seed(cfg.seed)
    if kind == "linear":
        return FixedTask(build_linear(fm, cfg.model))
    if kind == "supernet":
        net = build_supernet(fm, cfg.model)
        sampler = cfg.sampler.build(candidate_sizes=net.candidate_sizes,
                                    vocab_sizes=fm.vocab_sizes)
        return SupernetTask(net, sampler)
    if sizes is None:
        raise ConfigError("a fixed-architecture run needs sizes")
    return FixedTask(build_standalone(fm, cfg.model, sizes))


def param_counts(task: Task) -> dict[str, float]:
    """Embedding and total params of a fixed model; total params of a supernet."""
    total = float(sum(p.numel() for p in task.model.parameters()))
    if isinstance(task, FixedTask):
        return {
            "embedding_params": float(task.standalone.embedding_params()),
            "total_params": total,
        }
    return {"supernet_params": total}
