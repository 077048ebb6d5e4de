"""The harness's statistics and its METHODS registry (pure, no Ray)."""

from __future__ import annotations

import math

import pytest

from adass_ray.errors import ConfigError
from adass_ray.harness import methods as M
from adass_ray.harness.stats import hypervolume, paired, percentile, verdict_of


def test_paired_interval_and_verdicts() -> None:
    ahead = paired([0.80, 0.81, 0.82, 0.80, 0.81], [0.79, 0.80, 0.81, 0.79, 0.80])
    assert ahead["mean"] == pytest.approx(0.01) and ahead["n"] == 5
    assert ahead["lo"] == pytest.approx(0.01) == ahead["hi"]  # a constant difference
    assert verdict_of(ahead) == "ahead"
    noisy = paired([0.80, 0.79, 0.81], [0.795, 0.80, 0.80])
    assert noisy["lo"] < 0 < noisy["hi"] and verdict_of(noisy) == "tie"
    assert verdict_of(paired([0.7, 0.7], [0.8, 0.81])) == "behind"
    one = paired([0.8], [0.7])
    assert math.isnan(one["lo"]) and verdict_of(one) == "tie"  # one pair: no interval
    assert verdict_of(paired([math.nan], [0.7])) == "n/a"  # not measured


def test_percentile_counts_half_of_the_ties() -> None:
    pop = [0.1, 0.2, 0.2, 0.3]
    assert percentile(0.2, pop) == pytest.approx(50.0)
    assert percentile(0.35, pop) == 100.0 and percentile(0.05, pop) == 0.0
    assert math.isnan(percentile(0.2, []))


def test_hypervolume_of_a_staircase() -> None:
    ref = (10.0, 0.0)
    assert hypervolume([(2.0, 1.0)], ref) == pytest.approx(8.0)
    # a dominated point adds nothing; a cheaper, worse point adds its own strip
    assert hypervolume([(2.0, 1.0), (5.0, 0.5)], ref) == pytest.approx(8.0)
    assert hypervolume([(2.0, 1.0), (1.0, 0.5)], ref) == pytest.approx(8.5)
    assert hypervolume([(12.0, 1.0)], ref) == 0.0  # outside the reference box


def test_registry_names_are_unique_and_ours_is_always_run() -> None:
    names = [m.name for m in M.METHODS]
    assert len(names) == len(set(names)) and M.OURS in names
    assert all(m.variant in (None, *M.VARIANTS) for m in M.METHODS)
    picked = [m.name for m in M.chosen(ablations=True, quick=False, names=("random search",))]
    assert picked == [M.FLOOR, M.OURS, "random search"]  # the floor always comes along
    assert all(m.group != "ablation" for m in M.chosen(ablations=False, quick=False))
    with pytest.raises(ConfigError, match="unknown method"):
        M.chosen(ablations=False, quick=False, names=("magic",))


def test_widen_adds_the_row_noise_in_quadrature() -> None:
    from adass_ray.harness.stats import widen

    fixed = widen(paired([0.78, 0.78, 0.78], [0.779, 0.779, 0.779]), 0.006)
    assert fixed["lo"] == pytest.approx(0.001 - 0.006) and verdict_of(fixed) == "tie"
    spread = paired([0.80, 0.79, 0.81], [0.78, 0.78, 0.79])
    wide = widen(spread, 0.003)
    half = (spread["hi"] - spread["lo"]) / 2
    assert wide["hi"] - wide["mean"] == pytest.approx(math.hypot(half, 0.003))


def test_floor_warnings_name_each_method_at_or_below_the_floor() -> None:
    from adass_ray.harness.tables import floor_warnings

    def row(name: str, val: float, kind: str = "fixed") -> dict[str, object]:
        return {"method": name, "kind": kind, "val_auc_mean": val}

    per = [{"spec": "0.5", "methods": [row(M.FLOOR, 0.70, "linear"), row("good", 0.71),
                                       row("bad", 0.69), row("tied", 0.70),
                                       row("untrained", float("nan"))]}]
    got = floor_warnings(per)  # type: ignore[arg-type]
    assert len(got) == 2
    assert got[0].startswith("bad @ 0.5 does not beat the linear floor")
    assert "tied @ 0.5" in got[1] and "0.7000 <= 0.7000" in got[1]
    per[0]["methods"] = per[0]["methods"][1:]  # no floor row (not retrained): nothing to say
    assert floor_warnings(per) == []  # type: ignore[arg-type]
