"""`adass-ray prepare` on bad input: one line on stderr, exit 2, nothing half-written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from adass_ray.cli import main

from .data.helpers import SCHEMA_YAML, write_criteo, write_ratings_csv


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["prepare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2  # the README promises exit 2 for bad input
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


def _only(tmp_path, *names: str) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_missing_and_empty_file(tmp_path, capsys):
    code, _, err = _run(capsys, "--input", str(tmp_path / "nope.tsv"), "--format", "criteo",
                        "--out", str(tmp_path / "o"))
    _assert_one_line_error(code, err, "does not exist")
    (tmp_path / "empty.tsv").write_text("")
    code, _, err = _run(capsys, "--input", str(tmp_path / "empty.tsv"), "--format", "criteo",
                        "--out", str(tmp_path / "o"))
    _assert_one_line_error(code, err, "empty")
    _only(tmp_path, "empty.tsv")


def test_column_count_mismatch(tmp_path, capsys):
    path = write_criteo(tmp_path / "c.tsv", rows=50)
    lines = path.read_text().splitlines()
    lines[20] = "\t".join(lines[20].split("\t")[:-1])  # one column short
    path.write_text("\n".join(lines) + "\n")
    code, _, err = _run(capsys, "--input", str(path), "--format", "criteo",
                        "--out", str(tmp_path / "o"))
    _assert_one_line_error(code, err, "39 columns", "40")
    _only(tmp_path, "c.tsv")


def test_non_numeric_text_in_numeric_column(tmp_path, capsys):
    path = write_criteo(tmp_path / "c.tsv", rows=50)
    lines = path.read_text().splitlines()
    cols = lines[7].split("\t")
    cols[3] = "abc"
    lines[7] = "\t".join(cols)
    path.write_text("\n".join(lines) + "\n")
    code, _, err = _run(capsys, "--input", str(path), "--format", "criteo",
                        "--out", str(tmp_path / "o"))
    _assert_one_line_error(code, err, "'I3'", "'abc'")
    _only(tmp_path, "c.tsv")


def test_label_without_rule(tmp_path, capsys):
    path = write_ratings_csv(tmp_path / "r.csv")
    (tmp_path / "s.yaml").write_text(SCHEMA_YAML.replace('label_rule: ">= 4"\n', ""))
    code, _, err = _run(capsys, "--input", str(path), "--format", "csv",
                        "--schema", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"))
    _assert_one_line_error(code, err, "0/1", "--label-rule")
    # the same data with the rule given on the command line works
    code, out, _ = _run(capsys, "--input", str(path), "--format", "csv",
                        "--schema", str(tmp_path / "s.yaml"),
                        "--label-rule", "rating >= 4", "--out", str(tmp_path / "o"))
    assert code == 0 and "prepared" in out


def test_schema_names_absent_column(tmp_path, capsys):
    path = write_ratings_csv(tmp_path / "r.csv")
    (tmp_path / "s.yaml").write_text(
        SCHEMA_YAML.replace("categorical: [user, item]", "categorical: [user, item, brand]")
    )
    code, _, err = _run(capsys, "--input", str(path), "--format", "csv",
                        "--schema", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"))
    _assert_one_line_error(code, err, "'brand'")
    _only(tmp_path, "r.csv", "s.yaml")


def test_output_exists_refused_unless_overwrite(tmp_path, capsys):
    path = write_criteo(tmp_path / "c.tsv", rows=60)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("mine")
    code, _, err = _run(capsys, "--input", str(path), "--format", "criteo",
                        "--out", str(tmp_path / "o"))
    _assert_one_line_error(code, err, "--overwrite")
    assert (tmp_path / "o" / "keep.txt").read_text() == "mine"
    # a folder adass-ray did not write is never replaced, even with --overwrite
    code, _, err = _run(capsys, "--input", str(path), "--format", "criteo",
                        "--out", str(tmp_path / "o"), "--overwrite")
    _assert_one_line_error(code, err, "not written by adass-ray")
    assert (tmp_path / "o" / "keep.txt").read_text() == "mine"
    # one of ours is
    for _ in range(2):
        code, _, _ = _run(capsys, "--input", str(path), "--format", "criteo",
                          "--out", str(tmp_path / "d"), "--overwrite")
        assert code == 0 and (tmp_path / "d" / "feature_map.json").is_file()
    (tmp_path / "d" / "stray.txt").write_text("x")
    code, _, _ = _run(capsys, "--input", str(path), "--format", "criteo",
                      "--out", str(tmp_path / "d"), "--overwrite")
    assert code == 0 and not (tmp_path / "d" / "stray.txt").exists()
    _only(tmp_path, "c.tsv", "o", "d")


def test_threshold_leaving_only_oov_warns_and_continues(tmp_path, capsys, caplog):
    path = write_criteo(tmp_path / "c.tsv", rows=60)
    with caplog.at_level("WARNING"):
        code, out, _ = _run(capsys, "--input", str(path), "--format", "criteo",
                            "--min-count", "1000", "--out", str(tmp_path / "o"))
    assert code == 0 and "prepared" in out
    assert any("only the OOV id" in r.message for r in caplog.records)


def test_console_entry_point_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "adass_ray.cli", "prepare", "--input", str(tmp_path / "x.csv"),
         "--format", "criteo", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv", [["--format", "csv"], ["--format", "parquet"]])
def test_csv_and_parquet_need_schema(tmp_path, capsys, argv):
    path = write_ratings_csv(tmp_path / "r.csv")
    code, _, err = _run(capsys, "--input", str(path), *argv, "--out", str(tmp_path / "o"))
    _assert_one_line_error(code, err, "--schema")
