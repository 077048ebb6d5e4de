"""Stage 1 on Ray Train: 2 workers; a killed worker resumes and ends where a clean run ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adass_ray.data import synthetic
from adass_ray.distributed.train import fit
from adass_ray.errors import AdassError
from adass_ray.model.config import ModelConfig
from adass_ray.sampling import SamplerConfig
from adass_ray.stages.train import retrain
from adass_ray.tracking import TrackingSpec
from adass_ray.train.config import TrainConfig

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=3000, seed=1), out)
    return out


CFG = TrainConfig(
    model=ModelConfig(hidden=(32,)),
    sampler=SamplerConfig(name="adaptive", warmup_steps=3),
    epochs=2,
    batch_size=128,
    checkpoint_every=4,
    num_workers=2,
    cpus_per_worker=1.0,
    max_rows=2000,
    patience=0,
    use_gpu="no",
)


def _weights(out, data):
    from adass_ray.data.feature_map import FeatureMap
    from adass_ray.model.checkpoint import load_model

    model, _ = load_model(out, FeatureMap.load(data))
    return model.state_dict()


def test_worker_killed_mid_step_resumes_to_the_same_weights(ray_local, data, tmp_path):
    """Rank 1 dies in the middle of step 9 (gradients all-reduced, weights not yet updated),
    between the checkpoints at steps 8 and 12: the group restarts from a checkpoint and ends
    with exactly the weights of an uninterrupted run."""
    clean = fit(data=data, out=tmp_path / "clean", cfg=CFG, kind="supernet")
    marker = tmp_path / "failed-once"
    fault = {"train": {"at_step": 9, "marker": str(marker), "rank": 1, "mid_step": True}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADASS_RAY_FAULTS", json.dumps(fault))
        faulty = fit(data=data, out=tmp_path / "faulty", cfg=CFG, kind="supernet")
    assert marker.read_text() == "9", "the fault was not injected mid-step 9"
    # a checkpoint (not a restart from scratch): the one at step 8, or at step 4 when Ray had
    # not finished registering step 8's before the group died (reports are asynchronous)
    assert faulty.metrics["resumed_from_step"] in (4, 8)
    assert "resumed_from_step" not in clean.metrics
    a, b = _weights(tmp_path / "clean", data), _weights(tmp_path / "faulty", data)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs from the uninterrupted run"
    h_clean = json.loads((tmp_path / "clean" / "history.json").read_text())
    h_faulty = json.loads((tmp_path / "faulty" / "history.json").read_text())
    assert [h["val_auc"] for h in h_faulty] == [h["val_auc"] for h in h_clean]
    assert [h["train_loss"] for h in h_faulty] == [h["train_loss"] for h in h_clean]
    # 2 workers × 1 CPU really ran (the run would have hung otherwise) and the CPUs are free again
    assert ray_local.available_resources().get("CPU", 0) == pytest.approx(2.0)


def test_existing_run_needs_resume_and_resume_continues(ray_local, data, tmp_path):
    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 1, "num_workers": 1})
    first = fit(data=data, out=tmp_path / "run", cfg=cfg, kind="fixed", sizes=(8,) * 8)
    with pytest.raises(AdassError, match="--resume"):
        fit(data=data, out=tmp_path / "run", cfg=cfg, kind="fixed", sizes=(8,) * 8)
    # resuming a finished run trains no more epochs and keeps the result
    again = fit(data=data, out=tmp_path / "run", cfg=cfg, kind="fixed", sizes=(8,) * 8, resume=True)
    assert again.metrics["test_auc"] == pytest.approx(first.metrics["test_auc"], abs=1e-9)


def test_more_cpus_than_the_cluster_has_is_refused(ray_local, data, tmp_path):
    cfg = TrainConfig(**{**CFG.__dict__, "num_workers": 3})
    with pytest.raises(AdassError, match="need 3 CPUs"):
        fit(data=data, out=tmp_path / "big", cfg=cfg, kind="supernet")


def test_cli_smoke_test_logs_to_mlflow(ray_local, tmp_path, capsys):
    from mlflow import MlflowClient

    from adass_ray.cli import main

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    code = main(
        [
            "train-supernet",
            "--smoke-test",
            "--out",
            str(tmp_path / "sn"),
            "--tracking-uri",
            uri,
            "--experiment",
            "smoke",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "sn" / "model.pt").is_file()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("smoke")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert "test_auc" in run.data.metrics and "val_auc" in run.data.metrics
    assert run.data.params["stage"] == "supernet"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"model.pt", "metrics.json"}


def test_pipeline_smoke_run_and_rerun_reuses_stages(ray_local, tmp_path, capsys):
    from mlflow import MlflowClient

    from adass_ray.cli import main

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    argv = [
        "run",
        "--smoke-test",
        "--seeds",
        "1",
        "--out",
        str(tmp_path / "demo"),
        "--tracking-uri",
        uri,
    ]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "searched:" in out and "uniform:" in out and "MLflow:" in out
    for stage in (
        "data/feature_map.json",
        "supernet/model.pt",
        "search/sizes.json",
        "retrain-searched/seed-0/model.pt",
        "retrain-uniform/seed-0/model.pt",
        "report.json",
    ):
        assert (tmp_path / "demo" / stage).is_file(), stage
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["searched_cost"] <= report["budget"] < report["uniform_cost"]
    # one parent run with the comparison; every stage a child of it
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("synthetic").experiment_id])
    parents = [r for r in runs if r.info.run_name.startswith("pipeline-")]
    assert len(parents) == 1 and "searched_test_auc_mean" in parents[0].data.metrics
    # the linear floor: in the report, the parent run's metrics and the printout
    assert {"floor_val_auc_mean", "floor_test_auc_mean", "uniform_val_auc_mean"} <= set(
        parents[0].data.metrics
    )
    assert len(report["floor_test_auc"]) == 1 and 0.0 <= report["floor_val_auc_mean"] <= 1.0
    assert "floor:" in out
    assert {a.path for a in client.list_artifacts(parents[0].info.run_id)} >= {
        "report.json",
        "sizes.json",
        "history.json",
        "pareto.csv",
        "pareto.png",
        "feature_map.json",
    }
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == 4  # supernet, search, one retrain per sizes
    retrained = [r for r in children if r.data.params.get("stage") == "fixed"]
    assert len(retrained) == 2
    from adass_ray.model.checkpoint import load_model_folder

    local = client.download_artifacts(retrained[0].info.run_id, "model", str(tmp_path))
    assert sorted(p.name for p in Path(local).iterdir()) == [
        "feature_map.json", "model.json", "model.pt"]  # no pickled module
    model = load_model_folder(local)
    assert (
        model.embedding_params() > 0
    )  # the retrained stand-alone model, logged as an MLflow model
    mtime = (tmp_path / "demo" / "supernet" / "model.pt").stat().st_mtime
    assert main(argv) == 0  # a re-run reuses every finished stage
    assert (tmp_path / "demo" / "supernet" / "model.pt").stat().st_mtime == mtime


def test_retrain_over_seeds_from_scratch_and_inherited(ray_local, data, tmp_path):
    from adass_ray.data.feature_map import FeatureMap

    cfg = TrainConfig(**{**CFG.__dict__, "epochs": 1, "num_workers": 1})
    fit(data=data, out=tmp_path / "sn", cfg=cfg, kind="supernet")
    from adass_ray.search.export import write_sizes_json
    from adass_ray.search.space import SearchSpace

    space = SearchSpace.from_feature_map(FeatureMap.load(data))
    small = [s for s in space.candidate_sizes if 0 < s <= cfg.model.d]
    chosen = tuple(small[i % len(small)] for i in range(space.num_fields))
    write_sizes_json(
        tmp_path / "sizes.json",
        space,
        space.arch_of(chosen),
        budget=space.cost(space.arch_of(chosen)),
        provenance={},
    )
    off = TrackingSpec(enabled=False)
    summary = retrain(
        data=data,
        out=tmp_path / "rt",
        cfg=cfg,
        sizes_file=str(tmp_path / "sizes.json"),
        seeds=2,
        init_from=tmp_path / "sn",
        tracking=off,
    )
    assert summary["seeds"] == [0, 1] and len(summary["test_auc"]) == 2
    assert summary["test_auc_std"] >= 0 and 0 < summary["test_auc_mean"] < 1
    assert (tmp_path / "rt" / "seed-1" / "inherited.pt").is_file()
    assert (
        json.loads((tmp_path / "rt" / "summary.json").read_text())["embedding_params"]
        == summary["embedding_params"]
    )
    # a finished seed is reused, not retrained
    again = retrain(
        data=data,
        out=tmp_path / "rt",
        cfg=cfg,
        sizes_file=str(tmp_path / "sizes.json"),
        seeds=2,
        init_from=tmp_path / "sn",
        tracking=off,
    )
    assert again["test_auc"] == summary["test_auc"]


def _small_csv(path, rows=3000, seed=0):
    """A CSV with no config anywhere: a planted label over two fields, a noise field, a numeric
    column, a row id, a near-unique column, a constant column; label named ``clicked``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 20, rows), rng.integers(0, 8, rows)
    price = rng.gamma(2.0, 10.0, rows)
    logit = (a % 5 - 2) * 0.8 + (b == 3) * 1.5 + (price > 20) * 0.5 - 0.5
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    lines = ["user,shop,noise,price,row_id,visit,const,clicked"]
    for i in range(rows):
        lines.append(f"u{a[i]},s{b[i]},n{rng.integers(0, 5)},{price[i]:.2f},r{i},v{i * 2 // 3},"
                     f"x,{y[i]}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow  # a whole pipeline (about a minute on 2 free cores, several under load)
def test_run_on_a_csv_with_no_schema_and_a_crippled_model_warns(ray_local, tmp_path, capsys):
    """``run --input x.csv`` infers and writes the schema, runs every stage, and warns (report,
    printout, parent-run tag) when the deep model cannot beat the linear floor."""
    from mlflow import MlflowClient

    from adass_ray.cli import main
    from adass_ray.data.schema import Schema

    csv = _small_csv(tmp_path / "shop.csv")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = tmp_path / "run"
    argv = ["run", "--input", str(csv), "--smoke-test", "--seeds", "1", "--out", str(out),
            "--tracking-uri", uri,
            # crippled: a learning rate that leaves the network at its random start
            "lr=0.000000001",
            "search.occam=0.5"]  # a search setting goes to the search stage
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr()
    schema = Schema.load(out / "schema.yaml")
    assert schema.label == "clicked" and schema.numeric == ("price",)
    assert set(schema.categorical) == {"user", "shop", "noise", "visit"}  # no row_id, const
    assert schema.min_count == {"visit": 2}
    report = json.loads((out / "report.json").read_text())
    assert report["floor_val_auc_mean"] > report["uniform_val_auc_mean"]
    assert any("the uniform model does not beat the linear floor" in w
               for w in report["warnings"])
    assert "WARNING:" in printed.out and "linear floor" in printed.out
    client = MlflowClient(uri)
    (parent,) = [r for r in client.search_runs(
        [client.get_experiment_by_name("shop").experiment_id])
        if r.info.run_name.startswith("pipeline-")]
    assert "linear floor" in parent.data.tags["floor_warning"]
    assert float(parent.data.params["search.occam"]) == 0.5
    assert "schema.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
