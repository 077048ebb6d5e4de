from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adass_ray.errors import DataError
from adass_ray.pareto import (
    ParetoPoint,
    auto_lams,
    dominates,
    front_mask,
    pareto_front,
    read_pareto_csv,
    uniform_dominance,
    uniform_rates,
    write_pareto_csv,
)


def P(params: int, auc: float, key: str = "", **payload: object) -> ParetoPoint:
    return ParetoPoint(params=params, auc=auc, key=key, payload=payload)


def test_simple_front_sorted_by_params():
    pts = [P(300, 0.80, "c"), P(100, 0.70, "a"), P(200, 0.75, "b"), P(250, 0.74, "x")]
    assert [p.key for p in pareto_front(pts)] == ["a", "b", "c"]


def test_ties_and_duplicates():
    pts = [
        P(100, 0.70, "a"),
        P(100, 0.70, "a-dup"),   # exact duplicate of a: the first in input order is kept
        P(100, 0.65, "same-params-worse"),  # dominated (params equal, auc lower)
        P(150, 0.70, "same-auc-more-params"),  # dominated (auc equal, params higher)
        P(200, 0.80, "b"),
        P(200, 0.80, "b-dup"),
    ]
    front = pareto_front(pts)
    assert [p.key for p in front] == ["a", "b"]
    assert front[0] is pts[0] and front[1] is pts[4]
    assert front_mask(pts) == [True, False, False, False, True, False]
    assert not dominates(pts[0], pts[1]) and not dominates(pts[1], pts[0])
    assert dominates(pts[0], pts[2]) and dominates(pts[0], pts[3])


def test_duplicate_kept_is_first_by_input_order_even_if_later_sorted():
    pts = [P(200, 0.9, "late"), P(200, 0.9, "early-dup"), P(100, 0.5, "small")]
    assert [p.key for p in pareto_front(pts)] == ["small", "late"]


def test_empty_and_nan():
    assert pareto_front([]) == []
    with pytest.raises(DataError, match="NaN"):
        pareto_front([P(1, math.nan, "bad")])


points_strategy = st.lists(
    st.builds(lambda p, a, i: P(p, a / 8, f"k{i}"), st.integers(0, 6), st.integers(0, 8),
              st.integers(0, 10**6)),
    max_size=30,
)


@settings(max_examples=300, deadline=None, database=None)
@given(points_strategy)
def test_front_properties(pts):
    front = pareto_front(pts)
    front_ids = {id(p) for p in front}
    for f in front:
        assert not any(dominates(q, f) for q in pts)
    for q in pts:
        if id(q) in front_ids:
            continue
        assert any(dominates(f, q) or (f.params == q.params and f.auc == q.auc) for f in front)
    # Sorted, strictly increasing in both objectives, no two points at the same spot.
    assert all(a.params < b.params and a.auc < b.auc
               for a, b in zip(front, front[1:], strict=False))
    # The kept duplicate is the first in input order.
    for f in front:
        first = next(q for q in pts if q.params == f.params and q.auc == f.auc)
        assert first is f


def test_csv_round_trip(tmp_path):
    pts = [
        P(100, 0.7123456789012345, "a", lam=0.1, note="plain text", sizes=[4, 8]),
        P(100, 0.7123456789012345, "a-dup", lam=0.1),
        P(300, 0.75, "b", note="1", empty=""),
        P(350, 0.74, "c", none=None),
    ]
    front = pareto_front(pts)
    path = write_pareto_csv(tmp_path / "front.csv", pts, front)
    assert [p.name for p in tmp_path.iterdir()] == ["front.csv"]  # no temp file left
    back, on_front = read_pareto_csv(path)
    assert back == pts  # params, auc (exact) and key
    assert on_front == [True, False, True, False]
    assert [dict(p.payload) for p in back] == [dict(p.payload) for p in pts]
    header = path.read_text().splitlines()[0]
    assert header == "key,params,auc,on_front,lam,note,sizes,empty,none"


def test_csv_matches_copies_and_rejects_strangers(tmp_path):
    pts = [P(1, 0.5, "a"), P(2, 0.6, "b")]
    write_pareto_csv(tmp_path / "f.csv", pts, [P(2, 0.6, "b")])
    assert read_pareto_csv(tmp_path / "f.csv")[1] == [False, True]
    with pytest.raises(DataError, match="not among the points"):
        write_pareto_csv(tmp_path / "g.csv", pts, [P(3, 0.9, "z")])
    assert not (tmp_path / "g.csv").exists()
    with pytest.raises(DataError, match="clashes"):
        write_pareto_csv(tmp_path / "h.csv", [ParetoPoint(1, 0.5, "a", {"auc": 1})], [])


def test_csv_atomic_failure_leaves_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.csv"
    write_pareto_csv(path, [P(1, 0.5, "a")], [])
    before = path.read_text()

    def boom(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("adass_ray.pareto.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_pareto_csv(path, [P(2, 0.6, "b")], [])
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["f.csv"]


UNIFORM = [{"size": 1, "cost": 100, "quality": 0.70}, {"size": 2, "cost": 200, "quality": 0.76},
           {"size": 4, "cost": 400, "quality": 0.78}, {"size": 8, "cost": 800, "quality": 0.77}]


def test_auto_lams_brackets_every_uniform_step():
    # budget 400: steps 0.25 -> 0.5 of C/B gains 0.06 (rate 0.24), 0.5 -> 1.0 gains 0.02 (0.04);
    # the losing step to size 8 is outside the budget anyway
    lams = auto_lams(UNIFORM, [400], count=5)
    assert lams[0] == 0.0 and list(lams) == sorted(set(lams)) and len(lams) == 6
    assert lams[1] == pytest.approx(0.02) and lams[-1] == pytest.approx(0.48)
    assert lams[1] < 0.04 < lams[2] and any(0.04 < x < 0.24 for x in lams) and lams[-1] > 0.24
    # a larger budget makes C/B smaller, so the same AUC steps are steeper
    assert auto_lams(UNIFORM, [800], count=5)[-1] > lams[-1]
    # after a dip the next gain is measured from the best so far, not from the dip
    dip = [{"cost": 1, "quality": 0.70}, {"cost": 2, "quality": 0.60}, {"cost": 4, "quality": 0.72}]
    assert uniform_rates(dip, 4) == [pytest.approx(0.02 / 0.75)]
    # losing steps give no rate; a flat ladder gives nothing to trade
    assert auto_lams([{"cost": 1, "quality": 0.7}, {"cost": 2, "quality": 0.6}], [2]) == (0.0,)
    with pytest.raises(ValueError, match="count"):
        auto_lams(UNIFORM, [400], count=0)


def test_auto_lams_reaches_past_the_steepest_first_step():
    base = auto_lams(UNIFORM, [400], count=5)
    # a field whose first step (+10 params) gains 0.03 AUC: rate 0.03 * 400 / 10 = 1.2, far
    # steeper than any uniform step (top of the grid 0.48), so one λ = 2.4 is appended
    got = auto_lams(UNIFORM, [400], count=5, first_steps=[(0.03, 10.0), (0.001, 50.0)])
    assert got[:-1] == base and got[-1] == pytest.approx(2.4)
    # shallower first steps, losing ones and free ones add nothing
    flat = [(0.001, 100.0), (-0.01, 10.0), (0.02, 0.0)]
    assert auto_lams(UNIFORM, [400], count=5, first_steps=flat) == base
    # with two budgets the steepest rate (the larger B) decides
    two = auto_lams(UNIFORM, [400, 800], count=5, first_steps=[(0.03, 10.0)])
    assert two[-1] == pytest.approx(4.8)


def test_uniform_dominance_finds_the_cheapest_covering_point():
    front = [P(150, 0.765, "a"), P(350, 0.79, "b")]
    got = {u["size"]: u["covered_by"] for u in uniform_dominance(front, UNIFORM)}
    assert got == {1: None, 2: "a", 4: "b", 8: "b"}
