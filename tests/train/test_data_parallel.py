"""2 gloo workers with half the batch each train exactly like 1 worker with the whole batch,
through the real loop step (all-reduce, Adam and lazy SparseAdam), including parameters that
get a gradient on one rank only, or on none, in some steps."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

STEPS = 6
BATCH = 32  # global batch


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.tables = nn.ModuleList(
            [nn.Embedding(40, 4, sparse=True), nn.Embedding(30, 4, sparse=True)]
        )
        self.w = nn.Parameter(torch.randn(4))
        self.extra = nn.Parameter(torch.randn(4))  # only rows with the flag reach it


class _Task:
    """Row loss BCE(e·w [+ e2·extra for flagged rows]); flagged rows also use the 2nd table."""

    wants_holdout = False

    def __init__(self) -> None:
        self.model = _Net()

    def set_total_steps(self, steps):
        pass

    def train_step(self, batch, *, generator, reduce):
        ids, ids2, flag, label = batch
        e = self.model.tables[0](ids)
        logits = e @ self.model.w
        if bool(flag.any()):  # the parameter and the table exist in the graph only then
            e2 = self.model.tables[1](ids2[flag])
            logits = logits.index_add(0, flag.nonzero()[:, 0], e2 @ self.model.extra)
        return F.binary_cross_entropy_with_logits(logits, label), {}

    def after_backward(self, reduce):
        pass


def _batches() -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(1)
    out = []
    for step in range(STEPS):
        ids = torch.randint(0, 40, (BATCH,), generator=g)
        ids2 = torch.randint(0, 30, (BATCH,), generator=g)
        flag = torch.zeros(BATCH, dtype=torch.bool)
        if step % 3 == 1:
            flag[BATCH // 2 + 3 : BATCH // 2 + 9] = True  # flagged rows only in rank 1's half
        elif step % 3 == 2:
            flag[2:5] = True  # only in rank 0's half
        # step % 3 == 0: no flagged row anywhere: `extra` and table 1 get no gradient at all
        label = torch.randint(0, 2, (BATCH,), generator=g).float()
        out.append((ids, ids2, flag, label))
    return out


def _train(rank: int, world: int):
    from adass_ray.model.config import ModelConfig
    from adass_ray.train.comm import Comm, TorchDistComm
    from adass_ray.train.config import TrainConfig
    from adass_ray.train.loop import TrainLoop

    torch.set_num_threads(1)
    task = _Task()
    cfg = TrainConfig(model=ModelConfig(sparse=True), lr=0.05, epochs=1, num_workers=world)
    loop = TrainLoop(task=task, config=cfg, train=[], valid=None,  # type: ignore[arg-type]
                     comm=TorchDistComm() if world > 1 else Comm())
    half = BATCH // world
    for batch in _batches():
        loop.step(tuple(t[rank * half : (rank + 1) * half] for t in batch))
        loop.state.global_step += 1
    return {k: v.detach().clone() for k, v in task.model.state_dict().items()}


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    weights = _train(rank, world)
    if rank == 0:
        torch.save(weights, out)
    dist.destroy_process_group()


def test_two_workers_equal_one_worker_at_the_same_global_batch(tmp_path):
    out = str(tmp_path / "two.pt")
    mp.spawn(_worker, args=(2, 29517, out), nprocs=2, join=True)
    two = torch.load(out, weights_only=True)
    one = _train(0, 1)
    start = _Net().state_dict()
    for name in one:
        assert not torch.equal(one[name], start[name]), f"{name} never trained"
        assert torch.allclose(two[name], one[name], atol=1e-6, rtol=0), name
