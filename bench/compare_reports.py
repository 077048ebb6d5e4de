"""Two finished reports of the same data and seeds, compared method by method: what did a change
of config or code do to each method's retrained test AUC?

Both reports' ``results.json`` are read (nothing is searched or trained). For every budget and
every method the two hold, it prints the method's mean test AUC in each, the paired difference
NEW − OLD over the shared seeds with its 95 % t interval, the mean share of the budget used in
each, and in how many seeds the selected sizes are the same. The seeds are paired by number, so
the interval covers what changed between the runs, and only that where the reports share their
supernets and retraining settings (a report re-run with ``--out`` on a copy of the old one
reuses every unit whose inputs did not change).

    python bench/compare_reports.py OLD_REPORT NEW_REPORT
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adass_ray.errors import ConfigError  # noqa: E402
from adass_ray.harness.render import ci_text  # noqa: E402
from adass_ray.harness.stats import paired  # noqa: E402
from bench.common import run_main  # noqa: E402


def _load(report: str) -> dict[str, Any]:
    path = Path(report) / "results.json"
    if not path.is_file():
        raise ConfigError(f"{path} is missing: give the --out folder of a finished report")
    try:
        data = json.loads(path.read_text())
        data["budgets"], data["seeds"]  # noqa: B018 (the keys every report writes)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not a report's results ({type(e).__name__}: {e})") from None
    return data


def _methods(budget: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["method"]: m for m in budget["methods"]}


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The table's lines (header first) for two loaded reports."""
    if old.get("dataset") != new.get("dataset"):
        raise ConfigError(f"the reports are of different data ({old.get('dataset')} vs "
                          f"{new.get('dataset')})")
    seeds = [s for s in old["seeds"] if s in new["seeds"]]
    if len(seeds) < 2:
        raise ConfigError("the reports share fewer than 2 seeds: nothing to pair")
    budgets_new = {b["spec"]: b for b in new["budgets"]}
    io = [old["seeds"].index(s) for s in seeds]
    inew = [new["seeds"].index(s) for s in seeds]
    lines = [f"{len(seeds)} paired seeds ({old.get('dataset')})",
             "| budget | method | test AUC old | test AUC new | new − old [95 % CI] "
             "| cost/B old → new | same sizes |",
             "|---|---|---|---|---|---|---|"]
    for b_old in old["budgets"]:
        b_new = budgets_new.get(b_old["spec"])
        if b_new is None:
            continue
        m_new = _methods(b_new)
        for name, mo in _methods(b_old).items():
            mn = m_new.get(name)
            if mn is None:
                continue
            a = [mo["test_auc"][i] for i in io]
            b = [mn["test_auc"][i] for i in inew]
            same = sum(mo["sizes"][i] == mn["sizes"][j] for i, j in zip(io, inew, strict=True))
            cost = (f"{statistics.fmean(mo['cost_ratio'][i] for i in io):.2f} → "
                    f"{statistics.fmean(mn['cost_ratio'][j] for j in inew):.2f}")
            lines.append(f"| {b_old['spec']} | {name} | {statistics.fmean(a):.4f} "
                         f"| {statistics.fmean(b):.4f} | {ci_text(paired(b, a))} | {cost} "
                         f"| {same} / {len(seeds)} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    args = ap.parse_args()
    old, new = _load(args.old), _load(args.new)
    try:
        lines = compare(old, new)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"{args.old} / {args.new}: a results.json without the per-seed "
                          f"fields of a finished report ({type(e).__name__}: {e})") from None
    print("\n".join(lines))


if __name__ == "__main__":
    run_main(main)
