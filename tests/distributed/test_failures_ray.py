"""How a Ray Train run fails: one line with the root cause, our own errors never retried, and
a failed run never forcing ``--resume`` on the next one."""

from __future__ import annotations

import json

import pytest

from adass_ray.data import synthetic
from adass_ray.distributed.train import fit
from adass_ray.errors import AdassError, DataError, NonFiniteLossError, WorkerFailure
from adass_ray.model.config import ModelConfig
from adass_ray.train.config import TrainConfig

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

CFG = TrainConfig(
    model=ModelConfig(hidden=(16,)),
    epochs=1,
    batch_size=256,
    checkpoint_every=2,
    num_workers=2,
    max_rows=1500,
    patience=0,
    use_gpu="no",
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=2000, seed=4), out)
    return out


def _record(out):
    return json.loads((out / "run.json").read_text())


def test_non_finite_loss_stops_in_one_line_and_is_not_retried(ray_local, data, tmp_path):
    cfg = TrainConfig(**{**CFG.__dict__, "lr": 1e30, "max_failures": 3})
    out = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError) as info:
        fit(data=data, out=out, cfg=cfg, kind="fixed", sizes=(4,) * 8)
    message = str(info.value)
    assert "\n" not in message
    assert "non-finite loss at step" in message and "checkpoint" in message
    rec = _record(out)
    assert rec["status"] == "failed" and rec["outcome"]["attempts"] == 1  # no retry
    assert not (out / "model.pt").exists()
    # the failed run does not force --resume: the same folder trains again from scratch
    good = fit(data=data, out=out, cfg=CFG, kind="fixed", sizes=(4,) * 8)
    assert 0 < good.metrics["test_auc"] < 1 and "resumed_from_step" not in good.metrics
    assert _record(out)["status"] == "done"
    assert ray_local.available_resources().get("CPU", 0) == pytest.approx(2.0)


def test_bad_data_in_a_worker_is_not_retried_even_with_unlimited_failures(
    ray_local, data, tmp_path
):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    for shard in (broken / "train").glob("*.parquet"):  # the driver's checks read no shard
        shard.unlink()
    cfg = TrainConfig(**{**CFG.__dict__, "max_failures": -1})
    out = tmp_path / "run"
    with pytest.raises(DataError, match="shard .* is missing"):
        fit(data=broken, out=out, cfg=cfg, kind="fixed", sizes=(4,) * 8)
    # the worker group was restarted at most once (and that attempt returned at once)
    assert _record(out)["outcome"]["attempts"] <= 2
    assert ray_local.available_resources().get("CPU", 0) == pytest.approx(2.0)


def test_a_dead_worker_is_one_line_naming_it(ray_local, data, tmp_path):
    marker = tmp_path / "died"
    fault = {"train": {"at_step": 1, "rank": 1, "marker": str(marker), "mid_step": True}}
    cfg = TrainConfig(**{**CFG.__dict__, "max_failures": 0})
    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADASS_RAY_FAULTS", json.dumps(fault))
        with pytest.raises(WorkerFailure) as info:
            fit(data=data, out=out, cfg=cfg, kind="fixed", sizes=(4,) * 8)
    message = str(info.value)
    assert "\n" not in message and "worker rank 1" in message, message
    assert info.value.exit_code == 1
    assert _record(out)["status"] == "failed"
    # --resume of a run made with another config is refused, naming the difference
    other = TrainConfig(**{**CFG.__dict__, "lr": 0.01})
    with pytest.raises(AdassError, match=r"config\.lr: was 0\.001, now 0\.01"):
        fit(data=data, out=out, cfg=other, kind="fixed", sizes=(4,) * 8, resume=True)
