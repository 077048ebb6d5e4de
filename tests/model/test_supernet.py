"""Supernet vs stand-alone model: same logits for the same architecture and weights."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap, FieldSpec
from adass_ray.errors import ConfigError
from adass_ray.model.standalone import StandaloneModel
from adass_ray.model.supernet import Supernet, select_unified

FM = FeatureMap(
    name="tiny",
    label="label",
    fields=(
        FieldSpec(name="user", kind="categorical", vocab_size=9),
        FieldSpec(name="tags", kind="multi_valued", vocab_size=7, max_len=3),
        FieldSpec(name="price", kind="numeric", vocab_size=5),
        FieldSpec(name="item", kind="categorical", vocab_size=13),
        FieldSpec(name="site", kind="categorical", vocab_size=4),
        FieldSpec(name="city", kind="categorical", vocab_size=6),
    ),
    candidate_sizes=(4, 8, 16),
)
B, D = 17, 16
KW: dict[str, Any] = {"hidden": (16, 8), "cross_layers": 2}


def make_batch(seed: int = 0, b: int = B, fm: FeatureMap = FM) -> Batch:
    g = torch.Generator().manual_seed(seed)
    single = [f.vocab_size for f in fm.fields if f.kind != "multi_valued"]
    ids = torch.stack([torch.randint(0, v, (b,), generator=g) for v in single], 1)
    tags = torch.randint(-1, 7, (b, 3), generator=g)
    return Batch(ids=ids, multi=(tags,), dense=torch.randn(b, 1, generator=g), label=torch.ones(b))


def make_net(backbone: str = "dnn", **kw: Any) -> Supernet:
    torch.manual_seed(0)
    return Supernet.from_feature_map(FM, d=D, backbone=backbone, **KW, **kw)


@pytest.mark.parametrize("backbone", ["dnn", "deepfm", "dcn", "dcnv2", "dlrm", "fm"])
@pytest.mark.parametrize(
    ("layout", "candidates", "sizes"),
    [
        ("separate", None, (16, 4, 8, 4, 16, 8)),
        ("nested", None, (8, 16, 4, 16, 4, 4)),
        (
            "separate",
            (0, 4, 8, 16),
            (8, 0, 4, 16, 0, 4),
        ),  # dropped fields, incl. the multi-valued one
    ],
)
def test_supernet_equals_standalone_from_supernet(
    backbone: str, layout: str, candidates: tuple[int, ...] | None, sizes: tuple[int, ...]
) -> None:
    net = make_net(backbone, layout=layout, candidate_sizes=candidates)
    batch = make_batch()
    model = StandaloneModel.from_supernet(net, sizes)
    want = net(batch, net.arch_of(sizes))
    assert torch.allclose(model(batch), want, atol=1e-5)
    assert model.embedding_params() == sum(
        f.vocab_size * s for f, s in zip(FM.fields, sizes, strict=True)
    )
    # Per-row: the same architecture given as a [B, F] tensor inside a mixed batch.
    arch = torch.randint(0, len(net.candidate_sizes), (B, FM.num_fields))
    arch[::2] = torch.tensor(net.arch_of(sizes))
    assert torch.allclose(net(batch, arch)[::2], want[::2], atol=1e-5)


def test_row_alone_equals_row_in_batch() -> None:
    net = make_net("dlrm")
    batch = make_batch()
    arch = torch.randint(0, 3, (B, FM.num_fields), generator=torch.Generator().manual_seed(4))
    out = net(batch, arch)
    for i in range(B):
        assert torch.allclose(net(batch.slice(i, i + 1), arch[i]), out[i : i + 1], atol=1e-5)


def test_cached_unified_scores_like_forward() -> None:
    net = make_net("deepfm", candidate_sizes=(0, 4, 8, 16))
    batch = make_batch()
    every = net.all_unified(batch)
    assert every.shape == (B, FM.num_fields, 4, D)
    for arch in ([1, 2, 3, 0, 1, 2], torch.randint(0, 4, (B, FM.num_fields))):
        a = torch.as_tensor(arch)
        got = net.forward_from_unified(select_unified(every, a), batch.dense)
        assert torch.allclose(got, net(batch, arch), atol=1e-5)
        assert torch.allclose(select_unified(every, a), net.unified(batch, arch), atol=1e-5)


def test_gradients_flow_to_tables_and_backbone() -> None:
    net = make_net("dcnv2")
    net(make_batch(), [0, 1, 2, 0, 1, 2]).sum().backward()
    assert net.embeddings.tables["s4"].grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.backbone.parameters())


def test_nested_layout_shares_weights() -> None:
    net = make_net(layout="nested")
    emb = net.embeddings
    with torch.no_grad():
        emb.table(3, 2)[5, :4] += 1.0  # editing the size-16 table edits the size-4 candidate too
    assert torch.equal(emb.table(3, 0)[5], emb.table(3, 2)[5, :4])
    model = StandaloneModel.from_supernet(net, (4, 4, 4, 4, 4, 4))
    assert torch.equal(model.embeddings.field_params(3)[0], emb.table(3, 0))


def test_arch_validation() -> None:
    net = make_net()
    batch = make_batch()
    for bad in (
        [0, 1],
        [0, 1, 2, 3, 0, 0],
        torch.zeros(B, 2, dtype=torch.long),
        torch.full((B, 6), 3),
    ):
        with pytest.raises(ConfigError):
            net(batch, bad)
    with pytest.raises(ConfigError):  # a [B, F] architecture for another batch size
        net(batch, torch.zeros(B + 1, 6, dtype=torch.long))
    with pytest.raises(ConfigError, match="hiden"):
        Supernet.from_feature_map(FM, d=D, backbone="dnn", hiden=(8,))
    with pytest.raises(ConfigError, match="not candidates"):
        StandaloneModel.from_supernet(net, (4, 4, 4, 4, 4, 32))
    assert net.sizes_of(net.arch_of({f.name: 8 for f in FM.fields})) == (8,) * 6


def test_standalone_from_feature_map() -> None:
    sizes = {"user": 16, "tags": 4, "price": 0, "item": 8, "site": 16, "city": 4}
    model = StandaloneModel.from_feature_map(FM, sizes=sizes, d=D, backbone="dlrm", **KW)
    out = model(make_batch())
    assert out.shape == (B,)
    emb = model.embeddings
    assert emb.field_params(3)[0].shape == (13, 8) and emb.field_params(1)[1].shape == (4, D)
    assert model.embedding_params() == 9 * 16 + 7 * 4 + 13 * 8 + 4 * 16 + 6 * 4
    own = sum(p.numel() for p in emb.parameters())
    assert model.total_params() == own + sum(p.numel() for p in model.backbone.parameters())
    uniform = StandaloneModel.from_feature_map(FM, sizes=[16] * 6, d=D, backbone="dnn", **KW)
    assert uniform.embedding_params() == 16 * sum(FM.vocab_sizes)
    with pytest.raises(ConfigError):
        StandaloneModel.from_feature_map(FM, sizes={"user": 4}, d=D, backbone="dnn")
    with pytest.raises(ConfigError):
        StandaloneModel.from_feature_map(FM, sizes=[4] * 6, d=0, backbone="dnn")


def test_uniform_baseline_in_feature_map_order() -> None:
    # Multi-valued field last: the stand-alone output needs no reordering (its fast path).
    fm = FeatureMap(
        name="ordered", label="label", fields=(*FM.fields[:1], *FM.fields[2:], FM.fields[1])
    )
    torch.manual_seed(0)
    net = Supernet.from_feature_map(fm, d=D, backbone="fm")
    model = StandaloneModel.from_supernet(net, [16] * fm.num_fields)
    assert model.embeddings._in_order
    batch = make_batch(fm=fm)
    want = net(batch, net.arch_of([16] * fm.num_fields))
    assert torch.allclose(model(batch), want, atol=1e-5)


@pytest.mark.parametrize("layout", ["separate", "nested"])
def test_sparse_gradients(layout: str) -> None:
    net = make_net(layout=layout, sparse=True)
    batch = make_batch()
    arch = torch.randint(0, 3, (B, FM.num_fields))
    net(batch, arch).sum().backward()
    grads = [t.grad for t in net.embeddings.tables.values() if t.grad is not None]
    assert grads and all(g.is_sparse for g in grads)
    net.zero_grad(set_to_none=True)
    net.forward_from_unified(net.all_unified(batch)[:, :, 0], batch.dense).sum().backward()
    assert net.embeddings.tables["s4" if layout == "separate" else "shared"].grad.is_sparse
