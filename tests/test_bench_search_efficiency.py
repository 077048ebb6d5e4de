"""``bench/search_efficiency.py`` runs end to end and prints one table row per budget and length."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_search_efficiency_table(tmp_path: Path, tiny_supernet) -> None:
    data = tiny_supernet(tmp_path / "net")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "search_efficiency.py"), str(data),
         str(tmp_path / "net"), "--budgets", "0.5,0.8", "--seeds", "2", "--iterations", "2,3",
         "d_base=4", "archs_per_iter=8", "warmup_iters=1"],
        capture_output=True, text=True, timeout=300, check=True, cwd=ROOT,
    ).stdout
    rows = [line for line in out.splitlines() if re.match(r"\| 0\.[58] \| [23] \|", line)]
    assert len(rows) == 4, out
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert int(cells[2].replace(",", "")) >= 2  # distinct evaluations of ours
        assert all(0.0 <= float(c) <= 1.0 for c in cells[3:6])  # Q_T of the three selections
        assert re.fullmatch(r"[+-]\d\.\d{4} \[[+-]\d\.\d{4}, [+-]\d\.\d{4}\]", cells[6])
