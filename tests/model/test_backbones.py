"""Backbones: shapes, gradient flow, the FM identity, and the builder's errors."""

from __future__ import annotations

import pytest
import torch

from adass_ray.errors import ConfigError
from adass_ray.model.backbones import BACKBONES, MLP, build_backbone, fm_interaction

B, F, D, DENSE = 6, 5, 4, 3


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("num_dense", [0, DENSE])
def test_shape_and_gradients(name: str, num_dense: int) -> None:
    torch.manual_seed(0)
    net = build_backbone(
        name, num_fields=F, d=D, num_dense=num_dense, hidden=(8, 8), cross_layers=2
    )
    fields = torch.randn(B, F, D, requires_grad=True)
    dense = torch.randn(B, num_dense)
    out = net(fields, dense)
    assert out.shape == (B,)
    out.sum().backward()
    assert fields.grad is not None and fields.grad.abs().sum() > 0
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        if pname.startswith("bottom."):  # DLRM's dense path is really used
            assert p.grad.abs().sum() > 0, pname


def test_unknown_backbone_names_choices() -> None:
    with pytest.raises(ConfigError, match="dnn, deepfm, dcn, dcnv2, dlrm, fm") as e:
        build_backbone("resnet", num_fields=F, d=D)
    assert "\n" not in str(e.value)


def test_bad_sizes_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        build_backbone("dnn", num_fields=0, d=D)
    with pytest.raises(ConfigError):
        build_backbone("dnn", num_fields=F, d=D, hidden=(0,))


def test_name_is_case_insensitive() -> None:
    assert build_backbone("DeepFM", num_fields=F, d=D, hidden=(4,)) is not None


def test_fm_interaction_matches_pairwise_sum() -> None:
    x = torch.randn(B, F, D)
    brute = torch.stack(
        [(x[:, i] * x[:, j]).sum(1) for i in range(F) for j in range(i + 1, F)]
    ).sum(0)
    assert torch.allclose(fm_interaction(x), brute, atol=1e-5)


def test_mlp_widths() -> None:
    assert MLP(in_dim=3, hidden=(5, 7)).out_features == 7
    assert MLP(in_dim=3, hidden=(5,), out_dim=1)(torch.randn(2, 3)).shape == (2, 1)
    assert MLP(in_dim=3, hidden=()).out_features == 3


def test_rows_are_independent_in_eval() -> None:
    # Per-row architectures rely on the backbone treating rows independently.
    for name in BACKBONES:
        net = build_backbone(
            name, num_fields=F, d=D, num_dense=DENSE, hidden=(8,), dropout=0.5
        ).eval()
        fields, dense = torch.randn(B, F, D), torch.randn(B, DENSE)
        whole = net(fields, dense)
        single = torch.cat([net(fields[i : i + 1], dense[i : i + 1]) for i in range(B)])
        assert torch.allclose(whole, single, atol=1e-5), name


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("dropped", [(2,), tuple(range(F))])
def test_dropped_fields_are_zero_inputs(name: str, dropped: tuple[int, ...]) -> None:
    # A dropped field reaches the backbone as an exact zero vector; one or all of them must work.
    torch.manual_seed(0)
    net = build_backbone(name, num_fields=F, d=D, num_dense=DENSE, hidden=(8,), cross_layers=2)
    fields = torch.randn(B, F, D)
    fields[:, list(dropped)] = 0.0
    fields.requires_grad_(True)
    dense = torch.randn(B, DENSE)
    out = net(fields, dense)
    assert out.shape == (B,) and torch.isfinite(out).all()
    out.sum().backward()
    assert fields.grad is not None and torch.isfinite(fields.grad).all()
    if len(dropped) == F and name != "dlrm":  # nothing left but biases: one logit for all rows
        assert torch.allclose(out, out[:1].expand_as(out))
    if len(dropped) < F:  # the kept fields still matter
        assert fields.grad[:, [f for f in range(F) if f not in dropped]].abs().sum() > 0
