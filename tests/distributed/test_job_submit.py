"""End to end through `ray job submit`: a real local Ray head runs `jobs/pipeline.py --smoke-test`,
then a 3-trial `jobs/sweep_penalty.py` against the supernet that job trained; in the slow tier,
every other job under `jobs/` once in smoke form on the same head.

The module starts its own head with the `ray` CLI (no `ray.init` in the pytest process; free
ports, dashboard on 127.0.0.1, its own temp dir), submits jobs to it over the dashboard's HTTP
address and stops only that head: SIGTERM to it, then SIGKILL to its process group and to any
process left under its temp dir. `submit(head, *args, out=...)` is the helper for further job
tests in this module (they share the module-scoped `ray_head`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.distributed.procs import free_ports, our_pids

pytestmark = [pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RAY = BIN / "ray"
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


@dataclass
class Head:
    """A local Ray head started by this module."""

    proc: subprocess.Popen
    temp_dir: Path
    log: Path
    dashboard_port: int
    env: dict[str, str]

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def log_tail(self, chars: int = 4000) -> str:
        parts = []
        for path in [self.log, *sorted(self.temp_dir.glob("session_latest/logs/dashboard.log"))]:
            with contextlib.suppress(OSError):
                parts.append(f"--- {path}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",
               MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1",
               # no SIGTERM drain: after a Ray Train job it waits out its 30 s for the detached
               # autoscaling-coordinator actor, which never leaves
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
    # a job's `python` is whatever is first on the head's PATH: the venv's
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    return env


def _get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback only)
        return json.loads(resp.read())


def _stop(head: Head) -> None:
    """SIGTERM the head, SIGKILL its process group after 15 s, then any process left under its
    temp dir.

    `ray start --block` stops its children itself on SIGTERM (~2 s, drain off). A SIGTERM to the
    whole group instead kills the GCS under its feet and left it hanging, hence the order.
    """
    pgid = head.proc.pid  # start_new_session: the head leads its own group
    with contextlib.suppress(ProcessLookupError):
        head.proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        head.proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)  # whatever of the group outlived the head
    with contextlib.suppress(subprocess.TimeoutExpired):
        head.proc.wait(timeout=10)
    # job drivers run in their own sessions and fate-share with their supervisor within ~1 s
    deadline = time.monotonic() + 10
    while (left := our_pids(head.temp_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def ray_head():
    if not RAY.is_file():
        pytest.skip(f"no `ray` CLI next to {sys.executable}")
    # short: unix socket paths are limited
    temp_dir = Path(tempfile.mkdtemp(prefix="rj", dir="/tmp"))
    gcs, dash, client, agent_http, agent_grpc, env_agent, metrics = free_ports(7)
    env = _env()
    log = temp_dir / "ray-start.log"
    cmd = [str(RAY), "start", "--head", "--block", f"--port={gcs}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--include-dashboard=true",
           f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent_http}",
           f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={env_agent}",
           f"--metrics-export-port={metrics}", "--num-cpus=2",
           f"--object-store-memory={512 * 2**20}",
           f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=temp_dir, start_new_session=True)
    head = Head(proc=proc, temp_dir=temp_dir, log=log, dashboard_port=dash, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`ray start` exited with {proc.returncode}:\n{head.log_tail()}")
            try:
                _get_json(f"{head.address}/api/version", timeout=2)
                break
            except (urllib.error.URLError, OSError, ValueError):
                if time.monotonic() > deadline:
                    pytest.fail(f"the Ray dashboard at {head.address} did not answer in 60 s:\n"
                                f"{head.log_tail()}")
                time.sleep(0.5)
        yield head
    finally:
        _stop(head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def submit(head: Head, *args: str, out: Path | None = None,
           timeout: float = 480) -> tuple[str, str]:
    """`ray job submit` of ``python ARGS [--out OUT]`` with the repo as working dir; wait for
    the end.

    Returns the final status (SUCCEEDED, FAILED, STOPPED, or the last one seen when ``timeout``
    ran out, after which the job is stopped) and the job's logs.
    """
    entry = ["python", *args]
    if out is not None:
        assert Path(out).is_absolute(), (
            "the job runs in another directory: give it an absolute --out"
        )
        entry += ["--out", str(out)]
    job_id = f"test-{Path(args[0]).stem}-{uuid.uuid4().hex[:8]}"
    cli = dict(env=head.env, cwd=ROOT, capture_output=True, text=True)
    res = subprocess.run([str(RAY), "job", "submit", "--address", head.address,
                          "--submission-id", job_id, "--working-dir", str(ROOT), "--no-wait",
                          "--", *entry], timeout=120, **cli)
    assert res.returncode == 0, (
        f"`ray job submit` failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    )
    status, deadline = "PENDING", time.monotonic() + timeout
    while time.monotonic() < deadline:
        # a transient dashboard hiccup is skipped; the deadline still bounds the wait
        with contextlib.suppress(urllib.error.URLError, OSError, ValueError, KeyError):
            status = _get_json(f"{head.address}/api/jobs/{job_id}")["status"]
        if status in TERMINAL:
            break
        time.sleep(2)
    else:
        subprocess.run([str(RAY), "job", "stop", "--address", head.address, job_id],
                       timeout=60, **cli)
    logs = subprocess.run([str(RAY), "job", "logs", "--address", head.address, job_id],
                          timeout=60, **cli)
    return status, logs.stdout + logs.stderr


@pytest.mark.timeout(600)
def test_pipeline_and_sweep_jobs(ray_head, tmp_path):
    out = tmp_path / "run"
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    status, logs = submit(ray_head, "jobs/pipeline.py", "--smoke-test", "--seeds", "1",
                          "--tracking-uri", uri, out=out)
    assert status == "SUCCEEDED", (
        f"job ended {status}; logs:\n{logs[-8000:]}\n{ray_head.log_tail(2000)}"
    )

    # the pipeline's closing summary reached the job's stdout
    lines = logs.splitlines()
    assert any(line.startswith("sizes:") for line in lines), logs[-4000:]
    assert any(line.startswith("MLflow:") and uri in line for line in lines), logs[-4000:]

    report = json.loads((out / "report.json").read_text())
    for name in ("searched", "uniform"):
        auc = report[f"{name}_test_auc_mean"]
        assert 0.0 <= auc <= 1.0, (name, auc)
        assert report[f"{name}_embedding_params"] > 0
    assert report["sizes"] and report["searched_cost"] <= report["budget"]
    sizes = json.loads((out / "search" / "sizes.json").read_text())
    assert set(sizes["fields"]) == set(report["sizes"])
    assert (out / "supernet" / "model.pt").is_file()

    # MLflow: one parent run for the pipeline, a child run per stage
    import mlflow

    assert db.is_file()
    client = mlflow.MlflowClient(tracking_uri=uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exps, max_results=1000)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    parents = {r.info.run_id: r for r in runs if not r.data.tags.get("mlflow.parentRunId")}
    assert children, [r.info.run_name for r in runs]
    parent_ids = {r.data.tags["mlflow.parentRunId"] for r in children}
    assert len(parent_ids) == 1 and parent_ids <= set(parents), (parent_ids, list(parents))
    parent = parents[parent_ids.pop()]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["searched_test_auc_mean"] == pytest.approx(
        report["searched_test_auc_mean"]
    )
    assert all(r.info.status == "FINISHED" for r in children), [
        (r.info.run_name, r.info.status) for r in children
    ]

    # a 3-trial Ray Tune sweep as a job, against the supernet the pipeline job just trained
    sweep = tmp_path / "sweep"
    status, logs = submit(ray_head, "jobs/sweep_penalty.py", "--data", str(out / "data"),
                          "--supernet", str(out / "supernet"), "--lams", "0.5,2,8",
                          "--budgets", "0.8", "--tracking-uri", uri,
                          "iterations=4", "archs_per_iter=8", "val_rows=500", out=sweep)
    assert status == "SUCCEEDED", (
        f"sweep job ended {status}; logs:\n{logs[-8000:]}\n{ray_head.log_tail(2000)}"
    )
    assert "3 trials; Pareto front" in logs and "front:" in logs, logs[-4000:]
    from adass_ray.pareto import read_pareto_csv

    points, on_front = read_pareto_csv(sweep / "pareto.csv")
    pooled = [p for p in points if p.payload["source"] == "pooled"]  # + each trial's own pick
    assert sorted(p.payload["lam"] for p in pooled) == [0.5, 2.0, 8.0] and any(on_front)
    own = [p for p in points if p.payload["source"] == "trial"]
    assert len(own) == len(pooled) and {p.payload["source"] for p in points} == {
        "pooled", "trial", "pool"}
    assert (sweep / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    runs = client.search_runs(exps, max_results=1000)
    sweeps = [r for r in runs if r.info.run_name == "sweep-sweep"]
    assert len(sweeps) == 1 and sweeps[0].info.status == "FINISHED"
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == sweeps[0].info.run_id]
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in trials)


SEARCH_SMOKE = ("iterations=3", "archs_per_iter=6", "val_rows=300")


@pytest.mark.slow  # seven jobs, each a Ray job with its own driver: several minutes on 2 cores
@pytest.mark.timeout(1800)
def test_every_other_job_runs_in_smoke_form(ray_head, tmp_path):
    """prepare → train_supernet → train → search → retrain → stability → report, each submitted
    with `ray job submit` on the module's head (pipeline and sweep_penalty: the test above)."""

    def ok(*args: str, out: Path) -> str:
        status, logs = submit(ray_head, *args, out=out)
        assert status == "SUCCEEDED", (
            f"{args[0]} ended {status}; logs:\n{logs[-6000:]}\n{ray_head.log_tail(2000)}"
        )
        return logs

    data, sn = tmp_path / "data", tmp_path / "sn"
    ok("jobs/prepare.py", "--smoke-test", out=data)
    assert (data / "feature_map.json").is_file()
    ok("jobs/train_supernet.py", "--data", str(data), "--smoke-test", "--no-tracking", out=sn)
    assert (sn / "model.pt").is_file()
    ok("jobs/train.py", "--data", str(data), "--smoke-test", "--uniform", "4", "--no-tracking",
       out=tmp_path / "one")
    assert json.loads((tmp_path / "one" / "metrics.json").read_text())["embedding_params"] > 0
    ok("jobs/search.py", "--data", str(data), "--supernet", str(sn), "--budget", "0.5",
       "--no-tracking", *SEARCH_SMOKE, out=tmp_path / "search")
    sizes = json.loads((tmp_path / "search" / "sizes.json").read_text())
    assert sizes["cost"] <= sizes["budget"]
    ok("jobs/retrain.py", "--data", str(data), "--sizes", str(tmp_path / "search" / "sizes.json"),
       "--seeds", "1", "--no-tracking", "epochs=1", "max_rows=2000", "batch_size=256",
       "model.hidden=[32]", out=tmp_path / "retrain")
    assert len(json.loads((tmp_path / "retrain" / "summary.json").read_text())["test_auc"]) == 1
    ok("jobs/stability.py", "--data", str(data), "--supernet", str(sn), "--budget", "0.5",
       "--repeats", "2", "--no-tracking", *SEARCH_SMOKE, out=tmp_path / "stability")
    assert "kendall_tau" in json.loads((tmp_path / "stability" / "stability.json").read_text())
    ok("jobs/report.py", "--data", str(data), "--quick", "--seeds", "1", "--no-ablations",
       "--no-retrain", "--methods", "uniform d_base", "--no-tracking", "search.iterations=3",
       out=tmp_path / "report")
    assert (tmp_path / "report" / "report.md").is_file()
