"""Progress bars: drawn by the CLI on a terminal (or when forced), never in logs or CI."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest

from adass_ray import progress
from adass_ray.cli import main
from adass_ray.cli.progress import ENV, wanted
from adass_ray.distributed.progress import EpochBar, step_reporter
from adass_ray.train.loop import LoopState

from .data.helpers import SCHEMA_YAML, write_ratings_csv


class FakeTty(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Recorder:
    """A bar factory that records the bars it made and every count they reached."""

    def __init__(self) -> None:
        self.bars: list[dict[str, Any]] = []

    def __call__(self, **kw: Any) -> progress.Bar:
        record = {**kw, "counts": [kw.get("initial", 0)], "closed": False}
        self.bars.append(record)

        class _Bar(progress.SilentBar):
            def update(self, n: float = 1) -> None:
                super().update(n)
                record["counts"].append(self.n)

            def close(self) -> None:
                record["closed"] = True

        return _Bar(**kw)


def test_bars_are_silent_unless_a_driver_draws_them():
    b = progress.bar(total=10, desc="x")
    assert isinstance(b, progress.SilentBar) and not progress.active()
    rec = Recorder()
    with progress.drawing(rec):
        assert progress.active()
        with progress.closing(progress.bar(total=10, desc="loop", unit="rows")) as b:
            b.update(4)
            b.update(6)
    assert not progress.active()  # the previous (silent) state is back
    assert rec.bars[0]["desc"] == "loop" and rec.bars[0]["unit"] == "rows"
    assert rec.bars[0]["counts"] == [0, 4, 10] and rec.bars[0]["closed"]


@pytest.mark.parametrize(
    "env, tty, want",
    [({}, True, True), ({}, False, False), ({ENV: "0"}, True, False), ({ENV: "1"}, False, True),
     ({ENV: "off"}, True, False)],
)
def test_wanted_follows_the_terminal_and_the_override(env, tty, want):
    stream = FakeTty() if tty else io.StringIO()
    assert wanted(stream, env) is want


def test_epoch_bar_follows_rank_zero_reports():
    """The driver side of a Ray Train run: one bar per epoch, counted in rows."""
    rec = Recorder()
    with progress.drawing(rec):
        bar = EpochBar("supernet")
        bar.show(None)  # nothing reported yet: no bar
        for where in ({"epoch": 0, "epochs": 3, "rows": 300, "total": 1000},
                      {"epoch": 0, "epochs": 3, "rows": 1000, "total": 1000},
                      {"epoch": 1, "epochs": 3, "rows": 200, "total": 1000},
                      None,  # epoch 2 is over
                      {"epoch": 2, "epochs": 3, "rows": 500, "total": 1000}):
            bar.show(where)
            if where is None:
                assert all(b["closed"] for b in rec.bars)
        bar.close()
    assert [b["desc"] for b in rec.bars] == [f"supernet epoch {e}/3" for e in (1, 2, 3)]
    assert rec.bars[0]["counts"][-1] == 1000
    assert rec.bars[1]["initial"] == 200 and rec.bars[2]["initial"] == 500
    assert all(b["closed"] for b in rec.bars)


def test_step_reporter_throttles_but_always_sends_an_epochs_end():
    sent: list[dict[str, int]] = []

    class Actor:
        class at:  # noqa: N801 - mimics a Ray actor method handle
            @staticmethod
            def remote(where: dict[str, int]) -> None:
                sent.append(where)

    on_step = step_reporter(Actor(), per_rank_rows=500, world=2, batch=64, epochs=3)
    state = LoopState(epoch=1)
    for step in range(1, 9):  # 8 steps of 64 rows > 500: the last is capped
        state.step_in_epoch = step
        on_step(state, 8)
    assert sent[0] == {"epoch": 1, "epochs": 3, "rows": 128, "total": 1000}
    assert sent[-1]["rows"] == 1000  # the epoch's last step is always sent
    assert len(sent) == 2  # everything in between fell inside the half-second throttle


def _prepare(tmp_path, name: str) -> int:
    path = write_ratings_csv(tmp_path / f"{name}.csv", rows=400)
    (tmp_path / "s.yaml").write_text(SCHEMA_YAML)
    return main(["prepare", "--input", str(path), "--format", "csv", "--schema",
                 str(tmp_path / "s.yaml"), "--out", str(tmp_path / name)])


def test_cli_draws_bars_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    tty = FakeTty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert _prepare(tmp_path, "a") == 0
    err = tty.getvalue()
    assert "prepare" in err and "write" in err  # whole-table or streaming path alike
    assert "rows/s" in err and "\r" in err
    monkeypatch.setenv(ENV, "0")  # the override silences a terminal
    tty.seek(0)
    tty.truncate()
    assert _prepare(tmp_path, "b") == 0
    assert "rows/s" not in tty.getvalue() and "\r" not in tty.getvalue()


def test_cli_draws_nothing_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert _prepare(tmp_path, "c") == 0
    err = capsys.readouterr().err
    assert "rows/s" not in err and "\r" not in err and "%|" not in err
