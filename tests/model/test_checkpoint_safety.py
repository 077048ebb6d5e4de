"""Model and state files load with ``weights_only=True``: a crafted pickle is refused unread.

A payload that would create a file proves that nothing in a refused file was ever built; our
own files (model and training-loop states) still load (the MLflow model folder: see
tests/tracking/test_tracking.py).
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest
import torch

from adass_ray.cli import main
from adass_ray.data import synthetic
from adass_ray.data.feature_map import FeatureMap
from adass_ray.errors import DataError
from adass_ray.model.checkpoint import (
    MODEL_KEYS,
    load_model,
    load_plain,
    save_model,
)
from adass_ray.model.config import ModelConfig, build_standalone


class _Payload:
    """Unpickling this runs ``touch <target>`` (what an attacker's model.pt would do)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.target}",))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("d") / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=400, seed=0), out)
    return out


def _fixed_model(data: Path, path: Path) -> torch.nn.Module:
    fm = FeatureMap.load(data)
    sizes = (4,) * fm.num_fields
    model = build_standalone(fm, ModelConfig(hidden=(8,)), sizes)
    save_model(path, kind="fixed", model=model, model_config=ModelConfig(hidden=(8,)), fm=fm,
               sizes=sizes)
    return model


def _evil(path: Path, target: Path, *, zip_format: bool) -> Path:
    blob = {"format": 1, "kind": "supernet", "state_dict": _Payload(target)}
    if zip_format:  # torch.save's own container, so only the unpickler can refuse it
        buf = io.BytesIO()
        torch.save(blob, buf)
        path.write_bytes(buf.getvalue())
    else:
        path.write_bytes(pickle.dumps(blob))
    return path


@pytest.mark.parametrize("zip_format", [True, False])
def test_a_crafted_pickle_is_refused_without_running_it(data, tmp_path, zip_format):
    target = tmp_path / "pwned"
    evil = _evil(tmp_path / "model.pt", target, zip_format=zip_format)
    with pytest.raises(DataError, match="refused") as e:
        load_model(evil, FeatureMap.load(data))
    assert "\n" not in str(e.value)
    assert not target.exists()
    with pytest.raises(DataError, match="refused"):
        load_plain(evil, what="search state")
    assert not target.exists()


def test_search_refuses_a_crafted_supernet_in_one_line(data, tmp_path, capsys):
    target = tmp_path / "pwned"
    sn = tmp_path / "sn"
    sn.mkdir()
    _evil(sn / "model.pt", target, zip_format=True)
    code = main(["search", "--data", str(data), "--supernet", str(sn), "--out",
                 str(tmp_path / "s"), "--no-tracking"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "refused" in err, err
    assert "Traceback" not in err
    assert not target.exists()
    assert not (tmp_path / "s").exists()  # refused before any output was made


def test_a_model_file_missing_keys_is_one_line(data, tmp_path):
    _fixed_model(data, tmp_path / "model.pt")
    blob = torch.load(tmp_path / "model.pt", weights_only=True)
    for key in MODEL_KEYS[1:]:
        broken = {k: v for k, v in blob.items() if k != key}
        torch.save(broken, tmp_path / "broken.pt")
        with pytest.raises(DataError, match=f"incomplete model file.*{key}"):
            load_model(tmp_path / "broken.pt", FeatureMap.load(data))
    blob["state_dict"] = {k: v[:1] for k, v in blob["state_dict"].items()}  # wrong shapes
    torch.save(blob, tmp_path / "shapes.pt")
    with pytest.raises(DataError, match="do not fit") as e:
        load_model(tmp_path / "shapes.pt", FeatureMap.load(data))
    assert "\n" not in str(e.value)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(DataError, match="not a readable model file"):
        load_model(tmp_path / "empty.pt", FeatureMap.load(data))


def test_our_training_loop_state_loads_weights_only(data, tmp_path):
    """A supernet's checkpoint (weights, Adam moments, greedy sampler pool and generator, loop
    counters, best weights) is plain data: it loads with weights_only and restores exactly."""
    from adass_ray.data.loader import ShardLoader
    from adass_ray.sampling import SamplerConfig
    from adass_ray.train.config import TrainConfig
    from adass_ray.train.loop import TrainLoop
    from adass_ray.train.task import make_task

    fm = FeatureMap.load(data)
    cfg = TrainConfig(epochs=1, batch_size=128, max_rows=256, eval_rows=128,
                      model=ModelConfig(hidden=(8,)),
                      sampler=SamplerConfig(name="greedy", warmup_steps=1))

    def loop() -> TrainLoop:
        return TrainLoop(
            task=make_task(fm, cfg, "supernet"), config=cfg,
            train=ShardLoader(data, fm, split="train", batch_size=128, seed=0, max_rows=256),
            valid=ShardLoader(data, fm, split="valid", batch_size=128, shuffle=False,
                              max_rows=128))

    first = loop()
    first.run()
    torch.save(first.state_dict(), tmp_path / "state.pt")
    second = loop()
    second.load_state_dict(load_plain(tmp_path / "state.pt", what="training checkpoint"))
    a, b = first.state_dict(), second.state_dict()
    # a restore is recorded (resumed_at: the step it continued from); the rest is identical
    assert b["loop"].pop("resumed_at") == [*a["loop"].pop("resumed_at"), a["loop"]["global_step"]]
    assert a["loop"] == b["loop"]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["task"]["sampler"].keys() == b["task"]["sampler"].keys()
