"""Model files (save / load / fingerprint): what a training stage leaves behind.

``model.pt`` holds the weights, the model config, the architecture (for fixed models), the
sampler state (for supernets) and the feature map's fingerprint, so that a checkpoint is never
used with data it was not trained on.
"""

from __future__ import annotations

import io
import os
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
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file: say so in one line
        raise DataError(f"{path}: not a readable adass_ray model ({type(e).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != 1:
        raise DataError(f"{path}: not an adass_ray model file")
    check_fingerprint(blob["fingerprint"], fm, source=str(path))
    mcfg = configio.from_mapping(ModelConfig, blob["model_config"], where=str(path))
    if blob["kind"] == "supernet":
        model: torch.nn.Module = build_supernet(fm, mcfg)
    else:
        model = build_standalone(fm, mcfg, tuple(blob["sizes"]))
    model.load_state_dict(blob["state_dict"])
    return model, blob
