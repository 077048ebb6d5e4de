"""The planted model of the seeded synthetic CTR data (see :mod:`adass_ray.data.synthetic`).

What lives here: :class:`SyntheticSpec` with its cardinality presets and ground truth, the Zipf
id sampler, the label model and :func:`iter_chunks`, which turns a spec into (ids, labels) chunks
in memory. :mod:`adass_ray.data.synthetic` writes those chunks to disk (a prepared parquet
dataset, or a raw Criteo TSV); keeping the pure data-generating process apart keeps both small.

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

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from adass_ray.errors import DataError

TINY_CARDINALITIES: tuple[int, ...] = (3, 10, 50, 200, 1000, 20, 100, 500)
CRITEO_CARDINALITIES: tuple[int, ...] = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992,
    5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)  # fmt: skip
PRESETS: dict[str, tuple[int, ...]] = {"tiny": TINY_CARDINALITIES, "criteo": CRITEO_CARDINALITIES}
LATENT_TABLE_SIZE = 1 << 18
ZIPF_HEAD = 1 << 16
_CAL_ROWS, _TARGET_RATE, _INTERACTION_STD, _BIAS_STD = 50_000, 0.25, 2.0, 1.0
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


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


Chunk = tuple[np.random.Generator, list[np.ndarray], np.ndarray]


def iter_chunks(spec: SyntheticSpec, stream: int) -> Iterator[Chunk]:
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
