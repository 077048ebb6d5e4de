"""Memory model vs measured peak RSS: ``python bench/memory_model.py [--scales 200 50] [--quick]``.

For each scale, a synthetic Criteo-preset dataset (the 26 Criteo cardinalities divided by the
scale) is generated, then one worker's training is run in a fresh subprocess the way a Ray Train
worker runs it (the same task, loaders and loop; rank 0's checkpoint and ``model.pt`` writes), for
the supernet and for a stand-alone model. Measured = the subprocess's peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) minus the peak RSS of an idle subprocess that
imported the same modules (torch included). Predicted = :func:`adass_ray.train.memory.plan_memory`
with one worker. The last line is ``worst |predicted / measured - 1|``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHILD = r"""
import json, resource, sys, tempfile
from pathlib import Path
import torch
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.loader import ShardLoader
from adass_ray.model.checkpoint import save_model
from adass_ray.train.config import TrainConfig
from adass_ray.train.loop import TrainLoop
from adass_ray.train.task import make_task
from adass_ray import configio

args = json.loads(sys.argv[1])
if args["run"]:
    torch.set_num_threads(1)
    data = Path(args["data"])
    fm = FeatureMap.load(data)
    cfg = configio.from_mapping(TrainConfig, args["cfg"])
    sizes = tuple(args["sizes"]) if args["sizes"] else None
    task = make_task(fm, cfg, args["kind"], sizes)
    loaders = {s: ShardLoader(data, fm, split=s, batch_size=16384, shuffle=False)
               for s in ("valid", "test")}
    train = ShardLoader(data, fm, split="train", batch_size=cfg.batch_size, seed=cfg.seed)
    tmp = Path(tempfile.mkdtemp())

    def on_checkpoint(state, metrics):
        torch.save(state, tmp / "state.pt")

    loop = TrainLoop(task=task, config=cfg, train=train, valid=loaders["valid"],
                     on_checkpoint=on_checkpoint)
    loop.run()
    loop.evaluate(loaders["test"], "test")
    save_model(tmp / "model.pt", kind=args["kind"], model=task.model, model_config=cfg.model,
               fm=fm, sizes=sizes)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _peak(args: dict) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], check=True,
                         capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    from adass_ray import configio
    from adass_ray.data import synthetic
    from adass_ray.data.feature_map import FeatureMap
    from adass_ray.train.config import TrainConfig
    from adass_ray.train.memory import GIB, plan_memory

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[200.0, 50.0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--quick", action="store_true", help="one small scale (CI check)")
    args = parser.parse_args(argv)
    scales = [2000.0] if args.quick else args.scales
    cfg = configio.load(TrainConfig, None, ["epochs=1", "num_workers=1", "batch_size=2048",
                                            "patience=0", "sampler.name=uniform"])
    base = _peak({"run": False})
    print(f"idle process with torch imported: {base / GIB:.2f} GiB peak RSS (subtracted)")
    print(f"{'scale':>6} {'kind':<9} {'table params':>13} {'predicted':>10} {'measured':>10} "
          f"{'ratio':>6}")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="adass-mem-") as tmp:
        for scale in scales:
            data = Path(tmp) / f"criteo-{scale:g}"
            spec = synthetic.SyntheticSpec.preset("criteo", rows=args.rows, seed=0, scale=scale)
            synthetic.generate_dataset(spec, data)
            fm = FeatureMap.load(data)
            sizes = tuple(16 for _ in fm.fields)
            for kind, sz in (("supernet", None), ("fixed", sizes)):
                plan = plan_memory(fm, cfg, kind, sz)
                measured = _peak({"run": True, "data": str(data), "kind": kind,
                                  "sizes": list(sz) if sz else None,
                                  "cfg": configio.to_dict(cfg)}) - base
                ratio = plan.per_worker / measured
                worst = max(worst, abs(ratio - 1))
                print(f"{scale:>6g} {kind:<9} {plan.table_params:>13,} "
                      f"{plan.per_worker / GIB:>8.2f} G {measured / GIB:>8.2f} G {ratio:>6.2f}",
                      flush=True)
    print(f"worst |predicted / measured - 1| = {worst:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
