"""Seeded synthetic CTR data in Criteo shape with planted structure.

Ids of field f are Zipf(s)-distributed over 1..V_f (rank k has probability ~ k^-s; id 0 is the
OOV id and never produced). The first ``ZIPF_HEAD`` ranks are drawn exactly by inverse CDF
(``searchsorted``); rarer ranks (only when V_f > ``ZIPF_HEAD``) come from the continuous power
law on [head + 0.5, V + 0.5], rounded - a close approximation that far out. Ranks map to ids by a
seeded affine bijection of 1..V_f, so the frequent ids are not always the small ones.

Label model. Each informative field f (strength s_f, latent rank r_f) has per-id latents
u_f[id] in R^{r_f} (entries N(0, r_f^-1/2)) and per-id biases b_f[id] ~ N(0, 1). Latents are
zero-padded to the largest rank, so a pair's dot product runs over min(r_f, r_g) dimensions::

    logit = b0 + A * sum_{f<g} s_f s_g <u_f, u_g> / sqrt(sum_{f<g} (s_f s_g)^2)
               + B * sum_f s_f b_f / sqrt(sum_f s_f^2),        y ~ Bernoulli(sigmoid(logit))

with A = 2, B = 1; noise fields contribute nothing; b0 is found by bisection on a seeded
calibration sample so that about 25 % of labels are positive. Latents and biases live in a table
of ``min(V_f + 1, LATENT_TABLE_SIZE)`` rows: a smaller field indexes it by id (exactly one latent
per id); a larger one by a seeded multiplicative (Fibonacci) hash of the id, so ids far in the
tail share latents and memory stays bounded (~8 MiB per field at rank 8) even for 10M-id fields.

Every random draw comes from ``numpy.random.default_rng([seed, stream, index])``: the output is a
pure function of the spec (``chunk_rows`` included), independent of the machine.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from adass_ray.data.feature_map import FEATURE_MAP_FILE, SPLITS, FeatureMap, FieldSpec, SplitInfo
from adass_ray.data.io import atomic_output_dir
from adass_ray.errors import DataError

logger = logging.getLogger(__name__)

TINY_CARDINALITIES: tuple[int, ...] = (3, 10, 50, 200, 1000, 20, 100, 500)
CRITEO_CARDINALITIES: tuple[int, ...] = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992,
    5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)  # fmt: skip
PRESETS: dict[str, tuple[int, ...]] = {"tiny": TINY_CARDINALITIES, "criteo": CRITEO_CARDINALITIES}
LATENT_TABLE_SIZE = 1 << 18
ZIPF_HEAD = 1 << 16
_CAL_ROWS, _TARGET_RATE, _INTERACTION_STD, _BIAS_STD = 50_000, 0.25, 2.0, 1.0
_GOLDEN, _M32 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xFFFFFFFF)
# Criteo-like missing rates of I1..I13 and C1..C26, and log-means of I1..I13 (write_criteo_tsv).
_INT_MISSING = (0.45, 0, 0.21, 0.22, 0.03, 0.22, 0.04, 0.001, 0.04, 0.45, 0.04, 0.77, 0.22)
_INT_LOGMEAN = (0.7, 3.0, 2.3, 1.8, 8.0, 4.0, 1.5, 2.5, 3.8, 0.3, 1.0, 0.5, 1.8)
_CAT_MISSING = (0, 0, 0.03, 0.03, 0, 0.12, 0, 0, 0, 0, 0, 0.03, 0, 0, 0, 0.03, 0, 0, 0.44, 0.44,
                0.03, 0.76, 0, 0.03, 0.44, 0.44)  # fmt: skip


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise DataError(f"synthetic spec: {message}")


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate (validated on construction; raises DataError).

    Attributes:
        rows: total rows over all splits (>= 1).
        cardinalities: V_f per field (ids 1..V_f, each >= 1); fields are named C1..CF.
        zipf_exponent: s of the Zipf id distribution (> 0).
        informative: 0-based indices of the informative fields; None picks ``len(strengths)``
            (default: half, rounded) of them at random from the seed.
        strengths: one per informative field (> 0); None: evenly falling from 1.0 to 0.3.
        latent_rank: latent dimension of every informative field, or one per informative field.
        split_fractions: train/valid/test fractions (>= 0, summing to 1).
        seed: the one seed of everything.
        rows_per_shard: rows per parquet file within a split.
        chunk_rows: rows generated per step (bounds memory; part of the data's identity).
    """

    rows: int
    cardinalities: tuple[int, ...] = TINY_CARDINALITIES
    zipf_exponent: float = 1.1
    informative: tuple[int, ...] | None = None
    strengths: tuple[float, ...] | None = None
    latent_rank: int | tuple[int, ...] = 8
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    rows_per_shard: int = 1_000_000
    chunk_rows: int = 1_000_000

    def __post_init__(self) -> None:
        for name in ("cardinalities", "informative", "strengths", "latent_rank", "split_fractions"):
            if isinstance(getattr(self, name), (list, np.ndarray)):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        num, fr = len(self.cardinalities), self.split_fractions
        st, inf = self.strengths, self.informative
        ranks = self.latent_rank if isinstance(self.latent_rank, tuple) else (self.latent_rank,)
        _require(isinstance(self.rows, (int, np.integer)) and self.rows >= 1,
                 f"rows must be an integer >= 1, got {self.rows!r}")
        _require(num > 0 and min(self.cardinalities) >= 1,
                 f"every cardinality must be >= 1, got {self.cardinalities}")
        _require(self.zipf_exponent > 0, f"zipf_exponent must be > 0, got {self.zipf_exponent}")
        _require(len(fr) == 3 and min(fr) >= 0 and abs(sum(fr) - 1) <= 1e-6,
                 f"split_fractions {fr} must be 3 numbers >= 0 summing to 1")
        _require(self.rows_per_shard >= 1 and self.chunk_rows >= 1,
                 "rows_per_shard and chunk_rows must be >= 1")
        _require(inf is None or (len(set(inf)) == len(inf) and all(0 <= i < num for i in inf)),
                 f"informative {inf} must be distinct field indices in 0..{num - 1}")
        _require(st is None or inf is None or len(st) == len(inf),
                 f"{len(st or ())} strengths for {len(inf or ())} informative fields")
        _require(st is None or (len(st) <= num and all(x > 0 for x in st)),
                 f"strengths {st} must be > 0, at most one per field")
        _require(min(ranks, default=1) >= 1, f"latent ranks must be >= 1, got {self.latent_rank}")
        n_inf = len(self.ground_truth()[0])
        _require(isinstance(self.latent_rank, int) or len(ranks) == n_inf,
                 f"{len(ranks)} latent ranks for {n_inf} informative fields")

    @classmethod
    def preset(cls, name: str, *, rows: int, scale: float = 1.0, **kwargs: Any) -> SyntheticSpec:
        """A spec from a named cardinality preset.

        Args:
            name: ``"tiny"`` (8 small fields) or ``"criteo"`` (the 26 Criteo-Kaggle cardinalities).
            rows: total rows.
            scale: divides every cardinality (results below 2 become 2).
            **kwargs: any other :class:`SyntheticSpec` attribute.

        Returns:
            The spec.

        Raises:
            DataError: unknown preset, scale <= 0 or an invalid attribute.
        """
        _require(name in PRESETS, f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
        _require(scale > 0, f"scale must be > 0, got {scale}")
        cards = tuple(max(2, int(c / scale)) for c in PRESETS[name])
        return cls(rows=rows, cardinalities=cards, **kwargs)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f"C{i + 1}" for i in range(len(self.cardinalities)))

    def ground_truth(self) -> tuple[tuple[int, ...], tuple[float, ...], tuple[int, ...]]:
        """The planted structure.

        Returns:
            (informative field indices, their strengths, their latent ranks).
        """
        num, st, r = len(self.cardinalities), self.strengths, self.latent_rank
        if self.informative is not None:
            inf = tuple(int(i) for i in self.informative)
        else:
            n_inf = len(st) if st is not None else max(1, round(num / 2))
            perm = np.random.default_rng([self.seed, 7]).permutation(num)
            inf = tuple(int(i) for i in perm[:n_inf])
        if st is None:
            st = tuple(round(float(x), 4) for x in np.linspace(1.0, 0.3, len(inf)))
        ranks = tuple(int(x) for x in r) if isinstance(r, tuple) else (int(r),) * len(inf)
        return inf, tuple(float(x) for x in st), ranks


class _ZipfField:
    """Vectorized Zipf(s) sampler over ids 1..V (exact head, continuous tail, permuted)."""

    def __init__(self, card: int, s: float, rng: np.random.Generator) -> None:
        self.card, self.s, head = card, s, min(card, ZIPF_HEAD)
        w = np.arange(1, head + 1, dtype=np.float64) ** -s
        self.lo, hi = head + 0.5, card + 0.5
        if card == head:
            self.tail = 0.0
        elif abs(s - 1) < 1e-12:
            self.tail = math.log(hi / self.lo)
        else:
            self.tail = (hi ** (1 - s) - self.lo ** (1 - s)) / (1 - s)
        self.cdf = np.cumsum(w) / (w.sum() + self.tail)
        self.p_head = float(self.cdf[-1]) if self.tail else 1.0
        if not self.tail:
            self.cdf[-1] = np.inf  # rounding guard: every u < 1 lands in the head
        self.mult = 1
        while card > 1:
            self.mult = int(rng.integers(1, card))
            if math.gcd(self.mult, card) == 1:
                break
        self.offset = int(rng.integers(0, card))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        u = rng.random(n)
        rank = np.searchsorted(self.cdf, u, side="right").astype(np.int64) + 1
        tail = u >= self.p_head
        if tail.any():
            m, s = (u[tail] - self.p_head) / (1.0 - self.p_head) * self.tail, self.s
            if abs(s - 1) < 1e-12:
                x = self.lo * np.exp(m)
            else:
                x = (self.lo ** (1 - s) + (1 - s) * m) ** (1 / (1 - s))
            rank[tail] = np.floor(x + 0.5)
        np.clip(rank, 1, self.card, out=rank)
        return (((rank - 1) * self.mult + self.offset) % self.card + 1).astype(np.int32)


class _LabelModel:
    """The planted label model (see the module docstring)."""

    def __init__(self, spec: SyntheticSpec, samplers: list[_ZipfField]) -> None:
        inf, strengths, ranks = spec.ground_truth()
        self.max_rank = max(ranks, default=1)
        self.terms: list[tuple[int, float, np.ndarray, np.ndarray, np.uint64 | None]] = []
        for f, s, r in zip(inf, strengths, ranks, strict=True):
            rng = np.random.default_rng([spec.seed, 2, f])
            size = min(spec.cardinalities[f] + 1, LATENT_TABLE_SIZE)
            lat = np.zeros((size, self.max_rank), np.float32)
            lat[:, :r] = rng.standard_normal((size, r)) * r**-0.25
            bias = rng.standard_normal(size).astype(np.float32)
            salt = np.uint64(int(rng.integers(0, 2**63))) if size == LATENT_TABLE_SIZE else None
            self.terms.append((f, s, lat, bias, salt))
        pairs = [a * b for i, a in enumerate(strengths) for b in strengths[i + 1 :]]
        self.pair_norm = math.sqrt(sum(p * p for p in pairs)) or 1.0
        self.bias_norm = math.sqrt(sum(s * s for s in strengths)) or 1.0
        cal_rng = np.random.default_rng([spec.seed, 3])
        z = self.logit([smp.sample(cal_rng, _CAL_ROWS) for smp in samplers], b0=0.0)
        lo, hi = -30.0, 30.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if _sigmoid(z + mid).mean() < _TARGET_RATE else (lo, mid)
        self.b0 = 0.5 * (lo + hi)

    def logit(self, ids: list[np.ndarray], b0: float | None = None) -> np.ndarray:
        n = len(ids[0])
        acc = np.zeros((n, self.max_rank), np.float32)
        sq, bias = np.zeros(n, np.float32), np.zeros(n, np.float32)
        shift = np.uint64(65 - LATENT_TABLE_SIZE.bit_length())
        for f, s, lat, b, salt in self.terms:
            x = ids[f] if salt is None else (ids[f].astype(np.uint64) * _GOLDEN + salt) >> shift
            u = lat[x]
            acc += s * u
            sq += (s * s) * np.einsum("ij,ij->i", u, u)
            bias += s * b[x]
        inter = 0.5 * (np.einsum("ij,ij->i", acc, acc) - sq)  # sum over pairs f < g
        z = _INTERACTION_STD * inter / self.pair_norm + _BIAS_STD * bias / self.bias_norm
        return z.astype(np.float64) + (self.b0 if b0 is None else b0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


_Chunk = tuple[np.random.Generator, list[np.ndarray], np.ndarray]


def _chunks(spec: SyntheticSpec, stream: int) -> Iterator[_Chunk]:
    """Yield (the chunk's rng, int32 ids per field, bool labels) for each chunk of the spec."""
    samplers = [
        _ZipfField(int(c), spec.zipf_exponent, np.random.default_rng([spec.seed, 5, i]))
        for i, c in enumerate(spec.cardinalities)
    ]
    model = _LabelModel(spec, samplers)
    for k, start in enumerate(range(0, spec.rows, spec.chunk_rows)):
        n = min(spec.chunk_rows, spec.rows - start)
        rng = np.random.default_rng([spec.seed, stream, k])
        ids = [smp.sample(rng, n) for smp in samplers]
        yield rng, ids, rng.random(n) < _sigmoid(model.logit(ids))


class _SplitWriter:
    """Appends to ``<split>/part-NNNNN.parquet``, rolling over every ``per`` rows."""

    def __init__(self, root: Path, split: str, schema: pa.Schema, per: int) -> None:
        self.root, self.split, self.schema, self.per = root, split, schema, per
        self.files: list[str] = []
        self.rows = self.in_shard = 0
        self.writer: pq.ParquetWriter | None = None

    def _roll(self) -> pq.ParquetWriter:
        if self.writer is not None:
            self.writer.close()
        self.files.append(f"{self.split}/part-{len(self.files):05d}.parquet")
        (self.root / self.split).mkdir(exist_ok=True)
        self.writer, self.in_shard = pq.ParquetWriter(self.root / self.files[-1], self.schema), 0
        return self.writer

    def write(self, table: pa.Table) -> None:
        off = 0
        while off < table.num_rows:
            full = self.writer is None or self.in_shard >= self.per
            writer = self._roll() if full or self.writer is None else self.writer
            take = min(self.per - self.in_shard, table.num_rows - off)
            writer.write_table(table.slice(off, take))
            off, self.in_shard, self.rows = off + take, self.in_shard + take, self.rows + take

    def close(self) -> SplitInfo:
        if self.writer is None:  # no row drawn for this split: leave one empty shard
            self._roll().write_table(self.schema.empty_table())
        assert self.writer is not None
        self.writer.close()
        return SplitInfo(rows=self.rows, files=tuple(self.files))


def generate_dataset(
    spec: SyntheticSpec, out: str | os.PathLike[str], *, overwrite: bool = False
) -> FeatureMap:
    """Generate a prepared dataset (parquet shards + ``feature_map.json``) in ``out``.

    Rows are generated ``spec.chunk_rows`` at a time and streamed into the shards; each row's
    split is drawn from ``spec.split_fractions`` (a split with fraction 0 is left out).

    Args:
        spec: what to generate.
        out: dataset folder, written atomically.
        overwrite: replace an existing non-empty ``out``.

    Returns:
        The saved feature map; ``metadata`` holds the seed, the ground truth and the
        measured positive rate.

    Raises:
        AdassError: ``out`` exists, is non-empty and ``overwrite`` is false.
    """
    t0 = time.perf_counter()
    names = spec.field_names
    schema = pa.schema([(n, pa.int32()) for n in names] + [("label", pa.float32())])
    bounds = np.cumsum(spec.split_fractions)[:-1]
    positives = 0
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        writers = {i: _SplitWriter(tmp, s, schema, spec.rows_per_shard)
                   for i, s in enumerate(SPLITS) if spec.split_fractions[i] > 0}  # fmt: skip
        for rng, ids, y in _chunks(spec, stream=1):
            split = np.searchsorted(bounds, rng.random(len(y)), side="right")
            order = np.argsort(split, kind="stable")
            cols = [pa.array(c[order]) for c in ids] + [pa.array(y[order].astype(np.float32))]
            table = pa.Table.from_arrays(cols, schema=schema)
            ends = np.concatenate([[0], np.cumsum(np.bincount(split, minlength=3))])
            for i, w in writers.items():
                w.write(table.slice(int(ends[i]), int(ends[i + 1] - ends[i])))
            positives += int(y.sum())
        inf, strengths, ranks = spec.ground_truth()
        truth = {
            "informative": {names[f]: s for f, s in zip(inf, strengths, strict=True)},
            "noise": [n for i, n in enumerate(names) if i not in inf],
            "latent_rank": {names[f]: r for f, r in zip(inf, ranks, strict=True)},
        }
        fmap = FeatureMap(
            name="synthetic",
            label="label",
            fields=tuple(FieldSpec(n, "categorical", vocab_size=int(c) + 1, distinct=int(c))
                         for n, c in zip(names, spec.cardinalities, strict=True)),
            splits={SPLITS[i]: w.close() for i, w in writers.items()},
            metadata={"source": "synthetic", "seed": spec.seed, "ground_truth": truth,
                      "positive_rate": round(positives / spec.rows, 6),
                      "zipf_exponent": spec.zipf_exponent},
        )  # fmt: skip
        fmap.save(tmp / FEATURE_MAP_FILE)
    dt = time.perf_counter() - t0
    logger.info("synthetic: %d rows in %.1f s (%.0f rows/s) -> %s", spec.rows, dt, spec.rows / dt,
                out)  # fmt: skip
    return fmap


def _hex_column(ids: np.ndarray, mult: int, add: int, valid: np.ndarray) -> pa.Array:
    """8-hex-digit strings of a bijective 32-bit mix of ``ids`` (null where not ``valid``)."""
    x = (ids.astype(np.uint64) * np.uint64(mult) + np.uint64(add)) & _M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x45D9F3B)) & _M32
    x ^= x >> np.uint64(16)
    nibbles = (x[:, None] >> np.arange(28, -1, -4, dtype=np.uint64)) & np.uint64(15)
    chars = np.frombuffer(b"0123456789abcdef", np.uint8)[nibbles]
    n = len(ids)
    offsets = np.arange(0, 8 * n + 1, 8, dtype=np.int32)
    bitmap = np.packbits(valid, bitorder="little")
    buffers = [pa.py_buffer(bitmap), pa.py_buffer(offsets), pa.py_buffer(chars)]
    return pa.Array.from_buffers(pa.string(), n, buffers, null_count=int(n - valid.sum()))


def write_criteo_tsv(
    path: str | os.PathLike[str],
    rows: int,
    *,
    seed: int = 0,
    scale: float = 1.0,
    chunk_rows: int = 500_000,
) -> None:
    """Write a raw Criteo-format file: label, I1..I13, C1..C26; tab-separated, no header.

    Labels follow the planted model over the categorical fields of
    ``SyntheticSpec.preset("criteo", rows=rows, scale=scale, seed=seed)`` (computed before
    values are blanked); I1..I13 are log-normal counts with Criteo-like missing rates (I2 also
    takes -1/-2); C1..C26 are 8-hex-digit bijective hashes of the ids, empty at Criteo-like
    rates. Generated in chunks and written atomically (temp file, then rename).

    Args:
        path: output file.
        rows: number of lines.
        seed: the seed.
        scale: divides the Criteo cardinalities (min 2).
        chunk_rows: rows generated and written per step.

    Raises:
        DataError: rows < 1, scale <= 0 or chunk_rows < 1.
    """
    t0 = time.perf_counter()
    spec = SyntheticSpec.preset("criteo", rows=rows, scale=scale, seed=seed, chunk_rows=chunk_rows)
    hrng = np.random.default_rng([seed, 6])
    mix = [(int(hrng.integers(0, 2**31)) * 2 + 1, int(hrng.integers(0, 2**32))) for _ in range(26)]
    schema = pa.schema([("label", pa.int8())] + [(f"I{i}", pa.int64()) for i in range(1, 14)]
                       + [(f"C{i}", pa.string()) for i in range(1, 27)])  # fmt: skip
    opts = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with pacsv.CSVWriter(str(tmp), schema, write_options=opts) as writer:
            for rng, ids, y in _chunks(spec, stream=4):
                n = len(y)
                arrays: list[pa.Array] = [pa.array(y.astype(np.int8))]
                for j in range(13):
                    v = np.floor(np.exp(rng.normal(_INT_LOGMEAN[j], 1.3, n)) - 1).astype(np.int64)
                    np.maximum(v, 0, out=v)
                    if j == 1:  # I2 has small negative values in real Criteo
                        neg = rng.random(n) < 0.02
                        v[neg] = -rng.integers(1, 3, int(neg.sum()))
                    arrays.append(pa.array(v, mask=rng.random(n) < _INT_MISSING[j]))
                for f in range(26):
                    arrays.append(_hex_column(ids[f], *mix[f], rng.random(n) >= _CAT_MISSING[f]))
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dt = time.perf_counter() - t0
    logger.info("criteo tsv: %d rows in %.1f s (%.0f rows/s) -> %s", rows, dt, rows / dt, path)
