"""The folded first layer gives the backbone's own logits, for every backbone that folds."""

from __future__ import annotations

import pytest
import torch

from adass_ray.model.backbones import BACKBONES, build_backbone
from adass_ray.model.folding import fold_backbone

NF, D, K, ROWS = 5, 8, 3, 64


@pytest.mark.parametrize("hidden", [(16, 8), ()])
@pytest.mark.parametrize("name", BACKBONES)
def test_folded_equals_backbone(name: str, hidden: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    net = build_backbone(name, num_fields=NF, d=D, num_dense=2, hidden=hidden,
                         cross_layers=2).eval()
    for p in net.parameters():  # non-zero biases everywhere, so none can be dropped silently
        with torch.no_grad():
            p.add_(0.1 * torch.randn_like(p))
    fold = fold_backbone(net, num_fields=NF, d=D)
    if name == "dlrm":
        assert fold is None  # pairwise dots are not a sum of per-field terms
        return
    assert fold is not None
    u = torch.randn(ROWS, NF, K, D)  # every candidate's field vectors
    arch = torch.randint(0, K, (ROWS, NF))
    fields = u.gather(2, arch[:, :, None, None].expand(ROWS, NF, 1, D)).squeeze(2)
    with torch.no_grad():
        terms = fold.contributions(u)  # [ROWS, NF, K, C]
        s = terms.gather(2, arch[:, :, None, None].expand(-1, -1, 1, fold.width)).sum((1, 2))
        got = fold.head(s + fold.bias, fields if fold.needs_fields else None)
        want = net(fields, torch.randn(ROWS, 2))
    assert got.shape == (ROWS,)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)
    assert want.std() > 1e-3  # not a constant that any formula would match
