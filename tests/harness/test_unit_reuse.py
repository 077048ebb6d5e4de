"""The harness reuses a unit's result only when it was made from the same inputs."""

from __future__ import annotations

import json

from adass_ray.harness import units


def test_units_rerun_when_inputs_change_and_legacy_files_are_not_trusted(tmp_path, monkeypatch):
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
    # files of an older report carry no digest: they may have been made with other settings
    # than their names show (a search setting), so none is trusted
    for kind in ("method", "score"):
        (tmp_path / f"old-{kind}.json").write_text(json.dumps({"x": 9}))
        got = units.run_unit(kind, {"_name": f"old-{kind}", "work": str(tmp_path), "x": 3})
        assert got == {"x": 3}
    assert calls[-2:] == [("method", 3), ("score", 3)] and len(calls) == 6
    # and the result now carries its digest, so the next run reuses it
    assert units.run_unit("method", {"_name": "old-method", "work": str(tmp_path), "x": 3}) == {
        "x": 3}
    assert len(calls) == 6
