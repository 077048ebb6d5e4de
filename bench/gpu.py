"""GPU throughput at Criteo shape: ``python bench/gpu.py [--device cuda|cpu] [--quick]``.

Prints, for each batch size: supernet training samples/s (per-row paths from the default
sampler, dense Adam over all candidate tables and the network) and stand-alone training
samples/s (every field at size 16, same tower), each in fp32 and, on CUDA, with the backbone
under bf16 autocast (``train.bf16``); then the cached evaluator's architectures/s (exact AUC on
5,000 rows, fresh random architectures) and the peak GPU memory of each phase.

Shape: 26 single-valued fields with the Criteo-Kaggle cardinalities (33.8M ids; ``--scale``
divides them), candidate sizes 1..16, d = 16, DNN (400, 400, 400). Batches are random ids made
on the device before timing, so the figures are of the training step itself (sampling the
paths on the host, lookups, backbone, backward, optimizer), not of data loading. Sized to take
under 5 minutes on one H100/H200-class GPU (not yet run on one); ``--device cpu --quick``
checks the script on a CPU.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adass_ray.data.batch import Batch  # noqa: E402
from adass_ray.data.feature_map import FeatureMap, FieldSpec  # noqa: E402
from adass_ray.data.synthetic import CRITEO_CARDINALITIES  # noqa: E402
from adass_ray.model.config import ModelConfig  # noqa: E402
from adass_ray.search.evaluator import CachedEvaluator  # noqa: E402
from adass_ray.train.config import TrainConfig  # noqa: E402
from adass_ray.train.loop import dense_adam  # noqa: E402
from adass_ray.train.task import Task, make_task  # noqa: E402

SIZES = (1, 2, 4, 8, 16)


def feature_map(scale: float) -> FeatureMap:
    fields = tuple(
        FieldSpec(name=f"C{i + 1}", kind="categorical", vocab_size=max(2, int(v / scale)))
        for i, v in enumerate(CRITEO_CARDINALITIES)
    )
    return FeatureMap(name="criteo-shape", label="label", fields=fields, candidate_sizes=SIZES)


def random_batch(fm: FeatureMap, rows: int, device: torch.device, g: torch.Generator) -> Batch:
    ids = torch.stack([torch.randint(0, f.vocab_size, (rows,), generator=g) for f in fm.fields], 1)
    label = (torch.rand(rows, generator=g) < 0.25).float()
    return Batch(ids=ids, multi=(), dense=torch.zeros(rows, 0), label=label).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> str:
    if device.type != "cuda":
        return "n/a (CPU)"
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"


def train_rate(task: Task, batches: list[Batch], steps: int, device: torch.device,
               bf16: bool) -> float:
    """Samples/s of ``steps`` training steps (after 2 warm-up steps), the loop's step body."""
    params = [p for p in task.model.parameters() if p.requires_grad]
    opt = dense_adam(params, lr=1e-3, weight_decay=0.0)  # the training loop's optimizer
    g = torch.Generator().manual_seed(0)

    def step(batch: Batch) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
            loss, _ = task.train_step(batch, generator=g, reduce=None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        task.after_backward(None)
        opt.step()
        return loss.detach()

    task.model.train()
    for b in batches[:2]:
        step(b)
    sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        loss = step(batches[i % len(batches)])
    sync(device)
    elapsed = time.perf_counter() - t0
    assert torch.isfinite(loss).item(), "training diverged"
    return steps * len(batches[0]) / elapsed


def eval_rate(task: Task, batch: Batch, archs: int) -> tuple[float, bool]:
    """Architectures/s of the cached evaluator on ``batch`` (fresh archs, exact AUC)."""
    net = task.model
    ev = CachedEvaluator(net, batch)  # type: ignore[arg-type]
    rng = random.Random(0)
    nf, nk = net.num_fields, len(SIZES)  # type: ignore[union-attr]
    todo = list(dict.fromkeys(tuple(rng.randrange(nk) for _ in range(nf))
                              for _ in range(archs + 64)))
    ev.evaluate(todo[:64])  # warm-up
    t0 = time.perf_counter()
    ev.evaluate(todo[64:])
    return (len(todo) - 64) / (time.perf_counter() - t0), ev.fold is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, to check the script (seconds on a CPU)")
    parser.add_argument("--scale", type=float, default=None,
                        help="divide the Criteo cardinalities (default 1; --quick: 1000)")
    parser.add_argument("--batches", default=None,
                        help="comma-separated batch sizes (default 8192,32768,65536)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per config")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is visible; use --device cpu")
    quick = args.quick
    scale = args.scale or (1000.0 if quick else 1.0)
    batches = [int(b) for b in (args.batches or ("512" if quick else "8192,32768,65536"))
               .split(",")]
    steps = args.steps or (2 if quick else 20)
    hidden = (64, 32) if quick else (400, 400, 400)
    eval_rows, eval_archs = (400, 8) if quick else (5_000, 512)
    fm = feature_map(scale)
    cfg = TrainConfig(model=ModelConfig(d=16, hidden=hidden, candidate_sizes=SIZES, sparse=False))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {device} ({name}), torch {torch.__version__}; {fm.num_fields} fields, "
          f"{sum(fm.vocab_sizes):,} ids (Criteo / {scale:g}), sizes {SIZES}, d=16, DNN {hidden}, "
          f"dense Adam, {cfg.sampler.name} path sampler; {steps} timed steps per config")
    g = torch.Generator().manual_seed(0)
    precisions = [False, True] if device.type == "cuda" else [False]
    data = {b: [random_batch(fm, b, device, g) for _ in range(4)] for b in batches}
    # one model per kind (building the Criteo-size tables takes a while); speed does not
    # depend on what earlier configs trained into it; each config gets a fresh optimizer
    for kind, sizes in (("supernet", None), ("stand-alone", (16,) * fm.num_fields)):
        task = make_task(fm, cfg, "supernet" if sizes is None else "fixed", sizes)
        task.model.to(device)
        for bf16 in precisions:
            for batch_size in batches:
                peak_reset(device)
                rate = train_rate(task, data[batch_size], steps, device, bf16)
                print(f"batch {batch_size:>6,}  {kind:11s} {'bf16' if bf16 else 'fp32'}: "
                      f"{rate:>12,.0f} samples/s, peak {peak_gib(device)}", flush=True)
        if sizes is None:  # the evaluator scores the supernet just trained
            del data
            peak_reset(device)
            task.model.eval()
            rate, folded = eval_rate(task, random_batch(fm, eval_rows, device, g), eval_archs)
            print(f"evaluation ({eval_rows:,} rows, {'folded' if folded else 'unfolded'} first "
                  f"layer, exact AUC): {rate:,.0f} archs/s, peak {peak_gib(device)}", flush=True)
            data = {b: [random_batch(fm, b, device, g) for _ in range(4)] for b in batches}
        del task
    return 0


if __name__ == "__main__":
    sys.exit(main())
