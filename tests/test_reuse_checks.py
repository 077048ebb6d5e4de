"""No silent reuse: every stage reuses or resumes a folder only when its run.json says it was made
with the same data, sizes, budget and config; otherwise one line naming the difference, exit 2.

All refusals happen on the driver before Ray starts, so these tests need no Ray."""

from __future__ import annotations

import json

import pytest

from adass_ray import configio, record
from adass_ray.cli import main
from adass_ray.data import synthetic
from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import ConfigError
from adass_ray.search.agent import SearchConfig
from adass_ray.stages.pipeline import run as run_pipeline
from adass_ray.stages.search import search_record
from adass_ray.tracking import TrackingSpec
from adass_ray.train.config import TrainConfig, train_record

OFF = TrackingSpec(enabled=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("d") / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=400, seed=0), out)
    return out


def _plant_seed(folder, fm, cfg, sizes, auc=0.9999, status="done"):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"test_auc": auc, "test_logloss": 0.1}))
    record.write(folder, {**train_record(fm, cfg, "fixed", sizes), "status": status})


def _retrain(data, out, capsys, *extra):
    code = main(["retrain", "--data", str(data), "--out", str(out), "--seeds", "1",
                 "--no-tracking", *extra])
    return code, capsys.readouterr()


def test_retrain_reuses_a_seed_only_when_its_record_matches(data, tmp_path, capsys):
    fm = FeatureMap.load(data)
    cfg = TrainConfig()
    _plant_seed(tmp_path / "rt" / "seed-0", fm, cfg, (8,) * fm.num_fields)
    # same sizes, config, seed and data: reused (no training, so no Ray needed)
    code, cap = _retrain(data, tmp_path / "rt", capsys, "--uniform", "8")
    assert code == 0 and "0.9999" in cap.out, cap.err
    # other sizes: refused, naming the difference, and nothing reported
    code, cap = _retrain(data, tmp_path / "rt", capsys, "--uniform", "4")
    assert code == 2 and len(cap.err.strip().splitlines()) == 1, cap.err
    assert "sizes: was [8," in cap.err and "now [4," in cap.err and "Traceback" not in cap.err
    assert "0.9999" not in cap.out
    # another config: refused, naming the key
    code, cap = _retrain(data, tmp_path / "rt", capsys, "--uniform", "8", "lr=0.01")
    assert code == 2 and "config.lr: was 0.001, now 0.01" in cap.err, cap.err


def test_retrain_refuses_a_planted_result_without_a_record(data, tmp_path, capsys):
    seed = tmp_path / "rt" / "seed-0"
    seed.mkdir(parents=True)
    (seed / "metrics.json").write_text(json.dumps({"test_auc": 0.9999, "test_logloss": 0.1}))
    code, cap = _retrain(data, tmp_path / "rt", capsys, "--uniform", "8")
    assert code == 2 and "no run.json" in cap.err and "0.9999" not in cap.out, cap.err


def test_retrain_refuses_results_made_on_other_data(data, tmp_path, capsys):
    other = tmp_path / "other"
    spec = synthetic.SyntheticSpec.preset("tiny", rows=400, seed=0, scale=0.5)  # other vocabs
    synthetic.generate_dataset(spec, other)
    fm_other = FeatureMap.load(other)
    assert fm_other.fingerprint() != FeatureMap.load(data).fingerprint()
    _plant_seed(tmp_path / "rt" / "seed-0", fm_other, TrainConfig(), (8,) * fm_other.num_fields)
    code, cap = _retrain(data, tmp_path / "rt", capsys, "--uniform", "8")
    assert code == 2 and "fingerprint differs" in cap.err, cap.err


def _search_folder(data, tmp_path, budget, cfg):
    supernet = tmp_path / "sn"
    supernet.mkdir()
    (supernet / "model.pt").write_bytes(b"stand-in supernet")  # only its digest is read
    out = tmp_path / "search"
    out.mkdir()
    (out / "search_state.pt").write_bytes(b"")
    record.write(out, {**search_record(FeatureMap.load(data), supernet, budget, cfg),
                       "status": "running"})
    return supernet, out


def test_search_resume_refuses_another_budget_or_config(data, tmp_path, capsys):
    supernet, out = _search_folder(data, tmp_path, "0.5", SearchConfig())
    base = ["search", "--data", str(data), "--supernet", str(supernet), "--out", str(out),
            "--resume", "--no-tracking"]
    assert main([*base, "--budget", "0.8"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and 'budget: was "0.5", now "0.8"' in err, err
    assert main([*base, "--budget", "0.5", "iterations=7"]) == 2
    err = capsys.readouterr().err
    assert "config.iterations: was" in err and "now 7" in err, err
    # without --resume an existing search is refused too
    assert main(base[:-2] + ["--no-tracking", "--budget", "0.5"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_search_resume_refuses_another_supernet(data, tmp_path, capsys):
    supernet, out = _search_folder(data, tmp_path, "0.5", SearchConfig())
    (supernet / "model.pt").write_bytes(b"a retrained supernet")
    code = main(["search", "--data", str(data), "--supernet", str(supernet), "--out", str(out),
                 "--budget", "0.5", "--resume", "--no-tracking"])
    assert code == 2 and "supernet: was" in capsys.readouterr().err


def _pipeline_folder(tmp_path, cfg, search_cfg, budget, rows=400):
    """A pipeline folder with prepared data, a 'finished' supernet and search, as records say."""
    out = tmp_path / "demo"
    synthetic.generate_dataset(
        synthetic.SyntheticSpec.preset("tiny", rows=rows, seed=0), out / "data"
    )
    fm = FeatureMap.load(out / "data")
    record.write(out, record.make("pipeline-data", source="synthetic", seed=0, rows=rows))
    sn = out / "supernet"
    sn.mkdir()
    (sn / "model.pt").write_bytes(b"stand-in supernet")
    (sn / "metrics.json").write_text("{}")
    record.write(sn, {**train_record(fm, cfg, "supernet", None), "status": "done"})
    found = out / "search"
    found.mkdir()
    (found / "sizes.json").write_text("{}")
    record.write(found, {**search_record(fm, sn, budget, search_cfg), "status": "done"})
    return out


def test_run_does_not_reuse_stages_made_with_another_budget_or_config(tmp_path):
    cfg = configio.load(TrainConfig, None, ["seed=0"])
    search_cfg = configio.load(SearchConfig, None, ["seed=0"])
    out = _pipeline_folder(tmp_path, cfg, search_cfg, "0.5")
    common = {"source": "synthetic", "out": out, "rows": 400, "tracking": OFF}
    with pytest.raises(ConfigError, match=r'search.*budget: was "0.5", now "0.8"'):
        run_pipeline(**common, budget="0.8")
    with pytest.raises(ConfigError, match=r"supernet.*config\.epochs: was 10, now 3"):
        run_pipeline(**common, budget="0.5", overrides=("epochs=3",))
    with pytest.raises(ConfigError, match=r"prepared data.*rows: was 400, now 500"):
        run_pipeline(**{**common, "rows": 500}, budget="0.5")
    with pytest.raises(ConfigError, match=r"seed: was 0, now 1"):
        run_pipeline(**common, budget="0.5", seed=1)


def test_record_difference_names_the_first_key():
    a = record.make("x", config={"lr": 0.1, "model": {"d": 16}}, sizes=[1, 2])
    assert record.difference(a, a) is None
    b = record.make("x", config={"lr": 0.1, "model": {"d": 8}}, sizes=[1, 2])
    assert record.difference(a, b) == "config.model.d: was 16, now 8"
    assert record.difference({**a, "status": "failed"}, a) is None  # progress is not a setting
    c = {**a, "code_version": "0.0.1"}
    assert record.difference(c, a).startswith("code_version: was")
