"""Where a supernet training step spends its time on a GPU: ``python bench/gpu_profile.py``.

Same shape as ``bench/gpu.py`` (26 Criteo-cardinality fields, sizes 1..16, d = 16, DNN
(400, 400, 400), the training loop's dense Adam, fused on CUDA). Prints, per batch size, the
step time of the supernet with the adaptive sampler, drawing the next step's random numbers
ahead (as training on CUDA does; here on any device) and drawing them in the step, with the
uniform sampler, and of the stand-alone uniform-16 model; for each supernet, the step cut into
parts (the host's path sampling, forward, backward, sampler update, optimizer), each timed with
the device synchronized around it; after the first sampler's figures, the top operators of a
``torch.profiler`` trace of a few of its steps. ``--device cpu --quick`` checks the script.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adass_ray.data.batch import Batch  # noqa: E402
from adass_ray.model.config import ModelConfig  # noqa: E402
from adass_ray.sampling import SamplerConfig  # noqa: E402
from adass_ray.train.config import TrainConfig  # noqa: E402
from adass_ray.train.loop import dense_adam  # noqa: E402
from adass_ray.train.task import SupernetTask, Task, make_task, to_device  # noqa: E402
from bench.gpu import SIZES, feature_map, random_batch, sync, train_rate  # noqa: E402


def step_ms(task: Task, batches: list[Batch], steps: int, device: torch.device) -> float:
    """Milliseconds per training step: ``bench/gpu.py``'s timed loop (fp32, its own optimizer)."""
    return len(batches[0]) / train_rate(task, batches, steps, device, bf16=False) * 1e3


def parts_ms(task: SupernetTask, opt: torch.optim.Optimizer, batches: list[Batch], steps: int,
             device: torch.device) -> dict[str, float]:
    """The supernet step cut into parts, each bracketed by a device sync."""
    g = torch.Generator().manual_seed(0)
    out: dict[str, float] = {}

    def tick(name: str, t: float) -> float:
        sync(device)
        now = time.perf_counter()
        out[name] = out.get(name, 0.0) + (now - t)
        return now

    net = task.supernet
    for i in range(steps + 2):
        if i == 2:
            out.clear()
        batch = batches[i % len(batches)]
        sync(device)
        t = time.perf_counter()
        host = task.sampler.sample(len(batch), generator=g)
        t = tick("sample paths (host)", t)
        unified = net.unified(batch, host)
        arch = to_device(host, device)
        unified.retain_grad()
        t = tick("lookups + unifiers", t)
        logits = net.forward_from_unified(unified, batch.dense, net.wide_logits(batch))
        row_loss = F.binary_cross_entropy_with_logits(logits, batch.label, reduction="none")
        t = tick("backbone forward", t)
        opt.zero_grad(set_to_none=True)
        row_loss.mean().backward()
        t = tick("backward", t)
        grad = unified.grad
        norms = grad.pow(2).sum(dim=(0, 2)).sqrt() if grad is not None else None
        task.sampler.observe(arch, row_loss.detach(), norms, reduce=None)
        t = tick("sampler update", t)
        opt.step()
        tick("optimizer", t)
    return {k: v / steps * 1e3 for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    scale, batches, steps = (1000.0, [512], 2) if args.quick else (1.0, [8192, 65536], 10)
    hidden = (64, 32) if args.quick else (400, 400, 400)
    fm = feature_map(scale)
    g = torch.Generator().manual_seed(0)
    data = {b: [random_batch(fm, b, device, g) for _ in range(4)] for b in batches}
    for name in ("adaptive", "adaptive, drawn in step", "uniform", "stand-alone"):
        cfg = TrainConfig(model=ModelConfig(d=16, hidden=hidden, candidate_sizes=SIZES,
                                            sparse=False),
                          sampler=SamplerConfig(name="uniform" if name == "uniform" else
                                                "adaptive"))
        task = make_task(fm, cfg, "fixed" if name == "stand-alone" else "supernet",
                         (16,) * fm.num_fields if name == "stand-alone" else None)
        if isinstance(task, SupernetTask):  # "adaptive": as training on CUDA does, on any device
            task.draw_ahead = name == "adaptive"
        task.model.to(device).train()
        task.set_total_steps(1000)
        opt = dense_adam([p for p in task.model.parameters() if p.requires_grad], lr=1e-3,
                         weight_decay=0.0)
        for b in batches:
            print(f"batch {b:>6,} {name:23s}: {step_ms(task, data[b], steps, device):8.1f} "
                  f"ms/step", flush=True)
            if isinstance(task, SupernetTask):
                parts = parts_ms(task, opt, data[b], steps, device)
                print("   " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
                      + f" (sum {sum(parts.values()):.1f} ms)", flush=True)
        if name == "adaptive":
            b = batches[-1]
            activities = [torch.profiler.ProfilerActivity.CPU]
            if device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            with torch.profiler.profile(activities=activities) as prof:
                step_ms(task, data[b], 3, device)
            for key in ("self_cpu_time_total", "self_device_time_total"):
                if key == "self_device_time_total" and device.type != "cuda":
                    continue
                print(f"top operators by {key} (batch {b:,}, 5 steps):")
                table = prof.key_averages().table(sort_by=key, row_limit=15,
                                                  max_name_column_width=50)
                print(table)
        del task, opt
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
