"""L1: our per-worker shard loader vs Ray Data, rows/s to torch batches on the same shards.

Ours: ``ShardLoader`` (pyarrow read of the worker's slice, then batches by tensor indexing),
start-up included. Ray Data: ``ray.data.read_parquet(...).iter_torch_batches`` on the same
files, start-up included (what a Ray Train worker would pay through ``get_dataset_shard``).
Value: ours ÷ Ray Data (> 1 means ours is faster).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from adass_ray.data import synthetic
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.loader import ShardLoader


def run(quick: bool) -> float:
    from adass_ray.distributed.runtime import ensure_ray

    rows = 200_000 if quick else 1_000_000
    batch = 4096
    with tempfile.TemporaryDirectory(prefix="adass-l1-") as tmp:
        data = Path(tmp) / "data"
        spec = synthetic.SyntheticSpec.preset("criteo", rows=rows, scale=100.0, seed=0,
                                              split_fractions=(1.0, 0.0, 0.0))
        synthetic.generate_dataset(spec, data)
        fm = FeatureMap.load(data)
        t0 = time.perf_counter()
        n = sum(len(b) for b in ShardLoader(data, fm, split="train", batch_size=batch, seed=0))
        ours = n / (time.perf_counter() - t0)

        ensure_ray(num_cpus=2)
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        files = [str(p) for p in fm.split_paths(data, "train")]
        t0 = time.perf_counter()
        m = 0
        for b in ray.data.read_parquet(files).random_shuffle(seed=0).iter_torch_batches(
            batch_size=batch
        ):
            m += len(b["label"])
        theirs = m / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        m = 0
        for b in ray.data.read_parquet(files).iter_torch_batches(
            batch_size=batch, local_shuffle_buffer_size=batch * 4
        ):
            m += len(b["label"])
        local_shuffle = m / (time.perf_counter() - t0)
    print(f"{rows:,} rows × {fm.num_fields} fields, batch {batch}, one epoch incl. start-up")
    print(f"ShardLoader (full shuffle)               : {ours / 1e6:6.2f} M rows/s")
    print(f"ray.data iter_torch_batches (full shuffle): {theirs / 1e6:6.2f} M rows/s")
    print(f"ray.data iter_torch_batches (local buffer): {local_shuffle / 1e6:6.2f} M rows/s")
    return ours / max(theirs, local_shuffle)
