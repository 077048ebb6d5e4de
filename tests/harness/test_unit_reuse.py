"""The harness reuses a unit's result only when it was made from the same inputs."""

from __future__ import annotations

import json

from adass_ray.harness import units


def test_units_rerun_when_inputs_change_and_legacy_scores_are_not_trusted(tmp_path, monkeypatch):
    calls: list[tuple[str, int]] = []

    def fake(kind):
        def unit(*, work, x):
            calls.append((kind, x))
            return {"x": x}
        return unit

    monkeypatch.setattr(units, "UNITS", {"method": fake("method"), "score": fake("score")})
    for kind in ("method", "score"):
        assert units.run_unit(kind, {"_name": kind, "work": str(tmp_path), "x": 1}) == {"x": 1}
        assert units.run_unit(kind, {"_name": kind, "work": str(tmp_path), "x": 1}) == {"x": 1}
        assert units.run_unit(kind, {"_name": kind, "work": str(tmp_path), "x": 2}) == {"x": 2}
    assert calls == [("method", 1), ("method", 2), ("score", 1), ("score", 2)]
    # files of an older report carry no digest: a method (named by method, budget, seed) is
    # reused, a score (named by its budget only) is computed again
    for kind in ("method", "score"):
        (tmp_path / f"old-{kind}.json").write_text(json.dumps({"x": 9}))
        got = units.run_unit(kind, {"_name": f"old-{kind}", "work": str(tmp_path), "x": 3})
        assert got == ({"x": 9} if kind == "method" else {"x": 3})
    assert calls[-1] == ("score", 3) and len(calls) == 5
