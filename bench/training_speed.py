"""P1, P3, P5: training-step costs, each measured side by side in one run.

* P1 — supernet step with per-row adaptive sampling ÷ stand-alone uniform model step, same width
  d, same batch (target ≤ 1.25).
* P3 — end-to-end supernet training samples/s (loader + sampling + forward/backward + Adam) ÷
  the MLP-only forward+backward+Adam ceiling for the same batch and widths (target ≥ 0.5).
* P5 — one-worker Ray Train epoch ÷ the same loop without Ray, start-up excluded (target ≤ 1.15).

Data: synthetic, Criteo-shaped (26 fields, cardinalities divided by ``scale``).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from adass_ray.data import synthetic
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.loader import ShardLoader
from adass_ray.distributed.train import make_task
from adass_ray.model.backbones import build_backbone
from adass_ray.model.config import ModelConfig
from adass_ray.sampling import SamplerConfig
from adass_ray.train.config import TrainConfig
from adass_ray.train.loop import TrainLoop

# (400, 400, 400): the DNN tower of the public CTR benchmarks (BARS); P1 also prints a small tower
D, BATCH, HIDDEN = 16, 4096, (400, 400, 400)
SMALL = (256, 128)


def _data(tmp: str, rows: int, scale: float) -> Path:
    out = Path(tmp) / "data"
    synthetic.generate_dataset(
        synthetic.SyntheticSpec.preset("criteo", rows=rows, scale=scale, seed=0), out
    )
    return out


def _cfg(threads: int, hidden: tuple[int, ...] = HIDDEN, **kw: object) -> TrainConfig:
    base = dict(model=ModelConfig(d=D, hidden=hidden),
                sampler=SamplerConfig(name="adaptive", warmup_steps=0),
                batch_size=BATCH, epochs=1, patience=0, num_workers=1,
                cpus_per_worker=float(threads), use_gpu="no")
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _loop(data: Path, fm: FeatureMap, cfg: TrainConfig, kind: str) -> tuple[TrainLoop, ShardLoader]:
    task = make_task(fm, cfg, kind, (D,) * fm.num_fields if kind == "fixed" else None)
    train = ShardLoader(data, fm, split="train", batch_size=cfg.batch_size, seed=0)
    valid = ShardLoader(data, fm, split="valid", batch_size=16384, shuffle=False, max_rows=4096)
    return TrainLoop(task=task, config=cfg, train=train, valid=valid), train


def _step_time(loop: TrainLoop, loader: ShardLoader, steps: int) -> float:
    batches = [b for _, b in zip(range(steps + 3), loader, strict=False)]
    for b in batches[:3]:
        loop.step(b)  # warm-up
    t0 = time.perf_counter()
    for b in batches[3:]:
        loop.step(b)
    return (time.perf_counter() - t0) / len(batches[3:])


def p1(quick: bool) -> float:
    torch.set_num_threads(2)
    ratios = {}
    with tempfile.TemporaryDirectory(prefix="adass-p1-") as tmp:
        data = _data(tmp, 60_000 if quick else 200_000, 100.0)
        fm = FeatureMap.load(data)
        steps = 5 if quick else 20
        print(f"batch {BATCH}, {fm.num_fields} fields, d={D}, sparse tables + lazy Adam, "
              f"2 threads, best of 3 × {steps} steps")
        for hidden in (HIDDEN, SMALL):
            sup, loader = _loop(data, fm, _cfg(2, hidden), "supernet")
            fix, _ = _loop(data, fm, _cfg(2, hidden), "fixed")
            t_fix, t_sup = [], []
            for _ in range(3):  # interleave so drift hits both
                t_fix.append(_step_time(fix, loader, steps))
                t_sup.append(_step_time(sup, loader, steps))
            a, b = min(t_sup), min(t_fix)
            ratios[hidden] = a / b
            print(f"MLP {hidden}: supernet step (per-row adaptive paths) {a * 1e3:6.1f} ms, "
                  f"stand-alone uniform-{D} step {b * 1e3:6.1f} ms, ratio {a / b:.3f}")
    return ratios[HIDDEN]


def p3(quick: bool) -> float:
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="adass-p3-") as tmp:
        data = _data(tmp, 60_000 if quick else 200_000, 100.0)
        fm = FeatureMap.load(data)
        loop, loader = _loop(data, fm, _cfg(2), "supernet")
        n = 0
        loader.set_epoch(0)
        it = iter(loader)
        for _ in range(3):
            loop.step(next(it))
        t0 = time.perf_counter()
        for b in it:
            loop.step(b)
            n += len(b)
        e2e = n / (time.perf_counter() - t0)
        mlp = build_backbone("dnn", num_fields=fm.num_fields, d=D, hidden=HIDDEN)
        opt = torch.optim.Adam(mlp.parameters(), lr=1e-3)
        x = torch.randn(BATCH, fm.num_fields, D)
        y = torch.randint(0, 2, (BATCH,)).float()
        dense = torch.zeros(BATCH, 0)
        steps = 5 if quick else 20

        def mlp_step() -> None:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(mlp(x, dense), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        for _ in range(3):
            mlp_step()
        t0 = time.perf_counter()
        for _ in range(steps):
            mlp_step()
        ceiling = steps * BATCH / (time.perf_counter() - t0)
    print(f"end-to-end supernet training: {e2e / 1e3:8.1f} k samples/s "
          "(loader + sampling + fwd/bwd + Adam)")
    print(f"MLP-only fwd+bwd+Adam ceiling: {ceiling / 1e3:8.1f} k samples/s")
    return e2e / ceiling


def p5(quick: bool) -> float:
    from adass_ray.distributed.runtime import ensure_ray
    from adass_ray.distributed.train import fit

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="adass-p5-") as tmp:
        data = _data(tmp, 60_000 if quick else 300_000, 100.0)
        fm = FeatureMap.load(data)
        cfg = _cfg(2, epochs=2)
        # without Ray: the same loop, same data, same threads; epoch 2 (warm) is compared
        loop, _ = _loop(data, fm, cfg, "supernet")
        loop.run()
        local = loop.state.history[-1]["epoch_seconds"]
        ensure_ray(num_cpus=2)
        fit(data=data, out=Path(tmp) / "ray", cfg=cfg, kind="supernet")
        hist = json.loads((Path(tmp) / "ray" / "history.json").read_text())
        remote = hist[-1]["epoch_seconds"]
    print(f"epoch 2 of {fm.splits['train'].rows:,} rows, supernet, 1 worker × 2 threads")
    print(f"Ray Train worker: {remote:6.2f} s")
    print(f"plain loop:       {local:6.2f} s")
    return remote / local
