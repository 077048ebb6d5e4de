"""Tiny raw files written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_criteo(path: Path, rows: int = 200, seed: int = 0) -> Path:
    """A Criteo-format TSV: label, I1..I13 (some empty), C1..C26 (8-hex strings, some empty)."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(rows):
        label = str(int(rng.random() < 0.3))
        ints = ["" if rng.random() < 0.1 else str(int(rng.integers(-2, 1000))) for _ in range(13)]
        cats = ["" if rng.random() < 0.05 else f"{int(rng.zipf(1.5)) % 50:08x}" for _ in range(26)]
        lines.append("\t".join([label, *ints, *cats]))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_ratings_csv(path: Path, rows: int = 300, seed: int = 0) -> Path:
    """A generic CSV with a 1..5 rating label, categorical, numeric and multi-valued columns."""
    rng = np.random.default_rng(seed)
    out = ["user,item,age,genres,rating,ts"]
    for i in range(rows):
        genres = "|".join(sorted(
            {f"g{int(g)}" for g in rng.integers(0, 5, size=rng.integers(1, 4))}
        ))
        age = "" if rng.random() < 0.05 else str(int(rng.integers(10, 70)))
        out.append(f"u{int(rng.integers(0, 30))},i{int(rng.zipf(1.6)) % 40},{age},{genres},"
                   f"{int(rng.integers(1, 6))},{i}")
    path.write_text("\n".join(out) + "\n")
    return path


SCHEMA_YAML = """\
label: rating
label_rule: ">= 4"
categorical: [user, item]
numeric: [age]
multi_valued: {genres: "|"}
time: ts
"""
