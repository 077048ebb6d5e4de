from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adass_ray.errors import DataError
from adass_ray.metrics import auc, average_ranks, kendall_tau, logloss, stability


def brute_auc(labels: list[int], scores: list[float]) -> float:
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def brute_tau_b(x: list[float], y: list[float]) -> float:
    n = len(x)
    s = tx = ty = 0
    for i in range(n):
        for j in range(i + 1, n):
            a, b = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            s += a * b
            tx += a != 0
            ty += b != 0
    return float(s / math.sqrt(tx * ty)) if tx and ty else math.nan


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 4)), min_size=2, max_size=60))
def test_auc_matches_pairwise_count_with_many_ties(rows):
    labels = [y for y, _ in rows]
    scores = [float(s) for _, s in rows]
    if len(set(labels)) < 2:
        with pytest.raises(DataError, match="both classes"):
            auc(labels, scores)
        return
    assert auc(labels, scores) == pytest.approx(brute_auc(labels, scores), abs=1e-12)


def test_auc_known_values_and_input_types():
    y = np.array([0, 0, 1, 1])
    assert auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert auc(y, np.zeros(4)) == 0.5
    assert auc(torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0.3, 0.3, 0.7])) == pytest.approx(0.75)
    assert auc(np.array([False, True]), [1, 2]) == 1.0


@pytest.mark.parametrize("labels, scores, match", [
    ([1, 1, 1], [0.1, 0.2, 0.3], "both classes"),
    ([0, 1], [0.1, 0.2, 0.3], "differ in length"),
    ([0, 2], [0.1, 0.2], "must be 0 or 1"),
    ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ([0, 1], [0.1, float("nan")], "NaN"),
])
def test_auc_errors_are_one_line(labels, scores, match):
    with pytest.raises(DataError, match=match) as info:
        auc(labels, scores)
    assert "\n" not in str(info.value)


def test_average_ranks():
    assert average_ranks([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert average_ranks([5, 5, 5]).tolist() == [2.0, 2.0, 2.0]


def test_logloss_by_hand():
    y, p = [1, 0, 1, 0], [0.9, 0.2, 0.6, 0.5]
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.6) + math.log(0.5)) / 4
    assert logloss(y, p) == pytest.approx(expected, rel=1e-12)
    assert logloss(torch.tensor(y), torch.tensor(p, dtype=torch.float32)) == pytest.approx(
        expected, rel=1e-6)
    # Clipping: a confident mistake costs -log(eps), not infinity.
    assert logloss([1], [0.0], eps=1e-7) == pytest.approx(-math.log(1e-7))
    with pytest.raises(DataError, match="sigmoid"):
        logloss([1, 0], [1.5, 0.2])
    with pytest.raises(DataError, match="empty"):
        logloss([], [])


def test_kendall_tau_known_cases():
    assert kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # One swap of adjacent items out of 6 pairs: (5 - 1) / 6.
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # tau-b with ties: x = [1,1,2], y = [1,2,3] -> C=2, D=0, untied pairs 2 (x) and 3 (y).
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(2 * 3))
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau([1], [2]))
    with pytest.raises(DataError, match="equal lengths"):
        kendall_tau([1, 2], [1, 2, 3])


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=2, max_size=40))
def test_kendall_tau_matches_brute_force_and_scipy(pairs):
    x = [float(a) for a, _ in pairs]
    y = [float(b) for _, b in pairs]
    got = kendall_tau(x, y)
    expected = brute_tau_b(x, y)
    if math.isnan(expected):
        assert math.isnan(got)
        return
    assert got == pytest.approx(expected, abs=1e-12)
    scipy_stats = pytest.importorskip("scipy.stats")
    assert got == pytest.approx(scipy_stats.kendalltau(x, y, variant="b").statistic, abs=1e-9)


def test_kendall_tau_block_path_matches(monkeypatch):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 50), rng.integers(0, 5, 50)
    full = kendall_tau(x, y)
    monkeypatch.setattr("adass_ray.metrics._BLOCK_CELLS", 7)  # forces many row blocks
    assert kendall_tau(x, y) == pytest.approx(full, abs=1e-12)


def test_stability_identical_runs():
    s = stability([[4, 8, 16], [4, 8, 16], [4, 8, 16]])
    assert s["n_runs"] == 3 and s["n_pairs"] == 3
    assert s["agreement_per_field"] == [1.0, 1.0, 1.0]
    assert s["agreement"] == 1.0
    assert s["mean_abs_log2_diff"] == 0.0
    assert s["kendall_tau"] == 1.0


def test_stability_by_hand():
    s = stability([[4, 8, 16], [8, 8, 4]])
    assert s["agreement_per_field"] == [0.0, 1.0, 0.0]
    assert s["agreement"] == pytest.approx(1 / 3)
    # |log2 4 - log2 8| = 1, 0, |log2 16 - log2 4| = 2 -> mean 1.
    assert s["mean_abs_log2_diff"] == pytest.approx(1.0)
    assert s["kendall_tau"] == pytest.approx(kendall_tau([4, 8, 16], [8, 8, 4]))


def test_stability_dropped_fields_count_as_half_the_smallest_size():
    # min positive size 4 -> a dropped field sits at log2(2) = 1: 0 vs 4 is one step, 0 vs 16 three.
    s = stability([[0, 0], [4, 16]])
    assert s["mean_abs_log2_diff"] == pytest.approx((1 + 3) / 2)
    # An explicit smallest candidate overrides the observed one: 0 -> log2(1) = 0.
    s = stability([[0, 8], [8, 8]], min_size=2)
    assert s["mean_abs_log2_diff"] == pytest.approx((3 + 0) / 2)
    # Constant vectors: tau undefined for the pair -> nan, the rest still defined.
    s = stability([[8, 8], [8, 8]])
    assert math.isnan(s["kendall_tau"]) and s["agreement"] == 1.0


@pytest.mark.parametrize("runs, match", [
    ([[4, 8]], "at least 2 runs"),
    ([[4, 8], [4]], "differ in length"),
    ([[], []], "at least one field"),
    ([[4, -8], [4, 8]], "non-negative integers"),
    ([[4.5, 8], [4, 8]], "non-negative integers"),
])
def test_stability_errors(runs, match):
    with pytest.raises(DataError, match=match):
        stability(runs)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.integers(6, 60))
def test_weighted_auc_equals_auc_of_the_repeated_rows(seed, n):
    from adass_ray.metrics import weighted_auc

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = rng.integers(0, 5, n).astype(float)  # many ties
    w = rng.integers(0, 3, (4, n))
    w[:, :2] = 1
    got = weighted_auc(y, s, np.vstack([np.ones(n), w]))
    assert got[0] == pytest.approx(auc(y, s))
    for r in range(4):
        idx = np.repeat(np.arange(n), w[r])
        assert got[r + 1] == pytest.approx(auc(y[idx], s[idx]))


def test_paired_bootstrap_se_is_zero_for_the_same_model_and_grows_with_disagreement():
    from adass_ray.metrics import paired_bootstrap_se

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    base = y + rng.normal(0, 1.0, 2000)
    close = base + rng.normal(0, 0.05, 2000)
    far = y + rng.normal(0, 1.0, 2000)  # as good, but its errors are independent of base's
    se = paired_bootstrap_se(y, np.stack([base, base * 2, close, far]), 0, reps=100)
    assert se[0] == 0 and se[1] == pytest.approx(0, abs=1e-12)  # same ranking: no noise
    assert 0 < se[2] < se[3]
    # The paired SE of two independent-error models is near sqrt(2) x the SE of one AUC.
    one = np.std([auc(y[i], base[i]) for i in rng.integers(0, 2000, (100, 2000))])
    assert 0.9 < se[3] / (np.sqrt(2) * one) < 1.6
