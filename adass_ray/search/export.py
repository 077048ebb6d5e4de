"""``sizes.json``: the searched embedding sizes, and their TorchRec table configs (DESIGN.md §2.4).

Format 1::

    {"format": 1,
     "fields": {"<name>": {"size": 16, "vocab": 1000}, ...},   # field order = feature-map order
     "cost": 16000,                  # Σ vocab·size embedding parameters (checked on read)
     "cost_bytes_fp32": 64000,       # 4·cost
     "budget": 20000,                # B in parameters; cost <= budget always
     "uniform_baseline": {"size": 16, "cost": ...},
     "provenance": {...}}            # free-form: run id, λ, seeds, quality, ...

A size of 0 means the field was dropped: it has no table. The file is written atomically (temp file
in the same folder, then ``os.replace``) so a reader never sees half of it.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.io import atomic_write_bytes
from adass_ray.errors import ConfigError
from adass_ray.search.space import SearchSpace

logger = logging.getLogger(__name__)

FORMAT = 1
SIZES_FILE = "sizes.json"


def write_sizes_json(
    path: str | os.PathLike[str],
    space: SearchSpace,
    arch: Sequence[int],
    *,
    budget: int,
    provenance: Mapping[str, Any],
    d_base: int = 16,
) -> dict[str, Any]:
    """Write the sizes of ``arch`` as ``sizes.json`` (atomically) and return what was written.

    Args:
        path: the file to write (its folder is created if needed).
        space: the search space ``arch`` belongs to.
        arch: candidate indices, one per field.
        budget: B in parameters; the file records it and refuses an architecture over it.
        provenance: JSON-serialisable facts about where the sizes came from.
        d_base: the uniform baseline's size, recorded for comparison.

    Returns:
        The document as a dict (the same content as the file).

    Raises:
        ConfigError: ``arch`` over budget or not in the space, or provenance not JSON-serialisable.
    """
    sizes, cost = space.sizes(arch), space.cost(arch)
    if cost > budget:
        raise ConfigError(
            f"refusing to export sizes of {cost:,} params over the budget of {budget:,}"
        )
    doc: dict[str, Any] = {
        "format": FORMAT,
        "fields": {
            n: {"size": s, "vocab": v}
            for n, s, v in zip(space.field_names, sizes, space.vocab_sizes, strict=True)
        },
        "cost": cost,
        "cost_bytes_fp32": 4 * cost,
        "budget": int(budget),
        "uniform_baseline": {"size": int(d_base), "cost": space.uniform_cost(d_base)},
        "provenance": dict(provenance),
    }
    try:
        # allow_nan=False: NaN/Infinity are not JSON, and other readers would reject the file.
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise ConfigError(f"sizes.json: provenance is not JSON-serialisable ({e})") from None
    atomic_write_bytes(path, text.encode())
    return doc


def read_sizes_json(path: str | os.PathLike[str], fm: FeatureMap | None = None) -> dict[str, Any]:
    """Read and validate a ``sizes.json`` (or the one inside a folder).

    Args:
        path: the file, or a folder holding ``sizes.json``.
        fm: when given, the fields (names and vocab sizes) must match this dataset.

    Returns:
        The validated document.

    Raises:
        ConfigError: missing or malformed file, inconsistent cost, or fields not matching ``fm``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SIZES_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: no sizes.json there; give the file a search wrote")
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    return validate_sizes(doc, fm=fm, source=str(path))


def validate_sizes(
    doc: Any, *, fm: FeatureMap | None = None, source: str = "sizes.json"
) -> dict[str, Any]:
    """Check a sizes document (format 1, see the module docstring) and return it as a dict.

    Args:
        doc: the parsed JSON.
        fm: when given, field names and vocab sizes must match it.
        source: how to name the document in errors (its path).

    Returns:
        ``doc`` as a dict.

    Raises:
        ConfigError: one line naming the first problem found.
    """
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: expected a JSON object at the top level")
    if doc.get("format") != FORMAT:
        raise ConfigError(
            f"{source}: format {doc.get('format')!r} is not supported (expected {FORMAT})"
        )
    fields = doc.get("fields")
    if not isinstance(fields, Mapping) or not fields:
        raise ConfigError(
            f"{source}: 'fields' must be a non-empty object of name -> {{size, vocab}}"
        )
    for name, spec in fields.items():
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{source}: field {name!r} must be an object with 'size' and 'vocab'")
        _int(spec, "size", f"{source}: field {name!r}", minimum=0)
        _int(spec, "vocab", f"{source}: field {name!r}", minimum=1)
    cost = _int(doc, "cost", source, minimum=0)
    total = sum(s["size"] * s["vocab"] for s in fields.values())
    if cost != total:
        raise ConfigError(
            f"{source}: cost {cost:,} does not match Σ vocab·size = {total:,} (edited?)"
        )
    if _int(doc, "cost_bytes_fp32", source, minimum=0) != 4 * cost:
        raise ConfigError(f"{source}: cost_bytes_fp32 must be 4 × cost = {4 * cost:,}")
    budget = _int(doc, "budget", source, minimum=1)
    if cost > budget:
        raise ConfigError(f"{source}: cost {cost:,} exceeds the budget {budget:,}")
    base = doc.get("uniform_baseline")
    if not isinstance(base, Mapping):
        raise ConfigError(f"{source}: 'uniform_baseline' must be an object with 'size' and 'cost'")
    where = f"{source}: uniform_baseline"
    base_size = _int(base, "size", where, minimum=1)
    vocab_total = sum(s["vocab"] for s in fields.values())
    if _int(base, "cost", where, minimum=0) != base_size * vocab_total:
        raise ConfigError(f"{where}: cost must be size × Σ vocab = {base_size * vocab_total:,}")
    if not isinstance(doc.get("provenance", {}), Mapping):
        raise ConfigError(f"{source}: 'provenance' must be an object")
    if fm is not None:
        _check_against(fields, fm, source)
    return dict(doc)


def torchrec_table_configs(
    sizes_json: Mapping[str, Any], *, feature_prefix: str = ""
) -> list[dict[str, Any]]:
    """Keyword arguments of TorchRec's ``EmbeddingBagConfig``, one table per kept field.

    Tables are named ``t_<feature>`` (TorchRec's usual convention); dropped fields (size 0) get
    none. TorchRec's fused (FBGEMM) kernels want ``embedding_dim % 4 == 0``; other sizes are logged.

    Args:
        sizes_json: a sizes document (as written or read; it is validated).
        feature_prefix: prepended to every feature name (e.g. ``"cat_"`` for DLRM-style inputs).

    Returns:
        Plain dicts with ``name``, ``embedding_dim``, ``num_embeddings`` and ``feature_names``.

    Raises:
        ConfigError: ``sizes_json`` is not a valid sizes document.
    """
    doc = validate_sizes(sizes_json, source="sizes document")
    out = []
    for name, spec in doc["fields"].items():
        if spec["size"] == 0:
            continue
        if spec["size"] % 4:
            logger.warning("field %s: embedding_dim %d is not a multiple of 4", name, spec["size"])
        feature = f"{feature_prefix}{name}"
        out.append({
            "name": f"t_{feature}",
            "embedding_dim": int(spec["size"]),
            "num_embeddings": int(spec["vocab"]),
            "feature_names": [feature],
        })
    return out


def to_torchrec(sizes_json: Mapping[str, Any], *, feature_prefix: str = "") -> list[Any]:
    """Real ``torchrec.EmbeddingBagConfig`` objects (TorchRec is imported only here).

    Args:
        sizes_json: a sizes document. feature_prefix: as in :func:`torchrec_table_configs`.

    Returns:
        One ``EmbeddingBagConfig`` per kept field.

    Raises:
        ConfigError: TorchRec is not installed (or fails to import), or the document is invalid.
    """
    try:
        # Lazy: TorchRec (and its FBGEMM wheels) is an optional, heavy dependency.
        configs = importlib.import_module("torchrec.modules.embedding_configs")
    except (ImportError, OSError) as e:
        raise ConfigError(
            f"to_torchrec needs TorchRec, which cannot be imported ({e}); pip install torchrec, "
            "or use torchrec_table_configs() for plain dicts"
        ) from None
    tables = torchrec_table_configs(sizes_json, feature_prefix=feature_prefix)
    return [configs.EmbeddingBagConfig(**kw) for kw in tables]


def _int(d: Mapping[str, Any], key: str, where: str, *, minimum: int) -> int:
    value = d.get(key)
    # bool is an int subclass; a true/false size is always a mistake.
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}: {key!r} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_against(fields: Mapping[str, Any], fm: FeatureMap, source: str) -> None:
    missing = [n for n in fm.field_names if n not in fields]
    extra = [n for n in fields if n not in fm.field_names]
    if missing or extra:
        raise ConfigError(
            f"{source}: fields differ from the dataset (missing {missing}, unknown {extra})"
        )
    vocab = dict(zip(fm.field_names, fm.vocab_sizes, strict=True))
    wrong = [n for n in fm.field_names if fields[n]["vocab"] != vocab[n]]
    if wrong:
        raise ConfigError(
            f"{source}: vocab sizes differ from the dataset for {wrong}; the sizes were searched "
            "on another preparation of the data"
        )


def read_sizes(path: str | os.PathLike[str], fm: FeatureMap) -> tuple[int, ...]:
    """The per-field sizes of a validated ``sizes.json`` (see :func:`read_sizes_json`), in the
    feature map's field order: what ``train --sizes`` and ``retrain --sizes`` hand the model.

    Raises:
        ConfigError: as :func:`read_sizes_json`.
    """
    doc = read_sizes_json(path, fm)
    return tuple(int(doc["fields"][name]["size"]) for name in fm.field_names)
