"""The GPU benches (`bench/gpu.py`, `bench/gpu_profile.py`) run on a CPU with `--quick` and
print every figure they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_bench_runs_on_cpu_quick() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--quick"],
        capture_output=True, text=True, timeout=600, check=True, cwd=ROOT,
    ).stdout
    assert "26 fields" in out
    rates = {m[0]: float(m[1].replace(",", ""))
             for m in re.findall(r"(supernet|stand-alone) +fp32: +([\d,]+) samples/s", out)}
    assert set(rates) == {"supernet", "stand-alone"} and min(rates.values()) > 0
    evals = re.findall(r"evaluation .*folded first layer.*: ([\d,]+) archs/s", out)
    assert len(evals) == 1 and float(evals[0].replace(",", "")) > 0
    assert out.count("peak ") == 3


def test_gpu_profile_bench_runs_on_cpu_quick() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_profile.py"), "--device", "cpu", "--quick"],
        capture_output=True, text=True, timeout=600, check=True, cwd=ROOT,
    ).stdout
    steps = re.findall(r"(adaptive|adaptive, drawn in step|uniform|stand-alone) *: +([\d.]+) "
                       r"ms/step", out)
    assert [s[0] for s in steps] == ["adaptive", "adaptive, drawn in step", "uniform",
                                     "stand-alone"]
    assert min(float(s[1]) for s in steps) > 0
    parts = re.findall(r"sample paths \(host\) [\d.]+, .* optimizer [\d.]+ \(sum [\d.]+ ms\)", out)
    assert len(parts) == 3  # one split per supernet
    assert "top operators by self_cpu_time_total" in out
