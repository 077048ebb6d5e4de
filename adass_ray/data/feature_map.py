"""The feature map: the one description of a prepared dataset that every stage reads.

A feature map names the label, every field (its kind, vocabulary size and out-of-vocabulary id),
the candidate embedding sizes, the splits on disk and free-form metadata (for synthetic data, the
planted ground truth). It is stored as ``feature_map.json`` beside the parquet shards, versioned,
and validated on load so that a stage never starts on a file it cannot use.

Storage conventions (shared by ``prepare`` and the loader):

* every field is stored as ids in a column of the field's name: ``int32`` for ``categorical`` and
  ``numeric`` fields (numeric values are bucketized at prepare time), ``list<int32>`` for
  ``multi_valued`` fields;
* id 0 is the out-of-vocabulary id (rare, unseen or missing values); real values are 1..V-1, so
  ``vocab_size`` V counts the OOV id;
* a ``numeric`` field also keeps its transformed dense value in a ``float32`` column named
  ``<name>__value`` (for backbones such as DLRM that take dense inputs);
* the label column holds 0/1 as ``float32``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from adass_ray.data.io import atomic_write_bytes
from adass_ray.errors import DataError

FORMAT_VERSION = 1
FEATURE_MAP_FILE = "feature_map.json"
OOV_ID = 0
# Default candidate sizes and the unified width d they are meant for, set together: no candidate
# may exceed d (the capacity rule, DESIGN.md §2.1: with s > d, E·W spans the same V×d matrices as
# s = d). The model's default d must equal DEFAULT_UNIFIED_WIDTH. Sizes 1 and 2 serve tight
# budgets; a leading 0 (= drop the field) is allowed in a feature map's sizes too, but the
# default leaves drops to the search space (its ``allow_drop``).
DEFAULT_UNIFIED_WIDTH = 16
DEFAULT_CANDIDATE_SIZES: tuple[int, ...] = (1, 2, 4, 8, 16)
SPLITS: tuple[str, ...] = ("train", "valid", "test")

FieldKind = Literal["categorical", "numeric", "multi_valued"]
FIELD_KINDS: tuple[str, ...] = ("categorical", "numeric", "multi_valued")


def dense_column(name: str) -> str:
    """Name of the float column that holds a numeric field's dense value."""
    return f"{name}__value"


@dataclass(frozen=True)
class FieldSpec:
    """One feature field.

    Attributes:
        name: column name in the shards (unique).
        kind: ``categorical``, ``numeric`` (bucketized, plus a dense value column) or
            ``multi_valued`` (a list of ids per row, pooled by the model).
        vocab_size: number of ids including the OOV id 0 (the V_f of the cost model).
        oov_id: always 0; stored so that readers need not assume it.
        distinct: distinct raw values over the whole input (all splits), before thresholding.
        max_len: for ``multi_valued`` fields, the list length the loader pads/truncates to.
        transform: how raw values became ids (e.g. ``vocab``, ``log2``, ``quantile``), with its
            fitted parameters (quantile boundaries), so the mapping can be replayed.
        vocab_hash: sha256 of the value → id mapping (vocabulary and transform), so that a
            checkpoint is not used where the same ids mean other values; None in feature maps
            written before it existed.
    """

    name: str
    kind: FieldKind
    vocab_size: int
    oov_id: int = OOV_ID
    distinct: int | None = None
    max_len: int | None = None
    transform: Mapping[str, Any] = field(default_factory=dict)
    vocab_hash: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise DataError("feature map: a field has an empty name")
        if self.kind not in FIELD_KINDS:
            raise DataError(
                f"feature map: field {self.name!r} has kind {self.kind!r}; "
                f"expected one of {', '.join(FIELD_KINDS)}"
            )
        if not isinstance(self.vocab_size, int) or self.vocab_size < 1:
            raise DataError(
                f"feature map: field {self.name!r} has vocab_size {self.vocab_size!r}; "
                "expected an integer >= 1 (the OOV id counts)"
            )
        if self.oov_id != OOV_ID:
            raise DataError(
                f"feature map: field {self.name!r} has oov_id {self.oov_id}; expected 0"
            )
        if self.kind == "multi_valued" and (self.max_len is None or self.max_len < 1):
            raise DataError(
                f"feature map: multi-valued field {self.name!r} needs max_len >= 1, "
                f"got {self.max_len!r}"
            )


@dataclass(frozen=True)
class SplitInfo:
    """Where one split lives (paths relative to the dataset folder), how many rows it has and a
    digest of which rows they are (None in feature maps written before it existed)."""

    rows: int
    files: tuple[str, ...]
    digest: str | None = None


@dataclass(frozen=True)
class FeatureMap:
    """A prepared dataset's description (see the module docstring for the storage layout)."""

    name: str
    label: str
    fields: tuple[FieldSpec, ...]
    candidate_sizes: tuple[int, ...] = DEFAULT_CANDIDATE_SIZES
    splits: Mapping[str, SplitInfo] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not self.fields:
            raise DataError("feature map: no fields")
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DataError(f"feature map: duplicate field names {dupes}")
        if self.label in names:
            raise DataError(f"feature map: label {self.label!r} is also a field")
        validate_candidate_sizes(self.candidate_sizes)
        for split in self.splits:
            if split not in SPLITS:
                raise DataError(f"feature map: unknown split {split!r}; expected {SPLITS}")

    # --- lookups ---------------------------------------------------------------------------
    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def num_fields(self) -> int:
        return len(self.fields)

    @property
    def vocab_sizes(self) -> tuple[int, ...]:
        return tuple(f.vocab_size for f in self.fields)

    @property
    def numeric_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.kind == "numeric")

    @property
    def multi_valued_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.kind == "multi_valued")

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise DataError(f"feature map has no field {name!r}; fields: {', '.join(self.field_names)}")

    def split_paths(self, root: str | os.PathLike[str], split: str) -> list[Path]:
        """Absolute shard paths of ``split`` under the dataset folder ``root``."""
        if split not in self.splits:
            raise DataError(
                f"dataset has no {split!r} split (has: {', '.join(self.splits) or 'none'})"
            )
        return [Path(root) / p for p in self.splits[split].files]

    def fingerprint(self) -> dict[str, Any]:
        """What a checkpoint must agree on to be used with this dataset: field names, kinds and
        vocabulary sizes, each field's value → id mapping hash and each split's row digest
        (the last two when the feature map has them)."""
        fp: dict[str, Any] = {
            "fields": [[f.name, f.kind, f.vocab_size] for f in self.fields],
            "label": self.label,
        }
        hashes = {f.name: f.vocab_hash for f in self.fields if f.vocab_hash}
        if hashes:
            fp["vocab_hashes"] = hashes
        digests = {k: v.digest for k, v in self.splits.items() if v.digest}
        if digests:
            fp["splits"] = digests
        return fp

    # --- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fields"] = [_drop_none(asdict(f)) for f in self.fields]
        d["splits"] = {k: _drop_none({"rows": v.rows, "files": list(v.files), "digest": v.digest})
                       for k, v in self.splits.items()}
        d["candidate_sizes"] = list(self.candidate_sizes)
        return {"version": d.pop("version"), **d}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "feature map") -> FeatureMap:
        if not isinstance(d, Mapping):
            raise DataError(f"{source}: expected a JSON object at the top level")
        version = d.get("version")
        if version != FORMAT_VERSION:
            raise DataError(
                f"{source}: format version {version!r} is not supported (this adass_ray reads "
                f"version {FORMAT_VERSION}); re-run `adass-ray prepare`"
            )
        try:
            fields = tuple(FieldSpec(**_only(f, FieldSpec)) for f in d["fields"])
            splits = {
                k: SplitInfo(rows=int(v["rows"]), files=tuple(v["files"]),
                             digest=str(v["digest"]) if v.get("digest") else None)
                for k, v in d.get("splits", {}).items()
            }
            return cls(
                name=str(d["name"]),
                label=str(d["label"]),
                fields=fields,
                candidate_sizes=tuple(
                    int(s) for s in d.get("candidate_sizes", DEFAULT_CANDIDATE_SIZES)
                ),
                splits=splits,
                metadata=dict(d.get("metadata", {})),
                version=int(version),
            )
        except DataError as e:
            raise DataError(f"{source}: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(
                f"{source}: malformed ({type(e).__name__}: {e}); re-run `adass-ray prepare`"
            ) from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temp file in the same folder, then rename)."""
        atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureMap:
        """Load ``feature_map.json`` (or the one inside a dataset folder) and validate it."""
        path = Path(path)
        if path.is_dir():
            path = path / FEATURE_MAP_FILE
        if not path.is_file():
            raise DataError(f"{path}: no feature map there; run `adass-ray prepare` first")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(d, source=str(path))


def validate_candidate_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """Check candidate sizes: positive, strictly increasing integers after an optional leading 0.

    A leading 0 means "drop the field" (it leaves the model). The capacity rule (no size above
    the unified width d) is checked where sizes meet d, by the model.

    Args:
        sizes: ``(s_1 < ... < s_K)``, optionally starting with 0.

    Returns:
        The sizes as a tuple.

    Raises:
        DataError: a one-line message naming the offending sizes.
    """
    sizes = tuple(sizes)
    positive = sizes[1:] if sizes[:1] == (0,) else sizes
    if not positive:
        raise DataError(
            f"candidate sizes {list(sizes)}: give at least one positive size, e.g. 1,2,4,8,16"
        )
    if any((not isinstance(s, int)) or isinstance(s, bool) or s <= 0 for s in positive):
        raise DataError(
            f"candidate sizes {list(sizes)}: every size must be a positive integer "
            "(0 only first, = drop the field)"
        )
    if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
        raise DataError(f"candidate sizes {list(sizes)}: must be strictly increasing")
    return sizes


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != {}}


def _only(d: Mapping[str, Any], cls: type) -> dict[str, Any]:
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - allowed
    if unknown:
        raise DataError(f"unknown field keys {sorted(unknown)}")
    return dict(d)

