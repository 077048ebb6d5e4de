"""`adass-ray report --quick`: every method runs, budgets hold, files are written, units reused."""

from __future__ import annotations

import json

import pytest

from adass_ray.cli import main
from adass_ray.data import synthetic

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


def test_quick_report_runs_every_method_and_reuses_finished_units(ray_local, tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "report"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=4000, seed=5), data)
    args = [
        "report",
        "--data",
        str(data),
        "--out",
        str(out),
        "--quick",
        "--seeds",
        "2",
        "--no-tracking",
        "model.hidden=[16]",
        "batch_size=512",
    ]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    assert len(res["budgets"]) == 1  # quick: one budget
    per = res["budgets"][0]
    methods = {r["method"]: r for r in per["methods"]}
    assert set(methods) == {
        "uniform d_base",
        "uniform matched to budget",
        "card^0.25 rule",
        "SSEDS-style saliency",
        "AdaS&S (ours)",
        "random search",
        "evolution",
        "linear floor (one-hot LR)",
    }
    for name, r in methods.items():
        assert len(r["test_auc"]) == 2 and all(0.0 <= a <= 1.0 for a in r["test_auc"])
        assert all(0.5 <= a <= 1.0 for a in r["val_auc"]), name
        if name != "uniform d_base":  # every other method is held to the budget
            assert max(r["embedding_params"]) <= per["budget"], name
        if r["kind"] == "fixed":  # the floor has no architecture to place on the supernet
            assert all(0.0 <= p <= 100.0 for p in r["percentile"]), name
    floor = methods["linear floor (one-hot LR)"]
    assert floor["embedding_params"] == [0, 0] and floor["total_params"][0] > 0
    assert "vs_ours_auc" in floor and len(res["floor_warnings"]) == sum(
        r["val_auc_mean"] <= floor["val_auc_mean"] for r in methods.values() if r is not floor)
    ours = methods["AdaS&S (ours)"]
    for other in ("random search", "evolution"):  # equal evaluations, seed by seed
        assert methods[other]["evaluations"] == ours["evaluations"]
        assert methods[other]["vs_ours_auc"]["n"] == 2
    assert len(res["panel"]) == 12 and len(res["ranking"]["variants"]) == 1
    assert all(-1.0 <= r["kendall_tau"] <= 1.0 for r in res["ranking"]["variants"])
    assert res["planted"] is not None  # synthetic data carry their ground truth
    assert set(res["hypervolume"]) == set(methods) - {"linear floor (one-hot LR)"}
    md = (out / "report.md").read_text()
    assert "| AdaS&S (ours) |" in md and "Kendall" in md and "Verdict:" in md
    assert "Linear floor (one-hot logistic regression" in md
    assert "Noise floor" in md
    for png in ("auc_vs_params.png", "sizes_heatmap.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    first = capsys.readouterr().out
    assert "report:" in first

    units = sorted(p.name for p in (out / "work").glob("*.json"))
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "work").glob("*.json")}
    assert main(args) == 0  # a re-run reuses every finished unit and writes the same tables
    assert sorted(p.name for p in (out / "work").glob("*.json")) == units
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    again = json.loads((out / "results.json").read_text())
    assert [r["test_auc"] for r in again["budgets"][0]["methods"]] == [
        r["test_auc"] for r in per["methods"]
    ]


def test_report_rejects_bad_arguments(ray_local, tmp_path, capsys):
    data = tmp_path / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=1000, seed=5), data)
    assert (
        main(
            [
                "report",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "r"),
                "--seeds",
                "0",
                "--no-tracking",
            ]
        )
        == 2
    )
    assert "--seeds must be >= 1" in capsys.readouterr().err
    assert (
        main(
            [
                "report",
                "--data",
                str(data),
                "--out",
                str(tmp_path / "r"),
                "--budget",
                "0.01",
                "--no-tracking",
            ]
        )
        == 2
    )
    assert "below the smallest architecture" in capsys.readouterr().err
    assert (
        main(
            [
                "report",
                "--data",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "r"),
                "--no-tracking",
            ]
        )
        == 2
    )


def test_search_only_report_with_chosen_methods(ray_local, tmp_path):
    """``--no-retrain --methods``: the searches compared on Q_B percentiles only."""
    data, out = tmp_path / "data", tmp_path / "report"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=3000, seed=6), data)
    args = ["report", "--data", str(data), "--out", str(out), "--quick", "--seeds", "2",
            "--no-tracking", "--no-retrain", "--methods", "random search",
            "model.hidden=[16]", "batch_size=512"]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in res["budgets"][0]["methods"]}
    assert set(rows) == {"AdaS&S (ours)", "random search", "linear floor (one-hot LR)"}
    assert rows["random search"]["vs_ours_auc"]["verdict"] == "n/a"
    assert rows["random search"]["vs_ours_percentile"]["n"] == 2
    assert res["ranking"] is None and res["hypervolume"] == {}
    assert not list((out / "work").glob("retrain-*"))
    assert "not retrained" in (out / "report.md").read_text()
