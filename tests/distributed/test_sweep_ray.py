"""Ray Tune sweep over λ × budget on one supernet: trials, the Pareto front, the plot, MLflow."""

from __future__ import annotations

import json

import pytest

from adass_ray.errors import ConfigError
from adass_ray.pareto import ParetoPoint, dominates, read_pareto_csv
from adass_ray.search.agent import SearchConfig
from adass_ray.stages.sweep import sweep
from adass_ray.tracking import TrackingSpec

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]
CFG = SearchConfig(controllers=1, iterations=4, archs_per_iter=6, val_rows=300)


def test_sweep_front_plot_and_mlflow_runs(trained, tmp_path):
    import mlflow

    data, supernet = trained
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    track = TrackingSpec(uri=uri, experiment="sweep-test")
    out = tmp_path / "sweep"
    summary = sweep(
        data=data,
        supernet=supernet,
        out=out,
        lams=(0.5, 4.0),
        budgets=("0.4", "0.8"),
        cfg=CFG,
        tracking=track,
    )
    trials = summary["trials"]
    assert {(t["lam"], t["budget"]) for t in trials} == {
        (0.5, "0.4"),
        (0.5, "0.8"),
        (4.0, "0.4"),
        (4.0, "0.8"),
    }
    assert all(t["cost"] <= t["budget_params"] for t in trials)  # the hard budget holds
    for budget in ("0.4", "0.8"):  # the pooled front: the selected cost never rises with λ
        chosen = sorted((s["lam"], s["cost"]) for s in summary["selections"]
                        if s["budget"] == budget)
        assert [c for _, c in chosen] == sorted((c for _, c in chosen), reverse=True)
        assert all(s["cost"] <= s["budget_params"] for s in summary["selections"])

    points, on_front = read_pareto_csv(out / "pareto.csv")
    # the 4 pooled (λ, budget) selections, the 4 trials' own selections, then the rest of the
    # pooled short lists (each architecture once, none of them a pooled selection)
    sources = [p.payload["source"] for p in points]
    assert sources[:8] == ["pooled"] * 4 + ["trial"] * 4 and set(sources[8:]) == {"pool"}
    assert any(on_front)
    pool = [p for p in points if p.payload["source"] == "pool"]
    assert len({p.key for p in pool}) == len(pool) == len(summary["pool"]) > 0
    picked = {json.dumps(r["sizes"], sort_keys=True)
              for r in [*summary["selections"], *summary["trials"]]}
    assert not any(json.dumps(p.payload["sizes"], sort_keys=True) in picked for p in pool)
    # the winner is the best λ pick or trial pick (the rest of the pool cannot win)
    best = max((p for p in points if p.payload["source"] != "pool"),
               key=lambda p: (p.auc, -p.params))
    assert summary["winner"] == best.key
    assert {p.key for p in points if p.payload["source"] == "trial"} == {
        f"trial:{t['key']}" for t in trials}
    front = [p for p, on in zip(points, on_front, strict=True) if on]
    # front members are not dominated; every other point is dominated by one of them
    for p in points:
        plain = ParetoPoint(p.params, p.auc)
        if p in front:
            assert not any(dominates(ParetoPoint(q.params, q.auc), plain) for q in points)
        else:
            assert any(
                dominates(ParetoPoint(q.params, q.auc), plain)
                or (q.params, q.auc) == (p.params, p.auc)
                for q in front
            )
    png = (out / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    doc = json.loads((out / "sweep.json").read_text())
    assert {u["size"] for u in doc["uniform"]} >= {16}
    assert doc["lams"] == [0.5, 4.0] and doc["lams_auto"] is False
    for u in doc["uniform_covered"]:  # a covering front point is no costlier and no worse
        assert u["covered_by"] is None or (
            u["front_params"] <= u["cost"] and u["front_quality"] >= u["quality"])

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("sweep-test")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.info.run_name == "sweep-sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    assert {float(c.data.params["lam"]) for c in children} == {0.5, 4.0}
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto.csv", "pareto.png", "sweep.json"} <= arts
    assert parent.data.metrics["trials"] == 4

    with pytest.raises(
        Exception, match="--resume"
    ):  # a second sweep into the same folder is refused
        sweep(
            data=data,
            supernet=supernet,
            out=out,
            lams=(1.0,),
            budgets=("0.8",),
            cfg=CFG,
            tracking=track,
        )
    from adass_ray.errors import ConfigError

    with pytest.raises(ConfigError, match=r"lams: was \[0\.5, 4\.0\], now \[1\.0\]"):
        sweep(data=data, supernet=supernet, out=out, lams=(1.0,), budgets=("0.4", "0.8"),
              cfg=CFG, tracking=track, resume=True)  # --resume of another grid is refused


def test_sweep_refuses_a_budget_below_the_minimum(trained, tmp_path):
    from adass_ray.errors import ConfigError

    data, supernet = trained
    with pytest.raises(ConfigError, match="below the smallest architecture"):
        sweep(
            data=data,
            supernet=supernet,
            out=tmp_path / "s",
            lams=(1.0,),
            budgets=("0.8", "0.001"),
            cfg=CFG,
            tracking=TrackingSpec(enabled=False),
        )
    assert not (tmp_path / "s" / "tune").exists()


def _ladder(monkeypatch, quality):
    """The real uniform costs, with qualities the test controls (a one-epoch supernet's ladder
    is noise)."""
    import adass_ray.stages.sweep as stage

    real = stage.uniform_points

    def points(ctx):
        return [{**p, "quality": quality(i)} for i, p in enumerate(real(ctx))]

    monkeypatch.setattr(stage, "uniform_points", points)


def test_sweep_auto_lams_refuses_a_ladder_without_a_gain(trained, tmp_path, monkeypatch):
    data, supernet = trained
    _ladder(monkeypatch, lambda i: 0.8 - 0.01 * i)
    with pytest.raises(ConfigError, match="no uniform size step gains"):
        sweep(data=data, supernet=supernet, out=tmp_path / "flat", lams=None,
              budgets=("0.8",), cfg=CFG)
    assert not (tmp_path / "flat").exists()  # refused before anything was written


@pytest.mark.slow  # six or seven Tune trials (~1.5 min on 2 cores); auto_lams itself is unit-tested
def test_sweep_auto_lams_span_the_uniform_steps(trained, tmp_path, monkeypatch):
    data, supernet = trained
    _ladder(monkeypatch, lambda i: 0.6 + 0.02 * i)
    summary = sweep(data=data, supernet=supernet, out=tmp_path / "auto", lams=None,
                    budgets=("0.8",), cfg=CFG)
    lams = summary["lams"]
    assert summary["lams_auto"] and lams[0] == 0.0 and lams == sorted(set(lams))
    assert len(lams) >= 3 and {t["lam"] for t in summary["trials"]} == set(lams)
    chosen = [s["cost"] for s in sorted(summary["selections"], key=lambda s: s["lam"])]
    assert chosen == sorted(chosen, reverse=True)  # still monotone in λ


def _kill_driver_then_restore(trained, tmp_path, *, lams, iterations, at):
    """A driver killed mid-sweep (SIGKILL to its whole process group, its local Ray included):
    ``--resume`` restores the Tuner, the interrupted trial continues from its checkpoint, and the
    results equal an uninterrupted sweep's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    data, supernet = trained
    cfg = SearchConfig(controllers=1, iterations=iterations, archs_per_iter=6, val_rows=300)
    marker = tmp_path / "paused"
    out = tmp_path / "killed"
    script = (
        "from pathlib import Path; from adass_ray.stages.sweep import sweep; "
        "from adass_ray.search.agent import SearchConfig; "
        "from adass_ray.tracking import TrackingSpec\n"
        f"sweep(data=Path({str(data)!r}), supernet=Path({str(supernet)!r}), out=Path({str(out)!r}),"
        f" lams={lams!r}, budgets=('0.5',), cfg=SearchConfig(**{cfg.__dict__!r}),"
        " tracking=TrackingSpec(enabled=False))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["TUNE_GLOBAL_CHECKPOINT_S"] = "0.5"  # the driver saves the experiment state often
    env["ADASS_RAY_FAULTS"] = json.dumps({"sweep": {"lam": lams[0], "at": at,
                                                    "marker": str(marker)}})
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, (
                f"the sweep ended before the fault: {proc.stderr.read().decode()[-2000:]}"
            )
            assert time.monotonic() < deadline, "the trial never reached its checkpoint"
            time.sleep(0.2)
        time.sleep(3)  # let the driver persist the experiment state that holds the checkpoint
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert not (out / "sweep.json").exists()

    common = {"data": data, "supernet": supernet, "lams": lams, "budgets": ("0.5",), "cfg": cfg,
              "tracking": TrackingSpec(enabled=False)}
    resumed = sweep(out=out, resume=True, **common)
    clean = sweep(out=tmp_path / "clean", **common)

    def essence(summary):
        return sorted(
            (t["key"], t["cost"], round(t["quality"], 9), json.dumps(t["sizes"], sort_keys=True))
            for t in summary["trials"]
        )

    assert essence(resumed) == essence(clean)
    paused = next(t for t in resumed["trials"] if t["lam"] == lams[0])
    assert paused["resumed_at"] == at, "the interrupted trial did not continue from its checkpoint"


def test_one_trial_sweep_restores_after_the_driver_is_killed(trained, tmp_path):
    """The short version of the check below, in the default tier: one trial."""
    _kill_driver_then_restore(trained, tmp_path, lams=(0.5,), iterations=6, at=3)


@pytest.mark.slow  # about two minutes: two trials, one of them interrupted
def test_sweep_restores_after_the_driver_is_killed(trained, tmp_path):
    _kill_driver_then_restore(trained, tmp_path, lams=(0.5, 4.0), iterations=10, at=3)
