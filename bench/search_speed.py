"""P2: search-stage scoring speed, cached + batched evaluator vs the plain forward per architecture.

Q(alpha) = AUC of the frozen supernet with alpha on a fixed validation subsample. The cached
evaluator computes every candidate's unified output for those rows once, then scores an
architecture by a gather plus the backbone, many architectures per backbone call. The reference
runs the full forward (embedding lookups, unifiers, backbone) for each architecture on the same
rows. Both use exact AUC. Value: naive seconds per architecture ÷ cached seconds per
architecture (target ≥ 10). The one-off cache build is printed separately, and so is the split
of the naive forward into its embedding and backbone stages: caching removes only the first,
so (embeddings + backbone) ÷ backbone bounds the ratio on a given machine.

Data: synthetic, Criteo-shaped (26 fields, cardinalities divided by 100), untrained weights
(speed does not depend on them), DNN backbone (400, 400, 400), d = 16.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from adass_ray.data import synthetic
from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.loader import ShardLoader
from adass_ray.model.config import ModelConfig, build_supernet
from adass_ray.model.supernet import Supernet
from adass_ray.search.evaluator import CachedEvaluator, naive_quality, validation_subsample

HIDDEN = (400, 400, 400)
SMALL = (64,)  # the MovieLens config's tower


def _distinct_archs(m: int, nf: int, nk: int, seed: int) -> list[tuple[int, ...]]:
    """``m`` distinct random architectures (so the memo cache never helps)."""
    rng = random.Random(seed)
    seen: dict[tuple[int, ...], None] = {}
    while len(seen) < m:
        seen[tuple(rng.randrange(nk) for _ in range(nf))] = None
    return list(seen)


def _stage_split(net: Supernet, batch: Batch, arch: tuple[int, ...]) -> tuple[float, float]:
    """Seconds of the naive forward's two stages: embeddings (lookups + unifiers), backbone."""
    with torch.inference_mode():
        t0 = time.perf_counter()
        unified = net.unified(batch, arch)
        t1 = time.perf_counter()
        net.forward_from_unified(unified, batch.dense)
        return t1 - t0, time.perf_counter() - t1


def p2(quick: bool) -> float:
    torch.set_num_threads(2)
    rows, m, m_naive, blocks = (4_000, 50, 9, 3) if quick else (10_000, 200, 21, 3)
    with tempfile.TemporaryDirectory(prefix="adass-p2-") as tmp:
        data = Path(tmp) / "data"
        spec = synthetic.SyntheticSpec.preset("criteo", rows=12 * rows, scale=100.0, seed=0)
        synthetic.generate_dataset(spec, data)
        fm = FeatureMap.load(data)
        batch = validation_subsample(ShardLoader(data, fm, split="valid", shuffle=False), rows, 0)
    ratios = {}
    for hidden in (HIDDEN, SMALL):
        ratios[hidden] = _measure(fm, batch, hidden, m, m_naive, blocks)
    return ratios[HIDDEN]


def _measure(fm: FeatureMap, batch: Any, hidden: tuple[int, ...], m: int, m_naive: int,
             blocks: int) -> float:
    torch.manual_seed(0)
    net = build_supernet(fm, ModelConfig(hidden=hidden)).eval()
    nk = len(net.candidate_sizes)
    archs = _distinct_archs(m + 1, fm.num_fields, nk, seed=0)
    print(f"{len(batch):,} validation rows, {fm.num_fields} fields x {nk} candidates "
          f"{net.candidate_sizes}, d={net.d}, DNN {hidden}, 2 threads; {m} distinct architectures")

    t0 = time.perf_counter()
    evaluator = CachedEvaluator(net, batch)
    build = time.perf_counter() - t0
    evaluator.evaluate(archs[:1])  # warm-up (allocator, kernels)
    naive_quality(net, batch, archs[0])
    # Alternate blocks of the two so that drift on a shared machine hits both; best block wins.
    cached_t, naive_t, naive_q, naive_archs = [], [], [], []
    per_c, per_n = m // blocks, m_naive // blocks
    for i in range(blocks):
        chunk = archs[1 + i * per_c:1 + (i + 1) * per_c]
        t0 = time.perf_counter()
        evaluator.evaluate(chunk)
        cached_t.append((time.perf_counter() - t0) / len(chunk))
        chunk = archs[1 + i * per_n:1 + (i + 1) * per_n]
        t0 = time.perf_counter()
        naive_q += [naive_quality(net, batch, a) for a in chunk]
        naive_t.append((time.perf_counter() - t0) / len(chunk))
        naive_archs += chunk
    assert evaluator.hits == 0, "architectures repeated: the memo cache would have helped"
    cached, naive = min(cached_t), min(naive_t)
    # the same architectures through both paths (memo hits now, after the timing)
    diff = max(abs(a - b) for a, b in zip(naive_q, evaluator.evaluate(naive_archs), strict=True))
    split = [_stage_split(net, batch, a) for a in archs[1:4]]
    emb, bb = min(s[0] for s in split), min(s[1] for s in split)

    print(f"  cache build (every candidate's unified output, once): {build * 1e3:8.1f} ms")
    print(f"  cached + batched ({evaluator.archs_per_call} archs per backbone call): "
          f"{cached * 1e3:8.2f} ms per architecture (best of {blocks} blocks of {per_c})")
    print(f"  naive full forward: {naive * 1e3:8.2f} ms per architecture "
          f"(best of {blocks} blocks of {per_n}); max |dAUC| vs cached on the same archs "
          f"{diff:.1e}")
    print(f"  naive stages: embeddings {emb * 1e3:.1f} ms + backbone {bb * 1e3:.1f} ms; caching "
          f"can skip only the first, so the ceiling is about {(emb + bb) / bb:.2f}x")
    print(f"  ratio {naive / cached:.2f}x; with the cache build amortised over {m}: "
          f"{naive / (cached + build / m):.2f}x")
    return naive / cached
