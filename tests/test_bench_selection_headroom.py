"""``bench/selection_headroom.py``: the additive fit's pick, and the table end to end."""

from __future__ import annotations

import importlib.util
import itertools
import re
import subprocess
import sys
from pathlib import Path

from adass_ray.search.space import SearchSpace

ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("selection_headroom",
                                                  ROOT / "bench" / "selection_headroom.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_additive_pick_recovers_an_additive_landscape_under_the_budget() -> None:
    space = SearchSpace(("a", "b", "c"), (100, 300, 50), (1, 2, 4, 8))
    gain = [[0, 0.010, 0.015, 0.016], [0, 0.001, 0.002, 0.002], [0, 0.004, 0.008, 0.012]]
    history = [(a, 0.7 + sum(gain[f][k] for f, k in enumerate(a)))
               for a in itertools.product(range(4), repeat=3)]
    budget = 1200
    want = max((a for a, _ in history if space.cost(a) <= budget),
               key=lambda a: sum(gain[f][k] for f, k in enumerate(a)))
    got = _bench().additive_pick(space, history, budget)
    assert got == want and space.cost(got) <= budget
    # a (field, size) pair the history never saw is not chosen while a seen one fits
    partial = [(a, q) for a, q in history if a[2] != 3]
    assert _bench().additive_pick(space, partial, 10_000)[2] != 3


def test_selection_headroom_table(tmp_path: Path, tiny_supernet) -> None:
    data = tiny_supernet(tmp_path / "net")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "selection_headroom.py"), str(data),
         str(tmp_path / "net"), "--budgets", "0.5", "--seeds", "2", "d_base=4",
         "iterations=3", "archs_per_iter=8", "warmup_iters=1"],
        capture_output=True, text=True, timeout=300, check=True, cwd=ROOT,
    ).stdout
    rows = [line for line in out.splitlines() if line.startswith("| 0.5 |")]
    assert len(rows) == 3, out
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        scores = [float(c) for c in cells[2:6]]
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert scores[3] >= scores[0] - 1e-12  # the oracle of the list is at least the pick
        for c in cells[6:8]:
            assert re.fullmatch(r"[+-]\d\.\d{4}( \[[+-]\d\.\d{4}, [+-]\d\.\d{4}\])?( \w+)?", c), c
