"""The MLflow UI as a new user opens it: a smoke pipeline's sqlite store, ``mlflow ui`` on
127.0.0.1, headless Chromium (the Debian ``chromium`` package).

Checks that the experiment opens as a model-training one, that the parent run and its stage
runs are listed with their metrics, and that the search's AUC-vs-params Pareto plot and
``sizes.json`` are shown as artifacts. Skipped when ``chromium`` is not installed; marked
``slow`` (the smoke pipeline takes minutes on 2 cores): run it with ``pytest -m browser``.
Its ``ui.log`` (the server's output) is kept beside the store.
Set ``ADASS_RAY_UI_SHOTS=docs/img`` to keep the screenshots (the README shows them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
    pytest.mark.timeout(1200),  # the module's smoke pipeline runs inside the first test's setup
]
ML_VIEW = "workflowType=machine_learning"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A finished ``adass-ray run --smoke-test`` and its sqlite store.

    ``ADASS_RAY_UI_STORE=<folder>`` reuses one already made there (``mlflow.db`` and the run's
    ``--out`` folder as ``run/``), e.g. when a loaded machine makes the smoke run slow.
    """
    import mlflow

    from adass_ray.tracking import mlflow as backend

    reuse = os.environ.get("ADASS_RAY_UI_STORE")
    root = Path(reuse).absolute() if reuse else tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{root}/mlflow.db"
    if not reuse:
        env = {**os.environ, "ADASS_RAY_PROGRESS": "0", "MLFLOW_TRACKING_URI": uri}
        done = subprocess.run(
            [sys.executable, "-m", "adass_ray.cli", "run", "--smoke-test", "--out",
             str(root / "run")],
            cwd=root, env=env, capture_output=True, text=True, timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow.MlflowClient(uri)
    backend.experiment_id(client, "synthetic", uri, None)  # as the next run would: tags current
    exp = client.get_experiment_by_name("synthetic")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    return {"uri": uri, "root": root, "experiment": exp, "parent": parent, "runs": runs}


@pytest.fixture(scope="module")
def ui(store: dict[str, Any]) -> Iterator[str]:
    """``mlflow ui`` on the store, bound to loopback; yields its base URL."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(store["root"] / "ui.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store["uri"],
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=store["root"], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (store["root"] / "ui.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow ui did not answer in 180 s"
            time.sleep(1)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its worker, nothing else
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _chromium(url: str, tmp: Path, *, shot: str | None = None, budget_ms: int = 25000) -> str:
    """The DOM of ``url`` after ``budget_ms`` of virtual time (the UI is a JS app); with
    ``shot``, also a PNG screenshot of the page (kept under $ADASS_RAY_UI_SHOTS if set)."""
    assert CHROMIUM is not None
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", "--window-size=1920,1000", f"--user-data-dir={tmp / 'profile'}",
            f"--virtual-time-budget={budget_ms}"]
    dom = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True,
                         timeout=240, check=True).stdout
    if shot:
        png = tmp / shot
        subprocess.run([*args, f"--screenshot={png}", url], capture_output=True, timeout=240,
                       check=True)
        assert png.stat().st_size > 10_000  # a rendered page, not a blank one
        keep = os.environ.get("ADASS_RAY_UI_SHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy2(png, Path(keep) / shot)
    return dom


def test_runs_page_opens_as_model_training_with_our_columns(store, ui, tmp_path):
    """The link ``adass-ray run`` prints: every run listed flat (the pipeline and each stage),
    AUC / logloss / embedding-params columns, and the model-training (not GenAI) navigation."""
    from adass_ray.tracking.mlflow import experiment_url

    exp = store["experiment"]
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    dom = _chromium(experiment_url(ui, exp.experiment_id), tmp_path, shot="mlflow-runs.png")
    parent = store["parent"]
    kids = [r for r in store["runs"] if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(kids) >= 4, "the pipeline logged too few stage runs"  # supernet, search, retrains
    for run in [parent, *kids]:
        assert run.info.run_name in dom, run.info.run_name
    # the first columns (the table renders only the columns in view)
    for column in ("searched_test_auc_mean", "searched_embedding_params", "test_auc"):
        assert column in dom, column
    assert "Judges" not in dom and "Prompts" not in dom  # the GenAI view's navigation


def test_parent_run_lists_its_stage_runs_and_metrics(store, ui, tmp_path):
    exp_id = store["experiment"].experiment_id
    parent = store["parent"]
    dom = _chromium(f"{ui}/#/experiments/{exp_id}/runs/{parent.info.run_id}?{ML_VIEW}", tmp_path,
                    shot="mlflow-parent-run.png")
    assert "Child runs" in dom and parent.info.run_name in dom
    kids = [r for r in store["runs"] if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert all(k.info.run_name in dom for k in kids)
    assert "searched_test_auc_mean" in dom and "searched_embedding_params" in dom


def test_pareto_plot_and_sizes_json_are_visible(store, ui, tmp_path):
    exp_id = store["experiment"].experiment_id
    run_id = store["parent"].info.run_id
    base = f"{ui}/#/experiments/{exp_id}/runs/{run_id}/artifacts"
    dom = _chromium(f"{base}/pareto.png?{ML_VIEW}", tmp_path, shot="mlflow-pareto.png")
    assert 'alt="pareto.png"' in dom  # the image preview, loaded from the artifact store
    dom = _chromium(f"{base}/sizes.json?{ML_VIEW}", tmp_path, shot="mlflow-sizes.png")
    sizes = json.loads((store["root"] / "run" / "search" / "sizes.json").read_text())
    assert "sizes.json" in dom and '"uniform_baseline"' in dom
    for field in sizes["fields"]:  # the file's text is rendered (a JSON view), field by field
        assert f'"{field}"' in dom, field
