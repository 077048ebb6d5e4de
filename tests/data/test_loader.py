from __future__ import annotations

import pyarrow as pa
import pytest
import torch

from adass_ray.data.loader import ShardLoader
from adass_ray.data.prepare import PrepareConfig, prepare
from adass_ray.data.readers import read_csv
from adass_ray.data.schema import Schema
from adass_ray.errors import DataError

from .helpers import SCHEMA_YAML, write_ratings_csv


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loader")
    path = write_ratings_csv(tmp / "r.csv", rows=1000)
    (tmp / "s.yaml").write_text(SCHEMA_YAML)
    # small shards and the default row groups: slices cross file boundaries
    prepare(read_csv(path, Schema.load(tmp / "s.yaml")), tmp / "ds",
            PrepareConfig(rows_per_shard=170))
    return tmp / "ds"


def test_batches_have_the_documented_shapes(dataset):
    loader = ShardLoader(dataset, split="train", batch_size=64, shuffle=False)
    fm = loader.fmap
    assert len(loader.fmap.splits["train"].files) > 1
    batches = list(loader)
    assert len(batches) == len(loader) == 13  # 800 rows / 64 → 12 full + 1 partial
    b = batches[0]
    assert b.ids.shape == (64, 3) and b.ids.dtype == torch.int64  # user, item, age (bucketized)
    assert len(b.multi) == 1 and b.multi[0].shape == (64, fm.field("genres").max_len)
    assert b.dense.shape == (64, 1) and b.label.shape == (64,)
    assert int((b.multi[0] == -1).sum()) > 0  # padding present, and it is -1
    assert sum(len(x) for x in batches) == 800


def test_rank_slices_are_disjoint_equal_and_cover(dataset):
    full = ShardLoader(dataset, split="train", shuffle=False).full_batch()
    parts = [ShardLoader(dataset, split="train", shuffle=False, rank=r, world_size=3).full_batch()
             for r in range(3)]
    assert all(len(p) == 800 // 3 for p in parts)
    joined = torch.cat([p.ids for p in parts])
    assert torch.equal(joined, full.ids[: 3 * (800 // 3)])


def test_shuffle_depends_on_seed_and_epoch_and_resume_is_exact(dataset):
    a = ShardLoader(dataset, batch_size=50, seed=1)
    b = ShardLoader(dataset, batch_size=50, seed=1)
    first = [x.label for x in a]
    assert all(torch.equal(x, y.label) for x, y in zip(first, b, strict=True))
    a.set_epoch(1)
    assert not torch.equal(torch.cat(first), torch.cat([x.label for x in a]))
    # resuming at batch 5 of epoch 1 sees exactly the remaining batches
    b.set_epoch(1)
    rest = [x.ids for x in b.iter_from(5)]
    again = [x.ids for x in a][5:]
    assert all(torch.equal(x, y) for x, y in zip(rest, again, strict=True))


def test_feature_map_and_data_disagree(dataset, tmp_path):
    loader = ShardLoader(dataset, split="valid")
    fm = loader.fmap
    small = type(fm).from_dict({**fm.to_dict(), "fields": [
        {**f, "vocab_size": 2} if f["name"] == "item" else f for f in fm.to_dict()["fields"]
    ]})
    with pytest.raises(DataError, match="'item'.*outside"):
        ShardLoader(dataset, small, split="valid")
    extra = type(fm).from_dict({**fm.to_dict(), "fields": [
        *fm.to_dict()["fields"], {"name": "brand", "kind": "categorical", "vocab_size": 3},
    ]})
    with pytest.raises(DataError, match="brand"):
        ShardLoader(dataset, extra, split="valid")
    assert isinstance(pa.__version__, str)
