"""Search space, cost, budget parsing, repair and hard-budget selection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adass_ray.data.feature_map import FeatureMap, FieldSpec
from adass_ray.errors import ConfigError
from adass_ray.search.space import Budget, SearchSpace, repair, select


def _fm() -> FeatureMap:
    fields = (
        FieldSpec("user", "categorical", 1000),
        FieldSpec("item", "categorical", 100),
        FieldSpec("age", "numeric", 10),
    )
    return FeatureMap(name="t", label="y", fields=fields, candidate_sizes=(4, 8, 16, 32, 64))


@pytest.fixture
def space() -> SearchSpace:
    return SearchSpace.from_feature_map(_fm())


# --- space and cost ------------------------------------------------------------------------
def test_from_feature_map_and_costs(space: SearchSpace) -> None:
    assert space.field_names == ("user", "item", "age")
    assert space.vocab_sizes == (1000, 100, 10)
    arch = (2, 0, 4)
    assert space.sizes(arch) == (16, 4, 64)
    assert space.arch_of((16, 4, 64)) == arch
    assert space.cost(arch) == 1000 * 16 + 100 * 4 + 10 * 64
    assert space.cost_bytes(arch) == 4 * space.cost(arch)
    assert space.cost_bytes(arch, dtype_bytes=2) == 2 * space.cost(arch)
    assert space.min_cost() == 4 * 1110 and space.max_cost() == 64 * 1110
    assert space.uniform_cost(16) == 16 * 1110 and space.uniform_cost(12) == 12 * 1110
    assert hash(space) == hash(SearchSpace.from_feature_map(_fm()))  # a value, usable as a key


def test_vectorised_costs_match_scalar(space: SearchSpace) -> None:
    rng = np.random.default_rng(0)
    archs = [space.random_arch(rng) for _ in range(50)]
    assert all(isinstance(a, tuple) and len(a) == 3 for a in archs)
    t = torch.tensor(archs)
    costs = space.costs(t)
    assert costs.dtype == torch.long and costs.shape == (50,)
    assert costs.tolist() == [space.cost(a) for a in archs]
    assert space.field_costs(t)[0].tolist() == list(space.field_cost(archs[0]))
    with pytest.raises(ValueError):
        space.costs(torch.zeros(4, 2, dtype=torch.long))


def test_allow_drop_prepends_zero() -> None:
    sp = SearchSpace.from_feature_map(_fm(), candidate_sizes=(8, 16), allow_drop=True)
    assert sp.candidate_sizes == (0, 8, 16) and sp.min_cost() == 0
    assert sp.cost((0, 0, 0)) == 0
    # a supernet trained with a leading 0 (model.candidate_sizes=[0, ...]) implies the drop
    implied = SearchSpace.from_feature_map(_fm(), candidate_sizes=(0, 8, 16))
    assert implied == sp and implied.allow_drop


@pytest.mark.parametrize(
    ("sizes", "allow_drop"),
    [((8, 4), False), ((0, 4), False), ((), False), ((-4, 8), False), ((4, 8), True), ((0,), True)],
)
def test_bad_candidate_sizes(sizes: tuple[int, ...], allow_drop: bool) -> None:
    with pytest.raises(ConfigError):
        SearchSpace(("a",), (10,), sizes, allow_drop)
    with pytest.raises(ConfigError):
        SearchSpace(("a", "b"), (10,), (4, 8))  # names and vocab sizes disagree


def test_bad_archs_and_sizes(space: SearchSpace) -> None:
    for bad in [(0, 0), (0, 0, 5), (0, -1, 0)]:
        with pytest.raises(ConfigError, match="does not fit"):
            space.cost(bad)
    with pytest.raises(ConfigError, match="do not fit"):
        space.arch_of((16, 12, 4))


# --- budget ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "kind", "value"),
    [
        ("0.8", "ratio", 0.8),
        (0.8, "ratio", 0.8),
        (1, "ratio", 1.0),
        ("ratio:1.5", "ratio", 1.5),
        ("250000", "abs", 250000),
        (250000, "abs", 250000),
        ("abs:2.5e5", "abs", 250000),
        ("2.5e5", "abs", 250000),
        ("abs:1", "abs", 1),
        (" 250_000 ", "abs", 250000),
    ],
)
def test_budget_parse(spec: str | float, kind: str, value: float) -> None:
    b = Budget.parse(spec)
    assert (b.kind, b.value) == (kind, value)


@pytest.mark.parametrize("spec", ["", "abc", "0", "-0.5", "nan", "inf", "abs:-3", "1.5", "abs:0.5",
                                  "pct:3"])
def test_budget_parse_rejects(spec: str) -> None:
    with pytest.raises(ConfigError) as e:
        Budget.parse(spec)
    assert "\n" not in str(e.value)


def test_budget_resolve(space: SearchSpace) -> None:
    uniform = space.uniform_cost(16)
    assert Budget.parse("0.8").resolve(space) == math.floor(0.8 * uniform)
    assert Budget.parse("0.7").resolve(space) == 7 * uniform // 10  # exact, no 0.7-float drift
    assert Budget.parse("ratio:2").resolve(space, d_base=8) == 2 * space.uniform_cost(8)
    assert Budget.parse("abs:20000").resolve(space) == 20000


def test_budget_below_minimum_names_it(space: SearchSpace) -> None:
    with pytest.raises(ConfigError) as e:
        Budget.parse("0.1").resolve(space)
    msg = str(e.value)
    assert "\n" not in msg
    assert "budget 1,776 params is below the smallest architecture (4,440 params" in msg
    assert "every field at size 4" in msg
    assert "at least 0.25" in msg and "abs:4440" in msg
    # Following the advice works.
    assert Budget.parse("0.25").resolve(space) >= space.min_cost()
    with pytest.raises(ConfigError, match="ratio:2"):
        Budget.parse("abs:100").resolve(SearchSpace(("a",), (10,), (32, 64)), d_base=16)


# --- repair and select -----------------------------------------------------------------------
def test_repair_shrinks_biggest_consumer_first(space: SearchSpace) -> None:
    arch = (4, 4, 4)  # 64 each: user holds 64,000 of 71,040
    fixed = repair(space, arch, 40000)
    assert space.cost(fixed) <= 40000
    assert fixed[1:] == (4, 4)  # only the big field paid
    assert fixed == (3, 4, 4)
    assert repair(space, arch, space.cost(arch)) == arch  # within budget: untouched
    with pytest.raises(ConfigError):
        repair(space, arch, space.min_cost() - 1)


def test_repair_ties_break_by_field_index() -> None:
    sp = SearchSpace(("a", "b"), (10, 10), (4, 8))
    assert repair(sp, (1, 1), 120) == (0, 1)


def test_select_best_feasible_with_ties(space: SearchSpace) -> None:
    budget = 20000
    history = [
        ((4, 4, 4), 0.90),  # infeasible, best quality
        ((1, 1, 1), 0.80),  # feasible
        ((2, 0, 0), 0.80),  # feasible, same quality, higher cost
        ((0, 0, 0), 0.70),
        ((0, 4, 0), float("nan")),
    ]
    sel = select(space, history, budget)
    assert sel.arch == (1, 1, 1) and sel.quality == 0.80 and not sel.repaired
    assert sel.cost == space.cost((1, 1, 1)) <= budget and sel.sizes == (8, 8, 8)
    # Order of the history does not matter.
    assert select(space, reversed(history), budget) == sel


def test_select_repairs_when_nothing_is_feasible(space: SearchSpace) -> None:
    sel = select(space, [((4, 4, 4), 0.7), ((4, 3, 4), 0.9)], 30000)
    assert sel.repaired and sel.quality is None and sel.repaired_from == (4, 3, 4)
    assert sel.cost <= 30000 and sel.arch == repair(space, (4, 3, 4), 30000)
    with pytest.raises(ConfigError):
        select(space, [], 30000)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[SearchSpace, int, list[tuple[tuple[int, ...], float]]]:
    n_fields = draw(st.integers(1, 8))
    vocab = tuple(draw(st.lists(st.integers(1, 10**6), min_size=n_fields, max_size=n_fields)))
    sizes = sorted(draw(st.sets(st.integers(1, 128), min_size=1, max_size=6)))
    drop = draw(st.booleans())
    names = tuple(f"f{i}" for i in range(n_fields))
    sp = SearchSpace(names, vocab, tuple([0] * drop + sizes), drop)
    budget = draw(st.integers(max(sp.min_cost(), 1), sp.max_cost() + 10))
    arch = st.lists(st.integers(0, sp.num_candidates - 1), min_size=n_fields, max_size=n_fields)
    quality = st.floats(0, 1) | st.just(float("nan"))
    history = draw(st.lists(st.tuples(arch.map(tuple), quality), min_size=1, max_size=20))
    return sp, budget, history


@settings(max_examples=300, deadline=None)
@given(_cases())
def test_property_selection_and_repair_never_exceed_budget(
    case: tuple[SearchSpace, int, list[tuple[tuple[int, ...], float]]],
) -> None:
    sp, budget, history = case
    for arch, _ in history:
        fixed = repair(sp, arch, budget)
        assert sp.cost(fixed) <= budget
        if sp.cost(arch) <= budget:
            assert fixed == arch  # repair changes only over-budget architectures
        else:
            assert all(f <= a for f, a in zip(fixed, arch, strict=True))  # it only shrinks
    sel = select(sp, history, budget)
    assert sel.cost == sp.cost(sel.arch) <= budget
    feasible = [(a, q) for a, q in history if sp.cost(a) <= budget]
    assert sel.repaired == (not feasible)
    scored = [q for _, q in feasible if not math.isnan(q)]
    if scored:
        assert sel.quality == max(scored)
