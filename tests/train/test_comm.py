"""Gradient averaging across 2 gloo processes equals the gradient of the whole batch."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from adass_ray.train.comm import TorchDistComm

    torch.manual_seed(0)
    table = torch.nn.Parameter(torch.randn(50, 4))
    dense = torch.nn.Parameter(torch.randn(4))
    unused = torch.nn.Parameter(torch.randn(7, 4))  # no gradient on any rank
    ids = torch.randint(0, 50, (2, 32))[rank]  # each rank its half of the batch
    loss = (torch.nn.functional.embedding(ids, table, sparse=True) @ dense).pow(2).mean()
    loss.backward()
    TorchDistComm().average_gradients([dense], [table, unused])
    if rank == 0:
        torch.save({"table": table.grad.to_dense(), "dense": dense.grad,
                    "unused": unused.grad}, out)
    dist.destroy_process_group()


def test_sparse_and_dense_gradients_average_like_one_big_batch(tmp_path):
    out = str(tmp_path / "grads.pt")
    mp.spawn(_worker, args=(2, 29511, out), nprocs=2, join=True)
    got = torch.load(out)
    torch.manual_seed(0)
    table = torch.nn.Parameter(torch.randn(50, 4))
    dense = torch.nn.Parameter(torch.randn(4))
    torch.randn(7, 4)
    ids = torch.randint(0, 50, (2, 32)).reshape(-1)
    (torch.nn.functional.embedding(ids, table) @ dense).pow(2).mean().backward()
    assert torch.allclose(got["table"], table.grad, atol=1e-6)
    assert torch.allclose(got["dense"], dense.grad, atol=1e-6)
    assert got["unused"] is None  # untouched everywhere: no gradient, as in one process
