"""Atomic output folders: a stage writes into a temp folder beside the target, then renames.

A crash, a bad input found half-way or Ctrl-C therefore never leaves a half-written dataset,
checkpoint or report where a later stage would pick it up.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from adass_ray.errors import AdassError

logger = logging.getLogger(__name__)


MARKER_FILE = ".adass-ray"
MARKER_TEXT = "written by adass-ray; `adass-ray prepare --overwrite` may replace this folder\n"
# a folder holding one of these was written by this package: --overwrite may replace it
OURS = (MARKER_FILE, "feature_map.json")


def check_out_path(out: str | os.PathLike[str]) -> Path:
    """Refuse an ``--out`` that is a file, or lies under one; return it as a Path."""
    out = Path(out)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            where = "is" if p == out else f"lies under {p}, which is"
            raise AdassError(f"--out {out} {where} a file, not a folder; choose another --out")
    return out


def check_output_dir(
    out: str | os.PathLike[str],
    *,
    overwrite: bool,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
) -> Path:
    """Check that ``out`` may be (re)written; return it as a Path.

    ``out`` must not be the current folder or one above it, nor a file. An existing, non-empty
    ``out`` is replaced only with ``overwrite``, and only when it is one of ours (it holds
    :data:`MARKER_FILE` or ``feature_map.json``) and holds none of ``inputs``.

    Raises:
        AdassError: one line saying which rule ``out`` breaks.
    """
    out = check_out_path(out)
    full, cwd = out.resolve(), Path.cwd().resolve()
    if full == cwd or full in cwd.parents:
        raise AdassError(
            f"--out {out} is the current folder or one above it; name a new folder"
        )
    if not (out.is_dir() and any(out.iterdir())):
        return out
    if not overwrite:
        raise AdassError(f"output folder {out} already exists; pass --overwrite to replace it")
    for given in inputs:
        if given is not None and (full == (i := Path(given).resolve()) or full in i.parents):
            raise AdassError(
                f"--out {out} holds the input {given}; --overwrite would delete it, "
                "so choose another --out"
            )
    if not any((out / name).exists() for name in OURS):
        raise AdassError(
            f"--overwrite refused: {out} was not written by adass-ray (no {MARKER_FILE} or "
            "feature_map.json in it); remove it yourself or choose another --out"
        )
    return out


def mark_output_dir(out: str | os.PathLike[str]) -> None:
    """Write :data:`MARKER_FILE` into ``out`` if it is a folder (call it only on folders this
    package created: the marker lets ``--overwrite`` replace the folder later)."""
    out = Path(out)
    if out.is_dir() and not (out / MARKER_FILE).exists():
        with contextlib.suppress(OSError):  # a read-only folder stays unmarked: never replaced
            (out / MARKER_FILE).write_text(MARKER_TEXT)


def remove_stale_temps(out: str | os.PathLike[str]) -> list[Path]:
    """Remove the hidden temp folders a killed writer of ``out`` left beside it.

    :func:`atomic_output_dir` names them ``.<name>.tmp-<pid>-*`` / ``.<name>.old-<pid>-*``; one
    whose process is gone is stale (one of a live process, e.g. a concurrent run, is kept).
    """
    out = Path(out).absolute()
    removed = []
    for p in out.parent.glob(f".{glob.escape(out.name)}.*-*"):
        kind, _, rest = p.name[len(out.name) + 2:].partition("-")
        if kind not in ("tmp", "old") or not p.is_dir():
            continue
        pid = rest.split("-", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    if removed:
        logger.info("removed %d stale temp folder(s) of %s left by a stopped run", len(removed),
                    out)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@contextlib.contextmanager
def atomic_output_dir(
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
) -> Iterator[Path]:
    """Yield a temp folder; on success it replaces ``out``, on any error it is removed.

    The new folder holds :data:`MARKER_FILE`, so a later ``--overwrite`` knows it is ours;
    stale temp folders of earlier, killed writers of ``out`` are removed first.

    Raises:
        AdassError: ``out`` may not be (re)written (see :func:`check_output_dir`).
    """
    out = check_output_dir(out, overwrite=overwrite, inputs=inputs).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    pid = os.getpid()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{pid}-", dir=out.parent))
    try:
        yield tmp
        (tmp / MARKER_FILE).write_text(MARKER_TEXT)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{pid}-", dir=out.parent))
        os.replace(out, old / "x")
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (paths become strings, others ``str()``)."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    return str(o)
