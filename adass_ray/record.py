"""What a stage was run with, written into its output folder and checked before reuse or resume.

A stage folder holds ``run.json``: the stage, the code version, the data's fingerprint and the
settings that decide the result (config, sizes, budget, the input model's digest). A re-run that
would reuse the folder's results, or ``--resume`` them, first compares what it is about to run
with that record; any difference is refused in one line naming it, so an old result is never
reported for other data, sizes, budget or config.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adass_ray.errors import ConfigError

RECORD_FILE = "run.json"
# keys of a record that describe the run's progress, not what it computes
_STATUS_KEYS = ("status", "error", "outcome")


def code_version() -> str:
    """The installed package's version (what produced a result)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("adass-ray")
    except PackageNotFoundError:
        return "unknown"


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (an input model's identity)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make(stage: str, **what: Any) -> dict[str, Any]:
    """A record of ``stage`` run with ``what`` (plain JSON values), with the code version."""
    return json.loads(json.dumps({"stage": stage, "code_version": code_version(), **what}))


def read(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record in ``folder``, or None when there is none (an unreadable one is an error)."""
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(
            f"{path} is unreadable ({e}); delete {Path(folder)} or use another --out"
        ) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} is not a run record; delete {Path(folder)} or use another --out")
    return doc


def write(folder: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Write ``record`` into ``folder`` atomically (a crash leaves the old one or the new one)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{RECORD_FILE}.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder / RECORD_FILE)


def set_status(
    folder: str | os.PathLike[str], status: str, error: str | None = None, **extra: Any
) -> None:
    """Mark the record in ``folder`` running / done / failed (no-op without a record);
    ``extra`` (e.g. the attempts a failed run took) goes under ``outcome``."""
    doc = read(folder)
    if doc is None:
        return
    doc["status"] = status
    doc.pop("error", None)
    doc.pop("outcome", None)
    if error:
        doc["error"] = error
    if extra:
        doc["outcome"] = extra
    write(folder, doc)


def difference(found: Mapping[str, Any], want: Mapping[str, Any]) -> str | None:
    """The first setting on which two records differ, as ``key: was X, now Y``; None if equal."""
    a, b = _flat(found), _flat(want)
    for key in sorted(set(a) | set(b)):
        if key.split(".")[0] in _STATUS_KEYS:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            if key.startswith("fingerprint"):
                return "the data: the dataset's fingerprint differs"
            was, now = _show(a.get(key, "<absent>")), _show(b.get(key, "<absent>"))
            return f"{key}: was {was}, now {now}"
    return None


def check(folder: str | os.PathLike[str], want: Mapping[str, Any], *, action: str) -> None:
    """Refuse to ``action`` (reuse / resume) ``folder`` unless its record equals ``want``.

    Raises:
        ConfigError: no record, or one that differs (the message names the first difference).
    """
    folder = Path(folder)
    found = read(folder)
    if found is None:
        raise ConfigError(
            f"cannot {action} {folder}: it has no {RECORD_FILE} saying what it was run with; "
            "delete it or choose another --out"
        )
    diff = difference(found, want)
    if diff is not None:
        raise ConfigError(
            f"cannot {action} {folder}: it was run with other settings ({diff}); "
            "use the same settings, delete it or choose another --out"
        )


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _show(v: Any) -> str:
    text = json.dumps(v, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."
