"""``bench/selection_rows.py``: the table end to end, with a selection half that is topped up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CI = r"[+-]\d\.\d{4}( \[[+-]\d\.\d{4}, [+-]\d\.\d{4}\])?( \w+)?"


def test_selection_rows_table(tmp_path: Path, tiny_supernet) -> None:
    data = tiny_supernet(tmp_path / "net")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "selection_rows.py"), str(data),
         str(tmp_path / "net"), "--budgets", "0.5", "--seeds", "2", "--select-rows", "250",
         "d_base=4", "val_rows=100", "iterations=3", "archs_per_iter=8", "warmup_iters=1"],
        capture_output=True, text=True, timeout=300, check=True, cwd=ROOT,
    ).stdout
    head = re.search(r"Q_A / Q_B on (\d+) / (\d+) validation rows.*B\+ on (\d+) validation", out)
    assert head, out
    a, b, wide = (int(g) for g in head.groups())
    assert a + b == 100 and wide == 250  # the search's rows stay; B is topped up
    rows = [line for line in out.splitlines() if line.startswith("| 0.5 |")]
    assert len(rows) == 3, out
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert all(0.0 <= float(c) <= 1.0 for c in cells[2:4])
        assert re.fullmatch(CI, cells[4]), cells[4]
        for c in cells[5:7]:
            assert c == "—" or re.fullmatch(CI, c), c


def test_bad_select_rows_is_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "selection_rows.py"), str(tmp_path),
         str(tmp_path), "--select-rows", "0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert run.returncode == 2 and "--select-rows must be >= 1" in run.stderr
