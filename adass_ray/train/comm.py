"""Collectives for the training loop: a no-op for one process, ``torch.distributed`` for many.

The loop never calls ``torch.distributed`` itself; it is handed a :class:`Comm`.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class Comm:
    """Collective operations; the single-process version does nothing."""

    rank = 0
    world_size = 1

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over workers (a copy; the input is untouched)."""
        return t

    def average_gradients(
        self, params: list[torch.nn.Parameter], sparse: list[torch.nn.Parameter]
    ) -> None:
        """Average gradients over workers (no-op for one worker); ``sparse`` have sparse grads."""

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate ``t`` from every worker along dimension 0, in rank order."""
        return t


class TorchDistComm(Comm):
    """``torch.distributed`` collectives (the process group Ray Train sets up)."""

    def __init__(self) -> None:
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    def average_gradients(
        self, params: list[torch.nn.Parameter], sparse: list[torch.nn.Parameter]
    ) -> None:
        # One flat buffer → one all-reduce per step. Parameters a step did not touch get zero
        # gradients so every worker contributes the same layout (no DDP unused-parameter checks:
        # with per-row paths, which candidates a batch touches varies from step to step). The
        # buffer ends with one "has a gradient" flag per parameter: a parameter no worker
        # touched keeps ``grad = None``, as it would in one process, so Adam skips it instead of
        # decaying its moments with a zero gradient (which would move it).
        for p in sparse:
            self._average_sparse(p)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        if not grads:
            return
        device = grads[0].device
        flags = torch.tensor(
            [0.0 if p.grad is None else 1.0 for p in params], dtype=grads[0].dtype, device=device
        )
        flat = torch.cat([*(g.reshape(-1) for g in grads), flags])
        dist.all_reduce(flat)
        used = flat[-len(params) :] > 0
        flat = flat[: -len(params)] / self.world_size
        offset = 0
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(p) if bool(used[i]) else None
            offset += n

    def _average_sparse(self, p: torch.nn.Parameter) -> None:
        """All-gather the touched rows of a sparse table gradient and average them."""
        if p.grad is None:
            idx = torch.empty(0, dtype=torch.long, device=p.device)
            val = torch.empty((0, *p.shape[1:]), dtype=p.dtype, device=p.device)
        else:
            g = p.grad.coalesce()
            idx, val = g.indices()[0], g.values()
        n = torch.tensor([idx.numel()], device=p.device)
        counts = self.gather(n)
        most = int(counts.max())
        if most == 0:  # no worker touched the table this step: no gradient, as in one process
            p.grad = None
            return
        pad = most - idx.numel()
        idx_all = self.gather(torch.cat([idx, idx.new_zeros(pad)]))
        val_all = self.gather(torch.cat([val, val.new_zeros((pad, *val.shape[1:]))]))
        keep = torch.cat([torch.arange(most, device=p.device) < int(c) for c in counts])
        values = val_all[keep] / self.world_size
        grad = torch.sparse_coo_tensor(idx_all[keep][None], values, p.shape)
        p.grad = grad.coalesce()

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)
