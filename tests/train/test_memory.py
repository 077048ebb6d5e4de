"""The memory model: parameter counts match the built models; too-large runs are refused."""

from __future__ import annotations

import pytest

from adass_ray.cli import main
from adass_ray.data import synthetic
from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import ConfigError
from adass_ray.model.config import ModelConfig, build_standalone, build_supernet
from adass_ray.train.config import TrainConfig
from adass_ray.train.memory import GIB, check_fits, plan_memory


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("d") / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=500, seed=0), out)
    return out


def _numel(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("layout", ["separate", "nested"])
@pytest.mark.parametrize("backbone", ["dnn", "dcn", "deepfm"])
def test_supernet_counts_match_the_built_model(data, layout, backbone):
    fm = FeatureMap.load(data)
    cfg = TrainConfig(model=ModelConfig(backbone=backbone, layout=layout))
    plan = plan_memory(fm, cfg, "supernet")
    net = build_supernet(fm, cfg.model)
    assert plan.table_params + plan.network_params == _numel(net)
    sizes = [s for s in fm.candidate_sizes if s > 0]
    per_id = max(sizes) if layout == "nested" else sum(sizes)
    assert plan.table_params == sum(fm.vocab_sizes) * per_id


def test_fixed_counts_and_dense_versus_sparse(data):
    fm = FeatureMap.load(data)
    sizes = tuple((4, 8, 16, 0)[i % 4] for i in range(fm.num_fields))
    sparse = TrainConfig(model=ModelConfig(sparse=True))
    dense = TrainConfig(model=ModelConfig(sparse=False))
    plan = plan_memory(fm, sparse, "fixed", sizes)
    assert plan.table_params + plan.network_params == _numel(
        build_standalone(fm, sparse.model, sizes)
    )
    assert plan.table_params == sum(v * s for v, s in zip(fm.vocab_sizes, sizes, strict=True))
    grads = {p.sparse: dict(p.parts)["gradients"]
             for p in (plan, plan_memory(fm, dense, "fixed", sizes))}
    # dense table gradients are a full copy of the tables; sparse ones only the touched rows
    assert grads[False] == (plan.table_params + plan.network_params) * 4
    assert plan.network_params * 4 < grads[True] <= grads[False]
    # every worker holds a full replica: more workers do not shrink the model's part
    two = plan_memory(fm, TrainConfig(num_workers=4), "fixed", sizes)
    assert dict(two.parts)["parameters"] == dict(plan.parts)["parameters"]
    with pytest.raises(ConfigError, match="sizes"):
        plan_memory(fm, sparse, "fixed", sizes[:-1])


def test_check_fits_refuses_with_figure_and_options(data):
    plan = plan_memory(FeatureMap.load(data), TrainConfig(model=ModelConfig(sparse=False)),
                       "supernet")
    check_fits(plan, plan.per_worker)  # exactly enough: no error
    with pytest.raises(ConfigError) as e:
        check_fits(plan, plan.per_worker - 1)
    msg = str(e.value)
    assert "\n" not in msg and "per worker" in msg
    for option in ("--min-count", "buckets", "candidate_sizes", "model.sparse=true",
                   "memory_per_worker_gb"):
        assert option in msg


def test_dry_run_prints_the_plan_and_refuses_before_any_worker(data, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["train-supernet", "--data", str(data), "--out", str(out), "--dry-run",
                 "--no-tracking"]) == 0
    printed = capsys.readouterr().out
    assert "supernet memory per worker" in printed and "fits" in printed
    assert not out.exists()  # nothing trained, nothing written
    code = main(["train", "--data", str(data), "--out", str(out), "--no-tracking",
                 "memory_per_worker_gb=0.000001"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "per worker" in err
    assert not out.exists()  # refused before the output folder or Ray
    assert GIB == 1 << 30


def test_run_dry_run_prints_both_plans_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--smoke-test", "--out", str(out), "--dry-run", "--no-tracking"]) == 0
    printed = capsys.readouterr().out
    assert "supernet memory per worker" in printed and "fixed memory per worker" in printed
    assert sorted(p.name for p in out.iterdir()) == [".adass-ray", "data"]  # prepared only
