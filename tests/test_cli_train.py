"""`adass-ray train-supernet` / `train`: bad input is refused on the driver with one line."""

from __future__ import annotations

import json

import pytest

from adass_ray.cli import main
from adass_ray.data import synthetic


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("d") / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=500, seed=0), out)
    return out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["model.backbone=transformer"], "unknown backbone 'transformer'"),
        (["sampler.name=evolution"], "evolution"),
        (["model.d=0"], "model.d must be >= 1"),
        (["model.candidate_sizes=[8,4]"], "strictly increasing"),
        (["model.candidate_sizes=[-4,8]"], "positive"),
        (["epochz=3"], "did you mean 'epochs'"),
        (["epochs=many"], "expected an integer"),
        (["sampler.tau=0"], "tau"),
    ],
)
def test_bad_config_is_one_line(data, tmp_path, capsys, argv, needle):
    code = main(
        [
            "train-supernet",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--no-tracking",
            *argv,
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "o").exists()


def test_data_and_feature_map_disagree(data, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    fm = json.loads((data / "feature_map.json").read_text())
    fm["fields"][0]["name"] = "renamed"
    (bad / "feature_map.json").write_text(json.dumps(fm))
    for split in ("train", "valid", "test"):
        (bad / split).symlink_to(data / split)
    from adass_ray.data.loader import ShardLoader
    from adass_ray.errors import DataError

    with pytest.raises(DataError, match="renamed"):
        ShardLoader(bad, split="train")


def test_sizes_file_must_match_the_fields(data, tmp_path, capsys):
    doc = {
        "format": 1,
        "fields": {"C1": {"size": 8, "vocab": 3}},
        "cost": 24,
        "cost_bytes_fp32": 96,
        "budget": 100,
        "uniform_baseline": {"size": 16, "cost": 48},
    }
    (tmp_path / "sizes.json").write_text(json.dumps(doc))
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "o"),
            "--no-tracking",
            "--sizes",
            str(tmp_path / "sizes.json"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "fields differ from the dataset" in err and "Traceback" not in err


def test_checkpoint_from_another_feature_map(data, tmp_path):
    import torch

    from adass_ray.data.feature_map import FeatureMap
    from adass_ray.errors import DataError
    from adass_ray.model.checkpoint import load_model, save_model
    from adass_ray.model.config import ModelConfig, build_standalone

    fm = FeatureMap.load(data)
    model = build_standalone(fm, ModelConfig(hidden=(8,)), (4,) * fm.num_fields)
    save_model(
        tmp_path / "model.pt",
        kind="fixed",
        model=model,
        model_config=ModelConfig(hidden=(8,)),
        fm=fm,
        sizes=(4,) * fm.num_fields,
    )
    other = json.loads((data / "feature_map.json").read_text())
    other["fields"][2]["vocab_size"] += 5
    other_fm = FeatureMap.from_dict(other)
    with pytest.raises(DataError, match="trained on other data.*'C3'") as e:
        load_model(tmp_path / "model.pt", other_fm)
    assert "\n" not in str(e.value)
    loaded, _ = load_model(tmp_path / "model.pt", fm)
    batch_ok = isinstance(loaded, torch.nn.Module)
    assert batch_ok
