"""``bench/selection_rows.py``: the table end to end, with a selection half that is topped up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CI = r"[+-]\d\.\d{4}( \[[+-]\d\.\d{4}, [+-]\d\.\d{4}\])?( \w+)?"


def _table(data: Path, net: Path, *extra: str,
           val_rows: int = 100) -> tuple[list[int], list[list[str]]]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "selection_rows.py"), str(data), str(net),
         "--budgets", "0.5", "--seeds", "2", "--select-rows", "250", *extra, "d_base=4",
         f"val_rows={val_rows}", "iterations=3", "archs_per_iter=8", "warmup_iters=1"],
        capture_output=True, text=True, timeout=300, check=True, cwd=ROOT,
    ).stdout
    head = re.search(r"Q_A / Q_B on (\d+) / (\d+) validation rows.*B\+: Q_A / Q_B on (\d+) / "
                     r"(\d+) validation", out)
    assert head, out
    rows = [line for line in out.splitlines() if line.startswith("| 0.5 |")]
    assert len(rows) == 3, out
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    for row in cells:
        assert all(0.0 <= float(c) <= 1.0 for c in row[2:4])
        assert re.fullmatch(CI, row[4]), row[4]
        for c in row[5:7]:
            assert c == "—" or re.fullmatch(CI, c), c
    return [int(g) for g in head.groups()], cells


def test_selection_rows_table(tmp_path: Path, tiny_supernet) -> None:
    data = tiny_supernet(tmp_path / "net")
    (a, b, a_plus, b_plus), _ = _table(data, tmp_path / "net")
    assert a + b == 100 and a_plus == a and b_plus == 250  # the search's rows stay; B grows
    (a, b, a_plus, b_plus), _ = _table(data, tmp_path / "net", "--plus-val-rows", "60")
    assert a + b == 100 and a_plus == 30 and b_plus == 250  # 30 of its subsample + 220 outside
    # a subsample near the split's size: B+ (search_share 0.5) searches on fewer rows
    (a, b, a_plus, b_plus), _ = _table(data, tmp_path / "net", "search_share=0.5", val_rows=300)
    assert a + b == 300 and a_plus < a and a_plus + b_plus <= 319 and b_plus > b


def test_bad_select_rows_is_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "selection_rows.py"), str(tmp_path),
         str(tmp_path), "--select-rows", "0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert run.returncode == 2 and "--select-rows must be >= 1" in run.stderr
