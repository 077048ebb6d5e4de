"""``bench/planted_ceiling.py``: exact counts against enumeration, and the table end to end."""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "planted_ceiling.py"


def _bench():
    spec = importlib.util.spec_from_file_location("planted_ceiling", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_counts_match_enumeration_including_a_drop_size() -> None:
    vocab, sizes, informative, cap = (3, 11, 7, 5, 20), (0, 1, 2, 4), (0, 3), 90
    every = np.zeros(cap + 1)
    good = np.zeros(cap + 1)
    for arch in itertools.product(sizes, repeat=len(vocab)):
        cost = sum(v * s for v, s in zip(vocab, arch, strict=True))
        if cost > cap:
            continue
        every[cost] += 1
        noise = [s for f, s in enumerate(arch) if f not in informative]
        good[cost] += min(arch[f] for f in informative) > max(noise)
    mod = _bench()
    assert np.array_equal(mod.cost_counts(vocab, [sizes] * len(vocab), cap), every)
    assert np.array_equal(mod.planted_counts(vocab, sizes, informative, cap), good)
    assert 0 < good.sum() < every.sum()  # the check is not vacuous on this space


def test_table_on_a_synthetic_dataset_and_one_line_errors(tmp_path: Path) -> None:
    from adass_ray.data import synthetic

    data = tmp_path / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=500, seed=0), data)
    out = subprocess.run([sys.executable, str(BENCH), str(data), "--budgets", "0.5,1"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    rows = [line.split(" | ") for line in out.stdout.splitlines() if " | " in line][1:]
    assert [r[0] for r in rows] == ["0.5", "1"]
    # at the full budget every informative field at the largest size and every noise field one
    # size below it is in the table, so some passing architecture uses at least 0.5 of it
    assert float(rows[1][4]) >= 0.5 and float(rows[1][3]) > 0

    bad = subprocess.run([sys.executable, str(BENCH), str(tmp_path / "nowhere")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "prepare" in bad.stderr
    # a bad budget among good ones: one line, and nothing printed before it
    for budgets in ("0.5,abc", "0.5,0.0001"):
        bad = subprocess.run([sys.executable, str(BENCH), str(data), "--budgets", budgets],
                             capture_output=True, text=True, timeout=60, check=False)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and bad.stdout == ""
