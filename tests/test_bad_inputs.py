"""Every bad input, through the command line: exit 2, one line on stderr, no traceback, the
input untouched, nothing half-written, no temp folder left behind.

Each case builds its input in a fresh folder and names the output it must not create (or must
leave as it was). The cases run in-process (``adass_ray.cli.main``) to stay fast; one case runs
as a real process to show that the same holds for what a user sees on the terminal. Inputs that
were bad before and are now handled (colliding vocabulary file names, a very long column name,
YAML's ``1e-3``) are checked to work at the end.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from adass_ray.cli import main
from adass_ray.data import synthetic
from adass_ray.data.feature_map import FeatureMap

from .data.helpers import SCHEMA_YAML, write_ratings_csv

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    argv: list[str]
    out: Path  # the output that must not appear (or must stay as it was)
    needle: str  # a word the one line must contain
    cwd: Path | None = None
    after: Callable[[], None] = field(default=lambda: None)  # extra checks


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("d") / "data"
    synthetic.generate_dataset(synthetic.SyntheticSpec.preset("tiny", rows=400, seed=0), out)
    return out


def _csv(root: Path, edit: Callable[[int, list[str]], list[str]] | None = None) -> Path:
    path = write_ratings_csv(root / "r.csv", rows=200)
    if edit is not None:
        lines = path.read_text().splitlines()
        rows = [",".join(edit(i, ln.split(","))) for i, ln in enumerate(lines[1:])]
        path.write_text("\n".join([lines[0], *rows]) + "\n")
    return path


def _prepare(root: Path, schema: str | bytes = SCHEMA_YAML, csv: Path | None = None,
             out: str = "o", extra: tuple[str, ...] = ()) -> list[str]:
    csv = csv or _csv(root)
    s = root / "s.yaml"
    s.write_bytes(schema if isinstance(schema, bytes) else schema.encode())
    return ["prepare", "--input", str(csv), "--format", "csv", "--schema", str(s),
            "--out", str(root / out) if out not in (".", "..") else out, *extra]


def _label(value_of: Callable[[int], str]) -> Callable[[int, list[str]], list[str]]:
    return lambda i, cols: [*cols[:4], value_of(i) or cols[4], *cols[5:]]


def _sizes(data: Path, root: Path, size: object) -> Path:
    fm = FeatureMap.load(data)
    numeric = isinstance(size, int) and not isinstance(size, bool)
    cost = sum(size * v for v in fm.vocab_sizes) if numeric else 0  # type: ignore[operator]
    doc = {"format": 1,
           "fields": {n: {"size": size, "vocab": v} for n, v in zip(fm.field_names,
                                                                     fm.vocab_sizes, strict=True)},
           "cost": cost, "cost_bytes_fp32": 4 * cost, "budget": max(cost, 1),
           "uniform_baseline": {"size": 16, "cost": 16 * sum(fm.vocab_sizes)}, "provenance": {}}
    (root / "sizes.json").write_text(json.dumps(doc))
    return root / "sizes.json"


def _retrain(data: Path, root: Path, *args: str) -> list[str]:
    return ["retrain", "--data", str(data), "--out", str(root / "o"), "--seeds", "1",
            "--no-tracking", *args]


def _model_file(root: Path, blob: object, *, raw_pickle: bool = False) -> Path:
    (root / "sn").mkdir()
    if raw_pickle:
        (root / "sn" / "model.pt").write_bytes(pickle.dumps(blob))
    else:
        buf = io.BytesIO()
        torch.save(blob, buf)
        (root / "sn" / "model.pt").write_bytes(buf.getvalue())
    return root / "sn"


class _Payload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.target}",))


def _ours(folder: Path) -> Path:
    """A folder a previous prepare wrote (its marker), holding a file that must survive."""
    folder.mkdir(exist_ok=True)
    (folder / ".adass-ray").write_text("")
    (folder / "keep.txt").write_text("old")
    return folder


def _case(name: str, root: Path, data: Path) -> Case:  # noqa: C901 - one branch per case
    o = root / "o"
    if name == "one class":
        return Case(_prepare(root, csv=_csv(root, _label(lambda i: "1"))), o, "both 0s and 1s")
    if name == "one row (empty splits)":
        csv = _csv(root)
        csv.write_text("\n".join(csv.read_text().splitlines()[:2]) + "\n")
        return Case(_prepare(root, csv=csv), o, "split empty")
    if name == "two rows, streaming path (empty splits)":  # no multi-valued field: streamed
        (root / "t.csv").write_text("user,item,rating\nu1,i1,5\nu2,i2,1\n")
        schema = 'label: rating\nlabel_rule: ">= 4"\ncategorical: [user, item]\n'
        return Case(_prepare(root, schema, csv=root / "t.csv"), o, "split empty")
    if name in ("label nan under a rule", "label inf under a rule"):
        bad = name.split()[1]
        csv = _csv(root, _label(lambda i: bad if i == 7 else ""))
        return Case(_prepare(root, csv=csv), o, "non-finite")
    if name == "schema: unknown key":
        return Case(_prepare(root, SCHEMA_YAML + "colour: blue\n"), o, "unknown key")
    if name == "schema: key read and ignored":
        return Case(_prepare(root, SCHEMA_YAML + "delimiter: ';'\n"), o, "delimiter")
    if name == "schema: min_count a list":
        return Case(_prepare(root, SCHEMA_YAML + "min_count: [2]\n"), o, "min_count")
    if name == "schema: time a list":
        return Case(_prepare(root, SCHEMA_YAML.replace("time: ts", "time: [ts]")), o, "time")
    if name == "schema: label a list":
        return Case(_prepare(root, SCHEMA_YAML.replace("label: rating", "label: [a, b]")),
                    o, "label")
    if name == "schema: separator a list":
        return Case(_prepare(root, SCHEMA_YAML.replace('{genres: "|"}', "{genres: [1]}")),
                    o, "multi_valued")
    if name == "schema: not UTF-8":
        return Case(_prepare(root, SCHEMA_YAML.encode() + "# caf\xe9\n".encode("latin-1")),
                    o, "UTF-8")
    if name == "--out is a file":
        (root / "f").write_text("mine")
        return Case(_prepare(root, out="f"), root / "f", "is a file")
    if name == "train --out under a file":
        (root / "f").write_text("mine")
        return Case(["train", "--data", str(data), "--out", str(root / "f" / "x")], root / "f",
                    "is a file")
    if name == "--overwrite of .":
        _ours(root / "here")
        return Case(_prepare(root, out=".", extra=("--overwrite",)), root / "here",
                    "current folder", cwd=root / "here")
    if name == "--overwrite of a folder above the current one":
        _ours(root / "here")
        (root / "here" / "sub").mkdir()
        return Case(_prepare(root, out="..", extra=("--overwrite",)), root / "here",
                    "current folder", cwd=root / "here" / "sub")
    if name == "--overwrite of the input's folder":
        d = _ours(root / "d")
        return Case(_prepare(root, csv=_csv(d), out="d", extra=("--overwrite",)), d,
                    "holds the input")
    if name == "--overwrite of a folder not ours":
        (root / "o").mkdir()
        (root / "o" / "keep.txt").write_text("old")
        return Case(_prepare(root, extra=("--overwrite",)), o, "not written by adass-ray")
    if name == "retrain --uniform 0":
        return Case(_retrain(data, root, "--uniform", "0"), o, "--uniform")
    if name.startswith("sizes.json "):
        size = {"8.7": 8.7, "true": True, "10**12": 10**12, "all zeros": 0}[name.split(" ", 1)[1]]
        return Case(_retrain(data, root, "--sizes", str(_sizes(data, root, size))), o,
                    {"8.7": "integer", "true": "integer", "10**12": "model.d",
                     "all zeros": "size 0"}[name.split(" ", 1)[1]])
    if name == "model.pt missing keys":
        sn = _model_file(root, {"format": 1, "kind": "supernet"})
        return Case(["search", "--data", str(data), "--supernet", str(sn), "--out", str(o),
                     "--no-tracking"], o, "incomplete model file")
    if name in ("model.pt a crafted pickle", "model.pt a crafted torch file"):
        target = root / "payload-ran"
        sn = _model_file(root, {"format": 1, "x": _Payload(target)},
                         raw_pickle=name.endswith("pickle"))

        def not_run() -> None:
            assert not target.exists(), "the pickle's payload ran"

        return Case(["search", "--data", str(data), "--supernet", str(sn), "--out", str(o),
                     "--no-tracking"], o, "refused", after=not_run)
    raise AssertionError(name)


CASES = [
    "one class", "one row (empty splits)", "two rows, streaming path (empty splits)",
    "label nan under a rule", "label inf under a rule",
    "schema: unknown key", "schema: key read and ignored", "schema: min_count a list",
    "schema: time a list", "schema: label a list", "schema: separator a list",
    "schema: not UTF-8", "--out is a file", "train --out under a file", "--overwrite of .",
    "--overwrite of a folder above the current one", "--overwrite of the input's folder",
    "--overwrite of a folder not ours", "retrain --uniform 0", "sizes.json 8.7",
    "sizes.json true", "sizes.json 10**12", "sizes.json all zeros", "model.pt missing keys",
    "model.pt a crafted pickle", "model.pt a crafted torch file",
]


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) with a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line(code: int, err: str, needle: str) -> None:
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]


@pytest.mark.parametrize("name", CASES)
def test_bad_input(name, data, tmp_path, capsys, monkeypatch):
    root = tmp_path / "case"
    root.mkdir()
    case = _case(name, root, data)
    before, data_before = _snapshot(root), _snapshot(data)
    out_existed = case.out.exists()
    if case.cwd is not None:
        monkeypatch.chdir(case.cwd)
    code = main(case.argv)
    _one_line(code, capsys.readouterr().err, case.needle)
    # the input and everything beside it untouched; no output made (or the old one intact)
    assert _snapshot(root) == before
    assert _snapshot(data) == data_before
    assert case.out.exists() == out_existed
    assert not [p for p in tmp_path.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]
    case.after()


def test_bad_input_as_a_real_process(tmp_path):
    """What a user sees: one line on the real stderr (logging included), exit 2."""
    (tmp_path / "f").write_text("mine")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "adass_ray.cli", *_prepare(tmp_path, out="f")],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    _one_line(proc.returncode, proc.stderr, "is a file")
    assert (tmp_path / "f").read_text() == "mine"


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    """Disk-full is simulated: the parquet writer raises ENOSPC half-way through the output."""
    import adass_ray.data.prepare as prep

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(prep.pq, "write_table", full)
    code = main(_prepare(tmp_path))
    _one_line(code, capsys.readouterr().err, "No space left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "s.yaml"]


def test_stale_temp_folders_are_removed_on_the_next_run(tmp_path, capsys):
    """A killed prepare leaves .o.tmp-<pid>-* / .o.old-<pid>-*: the next prepare of the same
    --out removes those of dead processes and keeps one of a live process."""
    dead = 2**22 + 12345  # above the default pid_max: no such process
    for kind in ("tmp", "old"):
        (tmp_path / f".o.{kind}-{dead}-abc").mkdir()
        (tmp_path / f".o.{kind}-{dead}-abc" / "part.parquet").write_text("half")
    live = tmp_path / f".o.tmp-{os.getppid()}-xyz"
    live.mkdir()
    assert main(_prepare(tmp_path)) == 0
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert left == [live.name]
    assert (tmp_path / "o" / ".adass-ray").is_file()  # the marker a later --overwrite needs


def test_inputs_that_used_to_break_now_work(tmp_path, capsys):
    """``a/b`` and ``a_b`` get two vocabulary files; a 300-character column name works."""
    long = "c" * 300
    (tmp_path / "x.csv").write_text("\n".join(
        [f"a/b,a_b,{long},rating"] + [f"x{i % 5},y{i % 3},z{i % 4},{i % 5 + 1}"
                                      for i in range(200)]) + "\n")
    (tmp_path / "x.yaml").write_text(
        f'label: rating\nlabel_rule: ">= 4"\ncategorical: ["a/b", a_b, {long}]\n')
    code = main(["prepare", "--input", str(tmp_path / "x.csv"), "--format", "csv", "--schema",
                 str(tmp_path / "x.yaml"), "--out", str(tmp_path / "o")])
    assert code == 0, capsys.readouterr().err
    import pyarrow.parquet as pq

    from adass_ray.data.prepare import vocab_file_name

    files = {n: tmp_path / "o" / "vocab" / vocab_file_name(n) for n in ("a/b", "a_b", long)}
    assert len({p.name for p in files.values()}) == 3
    values = {n: set(pq.read_table(p)["value"].to_pylist()) for n, p in files.items()}
    assert values == {"a/b": {f"x{i}" for i in range(5)}, "a_b": {f"y{i}" for i in range(3)},
                      long: {f"z{i}" for i in range(4)}}


def test_yaml_exponent_without_a_dot_is_a_number(tmp_path):
    """YAML 1.1 reads ``1e-3`` as text; a float config field takes it as 0.001."""
    from adass_ray import configio
    from adass_ray.errors import ConfigError
    from adass_ray.train.config import TrainConfig

    (tmp_path / "c.yaml").write_text("lr: 1e-3\nweight_decay: 5E-5\n")
    cfg = configio.load(TrainConfig, tmp_path / "c.yaml")
    assert cfg.lr == 0.001 and cfg.weight_decay == 5e-5
    assert configio.load(TrainConfig, None, ["lr=2e-4"]).lr == 2e-4
    for bad in ("fast", "nan", "inf"):
        with pytest.raises(ConfigError, match="expected a number"):
            configio.load(TrainConfig, None, [f"lr={bad}"])


def test_a_folder_a_command_made_is_marked_and_one_it_found_is_not(tmp_path, monkeypatch):
    """Only folders a command created get the marker (so --overwrite can never be talked into
    replacing a folder that was there before, e.g. a home folder given as ``train --out``)."""
    import adass_ray.cli.train as cli_train

    def fake(args):  # the stage itself is not the point: it makes (or reuses) --out
        Path(args.out).mkdir(parents=True, exist_ok=True)
        return 0

    monkeypatch.setattr(cli_train, "_run_train", fake)
    assert main(["train-supernet", "--data", "d", "--out", str(tmp_path / "new")]) == 0
    assert (tmp_path / "new" / ".adass-ray").is_file()
    (tmp_path / "found").mkdir()
    assert main(["train-supernet", "--data", "d", "--out", str(tmp_path / "found")]) == 0
    assert not (tmp_path / "found" / ".adass-ray").exists()
