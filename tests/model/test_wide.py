"""The first-order (wide) term and the linear floor: exact values, and one term everywhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from adass_ray.data.batch import Batch
from adass_ray.model.standalone import StandaloneModel
from adass_ray.model.supernet import Supernet
from adass_ray.model.wide import FirstOrder, LinearModel
from adass_ray.search.evaluator import CachedEvaluator, naive_quality
from tests.search.test_evaluator import FM, make_batch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: a second intra-op thread only spins on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _filled(wide: FirstOrder) -> None:
    with torch.no_grad():
        wide.tables["w"].copy_(torch.randn(wide.tables["w"].shape, generator=torch.Generator()
                                           .manual_seed(3)))
        wide.bias.fill_(0.25)


def test_first_order_is_the_sum_of_one_scalar_per_field() -> None:
    model = LinearModel.from_feature_map(FM)
    _filled(model.wide)
    batch = make_batch(rows=7)
    w = model.wide.tables["w"][:, 0]
    starts = torch.tensor([0, *FM.vocab_sizes]).cumsum(0)[:-1]  # each field's first row
    single = [i for i, f in enumerate(FM.fields) if f.kind != "multi_valued"]
    expected = torch.full((7,), 0.25)
    for col, f in enumerate(single):
        expected += w[starts[f] + batch.ids[:, col]]
    tags = batch.multi[0]  # field 1, multi-valued: the mean over its non-padding ids
    for r in range(7):
        ids = tags[r][tags[r] >= 0]
        if len(ids):
            expected[r] += w[starts[1] + ids].mean()
    torch.testing.assert_close(model(batch), expected)
    assert model.embedding_params() == 0
    assert sum(p.numel() for p in model.parameters()) == sum(FM.vocab_sizes) + 1


def test_linear_model_learns_a_planted_logistic_rule() -> None:
    """A zero start moves toward the planted per-id weights: the floor is a real LR."""
    torch.manual_seed(0)
    model = LinearModel.from_feature_map(FM)
    batch = make_batch(rows=600, seed=4)
    truth = (batch.ids[:, 0] % 2 == 0).float() * 2 - 1  # user id parity decides the odds
    label = (torch.rand(600) < torch.sigmoid(2 * truth)).float()
    batch = Batch(ids=batch.ids, multi=batch.multi, dense=batch.dense, label=label)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(batch), label).backward()
        opt.step()
    user_w = model.wide.tables["w"][: FM.vocab_sizes[0], 0].detach()
    assert (user_w[0::2] > 0.5).all() and (user_w[1::2] < -0.5).all()


@pytest.mark.parametrize("wide", [False, True])
def test_wide_term_adds_to_every_model_and_the_search_scores_it(wide: bool) -> None:
    torch.manual_seed(0)
    net = Supernet.from_feature_map(FM, d=16, backbone="dnn", hidden=(16,),
                                    candidate_sizes=(0, 4, 8, 16), wide=wide)
    assert (net.wide is not None) == wide
    if net.wide is not None:
        _filled(net.wide)
    batch = make_batch(rows=64)
    arch = (1, 2, 3, 0, 1, 2)
    plain = net.backbone(net.unified(batch, arch), batch.dense)
    extra = net.wide(batch.ids, batch.multi) if net.wide is not None else 0.0
    net.eval()
    torch.testing.assert_close(net(batch, arch), plain + extra)
    # the stand-alone model cut from the supernet keeps the term; the cached search agrees
    alone = StandaloneModel.from_supernet(net, net.sizes_of(arch)).eval()
    torch.testing.assert_close(alone(batch), net(batch, arch), atol=1e-5, rtol=1e-5)
    cached = CachedEvaluator(net, batch)
    assert cached([arch])[0] == pytest.approx(naive_quality(net, batch, arch), abs=1e-6)
    fresh = StandaloneModel.from_feature_map(FM, sizes=(4,) * 6, d=16, backbone="dnn",
                                             hidden=(16,), wide=wide)
    assert (fresh.wide is not None) == wide
    if wide:  # its scalar table is not an embedding size the budget counts
        assert fresh.embedding_params() == 4 * sum(FM.vocab_sizes)
