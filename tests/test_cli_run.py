"""`adass-ray run`: contradictory data options are one line and exit 2, before anything runs."""

from __future__ import annotations

import pytest

from adass_ray.cli import main


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--source", "synthetic", "--data", "d"], "exactly one of --source"),
        (["--data", "d", "--input", "x.csv"], "exactly one of --source"),
        (["--data", "d", "--label", "y"], "--label only go with --input"),
        (["--source", "synthetic", "--format", "csv"], "--format only go with --input"),
        (["--input", "x.tsv.gz"], "cannot tell the format"),
        (["--input", "x", "--format", "criteo", "--schema", "s.yaml"], "fixed schema"),
        (["--input", "x.csv", "--schema", "s.yaml", "--label", "y"], "set 'label:'"),
        (["--input", "x.csv", "--source", "synthetic", "--smoke-test"], "exactly one"),
        (["search.nope=1"], "unknown key 'nope'"),  # search settings are checked up front
        (["--smoke-test", "search.occam=abc"], "expected a number"),
        (["--smoke-test", "search.controller=bogus"], "controller 'bogus'"),
        (["--dry-run", "search.lr=0"], "lr must be > 0"),
        (["--smoke-test", "nope=1"], "unknown key 'nope'"),  # training settings too
        (["--source", "synthetic", "epochs=abc"], "expected an integer"),
    ],
)
def test_bad_combinations(tmp_path, capsys, argv, needle):
    assert main(["run", *argv, "--out", str(tmp_path / "o"), "--no-tracking"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_data_folder_must_be_prepared(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    assert main(["run", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"),
                 "--no-tracking"]) == 2
    assert "is not a prepared dataset" in capsys.readouterr().err
