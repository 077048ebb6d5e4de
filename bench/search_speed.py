"""P2: search-stage scoring speed: the cached evaluator vs the plain forward, and vs its floor.

Q(alpha) = exact AUC of the frozen supernet with alpha on fixed validation rows. The cached
evaluator stores every candidate's unified output for those rows once and, for backbones whose
first layer is a sum of per-field terms, each candidate's term of that layer too
(:mod:`adass_ray.model.folding`): an architecture's first layer is then one gather-and-sum, and
only the remaining layers run per architecture. Three measurements, each side by side in
alternating blocks (so load on a shared machine hits both sides; the best block of each wins):

1. **ratio** (the value): plain full forward per architecture (lookups, unifiers, backbone,
   AUC) ÷ cached per architecture, on the default configs of MovieLens (DNN (64,)) and
   nyc-flights (DNN (256, 128)), 8 and 16 fields at those datasets' cardinalities, candidate
   sizes 1..16, d = 16; the value is the smaller of the two (target ≥ 10).
2. **floor**: what no cache can skip: every layer after the folded first one (for DLRM, whose
   first top layer reads pairwise dots and does not fold: the top layers after the first),
   run on the same rows in the same blocks with its input already computed, plus the AUC.
   Target: cached ≤ 1.3 × floor, on every backbone (flights shape, tower (256, 128)).
3. archs/s of the cached evaluator for each.

Rows: the search half of the default 10,000 validation rows (5,000; ``--quick``: 2,000), fresh
distinct random architectures (so the memo never helps), untrained weights (speed does not
depend on them), one torch thread.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from adass_ray.data import synthetic
from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.loader import ShardLoader
from adass_ray.metrics import auc
from adass_ray.model.backbones import BACKBONES
from adass_ray.model.config import ModelConfig, build_supernet
from adass_ray.search.evaluator import CachedEvaluator, naive_quality
from adass_ray.search.rows import validation_subsample

SIZES = (1, 2, 4, 8, 16)
# the prepared datasets' cardinalities (ids per field), from their feature maps
MOVIELENS = (944, 1653, 796, 74, 62, 22, 3, 20)
FLIGHTS = (6907, 3998, 3744, 105, 61, 32, 20, 17, 13, 4, 36, 128, 47, 49, 7, 4)
CONFIGS = {"MovieLens": (MOVIELENS, (64,)), "flights": (FLIGHTS, (256, 128))}
FLOOR_TARGET = 1.3


def _distinct_archs(m: int, nf: int, nk: int, seed: int) -> list[tuple[int, ...]]:
    """``m`` distinct random architectures (so the memo cache never helps)."""
    rng = random.Random(seed)
    seen: dict[tuple[int, ...], None] = {}
    while len(seen) < m:
        seen[tuple(rng.randrange(nk) for _ in range(nf))] = None
    return list(seen)


def _rows(cards: tuple[int, ...], rows: int, tmp: Path) -> tuple[FeatureMap, Batch]:
    spec = synthetic.SyntheticSpec(rows=12 * rows, cardinalities=cards, seed=0)
    data = tmp / f"data{len(cards)}"
    synthetic.generate_dataset(spec, data)
    fm = FeatureMap.load(data)
    batch = validation_subsample(ShardLoader(data, fm, split="valid", shuffle=False), rows, 0)
    return fm, batch


def _floor(ev: CachedEvaluator, archs: list[tuple[int, ...]]) -> Callable[[], None]:
    """A replay of what the cached path cannot skip for ``archs``: their inputs to the layers
    after the folded one are recorded in one untimed pass; the replay runs those layers on them
    in the same blocks and computes every AUC."""
    recorded: list[tuple[Any, ...]] = []
    if ev.fold is not None:
        fold = ev.fold
        head = type(fold).head

        def record(s: Tensor, fields: Tensor | None) -> Tensor:
            recorded.append((s.clone(), fields))
            return head(fold, s, fields)

        fold.head = record  # type: ignore[method-assign]
        try:
            ev.logits(archs)
        finally:
            del fold.head

        def rest(s: Tensor, fields: Tensor | None) -> Tensor:
            return head(fold, s, fields)
    else:  # DLRM: the top MLP's layers after its first
        top = list(ev.supernet.backbone.top)
        hook = top[0].register_forward_hook(lambda _m, _a, out: recorded.append((out,)))
        try:
            ev.logits(archs)
        finally:
            hook.remove()

        def rest(x: Tensor) -> Tensor:  # type: ignore[misc]
            for layer in top[1:]:
                x = layer(x)
            return x.squeeze(1)

    m = len(archs)

    def replay() -> None:
        with torch.inference_mode():
            out = torch.cat([rest(*r).view(-1, m) for r in recorded]).t().double().numpy()
        for row in out:
            auc(ev.labels, row)

    return replay


def _cache_mb(ev: CachedEvaluator) -> float:
    """Megabytes of the evaluator's caches (candidate vectors, folded first-layer terms and
    their row index)."""
    parts = [t for t in (ev.unified, ev.folded, getattr(ev, "_term_rows", None)) if t is not None]
    return sum(t.numel() * t.element_size() for t in parts) / 2**20


def _per_arch(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) / n


def _cached_vs_floor(ev: CachedEvaluator, archs: list[tuple[int, ...]], block: int
                     ) -> tuple[float, float]:
    """Best-of-blocks seconds per architecture of the cached path and of its floor."""
    cached, floor = [], []
    for lo in range(0, len(archs), block):
        chunk = archs[lo:lo + block]
        cached.append(_per_arch(lambda c=chunk: ev.evaluate(c), len(chunk)))
        floor.append(_per_arch(_floor(ev, chunk), len(chunk)))
    return min(cached), min(floor)


def p2(quick: bool) -> float:
    # One thread: on a shared 2-core machine a second intra-op thread mostly waits for a core,
    # and that waiting dominates the small per-block ops (measured: 44 vs 1 ms per arch).
    torch.set_num_threads(1)
    rows, blocks, block, naive_block = (2_000, 2, 64, 3) if quick else (5_000, 3, 64, 6)
    ratios = {}
    with tempfile.TemporaryDirectory(prefix="adass-p2-") as tmp:
        data = {name: _rows(cards, rows, Path(tmp)) for name, (cards, _) in CONFIGS.items()}
    print(f"{rows:,} validation rows, candidate sizes {SIZES}, d=16, 1 thread; fresh random "
          f"architectures, {blocks} alternating blocks, best block each")
    for name, (cards, hidden) in CONFIGS.items():
        fm, batch = data[name]
        torch.manual_seed(0)
        net = build_supernet(fm, ModelConfig(hidden=hidden, candidate_sizes=SIZES)).eval()
        archs = _distinct_archs(1 + blocks * block, len(cards), len(SIZES), seed=1)
        t0 = time.perf_counter()
        ev = CachedEvaluator(net, batch)
        build = time.perf_counter() - t0
        ev.evaluate(archs[:1])  # warm-up
        naive_quality(net, batch, archs[0])
        cached_t, naive_t, floor_t, naive_q, naive_archs = [], [], [], [], []
        for i in range(blocks):
            chunk = archs[1 + i * block:1 + (i + 1) * block]
            cached_t.append(_per_arch(lambda c=chunk, e=ev: e.evaluate(c), len(chunk)))
            floor_t.append(_per_arch(_floor(ev, chunk), len(chunk)))
            few = chunk[:naive_block]
            t0 = time.perf_counter()
            naive_q += [naive_quality(net, batch, a) for a in few]
            naive_t.append((time.perf_counter() - t0) / len(few))
            naive_archs += few
        assert ev.hits == 0, "architectures repeated: the memo cache would have helped"
        cached, naive, floor = min(cached_t), min(naive_t), min(floor_t)
        diff = max(abs(a - b) for a, b in zip(naive_q, ev.evaluate(naive_archs), strict=True))
        ratios[name] = naive / cached
        print(f"{name} (DNN {hidden}, {len(cards)} fields): naive {naive * 1e3:.2f} ms, cached "
              f"{cached * 1e3:.2f} ms ({1 / cached:,.0f} archs/s), floor {floor * 1e3:.2f} ms "
              f"per architecture -> ratio {naive / cached:.1f}x naive, {cached / floor:.2f}x "
              f"floor; ceiling naive / floor {naive / floor:.1f}x; cache build {build:.2f} s, "
              f"{_cache_mb(ev):.0f} MB; max |dAUC| vs naive {diff:.1e}")
    fm, batch = data["flights"]
    print(f"every backbone, flights shape, tower (256, 128) (target: cached <= {FLOOR_TARGET} "
          "x floor):")
    for backbone in BACKBONES:
        torch.manual_seed(0)
        cfg = ModelConfig(backbone=backbone, hidden=(256, 128), candidate_sizes=SIZES)
        net = build_supernet(fm, cfg).eval()
        ev = CachedEvaluator(net, batch)
        archs = _distinct_archs(1 + blocks * block, fm.num_fields, len(SIZES), seed=2)
        ev.evaluate(archs[:1])
        cached, floor = _cached_vs_floor(ev, archs[1:], block)
        path = "folded" if ev.fold is not None else "unfolded"
        print(f"  {backbone:7s} {path:8s}: cached {cached * 1e3:6.2f} ms ({1 / cached:6,.0f} "
              f"archs/s), floor {floor * 1e3:6.2f} ms -> {cached / floor:.2f}x floor")
    value = min(ratios.values())
    print(f"ratio (smaller of {', '.join(ratios)}): {value:.2f}x")
    return value
