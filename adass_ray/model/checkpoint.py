"""Model files (save / load / fingerprint): what a training stage leaves behind.

``model.pt`` holds the weights, the model config, the architecture (for fixed models), the
sampler state (for supernets) and the feature map's fingerprint, so that a checkpoint is never
used with data it was not trained on.

Every file this package writes with ``torch.save`` (model files, search and trial states, the
training loop's checkpoints) holds only tensors and plain containers (dict, list, tuple, str,
int, float, bool, None), so it is read back with ``torch.load(weights_only=True)`` through
:func:`load_plain`: a file that holds anything else (e.g. a pickle whose loading would run code)
is refused before any of it is built.
"""

from __future__ import annotations

import io
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from adass_ray import configio
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.io import atomic_write_bytes
from adass_ray.errors import DataError
from adass_ray.model.config import ModelConfig, build_standalone, build_supernet

MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
MODEL_KEYS = ("format", "kind", "model_config", "sizes", "fingerprint", "state_dict")


def load_plain(
    path: str | os.PathLike[str], *, what: str, map_location: Any = "cpu"
) -> Any:
    """``torch.load`` restricted to tensors and plain containers (``weights_only=True``).

    Args:
        path: a file written by this package with ``torch.save``.
        what: what the file should be, for the error ("model file", "search state" ...).
        map_location: as for ``torch.load``.

    Raises:
        DataError: the file holds other objects (refused unread: nothing in it is built), or is
            truncated or not a torch file.
    """
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols: noise on stderr
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(
            f"{path}: refused: not a {what} written by adass_ray (it holds objects other than "
            "tensors and plain data, which are never loaded)"
        ) from None
    except Exception as e:  # truncated, empty or not a torch file at all
        raise DataError(f"{path}: not a readable {what} ({type(e).__name__})") from None


def save_model(
    path: str | os.PathLike[str],
    *,
    kind: str,
    model: torch.nn.Module,
    model_config: ModelConfig,
    fm: FeatureMap,
    sizes: tuple[int, ...] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model.pt`` atomically."""
    buf = io.BytesIO()
    torch.save(
        {
            "format": 1,
            "kind": kind,
            "model_config": configio.to_dict(model_config),
            "sizes": list(sizes) if sizes is not None else None,
            "fingerprint": fm.fingerprint(),
            "state_dict": model.state_dict(),
            "extra": extra or {},
        },
        buf,
    )
    atomic_write_bytes(path, buf.getvalue())


def check_fingerprint(found: dict[str, Any], fm: FeatureMap, *, source: str) -> None:
    """Raise a one-line error when a checkpoint was made for other data."""
    want = fm.fingerprint()
    if found == want:
        return
    got = {f[0]: f for f in found.get("fields", [])}
    for name, _kind, vocab in want["fields"]:
        if name not in got:
            raise DataError(
                f"{source} was trained on other data: it has no field {name!r}; "
                "train it again on this dataset"
            )
        if got[name][2] != vocab:
            raise DataError(
                f"{source} was trained on other data: field {name!r} has vocab "
                f"{got[name][2]} there, {vocab} here; train it again on this dataset"
            )
    theirs = found.get("vocab_hashes") or {}
    if want.get("vocab_hashes") and not theirs:
        raise DataError(
            f"{source} records no vocabulary hashes (made before they existed), so it cannot be "
            "checked against this dataset; train it again on this dataset"
        )
    for name, digest in (want.get("vocab_hashes") or {}).items():
        if theirs.get(name) != digest:
            raise DataError(
                f"{source} was trained on other data: field {name!r} maps values to other ids "
                "there (another vocabulary); train it again on this dataset"
            )
    theirs = found.get("splits") or {}
    for split, digest in (want.get("splits") or {}).items():
        if theirs.get(split) != digest:
            raise DataError(
                f"{source} was trained on other data: the {split} split holds other rows there "
                "(prepared with another seed or split rule); train it again on this dataset"
            )
    raise DataError(
        f"{source} was trained on other data (fields differ); train it again on this dataset"
    )


def load_model(
    path: str | os.PathLike[str], fm: FeatureMap
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a ``model.pt`` (or the one in a folder) for ``fm``; returns (model, file contents).

    Raises:
        DataError: missing/unreadable file, or one trained on another feature map.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise DataError(f"no model at {path}; train one first")
    blob = load_plain(path, what="model file")
    if not isinstance(blob, dict) or blob.get("format") != 1:
        raise DataError(f"{path}: not an adass_ray model file")
    missing = [k for k in MODEL_KEYS if k not in blob]
    if missing:
        raise DataError(f"{path}: incomplete model file (no {', '.join(missing)}); train it again")
    if not isinstance(blob["fingerprint"], dict) or not isinstance(blob["state_dict"], dict):
        raise DataError(f"{path}: malformed model file; train it again")
    check_fingerprint(blob["fingerprint"], fm, source=str(path))
    mcfg = configio.from_mapping(ModelConfig, blob["model_config"], where=str(path))
    try:
        if blob["kind"] == "supernet":
            model: torch.nn.Module = build_supernet(fm, mcfg)
        else:
            model = build_standalone(fm, mcfg, tuple(int(s) for s in blob["sizes"]))
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, TypeError, ValueError, KeyError) as e:  # weights of another shape
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DataError(f"{path}: its weights do not fit its model ({first})") from None
    return model, blob


def describe_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A model file's kind, sizes, model config and fingerprint (no weights), as plain data."""
    blob = load_plain(path, what="model file")
    if not isinstance(blob, dict) or blob.get("format") != 1:
        raise DataError(f"{path}: not an adass_ray model file")
    return {k: blob.get(k) for k in ("format", "kind", "sizes", "model_config", "fingerprint")}


def load_model_folder(folder: str | os.PathLike[str]) -> torch.nn.Module:
    """Rebuild a model from a folder holding ``model.pt`` and ``feature_map.json``.

    This is how a retrained model logged to MLflow (the run's ``model/`` artifact folder, see
    :func:`adass_ray.stages.train.log_model_folder`) is loaded after downloading it: no pickle is
    involved, only tensors, JSON and this package's model classes.

    Raises:
        DataError: a missing or foreign file, or a model made for another feature map.
    """
    folder = Path(folder)
    return load_model(folder / MODEL_FILE, FeatureMap.load(folder))[0]
