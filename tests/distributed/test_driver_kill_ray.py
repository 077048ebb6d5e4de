"""SIGKILL the driver of `train-supernet` and of `search` mid-run (its whole process group, its
local Ray included), `--resume`, and end exactly where an uninterrupted run ends — having
continued from the saved step, not started over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from adass_ray.cli import main
from adass_ray.data import synthetic
from adass_ray.data.feature_map import FeatureMap
from adass_ray.model.checkpoint import load_model

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]


def _run_then_kill(argv, fault, marker, settle):
    """Run ``adass-ray ARGV`` in its own session with ``fault``; SIGKILL the whole group once the
    fault's marker appears (plus ``settle`` seconds for the state to be saved)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["ADASS_RAY_FAULTS"] = json.dumps(fault)
    proc = subprocess.Popen(
        [sys.executable, "-m", "adass_ray.cli", *argv],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, (
                f"the run ended before the fault: {proc.stderr.read().decode()[-2000:]}"
            )
            assert time.monotonic() < deadline, "the run never reached the fault"
            time.sleep(0.2)
        time.sleep(settle)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=3000, seed=0), out)
    return out


@pytest.mark.slow  # ~4-7 min of Ray Train; the default tier keeps the one-trial sweep restore
# after a driver SIGKILL (test_sweep_ray.py) and the mid-step worker kill (test_train_ray.py)
def test_train_supernet_driver_killed_mid_run_resumes_exactly(ray_local, smoke_data, tmp_path):
    """--smoke-test: 8 steps, checkpoints at 4 and 8. Rank 0 pauses in the middle of step 6,
    the driver is killed; --resume restores step 4 and ends with the clean run's weights."""
    marker = tmp_path / "paused"
    fault = {"train": {"at_step": 6, "rank": 0, "mid_step": True, "sleep": 600,
                       "marker": str(marker)}}
    killed = tmp_path / "killed"
    base = ["train-supernet", "--smoke-test", "--data", str(smoke_data), "--no-tracking"]
    _run_then_kill([*base, "--out", str(killed)], fault, marker, settle=3)
    assert not (killed / "model.pt").exists() and (killed / ".ray").is_dir()

    assert main([*base, "--out", str(killed)]) == 2  # a killed run needs --resume ...
    assert main([*base, "--out", str(killed), "--resume"]) == 0  # ... and continues
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 4  # continued from the checkpoint, not from scratch

    assert main([*base, "--out", str(tmp_path / "clean")]) == 0
    fm = FeatureMap.load(smoke_data)
    a = load_model(tmp_path / "clean", fm)[0].state_dict()
    b = load_model(killed, fm)[0].state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs from the uninterrupted run"
    clean = json.loads((tmp_path / "clean" / "metrics.json").read_text())
    assert metrics["test_auc"] == clean["test_auc"]


@pytest.mark.slow  # like the train-supernet one: minutes of Ray; the one-trial sweep restore is
# the driver-kill check of the default tier
def test_search_driver_killed_mid_run_resumes_exactly(trained, tmp_path):
    """Controller 0 pauses after iteration 4 of 8; the driver (which saves the state every
    iteration) is killed; --resume continues at iteration 4 and selects what a clean search
    selects, after scoring the same architectures."""
    data, supernet = trained
    marker = tmp_path / "paused"
    fault = {"search": {"index": 0, "at": 4, "sleep": 600, "marker": str(marker)}}
    base = ["search", "--data", str(data), "--supernet", str(supernet), "--budget", "0.5",
            "--no-tracking", "iterations=8", "archs_per_iter=6", "val_rows=300"]
    killed = tmp_path / "killed"
    _run_then_kill([*base, "--out", str(killed)], fault, marker, settle=2)
    assert not (killed / "sizes.json").exists() and (killed / "search_state.pt").is_file()

    assert main([*base, "--out", str(killed), "--resume"]) == 0
    assert main([*base, "--out", str(tmp_path / "clean")]) == 0
    got = json.loads((killed / "sizes.json").read_text())
    want = json.loads((tmp_path / "clean" / "sizes.json").read_text())
    assert got["provenance"]["resumed_at_iteration"] == 4
    assert want["provenance"]["resumed_at_iteration"] is None
    assert got["fields"] == want["fields"] and got["cost"] == want["cost"]
    h_got = json.loads((killed / "history.json").read_text())
    h_want = json.loads((tmp_path / "clean" / "history.json").read_text())
    assert h_got == h_want  # every proposal, its quality and cost, in the same order
