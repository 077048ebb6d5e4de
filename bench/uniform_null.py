"""The uniform size as the null hypothesis, replayed on a finished report: what if every search
had kept the uniform size that fits unless its own pick beat it on Q_B by more than z
paired-bootstrap standard errors (a one-SE rule toward the hand-picked answer)?

Nothing is searched or trained: the picks, the uniform sizes and every retrained test AUC are
read from the report's stored units (``--out`` of ``adass-ray report``, which must have run
``uniform matched to budget`` with retraining), and the picks are re-scored on the report's
selection half with the report's supernet (the same rows the harness selected on).

    python bench/uniform_null.py REPORT DATA [--z 1,2] [key=value ...]

``key=value`` pairs override SearchConfig as the report's did (``val_rows`` and ``select_rows``
decide the rows: ``select_rows=0`` for a report made before the selection half was topped up).
Per budget it prints ours' Q_B lead over the uniform size in standard errors (median over the
seeds), then per z: ours' mean test AUC, ours at z − ours as run, and ours − random search /
evolution, each a paired 95 % t interval over the seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from adass_ray import configio  # noqa: E402
from adass_ray.errors import ConfigError  # noqa: E402
from adass_ray.harness.methods import REFERENCE_VARIANT, slug  # noqa: E402
from adass_ray.harness.render import ci_text  # noqa: E402
from adass_ray.harness.stats import paired  # noqa: E402
from adass_ray.harness.units import SPLIT_SEED, supernet_dir  # noqa: E402
from adass_ray.metrics import paired_bootstrap_se  # noqa: E402
from adass_ray.search.agent import SearchConfig  # noqa: E402
from adass_ray.search.context import load_context  # noqa: E402
from bench.common import run_main  # noqa: E402

SEARCHES = {"ours": "AdaS&S (ours)", "random search": "random search", "evolution": "evolution"}
NULL = "uniform matched to budget"


def _read(path: Path, key: str, missing: str) -> Any:
    """``key`` of a stored unit; a missing or unreadable unit is a one-line error."""
    if not path.is_file():
        raise ConfigError(f"{path.name} is missing: {missing}")
    try:
        return json.loads(path.read_text())[key]
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not a finished unit ({type(e).__name__}: {e})") from None


def _sizes(work: Path, method: str, budget: str, seed: int) -> list[int]:
    path = work / f"method-{slug(method)}-b{budget}-seed{seed}.json"
    return list(_read(path, "sizes", f"run the report with --methods including '{method}' "
                                     f"(and '{NULL}')"))


def _test_auc(work: Path, sizes: list[int], seed: int) -> float:
    path = work / f"retrain-{'-'.join(map(str, sizes))}-seed{seed}.json"
    return float(_read(path, "test_auc", "the report ran without retraining"))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("report")
    ap.add_argument("data")
    ap.add_argument("--z", default="1,2", help="thresholds in standard errors")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_intermixed_args()
    try:
        zs = [float(x) for x in args.z.split(",")]
    except ValueError:
        ap.error(f"--z {args.z!r}: expected comma-separated numbers")
    if not zs or not all(math.isfinite(z) and z >= 0 for z in zs):
        ap.error(f"--z {args.z!r}: every threshold must be a finite number >= 0")
    torch.set_num_threads(1)
    work = Path(args.report) / "work"
    cfg = configio.load(SearchConfig, None, args.overrides)
    if not supernet_dir(work, REFERENCE_VARIANT).is_dir():
        raise ConfigError(f"{args.report}: no report's supernet in work/ (is it a report --out?)")
    ctx = load_context(args.data, supernet_dir(work, REFERENCE_VARIANT), rows=cfg.rows,
                       seed=SPLIT_SEED)
    ev, space = ctx.evaluator_b, ctx.space
    pattern = re.compile(rf"method-{re.escape(slug(NULL))}-b(.+)-seed(\d+)\.json")
    found = [m.groups() for p in sorted(work.iterdir()) if (m := pattern.fullmatch(p.name))]
    if not found:
        raise ConfigError(f"{args.report}: no '{NULL}' units; run the report with that method")
    budgets = sorted({b for b, _ in found}, key=lambda b: (not _is_number(b), b))
    seeds = sorted({int(s) for _, s in found})
    print(f"{args.report}: budgets {', '.join(budgets)}; {len(seeds)} seeds; Q_B on "
          f"{ev.labels.size} selection rows")
    for budget in budgets:
        auc: dict[float | None, dict[str, list[float]]] = {
            z: {m: [] for m in SEARCHES} for z in (None, *zs)}  # None: the picks as run
        leads: list[float] = []
        for seed in seeds:
            null = _sizes(work, NULL, budget, seed)
            a_null = space.arch_of(tuple(null))
            for name, method in SEARCHES.items():
                pick = _sizes(work, method, budget, seed)
                a_pick = space.arch_of(tuple(pick))
                lead, se = 0.0, 0.0
                if a_pick != a_null:
                    q = ev.evaluate([a_pick, a_null])
                    logits = ev.logits([a_pick, a_null]).detach().double().cpu().numpy()
                    lead = q[0] - q[1]
                    se = float(paired_bootstrap_se(np.asarray(ev.labels), logits, 0)[1])
                if name == "ours" and a_pick != a_null:
                    leads.append(lead / se if se > 0 else float("inf"))
                auc[None][name].append(_test_auc(work, pick, seed))
                for z in zs:
                    keep = a_pick == a_null or lead > z * se
                    chosen = pick if keep else null
                    auc[z][name].append(_test_auc(work, chosen, seed))
        same = len(seeds) - len(leads)
        lead_text = (f"median {statistics.median(leads):.2f} SE (min {min(leads):.2f})"
                     if leads else "none (the same sizes)")
        print(f"\nbudget {budget}: ours' Q_B lead over the uniform size: {lead_text}"
              + (f"; ours returned the uniform size itself in {same} seeds" if same else ""))
        for z in (None, *zs):
            o = auc[z]
            head = "as run" if z is None else f"z = {z:g}"
            print(f"  {head}: ours {statistics.mean(o['ours']):.4f}; ours − as run "
                  f"{ci_text(paired(o['ours'], auc[None]['ours']))}; ours − random search "
                  f"{ci_text(paired(o['ours'], o['random search']))}; ours − evolution "
                  f"{ci_text(paired(o['ours'], o['evolution']))}", flush=True)


if __name__ == "__main__":
    run_main(main)
