"""The linear floor on real training: it learns, a crippled model falls below it and is warned
about, and the summary is reused on a re-run."""

from __future__ import annotations

import json

import pytest

from adass_ray.data import synthetic
from adass_ray.model.config import ModelConfig
from adass_ray.stages.pipeline import train_floor
from adass_ray.train.config import TrainConfig
from adass_ray.train.floor import FLOOR_LR, floor_config, floor_warning
from adass_ray.train.local import train_local


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("floor") / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=3000, seed=2), out)
    return out


CFG = TrainConfig(model=ModelConfig(hidden=(16,)), epochs=4, batch_size=256, patience=0,
                  num_workers=1, use_gpu="no")


def test_floor_config_is_a_well_trained_logistic_regression():
    got = floor_config(CFG)
    assert got.lr == FLOOR_LR and got.epochs == 20 and got.batch_size == CFG.batch_size == 256
    assert got.patience == 2 and got.max_rows == CFG.max_rows and got.seed == CFG.seed
    big = floor_config(TrainConfig(batch_size=4096, epochs=50, patience=3))
    assert (big.batch_size, big.epochs, big.patience) == (512, 50, 3)


def test_a_crippled_model_is_below_the_floor_and_warned_about(data, tmp_path):
    floor = train_floor(data, tmp_path / "floor", CFG, seeds=2)
    assert floor["seeds"] == [0, 1] and len(floor["val_auc"]) == 2
    assert floor["val_auc_mean"] > 0.55  # the planted signal is partly linear: the floor learns it
    # crippled: a learning rate that leaves the network at its random start
    _, crippled = train_local(data, TrainConfig(**{**CFG.__dict__, "lr": 1e-9}), "fixed",
                              (4,) * 8)
    assert crippled["best_val_auc"] < floor["val_auc_mean"] - 0.03, crippled
    message = floor_warning(crippled["best_val_auc"], floor["val_auc_mean"], what="the uniform "
                            "model")
    assert message.startswith("the uniform model does not beat the linear floor on validation")
    assert f"{floor['val_auc_mean']:.4f}" in message
    assert floor_warning(floor["val_auc_mean"] + 0.01, floor["val_auc_mean"]) == ""
    # a re-run reuses the written summary
    (tmp_path / "floor" / "summary.json").write_text(json.dumps({**floor, "marker": 1}))
    assert train_floor(data, tmp_path / "floor", CFG, seeds=2)["marker"] == 1
