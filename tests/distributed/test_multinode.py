"""The pipeline beyond one machine, simulated on this one: a head and two worker nodes.

``ray.cluster_utils.Cluster`` starts a head (0 CPUs, as in ``cluster.yaml``: drivers only, with
the dashboard for the job API) and two worker nodes (2 CPUs each, their own custom resource and
a share of ``search_slot``). Every node has its own temp folder and is started from its own
empty working dir, and the jobs are submitted with the repo as ``working_dir``, so each node runs
from its own copy of the code, as on a real cluster. Outputs go to one ``storage`` folder, which
stands for the shared file system (``/mnt/shared`` in ``cluster.yaml``).

What is checked:

* the pipeline (``jobs/pipeline.py --smoke-test``) and a 2-trial sweep
  (``jobs/sweep_penalty.py``, trials on ``search_slot``) run as Ray jobs; the job drivers run on
  the head and every Ray Train worker, controller actor and Tune trial on a worker node;
* everything they make (data, Ray Train checkpoints, Tune trial checkpoints, the MLflow store
  and its artifacts, those the trials log from the worker nodes included) lands under
  ``storage``, and nothing lands in a node's working dir or in any node's copy of the code (where
  a relative or driver-local path would put it);
* losing the worker node that runs a supernet training after its first epoch's checkpoint:
  the run continues on the other node from that checkpoint and finishes.

One machine cannot show that nothing needs a *shared* file system: every node sees the same
disk. Data and checkpoints travel by absolute path through ``storage`` (the shared mount), the
supernet snapshot and validation rows through the object store; README "Running on a cluster"
says which stages need the shared mount.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.distributed.procs import free_ports, our_pids

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
NODE_STORE = 200 * 2**20  # object store per node: the jobs move a few MB


@dataclass
class Sim:
    """The simulated cluster: its nodes, their folders and the shared ``storage``."""

    cluster: Any
    base: Path
    storage: Path
    dashboard: str
    nodes: dict[str, Any] = field(default_factory=dict)  # "head", "a", "b" → ray Node
    homes: dict[str, Path] = field(default_factory=dict)  # each node's working dir

    def node_of(self, node_id: str) -> str:
        return next((k for k, n in self.nodes.items() if n.node_id == node_id), "?")

    def client(self) -> Any:
        from ray.job_submission import JobSubmissionClient

        return JobSubmissionClient(self.dashboard)


def _node_ports() -> dict[str, Any]:
    """A node on 127.0.0.1 with agent ports free there. Other Ray instances on this machine bind
    127.0.0.1 too; with Ray's defaults (the host's address, ports checked elsewhere) a node's
    raylet was seen talking to another instance's runtime-env agent."""
    agent, env_agent, metrics, export = free_ports(4)
    return dict(node_ip_address="127.0.0.1", dashboard_agent_listen_port=agent,
                runtime_env_agent_port=env_agent, metrics_agent_port=metrics,
                metrics_export_port=export, object_store_memory=NODE_STORE)


@pytest.fixture(scope="module")
def sim():
    from ray.cluster_utils import Cluster

    base = Path(tempfile.mkdtemp(prefix="mn", dir="/tmp"))  # short: unix socket paths
    (base / "ray").mkdir()  # RAY_TMPDIR/ray: where Cluster records its address
    homes = {name: base / f"{name}-home" for name in ("head", "a", "b")}
    for home in homes.values():
        home.mkdir()
    storage = base / "storage"
    storage.mkdir()
    dash = free_ports(1)[0]
    cwd, cluster = os.getcwd(), None
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RAY_ADDRESS", raising=False)
        mp.setenv("RAY_TMPDIR", str(base))  # not the machine's shared /tmp/ray
        mp.setenv("PATH", os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))  # jobs' python
        mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every node on 127.0.0.1 (below)
        try:
            os.chdir(homes["head"])  # a node's processes start in the dir it was started from
            cluster = Cluster(initialize_head=True, head_node_args=dict(
                num_cpus=0, include_dashboard=True, dashboard_host="127.0.0.1",
                dashboard_port=dash, temp_dir=str(base / "t-head"), **_node_ports()))
            s = Sim(cluster=cluster, base=base, storage=storage,
                    dashboard=f"http://127.0.0.1:{dash}", homes=homes)
            s.nodes["head"] = cluster.head_node
            # a job's driver finds its cluster through this file in the head's temp dir; without
            # it Ray falls back to any GCS process on the machine (seen: another user's instance)
            (base / "t-head" / "ray_current_cluster").write_text(cluster.address)
            for name in ("a", "b"):
                os.chdir(homes[name])
                s.nodes[name] = cluster.add_node(
                    num_cpus=2, resources={f"node_{name}": 1, "search_slot": 2},
                    temp_dir=str(base / f"t-{name}"), **_node_ports())
            os.chdir(cwd)
            _wait_dashboard(s.dashboard)
            yield s
        finally:
            os.chdir(cwd)
            if cluster is not None:
                cluster.shutdown()
            deadline = time.monotonic() + 10
            while (left := our_pids(base)) and time.monotonic() < deadline:
                time.sleep(0.5)
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(base, ignore_errors=True)


def _wait_dashboard(url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):  # noqa: S310
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                pytest.fail(f"the head's dashboard at {url} did not answer in 60 s")
            time.sleep(0.5)


def submit(sim: Sim, *args: str, env: dict[str, str] | None = None) -> str:
    """Submit ``python ARGS`` as a job with the repo as its working dir; returns its id."""
    job_id = f"mn-{Path(args[0]).stem}-{uuid.uuid4().hex[:6]}"
    runtime_env: dict[str, Any] = {"working_dir": str(ROOT)}
    if env:
        runtime_env["env_vars"] = env
    deadline = time.monotonic() + 120
    while True:
        try:
            sim.client().submit_job(entrypoint=" ".join(["python", *args]),
                                    submission_id=job_id, runtime_env=runtime_env)
            return job_id
        except RuntimeError as e:  # the head's agent registers seconds after the node starts
            if "No available agent" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def wait_job(sim: Sim, job_id: str, timeout: float = 600) -> tuple[str, str]:
    """Wait for the job's end (stopping it after ``timeout``); its status and logs."""
    client, status = sim.client(), "PENDING"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # a dashboard hiccup: the deadline still bounds it
            status = str(client.get_job_status(job_id))
        if status.rsplit(".", 1)[-1] in TERMINAL:
            break
        time.sleep(2)
    else:
        client.stop_job(job_id)
    return status.rsplit(".", 1)[-1], client.get_job_logs(job_id)


def run_job(sim: Sim, *args: str, timeout: float = 600) -> str:
    status, logs = wait_job(sim, submit(sim, *args), timeout)
    assert status == "SUCCEEDED", f"{args[0]} ended {status}; logs:\n{logs[-6000:]}"
    return logs


def actors(sim: Sim, class_name: str, job_id: str | None = None) -> list[Any]:
    """Every actor (alive or dead) of that class, of one Ray job or all, from the head's state
    API."""
    from ray.util.state import list_actors

    every = list_actors(address=sim.dashboard, limit=10000, raise_on_missing_output=False)
    return [a for a in every if a.class_name.rsplit(".", 1)[-1] == class_name
            and job_id in (None, a.job_id)]


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def _strays(sim: Sim) -> dict[str, list[str]]:
    """Files a stage left in a node's working dir or in a node's copy of the code (the job's
    working dir: where a relative path, or a driver-local default, would put its output)."""
    repo = _files(ROOT)
    found = {name: sorted(_files(home)) for name, home in sim.homes.items()}
    copies = list(sim.base.glob("t-*/session_*/runtime_resources/working_dir_files/*"))
    # every node ran job code from its own copy (else this check would look at nothing)
    assert {c.relative_to(sim.base).parts[0] for c in copies} == {"t-head", "t-a", "t-b"}, copies
    for copy in copies:
        found[str(copy.relative_to(sim.base))] = sorted(_files(copy) - repo)
    return {k: v for k, v in found.items() if v}


@pytest.mark.timeout(1200)
def test_pipeline_and_sweep_jobs_run_on_the_workers_and_write_only_to_storage(sim):
    store = sim.storage
    uri = f"sqlite:///{store / 'mlflow.db'}"
    run = store / "run"
    logs = run_job(sim, "jobs/pipeline.py", "--smoke-test", "--seeds", "1",
                   "--tracking-uri", uri, "--out", str(run))
    assert any(line.startswith("sizes:") for line in logs.splitlines()), logs[-3000:]
    report = json.loads((run / "report.json").read_text())
    assert report["sizes"] and report["searched_cost"] <= report["budget"]
    for part in ("data/feature_map.json", "supernet/model.pt", "search/sizes.json"):
        assert (run / part).is_file(), part
    # Ray Train's own run state (its checkpoints) is under the stage's output, in storage
    assert list((run / "supernet" / ".ray").rglob("checkpoint_*")), "no supernet checkpoint"

    sweep = store / "sweep"
    logs = run_job(sim, "jobs/sweep_penalty.py", "--data", str(run / "data"),
                   "--supernet", str(run / "supernet"), "--lams", "0.5,8", "--budgets", "0.8",
                   "--tracking-uri", uri, "--out", str(sweep), "iterations=4",
                   "archs_per_iter=8", "val_rows=500", "actor_resource=search_slot")
    assert "2 trials; Pareto front" in logs, logs[-3000:]
    assert (sweep / "pareto.csv").is_file()
    assert list((sweep / "tune").rglob("checkpoint_*")), "no trial checkpoint in storage"

    # where the work ran: drivers on the head, every worker, actor and trial on a worker node
    jobs = [j for j in sim.client().list_jobs() if j.submission_id.startswith("mn-")]
    assert len(jobs) == 2 and {sim.node_of(j.driver_node_id) for j in jobs} == {"head"}
    placed = {cls: sorted({sim.node_of(a.node_id) for a in actors(sim, cls)})
              for cls in ("RayTrainWorker", "SearchWorker", "ImplicitFunc")}
    assert all(nodes and set(nodes) <= {"a", "b"} for nodes in placed.values()), placed
    # the actor a training run's workers report to lives with its driver, on the head
    assert {sim.node_of(a.node_id) for a in actors(sim, "Progress")} == {"head"}

    # MLflow: the store, every run's artifacts, and the trials' own artifacts (logged from the
    # worker nodes) are all in storage
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              max_results=1000)
    assert runs and all(r.info.artifact_uri.startswith(f"file://{store}")
                        or r.info.artifact_uri.startswith(str(store)) for r in runs), [
        r.info.artifact_uri for r in runs]
    trials = [r for r in runs if r.info.run_name.startswith("trial-")]
    assert len(trials) == 2
    for trial in trials:
        assert "sizes.json" in {a.path for a in client.list_artifacts(trial.info.run_id)}

    assert _strays(sim) == {}


def _registered_checkpoint(out: Path) -> bool:
    """Whether Ray Train has registered a checkpoint of the run in ``out`` (its checkpoint
    manager's snapshot names one): a worker group restarted now resumes from it."""
    for snap in (out / ".ray").rglob("checkpoint_manager_snapshot.json"):
        with contextlib.suppress(OSError, ValueError):  # being rewritten
            if json.loads(snap.read_text()).get("latest_checkpoint_result"):
                return True
    return False


@pytest.mark.timeout(600)
def test_losing_the_training_node_resumes_from_its_checkpoint_on_the_other(sim, tmp_path):
    """2 epochs of 8 steps, a checkpoint at each epoch's end. Rank 0 pauses in step 10 (epoch
    2); the node running it is removed; the worker group restarts on the other node from the
    checkpoint at step 8 and the run finishes."""
    from adass_ray.data import synthetic

    data = sim.storage / "nl-data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=3000, seed=3), data)
    out = sim.storage / "nl-supernet"
    marker = tmp_path / "paused"
    fault = {"train": {"at_step": 10, "rank": 0, "mid_step": True, "sleep": 600,
                       "marker": str(marker)}}
    job = submit(sim, "jobs/train_supernet.py", "--data", str(data), "--out", str(out),
                 "--no-tracking", "epochs=2", "checkpoint_every=0", "patience=0",
                 "max_rows=2000", "batch_size=256", "model.hidden=[32]", "num_workers=2",
                 "cpus_per_worker=1", "max_failures=2",
                 env={"ADASS_RAY_FAULTS": json.dumps(fault)})
    deadline = time.monotonic() + 300
    while not (marker.exists() and _registered_checkpoint(out)):
        status = str(sim.client().get_job_status(job)).rsplit(".", 1)[-1]
        assert status not in TERMINAL, f"the job ended ({status}) before the fault:\n" + (
            sim.client().get_job_logs(job)[-4000:])
        assert time.monotonic() < deadline, "training never reached the fault"
        time.sleep(0.5)
    ray_job = sim.client().get_job_info(job).job_id  # the state API's job id of this run
    alive = [a for a in actors(sim, "RayTrainWorker", ray_job) if a.state == "ALIVE"]
    used = {sim.node_of(a.node_id) for a in alive}
    assert len(alive) == 2 and used <= {"a", "b"}, (alive, used)
    lost = "a" if "a" in used else "b"
    survivor = "b" if lost == "a" else "a"
    sim.cluster.remove_node(sim.nodes.pop(lost))

    status, logs = wait_job(sim, job, timeout=400)
    assert status == "SUCCEEDED", f"the run did not survive the node loss:\n{logs[-6000:]}"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 8, metrics  # epoch 1's checkpoint, not from scratch
    assert len(json.loads((out / "history.json").read_text())) == 2
    assert (out / "model.pt").is_file()
    # the restarted workers ran on the node that was left
    workers = actors(sim, "RayTrainWorker", ray_job)
    reborn = [a for a in workers if sim.node_of(a.node_id) == survivor
              and a.actor_id not in {b.actor_id for b in alive}]
    assert len(reborn) == 2, [(sim.node_of(a.node_id), a.state) for a in workers]
