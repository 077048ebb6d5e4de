"""Tests for the synthetic data generator with planted structure."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.synthetic import (
    CRITEO_CARDINALITIES,
    TINY_CARDINALITIES,
    SyntheticSpec,
    _ZipfField,
    generate_dataset,
    write_criteo_tsv,
)
from adass_ray.errors import AdassError, DataError


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    """Rank AUC with ties averaged."""
    _, inv, cnt = np.unique(score, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(cnt) - (cnt - 1) / 2.0)[inv]
    pos = y > 0.5
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _read(root: Path, fmap: FeatureMap, split: str):
    return pq.read_table(fmap.split_paths(root, split))


SMALL = SyntheticSpec(rows=3_000, chunk_rows=700, rows_per_shard=500, seed=3)


def test_same_seed_gives_identical_data(tmp_path: Path) -> None:
    a = generate_dataset(SMALL, tmp_path / "a")
    b = generate_dataset(SMALL, tmp_path / "b")
    assert a == b
    for split, info in a.splits.items():
        assert _read(tmp_path / "a", a, split).equals(_read(tmp_path / "b", b, split))
        for rel in info.files:
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    other = SyntheticSpec(rows=3_000, chunk_rows=700, rows_per_shard=500, seed=4)
    c = generate_dataset(other, tmp_path / "c")
    assert not _read(tmp_path / "a", a, "train").equals(_read(tmp_path / "c", c, "train"))


def test_splits_shards_and_feature_map(tmp_path: Path) -> None:
    fmap = generate_dataset(SMALL, tmp_path / "ds")
    assert FeatureMap.load(tmp_path / "ds") == fmap
    assert fmap.name == "synthetic" and fmap.label == "label"
    assert set(fmap.splits) == {"train", "valid", "test"}
    assert sum(s.rows for s in fmap.splits.values()) == SMALL.rows
    assert 0.7 < fmap.splits["train"].rows / SMALL.rows < 0.9
    for split, info in fmap.splits.items():
        sizes = [pq.ParquetFile(tmp_path / "ds" / rel).metadata.num_rows for rel in info.files]
        assert sum(sizes) == info.rows
        assert all(n == SMALL.rows_per_shard for n in sizes[:-1]) and 0 < sizes[-1] <= 500
        assert list(info.files) == [f"{split}/part-{i:05d}.parquet" for i in range(len(sizes))]
    assert len(fmap.splits["train"].files) >= 4
    for f, card in zip(fmap.fields, TINY_CARDINALITIES, strict=True):
        assert (f.kind, f.vocab_size, f.distinct, f.oov_id) == ("categorical", card + 1, card, 0)
    assert not list(tmp_path.glob(".ds*")), "temp folder left behind"


def test_ids_in_range_and_dtypes(tmp_path: Path) -> None:
    fmap = generate_dataset(SMALL, tmp_path / "ds")
    for split in fmap.splits:
        t = _read(tmp_path / "ds", fmap, split)
        assert str(t.schema.field("label").type) == "float"
        assert set(np.unique(t["label"].to_numpy())) <= {0.0, 1.0}
        for f in fmap.fields:
            assert str(t.schema.field(f.name).type) == "int32"
            ids = t[f.name].to_numpy()
            assert ids.min() >= 1 and ids.max() <= f.vocab_size - 1


def test_ground_truth_recorded(tmp_path: Path) -> None:
    fmap = generate_dataset(SMALL, tmp_path / "ds")
    md = fmap.metadata
    assert md["source"] == "synthetic" and md["seed"] == 3
    truth = md["ground_truth"]
    informative, noise = truth["informative"], truth["noise"]
    assert len(informative) == 4 and len(noise) == 4
    assert sorted([*informative, *noise], key=lambda n: int(n[1:])) == list(fmap.field_names)
    strengths = list(informative.values())
    assert strengths == sorted(strengths, reverse=True) and strengths[0] == 1.0
    assert truth["latent_rank"] == dict.fromkeys(informative, 8)
    labels = np.concatenate(
        [_read(tmp_path / "ds", fmap, s)["label"].to_numpy() for s in fmap.splits]
    )
    assert md["positive_rate"] == pytest.approx(labels.mean(), abs=1e-6)
    assert 0.18 < md["positive_rate"] < 0.32
    # a different seed plants the structure elsewhere (for at least one of a few seeds)
    picks = {tuple(SyntheticSpec(rows=10, seed=s).ground_truth()[0]) for s in range(5)}
    assert len(picks) > 1


def test_explicit_structure(tmp_path: Path) -> None:
    spec = SyntheticSpec(
        rows=500,
        cardinalities=(5, 6, 7),
        informative=(2, 0),
        strengths=(2.0, 0.5),
        latent_rank=(4, 2),
        split_fractions=(0.9, 0.1, 0.0),
    )
    fmap = generate_dataset(spec, tmp_path / "ds")
    truth = fmap.metadata["ground_truth"]
    assert truth == {"informative": {"C3": 2.0, "C1": 0.5}, "noise": ["C2"],
                     "latent_rank": {"C3": 4, "C1": 2}}  # fmt: skip
    assert set(fmap.splits) == {"train", "valid"}  # a zero fraction leaves the split out


def test_informative_fields_predict_label_noise_fields_do_not(tmp_path: Path) -> None:
    spec = SyntheticSpec(rows=60_000, seed=1)
    fmap = generate_dataset(spec, tmp_path / "ds")
    train = _read(tmp_path / "ds", fmap, "train")
    root = tmp_path / "ds"
    held = pq.read_table(fmap.split_paths(root, "valid") + fmap.split_paths(root, "test"))
    y_tr, y_te = train["label"].to_numpy(), held["label"].to_numpy()
    prior = y_tr.mean()
    auc = {}
    for f in fmap.fields:  # target encoding of one field, fitted on train, scored on held-out
        ids = train[f.name].to_numpy()
        pos = np.bincount(ids, weights=y_tr, minlength=f.vocab_size)
        cnt = np.bincount(ids, minlength=f.vocab_size)
        rate = (pos + 20 * prior) / (cnt + 20)
        auc[f.name] = _auc(rate[held[f.name].to_numpy()], y_te)
    truth = fmap.metadata["ground_truth"]
    inf_auc = sorted((auc[n] for n in truth["informative"]), reverse=True)
    noise_auc = [auc[n] for n in truth["noise"]]
    assert max(noise_auc) < 0.54, auc
    assert inf_auc[0] > 0.6 and inf_auc[1] > max(noise_auc) + 0.03, auc


def test_zipf_sampler_matches_distribution() -> None:
    rng = np.random.default_rng(0)
    small = _ZipfField(50, 1.1, np.random.default_rng(1))
    ids = small.sample(rng, 200_000)
    p = np.arange(1, 51, dtype=float) ** -1.1
    freq = np.sort(np.bincount(ids, minlength=51)[1:])[::-1] / len(ids)
    np.testing.assert_allclose(freq[:5], (p / p.sum())[:5], rtol=0.03)
    assert ids.min() >= 1 and ids.max() <= 50
    big = _ZipfField(10_000_000, 1.1, np.random.default_rng(1)).sample(rng, 200_000)
    assert big.min() >= 1 and big.max() <= 10_000_000
    assert len(np.unique(big)) > 50_000  # the tail beyond the exact head is reached


def test_huge_cardinalities_do_not_allocate_per_id(tmp_path: Path) -> None:
    spec = SyntheticSpec.preset("criteo", rows=5_000, chunk_rows=2_000)
    assert spec.cardinalities == CRITEO_CARDINALITIES
    fmap = generate_dataset(spec, tmp_path / "ds")
    t = _read(tmp_path / "ds", fmap, "train")
    for f in fmap.fields:
        ids = t[f.name].to_numpy()
        assert ids.min() >= 1 and ids.max() < f.vocab_size
    assert 0.15 < fmap.metadata["positive_rate"] < 0.35
    scaled = SyntheticSpec.preset("criteo", rows=10, scale=1000)
    assert scaled.cardinalities[2] == 10131 and min(scaled.cardinalities) == 2


def test_refuses_existing_output(tmp_path: Path) -> None:
    generate_dataset(SMALL, tmp_path / "ds")
    with pytest.raises(AdassError):
        generate_dataset(SMALL, tmp_path / "ds")
    generate_dataset(SMALL, tmp_path / "ds", overwrite=True)


def test_write_criteo_tsv(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "train.txt"
    write_criteo_tsv(path, 4_000, seed=1, scale=100, chunk_rows=1_500)
    text = path.read_text()
    assert '"' not in text and text.endswith("\n")
    rows = [line.split("\t") for line in text.splitlines()]
    assert len(rows) == 4_000 and {len(r) for r in rows} == {40}
    cols = list(zip(*rows, strict=True))
    assert set(cols[0]) == {"0", "1"}
    assert 0.15 < np.mean([v == "1" for v in cols[0]]) < 0.35
    i2 = [int(v) for v in cols[2]]  # I2 is never empty and has small negatives, as in Criteo
    assert {-1, -2} <= set(i2) and min(i2) == -2
    others = [int(v) for j in (1, *range(3, 14)) for v in cols[j] if v]
    assert min(others) == 0
    assert 0.35 < np.mean([v == "" for v in cols[1]]) < 0.55  # I1 is often empty
    assert 0.65 < np.mean([v == "" for v in cols[12]]) < 0.9  # I12 is mostly empty
    hex8 = re.compile(r"^[0-9a-f]{8}$")
    assert all(v == "" or hex8.match(v) for c in cols[14:] for v in c)
    assert "" not in cols[14]  # C1 is never empty
    assert 0.65 < np.mean([v == "" for v in cols[14 + 21]]) < 0.85  # C22 is mostly empty
    again = tmp_path / "again.txt"
    write_criteo_tsv(again, 4_000, seed=1, scale=100, chunk_rows=1_500)
    assert again.read_bytes() == path.read_bytes()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rows": 0},
        {"rows": 10, "cardinalities": (5, 0, 3)},
        {"rows": 10, "cardinalities": ()},
        {"rows": 10, "informative": (0, 1), "strengths": (1.0,)},
        {"rows": 10, "strengths": (1.0, -0.5)},
        {"rows": 10, "informative": (0, 8)},
        {"rows": 10, "split_fractions": (0.8, 0.1, 0.2)},
        {"rows": 10, "split_fractions": (0.5, 0.5)},
        {"rows": 10, "zipf_exponent": 0.0},
        {"rows": 10, "latent_rank": 0},
        {"rows": 10, "informative": (0, 1), "latent_rank": (4, 4, 4)},
        {"rows": 10, "rows_per_shard": 0},
    ],
)
def test_bad_specs_raise_data_error(kwargs: dict) -> None:
    with pytest.raises(DataError) as exc:
        SyntheticSpec(**kwargs)
    assert "\n" not in str(exc.value)


def test_bad_preset_and_tsv_args(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        SyntheticSpec.preset("avazu", rows=10)
    with pytest.raises(DataError):
        SyntheticSpec.preset("tiny", rows=10, scale=0)
    with pytest.raises(DataError):
        write_criteo_tsv(tmp_path / "x.txt", 0)
    assert not (tmp_path / "x.txt").exists()


@pytest.mark.slow
def test_signal_is_learnable_by_small_mlp(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    fmap = generate_dataset(SyntheticSpec(rows=100_000, seed=0), tmp_path / "ds")

    def load(split: str):
        t = _read(tmp_path / "ds", fmap, split)
        x = np.stack([t[n].to_numpy() for n in fmap.field_names], 1).astype(np.int64)
        return torch.from_numpy(x), torch.from_numpy(t["label"].to_numpy().copy())

    (x_tr, y_tr), (x_te, y_te) = load("train"), load("test")
    emb = torch.nn.ModuleList(torch.nn.Embedding(v, 16) for v in fmap.vocab_sizes)
    mlp = torch.nn.Sequential(torch.nn.Linear(16 * fmap.num_fields, 64), torch.nn.ReLU(),
                              torch.nn.Linear(64, 1))  # fmt: skip

    def predict(x):
        return mlp(torch.cat([e(x[:, i]) for i, e in enumerate(emb)], 1)).squeeze(1)

    opt = torch.optim.Adam([*emb.parameters(), *mlp.parameters()], lr=3e-3)
    for _ in range(3):
        for b in torch.randperm(len(y_tr)).split(512):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(predict(x_tr[b]), y_tr[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        assert _auc(predict(x_te).numpy(), y_te.numpy()) >= 0.65
