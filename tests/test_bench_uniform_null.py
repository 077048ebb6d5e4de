"""``bench/uniform_null.py`` replays the one-SE rule toward the uniform size on stored units."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from adass_ray.data.feature_map import FeatureMap

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "uniform_null.py"


def _report(tmp_path: Path, tiny_supernet) -> tuple[Path, Path]:
    """A finished report's work/ in miniature: a supernet, the units of four methods at one
    budget and two seeds, and made-up retrained test AUCs for their sizes."""
    work = tmp_path / "report" / "work"
    data = tiny_supernet(work / "supernet-adaptive")
    n = len(FeatureMap.load(data).field_names)
    uniform, other = [2] * n, [4] + [1] * (n - 1)
    picks = {"adas-s-ours": other, "random-search": other, "evolution": uniform,
             "uniform-matched-to-budget": uniform}
    auc = {tuple(uniform): 0.70, tuple(other): 0.75}
    for seed in (0, 1):
        for name, sizes in picks.items():
            (work / f"method-{name}-b0.5-seed{seed}.json").write_text(
                json.dumps({"sizes": sizes, "seed": seed}))
        for sizes, value in auc.items():
            (work / f"retrain-{'-'.join(map(str, sizes))}-seed{seed}.json").write_text(
                json.dumps({"test_auc": value + 0.01 * seed}))
    return tmp_path / "report", data


def test_the_replay_reads_the_units_and_applies_the_rule(tmp_path: Path, tiny_supernet) -> None:
    report, data = _report(tmp_path, tiny_supernet)
    out = subprocess.run(
        [sys.executable, str(BENCH), str(report), str(data), "--z", "1000000"],
        capture_output=True, text=True, timeout=300, check=True, cwd=ROOT,
    ).stdout
    as_run = re.search(r"as run: ours (\S+); .*ours − random search (\S+).*ours − evolution (\S+)",
                       out)
    strict = re.search(r"z = 1e\+06: ours (\S+); ours − as run (\S+)", out)
    assert as_run and strict, out
    # as run: ours picked the non-uniform sizes (0.75, 0.76), random search too, evolution the
    # uniform ones (0.70, 0.71)
    assert float(as_run[1].rstrip(";")) == 0.755
    assert float(as_run[2]) == 0.0 and float(as_run[3]) == 0.05
    # no lead can clear a million standard errors: everything falls back to the uniform size
    assert float(strict[1].rstrip(";")) == 0.705 and float(strict[2]) == -0.05


def test_a_report_without_the_uniform_units_is_one_line_and_exit_2(tmp_path: Path,
                                                                   tiny_supernet) -> None:
    report, data = _report(tmp_path, tiny_supernet)
    for p in (report / "work").glob("method-uniform-matched-to-budget-*"):
        p.unlink()
    run = subprocess.run([sys.executable, str(BENCH), str(report), str(data)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("error: ") and len(run.stderr.strip().splitlines()) == 1
