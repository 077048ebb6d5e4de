"""On CUDA, a training step and an evaluation never make the host wait for the device.

``torch.cuda.set_sync_debug_mode("error")`` turns every synchronizing call (``.item()``,
``.tolist()`` of a device tensor, a blocking copy, ``nonzero``...) into an error. Skipped
without CUDA. Scope: single-valued fields, dense tables and the uniform path sampler (a multi-valued
field's pooled lookup and the sparse optimizer read sizes back from the device in their
backward / step; the adaptive sampler copies its per-step statistics to the host).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap, FieldSpec
from adass_ray.model.config import ModelConfig
from adass_ray.sampling import SamplerConfig
from adass_ray.search.evaluator import CachedEvaluator
from adass_ray.train.config import TrainConfig
from adass_ray.train.loop import dense_adam
from adass_ray.train.task import SupernetTask, make_task

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FM = FeatureMap(
    name="gpu",
    label="label",
    fields=tuple(FieldSpec(name=f"f{i}", kind="categorical", vocab_size=v)
                 for i, v in enumerate((50, 7, 1000, 3, 120, 9))),
    candidate_sizes=(0, 2, 4, 8, 16),
)


def _batch(rows: int, seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randint(0, f.vocab_size, (rows,), generator=g) for f in FM.fields], 1)
    label = (torch.rand(rows, generator=g) < 0.3).float()
    return Batch(ids=ids, multi=(), dense=torch.zeros(rows, 0), label=label)


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("kind", ["supernet", "fixed"])
def test_training_step_and_evaluation_do_not_sync(kind: str, bf16: bool) -> None:
    device = torch.device("cuda")
    cfg = TrainConfig(model=ModelConfig(d=16, hidden=(64, 32), sparse=False), bf16=bf16,
                      sampler=SamplerConfig(name="uniform"))
    task = make_task(FM, cfg, kind, None if kind == "supernet" else (2, 0, 16, 4, 8, 16))
    task.model.to(device).train()
    opt = dense_adam(list(task.model.parameters()), lr=1e-3, weight_decay=0.0)
    assert opt.defaults["fused"]  # the training loop's optimizer: fused on CUDA
    batches = [_batch(512, s).to(device) for s in range(3)]
    g = torch.Generator().manual_seed(0)

    def step(batch: Batch) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = task.train_step(batch, generator=g, reduce=None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        task.after_backward(None)
        opt.step()
        return loss.detach()

    step(batches[0])  # lazy initialisation (optimizer state, library handles) may sync once
    torch.cuda.synchronize()
    ev = None
    if kind == "supernet":
        ev = CachedEvaluator(task.model, _batch(300, 9))  # type: ignore[arg-type]
    archs = [(1, 2, 3, 4, 0, 2), (4,) * 6]
    if ev is not None:
        ev.logits(archs)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [step(b) for b in batches[1:]]
        logits = ev.logits(archs) if ev is not None else None
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert all(torch.isfinite(x).item() for x in losses)
    assert losses[0].dtype == torch.float32  # the loss stays fp32 under autocast
    if ev is not None:
        assert logits is not None and logits.shape == (2, 300)
        assert ev.fold is not None  # the folded path is the one checked


def _count_handovers(ahead: Any, taken: list[bool]) -> None:
    """Record in ``taken`` whether each later ``ahead.take`` handed draws over."""
    take = ahead.take

    def counted(key: int, generator: torch.Generator) -> object:
        draws = take(key, generator)
        taken.append(draws is not None)
        return draws

    ahead.take = counted


def test_adaptive_supernet_on_cuda_draws_ahead_and_samples_the_same_paths() -> None:
    device = torch.device("cuda")
    cfg = TrainConfig(model=ModelConfig(d=16, hidden=(64, 32), sparse=False),
                      sampler=SamplerConfig(name="adaptive", warmup_steps=1))
    task = make_task(FM, cfg, "supernet")
    assert isinstance(task, SupernetTask)
    task.model.to(device).train()
    opt = dense_adam(list(task.model.parameters()), lr=1e-3, weight_decay=0.0)
    reference = cfg.sampler.build(candidate_sizes=FM.candidate_sizes, vocab_sizes=FM.vocab_sizes)
    g, g_ref = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    taken: list[bool] = []
    for s in range(4):
        batch = _batch(512, s).to(device)
        ahead = getattr(task.sampler, "_ahead", None)
        if s == 1 and ahead is not None:  # count the hand-overs from here on
            _count_handovers(ahead, taken)
        loss, _ = task.train_step(batch, generator=g, reduce=None)
        arch = task._pending[0] if task._pending is not None else None
        assert arch is not None
        assert torch.equal(arch.cpu(), reference.sample(512, generator=g_ref))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        task.after_backward(None)
        opt.step()
        # the reference learns from the same statistics
        reference.load_state_dict(task.sampler.state_dict())
    assert taken == [True, True, True]  # steps 1-3 took the draws made during the step before
