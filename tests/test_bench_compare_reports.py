"""``bench/compare_reports.py``: paired differences between two reports, and its bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _report(folder: Path, aucs: list[float], sizes: list[list[int]], seeds: list[int]) -> str:
    method = {"method": "AdaS&S (ours)", "test_auc": aucs, "sizes": sizes,
              "cost_ratio": [0.5] * len(aucs)}
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(
        {"dataset": "toy", "seeds": seeds, "budgets": [{"spec": "0.5", "methods": [method]}]}))
    return str(folder)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "compare_reports.py"), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_pairs_by_seed_number(tmp_path: Path) -> None:
    old = _report(tmp_path / "old", [0.70, 0.71, 0.72], [[1], [2], [3]], [0, 1, 2])
    # the new report lists its seeds in another order and has one seed more
    new = _report(tmp_path / "new", [0.725, 0.705, 0.715, 0.9], [[3], [1], [9], [4]],
                  [2, 0, 1, 3])
    run = _run(old, new)
    assert run.returncode == 0, run.stderr
    row = next(line for line in run.stdout.splitlines() if line.startswith("| 0.5 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:4] == ["0.7100", "0.7150"]  # seed 3 is not paired, so not counted
    assert cells[4].startswith("+0.0050") and cells[6] == "2 / 3"
    assert run.stdout.startswith("3 paired seeds")


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    old = _report(tmp_path / "old", [0.7, 0.7], [[1], [1]], [0, 1])
    run = _run(old, str(tmp_path / "nowhere"))
    assert run.returncode == 2 and "results.json is missing" in run.stderr
    assert "Traceback" not in run.stderr
    other = _report(tmp_path / "other", [0.7, 0.7], [[1], [1]], [5, 6])
    run = _run(old, other)
    assert run.returncode == 2 and "fewer than 2 seeds" in run.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text(json.dumps(
        {"dataset": "toy", "seeds": [0, 1], "budgets": [{"spec": "0.5", "methods": [
            {"method": "AdaS&S (ours)", "test_auc": [0.7]}]}]}))
    run = _run(old, str(broken))
    assert run.returncode == 2 and "per-seed fields" in run.stderr
    assert "Traceback" not in run.stderr
