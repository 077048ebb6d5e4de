"""The capacity rule (no size above d), small sizes (1, 2) and dropped fields (size 0)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adass_ray.data.feature_map import DEFAULT_CANDIDATE_SIZES, DEFAULT_UNIFIED_WIDTH, FeatureMap
from adass_ray.errors import ConfigError
from adass_ray.model.backbones import BACKBONES
from adass_ray.model.embeddings import CandidateEmbeddings
from adass_ray.model.standalone import MixedEmbeddings, StandaloneModel
from adass_ray.model.supernet import Supernet
from adass_ray.model.unifier import validate_sizes
from tests.model.test_supernet import FM, KW, make_batch

D = 16
SIZES = (0, 1, 2, 8, 16)  # drop, the small sizes, a mid size and a size equal to d
NAMES = FM.field_names  # user, tags (multi-valued), price (numeric), item, site, city


def make_net(backbone: str = "dnn", layout: str = "separate", **kw: Any) -> Supernet:
    torch.manual_seed(0)
    net = Supernet.from_feature_map(
        FM, d=D, backbone=backbone, candidate_sizes=SIZES, layout=layout, **KW, **kw
    )
    with torch.no_grad():  # non-trivial LayerNorm affine, so that mixing candidates up would show
        emb = net.embeddings
        for p in (*emb.ln_weight.values(), *emb.ln_bias.values()):
            p.normal_()
    return net.eval()


def mixed_arch(b: int, seed: int = 1) -> torch.Tensor:
    """``[b, F]`` per-row candidate indices with every candidate and one all-dropped row."""
    g = torch.Generator().manual_seed(seed)
    arch = torch.randint(0, len(SIZES), (b, FM.num_fields), generator=g)
    arch[0] = 0  # a row with every field dropped
    arch[1] = torch.arange(FM.num_fields) % len(SIZES)
    return arch


# --- the capacity rule -----------------------------------------------------------------------


def one_line_refusal(excinfo: pytest.ExceptionInfo[ConfigError], *words: str) -> None:
    msg = str(excinfo.value)
    assert "\n" not in msg
    for w in (*words, "model.d", "drop the sizes above"):
        assert w in msg, (w, msg)


def test_validate_sizes_refuses_sizes_above_d() -> None:
    assert validate_sizes((0, 1, 2, 4, 8, 16), 16) == (0, 1, 2, 4, 8, 16)
    with pytest.raises(ConfigError) as e:
        validate_sizes((4, 8, 16, 32, 64), 16)
    one_line_refusal(e, "32, 64", "d=16", "at least 64")


def test_default_sizes_fit_the_default_width() -> None:
    assert validate_sizes(DEFAULT_CANDIDATE_SIZES, DEFAULT_UNIFIED_WIDTH)


@pytest.mark.parametrize("layout", ["separate", "nested"])
def test_supernet_refuses_sizes_above_d(layout: str) -> None:
    with pytest.raises(ConfigError) as e:
        Supernet.from_feature_map(
            FM, d=8, backbone="dnn", candidate_sizes=(0, 4, 8, 16), layout=layout
        )
    one_line_refusal(e, "16", "d=8")
    with pytest.raises(ConfigError) as e:  # the feature map's own sizes meet d too
        Supernet.from_feature_map(FM, d=4, backbone="dnn")
    one_line_refusal(e, "8, 16", "d=4")


def test_standalone_refuses_a_field_above_d() -> None:
    sizes = {"user": 4, "tags": 0, "price": 2, "item": 32, "site": 16, "city": 1}
    with pytest.raises(ConfigError) as e:
        StandaloneModel.from_feature_map(FM, sizes=sizes, d=D, backbone="dnn")
    one_line_refusal(e, "item=32", "d=16", "at least 32")
    with pytest.raises(ConfigError) as e:  # built directly: fields named by index
        MixedEmbeddings(vocab_sizes=(3, 4), multi_valued=(False, False), sizes=(8, 2), d=4)
    one_line_refusal(e, "f0=8", "d=4")
    with pytest.raises(ConfigError):  # a non-integer width is refused, not compared
        MixedEmbeddings(
            vocab_sizes=(3,), multi_valued=(False,), sizes=(2,), d=4.0  # type: ignore[arg-type]
        )


def test_size_equal_to_d_goes_through_its_unifier() -> None:
    # s = d is not an identity shortcut: LN(E @ W) with W [d, d], as in the supernet.
    net = make_net()
    batch = make_batch(b=9)
    sizes = (16, 16, 16, 16, 16, 16)
    model = StandaloneModel.from_supernet(net, sizes).eval()
    table, w, g, bias = model.embeddings.field_params(0)
    assert w.shape == (D, D)
    want = torch.nn.functional.layer_norm(table[batch.ids[:, 0]] @ w, (D,), g, bias)
    assert torch.allclose(model.embeddings(batch.ids, batch.multi)[:, 0], want, atol=1e-5)
    assert torch.allclose(model(batch), net(batch, net.arch_of(sizes)), atol=1e-5)


# --- drops and small sizes in the supernet ---------------------------------------------------


@pytest.mark.parametrize("layout", ["separate", "nested"])
def test_dropped_entries_are_zero_and_take_no_gradient(layout: str) -> None:
    net = make_net(layout=layout)
    emb = net.embeddings
    batch = make_batch(b=40)
    arch = mixed_arch(40)
    arch[:, 3] = 0  # field "item" is dropped in every row
    out = net.unified(batch, arch)
    assert torch.equal(out[arch == 0], torch.zeros(int((arch == 0).sum()), D))
    out.pow(2).sum().backward()
    lo, hi = sum(FM.vocab_sizes[:3]), sum(FM.vocab_sizes[:4])
    for key, t in emb.tables.items():  # no table row of the dropped field moves
        assert t.grad is not None, key
        assert torch.all(t.grad[lo:hi] == 0), key
    for key, p in emb.proj.items():
        assert p.grad is None or torch.all(p.grad[3] == 0), key
    # A row whose fields are all dropped sends no gradient anywhere in the embeddings.
    net.zero_grad(set_to_none=True)
    net.unified(batch, arch)[0].sum().backward()
    for p in emb.parameters():
        assert p.grad is None or torch.all(p.grad == 0)


@pytest.mark.parametrize("layout", ["separate", "nested"])
def test_sizes_one_and_two_forward_and_backward(layout: str) -> None:
    net = make_net(layout=layout)
    batch = make_batch(b=30)
    for k in (1, 2):  # every field, the multi-valued one included, at size 1 then 2
        net.zero_grad(set_to_none=True)
        out = net(batch, [k] * FM.num_fields)
        assert out.shape == (30,) and torch.isfinite(out).all()
        out.sum().backward()
        key = f"s{SIZES[k]}"
        assert net.embeddings.proj[key].grad.abs().sum(dim=(1, 2)).gt(0).all()
        table = net.embeddings.tables[key if layout == "separate" else "shared"]
        tags = slice(FM.vocab_sizes[0], sum(FM.vocab_sizes[:2]))  # the pooled field's rows
        assert table.grad[tags, : SIZES[k]].abs().sum() > 0
        if layout == "nested":
            assert torch.all(table.grad[:, SIZES[k] :] == 0)


@pytest.mark.parametrize("backbone", ["dnn", "deepfm", "dlrm", "dcnv2"])
@pytest.mark.parametrize("layout", ["separate", "nested"])
def test_per_row_supernet_equals_standalone_per_row(backbone: str, layout: str) -> None:
    net = make_net(backbone, layout)
    batch = make_batch(b=12)
    arch = mixed_arch(12, seed=7)
    got = net(batch, arch)
    for i in range(12):
        sizes = net.sizes_of(arch[i].tolist())
        model = StandaloneModel.from_supernet(net, sizes).eval()
        assert torch.allclose(model(batch.slice(i, i + 1)), got[i : i + 1], atol=1e-5), sizes


def test_all_unified_with_drops_and_small_sizes() -> None:
    net = make_net(layout="nested")
    batch = make_batch(b=20)
    every = net.all_unified(batch)
    assert every.shape == (20, FM.num_fields, len(SIZES), D)
    assert torch.equal(every[:, :, 0], torch.zeros(20, FM.num_fields, D))
    for k in range(len(SIZES)):
        assert torch.allclose(every[:, :, k], net.unified(batch, [k] * FM.num_fields), atol=1e-5)


def test_drop_has_a_candidate_index_but_no_table() -> None:
    emb = CandidateEmbeddings.from_feature_map(FM, d=D, candidate_sizes=SIZES)
    assert set(emb.tables) == set(emb.proj) == {"s1", "s2", "s8", "s16"}
    assert Supernet(embeddings=emb, backbone=torch.nn.Identity()).arch_of([0] * 6) == (0,) * 6


# --- drops and small sizes in the stand-alone model --------------------------------------------


def test_standalone_param_counts_with_drops_and_size_one() -> None:
    sizes = {"user": 1, "tags": 0, "price": 2, "item": 16, "site": 0, "city": 1}
    model = StandaloneModel.from_feature_map(FM, sizes=sizes, d=D, backbone="dnn", **KW)
    vocab = dict(zip(NAMES, FM.vocab_sizes, strict=True))
    assert model.embedding_params() == 9 * 1 + 5 * 2 + 13 * 16 + 6 * 1
    # Each kept field: V_f * s table, s x d unifier, LayerNorm weight and bias; a drop costs 0.
    want = sum(vocab[n] * s + s * D + 2 * D for n, s in sizes.items() if s > 0)
    assert sum(p.numel() for p in model.embeddings.parameters()) == want
    assert set(model.embeddings.tables) == {"s1", "s2", "s16"}
    table, w, _, _ = model.embeddings.field_params(0)
    assert table.shape == (9, 1) and w.shape == (1, D)
    with pytest.raises(KeyError):
        model.embeddings.field_params(1)  # a dropped field has no table at all
    batch = make_batch()
    assert torch.all(model.embeddings(batch.ids, batch.multi)[:, [1, 4]] == 0)
    model(batch).sum().backward()
    assert all(p.grad is not None for p in model.embeddings.parameters())


@pytest.mark.parametrize("backbone", BACKBONES)
def test_standalone_with_every_field_dropped(backbone: str) -> None:
    torch.manual_seed(0)
    model = StandaloneModel.from_feature_map(FM, sizes=[0] * 6, d=D, backbone=backbone, **KW)
    assert model.embedding_params() == 0
    assert not list(model.embeddings.parameters())
    batch = make_batch()
    out = model.eval()(batch)
    assert out.shape == (len(batch),) and torch.isfinite(out).all()
    if backbone != "dlrm":  # only the bias is left (DLRM also reads the dense value)
        assert torch.allclose(out, out[:1].expand_as(out))
    out.sum().backward()
    assert any(p.grad is not None for p in model.backbone.parameters())


@pytest.mark.parametrize("backbone", BACKBONES)
def test_supernet_with_every_field_dropped(backbone: str) -> None:
    net = make_net(backbone)
    batch = make_batch()
    out = net(batch, [0] * FM.num_fields)
    assert torch.isfinite(out).all()
    want = StandaloneModel.from_supernet(net, [0] * 6).eval()(batch)
    assert torch.allclose(out, want, atol=1e-5)
    out.sum().backward()
    assert all(t.grad is None for t in net.embeddings.tables.values())


def test_standalone_dropped_fields_match_zero_inputs() -> None:
    # Dropping a field equals feeding the backbone a zero vector in its place.
    model = StandaloneModel.from_feature_map(
        FM, sizes=(2, 0, 1, 16, 0, 8), d=D, backbone="deepfm", **KW
    ).eval()
    batch = make_batch()
    unified = model.embeddings(batch.ids, batch.multi)
    assert unified.shape == (len(batch), 6, D)
    assert torch.equal(unified[:, [1, 4]], torch.zeros(len(batch), 2, D))
    assert torch.allclose(model(batch), model.backbone(unified, batch.dense))


def test_uniform_feature_map_default_sizes() -> None:
    fm = FeatureMap(name="t", label="label", fields=FM.fields)
    net = Supernet.from_feature_map(fm, d=DEFAULT_UNIFIED_WIDTH, backbone="fm")
    assert net.candidate_sizes == DEFAULT_CANDIDATE_SIZES
    batch = make_batch()
    assert net(batch, [0] * fm.num_fields).shape == (len(batch),)  # every field at size 1
