"""Stage 2 on Ray: parallel controller actors, a killed actor recovers, a killed search resumes."""

from __future__ import annotations

import json

import pytest

from adass_ray.search.agent import SearchConfig
from adass_ray.search.export import read_sizes_json
from adass_ray.stages.search import search, stability
from adass_ray.tracking import TrackingSpec

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]
OFF = TrackingSpec(enabled=False)
CFG = SearchConfig(controllers=2, iterations=4, archs_per_iter=6, val_rows=300)


def _records(history):
    return sorted(
        (r["controller"], r["iteration"], tuple(r["arch"]), round(r["quality"], 9)) for r in history
    )


def test_search_selects_within_budget_and_a_killed_actor_recovers(trained, tmp_path):
    data, supernet = trained
    clean = search(
        data=data, supernet=supernet, out=tmp_path / "clean", budget="0.5", cfg=CFG, tracking=OFF
    )
    doc = read_sizes_json(tmp_path / "clean" / "sizes.json")
    from adass_ray.pareto import read_pareto_csv

    points, on_front = read_pareto_csv(tmp_path / "clean" / "pareto.csv")
    assert len(points) == len({tuple(r["arch"]) for r in clean["history"]}) and any(on_front)
    assert (tmp_path / "clean" / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert doc["cost"] <= doc["budget"] == clean["selection"].budget
    assert len(clean["history"]) == 2 * 4 * 6
    marker = tmp_path / "died"
    fault = {"search": {"index": 1, "at": 2, "marker": str(marker)}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADASS_RAY_FAULTS", json.dumps(fault))
        faulty = search(
            data=data,
            supernet=supernet,
            out=tmp_path / "faulty",
            budget="0.5",
            cfg=CFG,
            tracking=OFF,
        )
    assert marker.exists(), "the actor was not killed"
    # the restarted controller continued from its saved state: the same proposals, the same scores
    assert _records(faulty["history"]) == _records(clean["history"])
    assert faulty["selection"].arch == clean["selection"].arch


class _DriverStopped(Exception):
    pass


def test_stopped_search_resumes_where_it_stopped(trained, tmp_path, monkeypatch):
    """The driver stops right after saving iteration 2 (the SIGKILL version of this check is in
    test_driver_kill_ray.py, slow tier); --resume continues at iteration 2 and scores exactly
    what an uninterrupted search scores. --resume with another config is refused."""
    import adass_ray.stages.search as stage

    data, supernet = trained
    real_info = stage.logger.info

    def stop_at_two(msg, *args, **kw):
        if msg.startswith("search iteration") and args[0] == 2:
            raise _DriverStopped
        real_info(msg, *args, **kw)

    with monkeypatch.context() as mp:
        mp.setattr(stage.logger, "info", stop_at_two)
        with pytest.raises(_DriverStopped):
            search(data=data, supernet=supernet, out=tmp_path / "s", budget="0.5", cfg=CFG,
                   tracking=OFF)
    assert not (tmp_path / "s" / "sizes.json").exists()
    with pytest.raises(Exception, match="--resume"):
        search(
            data=data, supernet=supernet, out=tmp_path / "s", budget="0.5", cfg=CFG, tracking=OFF
        )
    longer = SearchConfig(**{**CFG.__dict__, "iterations": 6})
    with pytest.raises(Exception, match="config.iterations: was 4, now 6"):
        search(data=data, supernet=supernet, out=tmp_path / "s", budget="0.5", cfg=longer,
               tracking=OFF, resume=True)
    resumed = search(
        data=data,
        supernet=supernet,
        out=tmp_path / "s",
        budget="0.5",
        cfg=CFG,
        tracking=OFF,
        resume=True,
    )
    full = search(
        data=data, supernet=supernet, out=tmp_path / "full", budget="0.5", cfg=CFG, tracking=OFF
    )
    assert resumed["sizes"]["provenance"]["resumed_at_iteration"] == 2
    assert _records(resumed["history"]) == _records(full["history"])
    assert resumed["sizes"]["fields"] == full["sizes"]["fields"]


def test_budget_below_the_smallest_architecture(trained, tmp_path):
    from adass_ray.errors import ConfigError

    data, supernet = trained
    with pytest.raises(ConfigError, match="below the smallest architecture"):
        search(
            data=data, supernet=supernet, out=tmp_path / "x", budget="0.01", cfg=CFG, tracking=OFF
        )


def test_stability_report_over_seeds(trained, tmp_path):
    data, supernet = trained
    cfg = SearchConfig(**{**CFG.__dict__, "controllers": 1, "iterations": 2})
    rep = stability(
        data=data,
        supernet=supernet,
        out=tmp_path / "st",
        budget="0.5",
        cfg=cfg,
        repeats=2,
        tracking=OFF,
    )
    assert rep["n_runs"] == 2 and len(rep["sizes"]) == 2 and len(rep["agreement_per_field"]) == 8
    assert 0.0 <= rep["agreement"] <= 1.0 and rep["mean_abs_log2_diff"] >= 0.0
    assert json.loads((tmp_path / "st" / "stability.json").read_text())["n_pairs"] == 1
