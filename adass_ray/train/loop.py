"""The training loop: epochs of steps, validation, early stopping, exact checkpoints.

The loop is the same in one process and on every Ray Train worker; what differs is injected:
a :class:`Comm` (gradient and statistics all-reduce, gathering predictions) and a checkpoint
callback. Everything random is derived from ``(seed, rank, step)``, so a run resumed from a
checkpoint — after a worker died, or with ``--resume`` — repeats exactly the steps it would have
taken: same rows, same sampled paths, same dropout masks.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from adass_ray.data.loader import ShardLoader
from adass_ray.errors import NonFiniteLossError
from adass_ray.metrics import auc, logloss
from adass_ray.train.comm import Comm
from adass_ray.train.config import TrainConfig
from adass_ray.train.task import Task, is_table

logger = logging.getLogger(__name__)
HOLDOUT_ROWS = 2048  # validation rows a path-scoring sampler (greedy) scores its candidate paths on


def dense_adam(params: list[torch.nn.Parameter], *, lr: float,
               weight_decay: float) -> torch.optim.Adam:
    """Adam over ``params``; fused into a few kernels when they all live on CUDA.

    The default multi-tensor Adam makes several passes over every parameter and moment; at
    Criteo size (a billion dense supernet parameters) that took about 22 ms a step on an H200,
    several times what reading and writing them once costs. On the CPU the default stays.
    """
    fused = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


@dataclass
class LoopState:
    """Where a run is: restored from a checkpoint to continue exactly."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_score: float = float("-inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    epoch_loss_sum: float = 0.0  # this epoch's train losses so far (a resumed epoch's mean)
    last_checkpoint_step: int = -1  # the step of the latest checkpoint handed to on_checkpoint
    resumed_at: list[int] = field(default_factory=list)  # steps this run was restored at


CheckpointFn = Callable[[dict[str, Any], dict[str, float]], None]
MetricsFn = Callable[[dict[str, float], int], None]
StepFn = Callable[["LoopState", int], None]


class TrainLoop:
    """Runs a :class:`Task` over a train loader with validation each epoch.

    Args:
        task: the model and its loss.
        config: training settings.
        train, valid: loaders (already sliced to this worker).
        comm: collectives for data-parallel runs.
        device: where tensors go.
        on_checkpoint: called with (state dict, metrics) at every checkpoint; rank 0 persists it.
        on_metrics: called with (metrics, step) to log progress (rank 0).
        on_step: called with (state, steps in this epoch) after every step, for a progress
            display; keep it cheap (throttle there).
        on_mid_step: called with the step number in the middle of every step (gradients averaged,
            weights not yet updated); the fault-injection tests kill a worker there.
    """

    def __init__(
        self,
        *,
        task: Task,
        config: TrainConfig,
        train: ShardLoader,
        valid: ShardLoader,
        comm: Comm | None = None,
        device: torch.device | None = None,
        on_checkpoint: CheckpointFn | None = None,
        on_metrics: MetricsFn | None = None,
        on_step: StepFn | None = None,
        on_mid_step: Callable[[int], None] | None = None,
    ) -> None:
        self.task, self.cfg, self.train, self.valid = task, config, train, valid
        self.comm = comm or Comm()
        self.device = device or torch.device("cpu")
        self.on_checkpoint = on_checkpoint or (lambda state, metrics: None)
        self.on_metrics = on_metrics or (lambda metrics, step: None)
        self.on_step = on_step
        self.on_mid_step = on_mid_step or (lambda step: None)
        named = [(n, p) for n, p in task.model.named_parameters() if p.requires_grad]
        sparse = config.model.sparse
        self.sparse_params = [p for n, p in named if sparse and is_table(n)]
        self.params = [p for n, p in named if not (sparse and is_table(n))]
        self.optimizers: list[torch.optim.Optimizer] = [
            dense_adam(self.params, lr=config.lr, weight_decay=config.weight_decay)
        ]
        if self.sparse_params:
            # lazy Adam: moments and updates only for the rows a step touched
            self.optimizers.append(torch.optim.SparseAdam(self.sparse_params, lr=config.lr))
        self.state = LoopState()
        task.set_total_steps(len(train) * config.epochs)
        self.best_model: dict[str, torch.Tensor] | None = None
        if getattr(
            task, "wants_holdout", False
        ):  # the greedy sampler scores paths on held-out rows
            rows = valid.full_batch()
            task.attach_holdout(rows.slice(0, min(HOLDOUT_ROWS, len(rows))).to(self.device))

    # --- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.task.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "task": self.task.extra_state(),
            "loop": asdict(self.state),
            "best_model": self.best_model,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.task.model.load_state_dict(state["model"])
        for opt, saved in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(_keep_fused(opt, saved))
        self.task.load_extra_state(state.get("task", {}))
        self.state = LoopState(**copy.deepcopy(state["loop"]))  # never alias the caller's lists
        self.best_model = state.get("best_model")
        self.state.resumed_at.append(self.state.global_step)

    # --- running ---------------------------------------------------------------------------------
    def _step_seed(self, step: int) -> int:
        return (self.cfg.seed * 1_000_003 + self.comm.rank) * 1_000_033 + step

    def _to_device(self, batch: Any) -> Any:
        """The batch on the loop's device; to a GPU pinned and non-blocking, so the host does
        not wait for the previous step."""
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch.to(self.device)

    def step(self, batch: Any) -> Tensor:
        """One training step; returns the detached loss (reading it waits for the device, so the
        loop never waits for it; the finiteness check does, once per step)."""
        st = self.state
        seed = self._step_seed(st.global_step)
        torch.manual_seed(seed)  # dropout and any other global randomness: (seed, rank, step) too
        self.task.model.train()
        # bf16 autocast reaches only the backbone (the embeddings turn it off for themselves;
        # the loss runs in fp32 under autocast); evaluation never autocasts
        with torch.autocast("cuda", dtype=torch.bfloat16,
                            enabled=self.cfg.bf16 and self.device.type == "cuda"):
            tell_next = getattr(self.task, "set_next_seed", None)
            if tell_next is not None:  # the next step's generator seed: a sampler may draw ahead
                tell_next(self._step_seed(st.global_step + 1))
            loss, _ = self.task.train_step(
                batch, generator=torch.Generator().manual_seed(seed),
                reduce=self.comm.all_reduce_sum,
            )
        self._check_finite(loss)
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        self.comm.average_gradients(self.params, self.sparse_params)
        self.task.after_backward(self.comm.all_reduce_sum)
        self.on_mid_step(st.global_step)
        for opt in self.optimizers:
            opt.step()
        return loss.detach()

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Stop before a non-finite loss reaches the weights (the same decision on every rank).

        Raises:
            NonFiniteLossError: this step's loss is NaN or infinite on any worker.
        """
        bad = torch.tensor([0.0 if bool(torch.isfinite(loss.detach()).all()) else 1.0])
        if float(self.comm.all_reduce_sum(bad.to(loss.device))[0]) == 0.0:
            return
        st = self.state
        last = (
            f"the last good checkpoint is at step {st.last_checkpoint_step}"
            if st.last_checkpoint_step >= 0
            else "no checkpoint was written before it"
        )
        raise NonFiniteLossError(
            f"training stopped: non-finite loss at step {st.global_step} (epoch {st.epoch}; "
            f"rank {self.comm.rank} saw {float(loss.detach()):g}); {last}; "
            "lower lr or check the data for extreme values"
        )

    def _checkpoint(self, metrics: dict[str, float]) -> None:
        self.state.last_checkpoint_step = self.state.global_step
        self.on_checkpoint(self.state_dict(), metrics)

    def run(self) -> LoopState:
        """Train until ``epochs`` or early stopping; restores the best weights at the end."""
        cfg, st = self.cfg, self.state
        while st.epoch < cfg.epochs and not st.stopped:
            self.train.set_epoch(st.epoch)
            t0, steps = time.perf_counter(), len(self.train)
            for batch in self.train.iter_from(st.step_in_epoch):
                # the finiteness check has already read the loss: summing it costs no sync
                st.epoch_loss_sum += float(self.step(self._to_device(batch)))
                st.step_in_epoch += 1
                st.global_step += 1
                if self.on_step is not None:
                    self.on_step(st, steps)
                if cfg.checkpoint_every and st.global_step % cfg.checkpoint_every == 0:
                    self._checkpoint({"train_loss": _mean(st)})
            train_time = time.perf_counter() - t0
            metrics = {
                "epoch": float(st.epoch),
                "train_loss": _mean(st),
                "epoch_seconds": train_time,
                **self.evaluate(self.valid, "val"),
                **_visit_share(self.task),
            }
            score = metrics[self.monitor_key()]
            st.history.append(metrics)
            if score > st.best_score:
                st.best_score, st.best_epoch, st.bad_epochs = score, st.epoch, 0
                self.best_model = copy.deepcopy(self.task.model.state_dict())
            else:
                st.bad_epochs += 1
                if cfg.patience and st.bad_epochs >= cfg.patience:
                    st.stopped = True
            st.epoch += 1
            st.step_in_epoch, st.epoch_loss_sum = 0, 0.0
            self.on_metrics(metrics, st.global_step)
            logger.info("epoch %d: %s", st.epoch, _fmt(metrics))
            self._checkpoint(metrics)
        if self.best_model is not None:
            self.task.model.load_state_dict(self.best_model)
        return st

    def monitor_key(self) -> str:
        return "val_auc"

    @torch.no_grad()
    def evaluate(self, loader: ShardLoader, prefix: str) -> dict[str, float]:
        """AUC / logloss over ``loader`` (all workers' slices gathered), per eval head.

        For a supernet the heads are the uniform architectures; ``{prefix}_auc`` is their mean.
        """
        self.task.model.eval()
        out: dict[str, float] = {}
        aucs = []
        for name, head in self.task.eval_heads().items():
            scores, labels = [], []
            for batch in loader:
                batch = batch.to(self.device)
                scores.append(self.task.predict(batch, head).float())
                labels.append(batch.label)
            s = self.comm.gather(torch.cat(scores).cpu())
            y = self.comm.gather(torch.cat(labels).cpu())
            tag = f"{prefix}_{name}_" if name else f"{prefix}_"
            out[tag + "auc"] = auc(y.numpy(), s.numpy())
            out[tag + "logloss"] = logloss(y.numpy(), torch.sigmoid(s).numpy())
            aucs.append(out[tag + "auc"])
        if f"{prefix}_auc" not in out:
            out[f"{prefix}_auc"] = sum(aucs) / len(aucs)
        return out


def _keep_fused(opt: torch.optim.Optimizer, saved: dict[str, Any]) -> dict[str, Any]:
    """``saved`` with ``opt``'s own "fused" flags: a checkpoint carries the flag of the device it
    was written on (fused on CUDA, see :func:`dense_adam`), and loading applies it, moving the
    step counters to match; a run resumed on another device keeps its own choice."""
    if len(saved.get("param_groups", ())) != len(opt.param_groups):
        return saved  # load_state_dict says what is wrong
    groups = [{**g, "fused": mine["fused"]} if "fused" in mine and "fused" in g else g
              for g, mine in zip(saved["param_groups"], opt.param_groups, strict=True)]
    return {**saved, "param_groups": groups}


def _mean(st: LoopState) -> float:
    """The mean train loss of the epoch so far (the same after a resume mid-epoch)."""
    return st.epoch_loss_sum / st.step_in_epoch if st.step_in_epoch else float("nan")


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "epoch")


def _visit_share(task: Task) -> dict[str, float]:
    """The least-trained (field, candidate)'s share of its field's rows so far (supernets)."""
    visits = task.visits()
    if visits is None or visits.numel() == 0:
        return {}
    per_field = visits.sum(dim=1, keepdim=True).clamp(min=1)
    return {"min_visit_share": float((visits / per_field).min())}
