"""Cached, batched Q(alpha) agrees with the plain forward and is memoised."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap, FieldSpec
from adass_ray.errors import ConfigError, DataError
from adass_ray.model.backbones import BACKBONES
from adass_ray.model.supernet import Supernet
from adass_ray.search import evaluator as ev
from adass_ray.search.evaluator import CachedEvaluator, naive_quality
from adass_ray.search.rows import split_rows, validation_subsample

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
NF, K, ROWS = FM.num_fields, 4, 120  # candidates (0, 4, 8, 16): 0 drops the field


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """The tensors here are tiny: a second intra-op thread only spins, and on a busy machine
    that spinning slows every op down many times."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_batch(rows: int = ROWS, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    single = [f.vocab_size for f in FM.fields if f.kind != "multi_valued"]
    ids = torch.stack([torch.randint(0, v, (rows,), generator=g) for v in single], 1)
    tags = torch.randint(-1, 7, (rows, 3), generator=g)
    label = torch.randint(0, 2, (rows,), generator=g).float()
    return Batch(ids=ids, multi=(tags,), dense=torch.randn(rows, 1, generator=g), label=label)


def make_net(layout: str, backbone: str = "dnn") -> Supernet:
    torch.manual_seed(0)
    return Supernet.from_feature_map(FM, d=16, backbone=backbone, hidden=(16, 8), layout=layout,
                                     candidate_sizes=(0, 4, 8, 16))


def random_archs(n: int, seed: int = 0) -> list[tuple[int, ...]]:
    g = torch.Generator().manual_seed(seed)
    return [tuple(row) for row in torch.randint(0, K, (n, NF), generator=g).tolist()]


def _flip_share(net: Supernet, batch: Batch, arch: tuple[int, ...], eps: float = 1e-5) -> float:
    """AUC tolerance: the share of (positive, negative) pairs whose plain-forward logits are
    within ``eps`` (rounding may order those either way; e.g. the same tags in another order
    pool to vectors equal up to rounding), plus 1e-9. Zero such pairs: the AUCs must agree."""
    with torch.no_grad():
        net.eval()
        z = net(batch, arch)
    pos, neg = z[batch.label == 1], z[batch.label == 0]
    close = ((pos[:, None] - neg[None, :]).abs() <= eps).sum().item()
    return close / (len(pos) * len(neg)) + 1e-9


@pytest.mark.parametrize(
    ("layout", "backbone"),
    [("separate", b) for b in BACKBONES] + [("nested", "dnn"), ("nested", "dlrm")],
)
def test_cached_equals_naive(layout: str, backbone: str) -> None:
    net, batch = make_net(layout, backbone), make_batch()
    net.train()
    evaluator = CachedEvaluator(net, batch, chunk_archs=3)
    assert net.training  # the mode is restored
    assert (evaluator.fold is None) == (backbone == "dlrm")  # the rest score by the folded path
    archs = [(0,) * NF, (3,) * NF, *random_archs(7)]
    got = evaluator.evaluate(archs)
    for arch, q in zip(archs, got, strict=True):
        want = naive_quality(net, batch, arch)
        assert q == pytest.approx(want, abs=_flip_share(net, batch, arch))
    assert len({round(q, 6) for q in got}) > 1  # the architectures are told apart
    # The logits themselves agree with the plain forward.
    with torch.no_grad():
        net.eval()
        want = torch.stack([net(batch, a) for a in archs[:3]])
    assert torch.allclose(evaluator.logits(archs[:3]), want, atol=1e-5)


def test_memoised_repeats_are_hits_and_not_recomputed() -> None:
    net, batch = make_net("separate"), make_batch()
    evaluator = CachedEvaluator(net, batch, fold=False)
    calls: list[int] = []
    net.backbone.register_forward_hook(lambda _m, args, _out: calls.append(args[0].shape[0]))
    a, b = random_archs(2, seed=1)
    first = evaluator.evaluate([a, b, a])
    assert (evaluator.misses, evaluator.hits) == (2, 1)
    assert calls == [2 * ROWS]  # one batched backbone call for both new architectures
    assert first[0] == first[2]
    assert evaluator([b, a]) == [first[1], first[0]]  # __call__ is evaluate
    assert (evaluator.misses, evaluator.hits) == (2, 3)
    assert len(calls) == 1
    assert evaluator.cache == {a: first[0], b: first[1]}


def test_shared_cache_is_used() -> None:
    net, batch = make_net("nested"), make_batch()
    a, b = random_archs(2, seed=2)
    source = CachedEvaluator(net, batch)
    source.evaluate([a, b])
    other = CachedEvaluator(net, batch)
    other.load_cache({a: 0.25, b: source.cache[b]})
    assert other.evaluate([a, b]) == [0.25, source.cache[b]]
    assert other.misses == 0 and other.hits == 2
    with pytest.raises(ConfigError, match="architecture"):
        other.load_cache({(0, 1): 0.5})


def test_batched_scoring_of_100_archs_equals_one_by_one() -> None:
    net, batch = make_net("separate"), make_batch()
    archs = random_archs(100, seed=3)
    batched = CachedEvaluator(net, batch, chunk_archs=64).evaluate(archs)
    single = CachedEvaluator(net, batch, chunk_archs=1)
    one_by_one = [single.evaluate([a])[0] for a in archs]
    assert batched == pytest.approx(one_by_one, abs=1e-9)


def per_row_terms(e: CachedEvaluator) -> torch.Tensor:
    """The folded terms expanded back to ``[N, F, K, C]``."""
    assert e.folded is not None
    return e.folded[e._term_rows[..., None] + torch.arange(e.num_candidates)]


def test_folded_terms_are_stored_once_per_distinct_value() -> None:
    net, batch = make_net("separate"), make_batch()
    e = CachedEvaluator(net, batch)
    assert e.fold is not None and e.folded is not None
    distinct = (sum(len(torch.unique(column)) for column in batch.ids.t())
                + sum(len(torch.unique(m, dim=0)) for m in batch.multi))
    assert len(e.folded) <= distinct * K < ROWS * NF * K
    # the bias is in the first field's terms, once: summing a row's terms gives the layer
    unified = e.unified.view(ROWS, NF, K, -1)
    want = e.fold.contributions(unified).sum(1)[:, 0] + e.fold.bias  # all fields at candidate 0
    got = per_row_terms(e)[:, :, 0].sum(1)
    assert torch.allclose(got, want, atol=1e-5)


def test_memory_bounds_chunk_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    net, batch = make_net("separate"), make_batch()
    full = CachedEvaluator(net, batch)
    monkeypatch.setattr(ev, "UNIFIED_ROW_CHUNK", 7)  # the cache is built in row chunks
    chunked = CachedEvaluator(net, batch, chunk_archs=64, max_rows=3 * ROWS, fold=False)
    assert chunked.archs_per_call == 3
    assert torch.allclose(chunked.unified, full.unified, atol=1e-6)
    archs = random_archs(10, seed=4)
    assert chunked.evaluate(archs) == pytest.approx(full.evaluate(archs), abs=1e-6)
    monkeypatch.setattr(ev, "FOLD_BUILD_BYTES", 1)  # the folded cache one row at a time,
    blocks = CachedEvaluator(net, batch, chunk_archs=4, max_rows=13)  # scored 3 rows per block
    assert blocks.folded is not None and full.folded is not None
    # per (row, field, candidate) the same term (the tables may hold the distinct vectors in
    # another number of entries: vectors from other row chunks can differ in the last bit)
    assert torch.allclose(per_row_terms(blocks), per_row_terms(full), atol=1e-6)
    assert blocks.evaluate(archs) == pytest.approx(full.evaluate(archs), abs=1e-6)


def test_folded_cache_over_the_limit_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    net, batch = make_net("separate"), make_batch()
    folded = CachedEvaluator(net, batch)
    assert folded.folded is not None
    size = folded.folded.numel() * folded.folded.element_size()  # the distinct values' terms
    with caplog.at_level("WARNING", logger=ev.__name__):
        plain = CachedEvaluator(net, batch, max_fold_bytes=size - 1)
    assert plain.fold is None and plain.folded is None
    assert "unfolded path" in caplog.text and "GiB" in caplog.text
    assert CachedEvaluator(net, batch, max_fold_bytes=size).fold is not None
    calls: list[int] = []
    net.backbone.register_forward_hook(lambda _m, args, _out: calls.append(1))
    archs = random_archs(20, seed=5)
    assert folded.evaluate(archs) == pytest.approx(plain.evaluate(archs), abs=1e-6)
    assert len(calls) == 1  # the unfolded one ran the backbone; the folded one only its layers


def test_validation_subsample_is_seeded() -> None:
    batch = make_batch(rows=50)
    a = validation_subsample(batch, 20, seed=7)
    b = validation_subsample(batch, 20, seed=7)
    c = validation_subsample(batch, 20, seed=8)
    assert len(a) == 20 and torch.equal(a.ids, b.ids) and not torch.equal(a.ids, c.ids)
    rows = [int(torch.nonzero((batch.ids == r).all(1))[0]) for r in a.ids]
    assert rows == sorted(rows)  # original order kept
    assert len(validation_subsample(batch, 500, seed=0)) == 50

    class Loader:
        def full_batch(self) -> Batch:
            return batch

    assert torch.equal(validation_subsample(Loader(), 20, seed=7).label, a.label)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        validation_subsample(batch, 0, seed=0)


def test_bad_input() -> None:
    net, batch = make_net("separate"), make_batch()
    with pytest.raises(ConfigError, match="chunk_archs"):
        CachedEvaluator(net, batch, chunk_archs=0)
    with pytest.raises(ConfigError, match="move the supernet"):
        CachedEvaluator(net, batch, device="meta")
    assert CachedEvaluator(net, batch, device="cpu").device == torch.device("cpu")
    one_class = Batch(ids=batch.ids, multi=batch.multi, dense=batch.dense,
                      label=torch.ones(ROWS))
    with pytest.raises(DataError, match="both labels"):
        CachedEvaluator(net, one_class)
    evaluator = CachedEvaluator(net, batch)
    for bad in [(0,) * (NF - 1), (K,) * NF]:
        with pytest.raises(ConfigError, match="architecture"):
            evaluator.evaluate([bad])


def test_split_rows_is_disjoint_stratified_and_seeded() -> None:
    batch = make_batch(rows=101)
    a, b = split_rows(batch, seed=3)
    assert len(a) + len(b) == 101 and abs(len(a) - len(b)) <= 2
    key = [tuple(r) + (float(y),) for r, y in zip(batch.ids.tolist(), batch.label, strict=True)]
    rows_a = [key.index(tuple(r) + (float(y),)) for r, y in zip(a.ids.tolist(), a.label,
                                                                 strict=True)]
    assert rows_a == sorted(rows_a)  # original order kept
    pos = float(batch.label.mean())
    assert abs(float(a.label.mean()) - pos) < 0.03 and abs(float(b.label.mean()) - pos) < 0.03
    a2, _ = split_rows(batch, seed=3)
    a3, _ = split_rows(batch, seed=4)
    assert torch.equal(a.ids, a2.ids) and not torch.equal(a.ids, a3.ids)
    net = make_net("separate")
    arch = random_archs(1)[0]
    # One evaluator per half: Q_A and Q_B are the same architecture on different rows.
    assert CachedEvaluator(net, a).evaluate([arch]) != CachedEvaluator(net, b).evaluate([arch])
    with pytest.raises(ConfigError):
        split_rows(batch, seed=0, fraction=1.0)
    few = Batch(ids=batch.ids[:3], multi=tuple(m[:3] for m in batch.multi),
                dense=batch.dense[:3], label=torch.tensor([0.0, 0.0, 1.0]))
    with pytest.raises(DataError, match="both labels"):
        split_rows(few, seed=0)
