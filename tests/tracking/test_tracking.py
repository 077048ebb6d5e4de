"""MLflow tracker against a sqlite store in a temp dir (one shared db for the module: ~2-4 s)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adass_ray.tracking import (
    MAX_PARAM_VALUE_LENGTH,
    NoopTracker,
    Tracker,
    flatten_params,
    make_tracker,
)
from adass_ray.tracking.mlflow import EXPERIMENT_KIND_TAG, PARENT_RUN_TAG, VIEW_TAG, ui_url
from adass_ray.tracking.runs import MlflowTracker
from adass_ray.tracking.uri import resolve_tracking_uri

EXPERIMENT = "tests"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    import mlflow

    return {"uri": uri, "root": root, "client": mlflow.MlflowClient(uri)}


def start(store: dict[str, Any], name: str = "run", **kw: Any) -> MlflowTracker:
    return MlflowTracker.start(tracking_uri=store["uri"], experiment=EXPERIMENT, run_name=name,
                               **kw)


@dataclass(frozen=True)
class Cfg:
    lr: float = 0.1
    dims: tuple[int, ...] = (4, 8)


def test_import_does_not_import_mlflow():
    code = "import sys, adass_ray.tracking; assert 'mlflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_flatten_params():
    flat = flatten_params({"model": {"dim": 16, "cfg": Cfg()}, "lr": 0.01, "long": "x" * 7000})
    assert flat["model.dim"] == "16"
    assert flat["model.cfg.lr"] == "0.1" and flat["model.cfg.dims"] == "(4, 8)"
    assert flat["lr"] == "0.01"
    assert len(flat["long"]) == MAX_PARAM_VALUE_LENGTH and flat["long"].endswith("...")


def test_resolve_tracking_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path}/mlflow.db"
    assert resolve_tracking_uri("sqlite:///rel/m.db") == f"sqlite:///{tmp_path}/rel/m.db"
    assert resolve_tracking_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert resolve_tracking_uri("http://host:5000") == "http://host:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri(None) == "http://env:5000"
    assert list(tmp_path.iterdir()) == []


def test_params_metrics_artifacts_round_trip(store, tmp_path):
    client = store["client"]
    tk = start(store, tags={"dataset": "toy"})
    assert isinstance(tk, Tracker) and tk.active and tk.run_id
    tk.log_params({"model": {"dim": 16}, "lr": 0.01})
    for step in range(3):
        tk.log_metrics({"auc": 0.5 + step / 10, "loss": 1.0 / (step + 1)}, step=step)
    tk.log_metrics({"final": 1.0})
    (tmp_path / "sizes.json").write_text("{}")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text("a")
    tk.log_artifact(tmp_path / "sizes.json")
    tk.log_artifact(tmp_path / "folder", artifact_path="more")
    tk.log_dict({"front": [1, 2]}, "pareto/front.json")
    tk.set_tags({"stage": "search", "n": 3})
    tk.close()
    tk.close()  # idempotent

    run = client.get_run(tk.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"model.dim": "16", "lr": "0.01"}
    assert run.data.tags["dataset"] == "toy" and run.data.tags["n"] == "3"
    history = client.get_metric_history(tk.run_id, "auc")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.6), (2, 0.7)]
    assert client.get_metric_history(tk.run_id, "final")[0].step == 0
    assert sorted(a.path for a in client.list_artifacts(tk.run_id)) == ["more", "pareto",
                                                                        "sizes.json"]
    assert [a.path for a in client.list_artifacts(tk.run_id, "more")] == ["more/a.txt"]
    # Artifacts live beside the sqlite file, not in the cwd.
    assert run.info.artifact_uri.startswith((store["root"] / "mlruns").as_uri())


def test_child_runs_have_parent_tag_and_status(store):
    client = store["client"]
    with start(store, "parent") as parent:
        with parent.child("ok", tags={"seed": 1}) as kid:
            kid.log_metrics({"x": 1.0})
        with pytest.raises(RuntimeError), parent.child("bad") as bad:
            raise RuntimeError("boom")
    for tk, status in [(kid, "FINISHED"), (bad, "FAILED"), (parent, "FINISHED")]:
        assert client.get_run(tk.run_id).info.status == status
    assert client.get_run(kid.run_id).data.tags[PARENT_RUN_TAG] == parent.run_id
    assert client.get_run(kid.run_id).data.tags["seed"] == "1"
    assert PARENT_RUN_TAG not in client.get_run(parent.run_id).data.tags


def test_experiment_is_filed_as_model_training_in_the_ui(store):
    client = store["client"]
    start(store, "kind").close()
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp.tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    # the saved runs-table view the printed link opens: AUC / logloss / params columns first
    view = json.loads(exp.tags[VIEW_TAG])
    assert view["selectedColumns"][:2] == ["metrics.`searched_test_auc_mean`",
                                           "metrics.`uniform_test_auc_mean`"]
    assert {"metrics.`test_auc`", "metrics.`test_logloss`",
            "metrics.`embedding_params`"} <= set(view["selectedColumns"])
    assert view["orderByKey"].startswith("metrics.")  # a metric sort lists stage runs flat
    url = ui_url(store["uri"], EXPERIMENT, "http://127.0.0.1:5000")
    assert url == (f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs"
                   "?viewStateShareKey=adass-ray&workflowType=machine_learning")
    assert ui_url(store["uri"], "no-such-experiment") is None
    # one made elsewhere without a kind gets ours; one with a kind keeps it
    bare = client.create_experiment("made-by-hand")
    chosen = client.create_experiment("chosen", tags={EXPERIMENT_KIND_TAG: "genai_development"})
    for name in ("made-by-hand", "chosen"):
        MlflowTracker.start(tracking_uri=store["uri"], experiment=name, run_name="r").close()
    assert client.get_experiment(bare).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_attach_logs_into_the_same_run_and_leaves_it_open(store):
    client = store["client"]
    owner = start(store, "driver")
    assert owner.run_id is not None
    worker = MlflowTracker.attach(tracking_uri=owner.tracking_uri, run_id=owner.run_id)
    assert worker.run_id == owner.run_id
    worker.log_metrics({"epoch_loss": 0.3}, step=1)
    worker.close()
    assert client.get_run(owner.run_id).info.status == "RUNNING"
    owner.close()
    run = client.get_run(owner.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["epoch_loss"] == 0.3


def test_nests_under_an_active_fluent_run(store, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    exp_id = store["client"].get_experiment_by_name(EXPERIMENT).experiment_id
    with mlflow.start_run(experiment_id=exp_id) as fluent:
        tk = start(store, "inside-trial")
        tk.log_metrics({"m": 1.0})
        tk.close()
        explicit = start(store, "explicit-parent", parent_run_id=tk.run_id)
        explicit.close()
        active = mlflow.active_run()
        assert active is not None and active.info.run_id == fluent.info.run_id  # untouched
    client = store["client"]
    assert client.get_run(tk.run_id).data.tags[PARENT_RUN_TAG] == fluent.info.run_id
    assert client.get_run(explicit.run_id).data.tags[PARENT_RUN_TAG] == tk.run_id
    assert client.get_run(fluent.info.run_id).info.status == "FINISHED"


def test_threads_each_log_their_own_child(store):
    parent = start(store, "threads")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            with parent.child(f"t{i}") as kid:
                for step in range(3):
                    kid.log_metrics({"v": float(i)}, step=step)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    parent.close()
    assert errors == []
    runs = store["client"].search_runs(
        [parent._experiment_id], f"tags.`{PARENT_RUN_TAG}` = '{parent.run_id}'")
    assert sorted(r.data.metrics["v"] for r in runs) == [0.0, 1.0, 2.0, 3.0]


def test_rejected_value_is_raised_not_swallowed(store):
    from mlflow.exceptions import MlflowException

    tk = start(store, "bad-param")
    tk.log_params({"lr": 0.1})
    with pytest.raises(MlflowException):
        tk.log_params({"lr": 0.2})
    assert tk.active
    tk.close()


def _tracking_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name.startswith("adass_ray.tracking") and r.levelno >= logging.WARNING]


def test_unreachable_server_warns_once_and_keeps_artifacts(tmp_path, caplog):
    fallback = tmp_path / "fallback"
    (tmp_path / "art.txt").write_text("kept")
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="adass_ray.tracking"):
        tk = MlflowTracker.start(tracking_uri="http://127.0.0.1:1", experiment=EXPERIMENT,
                                 run_name="offline", fallback_dir=fallback)
        tk.log_params({"a": {"b": 1}})
        tk.log_metrics({"m": 1.0}, step=2)
        tk.set_tags({"t": 1})
        tk.log_artifact(tmp_path / "art.txt", artifact_path="sub")
        tk.log_dict({"k": 1}, "sizes.json")
        with tk.child("kid") as kid:
            kid.log_dict({"k": 2}, "cfg.yaml")
        tk.close()
        attached = MlflowTracker.attach(tracking_uri="http://127.0.0.1:1", run_id="abc",
                                        fallback_dir=fallback)
    assert time.monotonic() - began < 5
    assert tk.run_id is None and not tk.active and kid.run_id is None
    records = _tracking_warnings(caplog)
    assert len(records) == 2  # one for the started tracker tree, one for the attached tracker
    message = records[0].getMessage()
    assert "\n" not in message and "tracking is off" in message and str(fallback) in message
    assert (fallback / "sub" / "art.txt").read_text() == "kept"
    assert (fallback / "sizes.json").read_text().strip().startswith("{")
    assert "k: 2" in (fallback / "kid" / "cfg.yaml").read_text()
    assert attached.run_id is None


def test_failure_mid_run_degrades_once(store, tmp_path, caplog, monkeypatch):
    tk = start(store, "flaky", fallback_dir=tmp_path / "fb")
    run_id = tk.run_id

    def down(*_args: Any, **_kwargs: Any) -> None:
        raise ConnectionError("server went away")

    monkeypatch.setattr(tk._client, "log_batch", down)
    monkeypatch.setattr(tk._client, "log_artifact", down)
    (tmp_path / "a.txt").write_text("a")
    with caplog.at_level(logging.WARNING, logger="adass_ray.tracking"):
        tk.log_metrics({"m": 1.0})
        tk.log_metrics({"m": 2.0})
        tk.log_artifact(tmp_path / "a.txt")
        tk.close()
    assert len(_tracking_warnings(caplog)) == 1
    assert "server went away" in _tracking_warnings(caplog)[0].getMessage()
    assert (tmp_path / "fb" / "a.txt").exists()
    assert store["client"].get_run(run_id).info.status == "RUNNING"  # could not be closed


def test_nothing_written_to_cwd(store, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    src = tmp_path / "art.txt"
    src.write_text("x")
    with start(store, "cwd-check", fallback_dir=tmp_path / "fb") as tk:
        tk.log_params({"a": 1})
        tk.log_metrics({"m": 1.0}, step=0)
        tk.log_artifact(src)
        tk.log_dict({"a": 1}, "d.json")
        with tk.child("kid") as kid:
            kid.log_artifact(src)
    fresh = MlflowTracker.start(tracking_uri=store["uri"], experiment="new-experiment",
                                run_name="r")
    fresh.log_artifact(src)
    fresh.close()
    assert list(cwd.iterdir()) == []
    assert not (tmp_path / "fb").exists()


def test_default_uri_is_explicit_and_local_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "a.txt").write_text("a")
    with MlflowTracker.start(tracking_uri=None, experiment="exp one", run_name="r") as tk:
        tk.log_artifact(tmp_path / "a.txt")
    assert tk.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    import mlflow

    assert tk.run_id is not None
    run = mlflow.MlflowClient(tk.tracking_uri).get_run(tk.run_id)
    assert run.info.artifact_uri.startswith((tmp_path / "mlruns" / "exp_one").as_uri())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "mlflow.db", "mlruns"]


def test_make_tracker_and_noop(store):
    noop = make_tracker(False, tracking_uri=store["uri"], experiment=EXPERIMENT, run_name="x")
    assert isinstance(noop, NoopTracker) and isinstance(noop, Tracker)
    with noop as t, t.child("c") as c:
        c.log_params({"a": {"b": 1}})
        c.log_metrics({"m": 1.0}, step=1)
        c.log_artifact("does-not-matter")
        c.log_dict({}, "x.json")
        c.set_tags({"a": 1})
    assert noop.run_id is None and noop.tracking_uri is None

    owner = make_tracker(True, tracking_uri=store["uri"], experiment=EXPERIMENT, run_name="mk")
    assert isinstance(owner, MlflowTracker) and owner.run_id
    same = make_tracker(True, tracking_uri=owner.tracking_uri, run_id=owner.run_id)
    assert isinstance(same, MlflowTracker) and same.run_id == owner.run_id
    owner.close()
    with pytest.raises(ValueError, match="status"):
        same.close("DONE")


def test_repr_is_informative(store, tmp_path):
    tk = MlflowTracker.start(tracking_uri="http://127.0.0.1:1", experiment="e", run_name="r",
                             fallback_dir=tmp_path)
    assert "off" in repr(tk) and str(Path(tmp_path)) in repr(tk)


def test_the_logged_model_folder_has_no_pickle_and_rebuilds(store, tmp_path):
    """The retrained model goes to MLflow as tensors + JSON; the package's loader rebuilds it."""
    import torch

    from adass_ray.data import synthetic
    from adass_ray.data.feature_map import FeatureMap
    from adass_ray.model.checkpoint import load_model_folder, save_model
    from adass_ray.model.config import ModelConfig, build_standalone
    from adass_ray.stages.train import log_model_folder

    data = tmp_path / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=300, seed=0), data)
    fm = FeatureMap.load(data)
    sizes = (4,) * fm.num_fields
    model = build_standalone(fm, ModelConfig(hidden=(8,)), sizes)
    save_model(tmp_path / "model.pt", kind="fixed", model=model,
               model_config=ModelConfig(hidden=(8,)), fm=fm, sizes=sizes)
    with start(store, "model") as tracker:
        log_model_folder(tracker, tmp_path / "model.pt", data / "feature_map.json")
    local = store["client"].download_artifacts(tracker.run_id, "model", str(tmp_path / "dl"))
    assert sorted(p.name for p in Path(local).iterdir()) == [
        "feature_map.json", "model.json", "model.pt"]  # no MLmodel, no pickled module
    loaded = load_model_folder(local)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
