"""How much of the budget can an architecture use and still respect the planted structure?

On a synthetic dataset (``adass-ray prepare --source synthetic``) the feature map names the
informative and the noise fields. The harness's strict planted check asks that every informative
field get a larger size than every noise field; the budget-use target asks for a cost of at
least ``--fill`` (0.9) of the budget unless a smaller architecture scores higher on Q_B. This
bench counts, over the whole search space and with no model at all, which architectures meet
each:

    python bench/planted_ceiling.py DATA [--budgets 0.25,0.5,0.8] [--fill 0.9] [--d-base 16]

Per budget it prints B in parameters; how many architectures fit (C ≤ B); the share of those that
pass the strict check; the largest cost/B among the ones that pass; and how many of the
architectures that fill the budget (C ≥ fill·B) pass. When that last count is 0, no selection can
meet both targets at that budget, whatever the search or the supernet.

Counts come from a dynamic programme over fields on the integer cost (so 26 fields with
5 sizes, 1.5e18 architectures, take a second), split by the largest noise size. They are
float64: exact up to 2^53, rounded beyond (relative error about 1e-16, far below the shares
printed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from adass_ray.data.feature_map import FeatureMap  # noqa: E402
from adass_ray.errors import ConfigError  # noqa: E402
from adass_ray.search.space import Budget, SearchSpace  # noqa: E402
from bench.common import run_main  # noqa: E402

#: largest budget in parameters the bench counts (one float64 per unit of cost: 400 MB)
MAX_CAP = 50_000_000


def cost_counts(vocab: Sequence[int], choices: Sequence[Sequence[int]], cap: int) -> np.ndarray:
    """``out[c]``: how many architectures (field f takes a size from ``choices[f]``) cost exactly
    ``c = Σ_f V_f·s_f`` parameters, for ``c ≤ cap``; float64 (counts past 2^53 are rounded)."""
    out = np.zeros(cap + 1)
    out[0] = 1.0
    for v, sizes in zip(vocab, choices, strict=True):
        nxt = np.zeros_like(out)
        for s in sizes:
            step = v * s
            if step <= cap:
                nxt[step:] += out[: cap + 1 - step]
        out = nxt
    return out


def planted_counts(vocab: Sequence[int], sizes: Sequence[int], informative: Sequence[int],
                   cap: int) -> np.ndarray:
    """Like :func:`cost_counts`, over the architectures where every informative field's size is
    larger than every other field's (the strict planted check)."""
    total = np.zeros(cap + 1)
    inf = set(informative)
    for j, top in enumerate(sizes):  # top: the largest size any noise field takes
        below = sizes[: j + 1]
        choices = [[s for s in sizes if s > top] if f in inf else list(below)
                   for f in range(len(vocab))]
        exact = cost_counts(vocab, choices, cap)
        if j:  # remove the architectures whose noise fields all sit below ``top``
            lower = [[s for s in sizes if s > top] if f in inf else list(sizes[:j])
                     for f in range(len(vocab))]
            exact = exact - cost_counts(vocab, lower, cap)
        total += exact
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="a prepared synthetic dataset (feature_map.json)")
    ap.add_argument("--budgets", default="0.25,0.5,0.8")
    ap.add_argument("--fill", type=float, default=0.9, help="the budget-use target, as cost/B")
    ap.add_argument("--d-base", type=int, default=16)
    args = ap.parse_args()
    if not (args.data / "feature_map.json").is_file():
        raise ConfigError(f"{args.data}: no feature_map.json (run adass-ray prepare first)")
    fm = FeatureMap.load(args.data)
    truth = (fm.metadata or {}).get("ground_truth")
    if not truth:
        raise ConfigError(f"{args.data}: no planted structure in the feature map "
                          "(prepare it with --source synthetic)")
    if not 0 < args.fill <= 1:
        raise ConfigError(f"--fill {args.fill}: need a share of the budget in (0, 1]")
    space = SearchSpace.from_feature_map(fm)
    names, vocab = list(fm.field_names), list(fm.vocab_sizes)
    sizes = list(space.candidate_sizes)
    informative = [names.index(n) for n in truth["informative"]]
    caps = {}
    for spec in (b.strip() for b in args.budgets.split(",")):
        caps[spec] = Budget.parse(spec).resolve(space, d_base=args.d_base)
        if caps[spec] > MAX_CAP:
            raise ConfigError(f"budget {spec}: {caps[spec]:,} params; this bench counts by "
                              f"cost and handles at most {MAX_CAP:,}")
        if caps[spec] < sum(vocab) * sizes[0]:
            raise ConfigError(f"budget {spec}: {caps[spec]:,} params is below the smallest "
                              f"architecture ({sum(vocab) * sizes[0]:,})")
    print(f"{len(names)} fields ({len(informative)} informative), sizes {tuple(sizes)}, "
          f"{float(len(sizes)) ** len(names):.3g} architectures")
    print("budget | B params | fit | share passing the strict check | largest passing cost/B | "
          f"fill ≥ {args.fill:g} B | of those, pass")
    for spec, cap in caps.items():
        every = cost_counts(vocab, [sizes] * len(vocab), cap)
        good = planted_counts(vocab, sizes, informative, cap)
        low = int(np.ceil(args.fill * cap))
        top = np.flatnonzero(good)
        print(f"{spec} | {cap:,} | {every.sum():.4g} | {good.sum() / every.sum():.3g} | "
              f"{top[-1] / cap if top.size else float('nan'):.3f} | {every[low:].sum():.4g} | "
              f"{good[low:].sum():.4g}")


if __name__ == "__main__":
    run_main(main)
