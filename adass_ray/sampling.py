"""Per-row path samplers for supernet training (DESIGN.md §2.2).

An architecture row holds one candidate index per field (``0..K-1``; ``K-1``, the largest size, is
the "anchor"). Each step the loop draws ``sample(B) -> [B, F]``, runs the supernet and reports the
per-row loss and per-field gradient norms to ``observe``, which packs every statistic it uses into
one 1-D float64 tensor and passes it through ``reduce`` (a data-parallel all-reduce) before any
state changes, so every worker keeps identical state. Statistics are sums paired with counts, so a
summing and an averaging ``reduce`` give the same result. State lives on the CPU; samples are
drawn on ``generator.device``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from adass_ray.errors import ConfigError

logger = logging.getLogger(__name__)

Reduce = Callable[[Tensor], Tensor]
ScoreFn = Callable[[Tensor], Tensor]
_F64 = torch.float64


@runtime_checkable
class Sampler(Protocol):
    """Draws per-row architectures and learns from per-row feedback."""

    name: str

    def sample(self, batch_size: int, *, generator: torch.Generator) -> Tensor:
        """Return ``[batch_size, F]`` int64 candidate indices on ``generator.device``."""
        ...

    def observe(self, arch: Tensor, row_loss: Tensor, field_grad_norm: Tensor | None,
                *, reduce: Reduce | None = None) -> None:
        """Learn from ``arch [B, F]``, ``row_loss [B]``, ``field_grad_norm [F]`` (or None)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

    def distribution(self) -> Tensor:
        """Return ``[F, K]`` marginal probability of each candidate per field (for logging)."""
        ...


def _real(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False,
          hi_open: bool = False) -> float:
    """Return ``value`` as float if it lies in the interval, else raise ConfigError (NaN-safe)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"sampler option {name} must be a number in {interval}, got {value!r}")
    return float(value)


def _int(name: str, value: Any, lo: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise ConfigError(f"sampler option {name} must be an integer >= {lo}, got {value!r}")
    return value


def _save(sampler: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    return {"name": sampler.name, "steps": sampler._steps,
            **{k: getattr(sampler, "_" + k).clone() for k in keys}}


def _restore(sampler: Any, state: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """Load ``keys`` after checking every tensor matches this sampler (a pool's length may vary)."""
    def fits(k: str) -> bool:
        got, cur = state.get(k), getattr(sampler, "_" + k)
        skip = 1 if k.startswith("pool") else 0
        return isinstance(got, Tensor) and got.shape[skip:] == cur.shape[skip:]

    if state.get("name") != sampler.name or "steps" not in state or not all(map(fits, keys)):
        raise ConfigError(f"sampler checkpoint ({state.get('name')!r}) does not match this run "
                          f"({sampler.name!r}, F={sampler.num_fields}, K={sampler.num_candidates});"
                          " resume with the sampler, fields and sizes it was saved with")
    sampler._steps = int(state["steps"])
    for k in keys:
        cur = getattr(sampler, "_" + k)
        setattr(sampler, "_" + k, state[k].detach().to("cpu", cur.dtype).clone())


def _uniform_arch(batch_size: int, f: int, k: int, generator: torch.Generator) -> Tensor:
    return torch.randint(k, (batch_size, f), generator=generator, device=generator.device)


def _pack_stats(arch: Tensor, row_loss: Tensor, grad: Tensor | None, f: int, k: int) -> Tensor:
    """Pack ``[loss sums F·K | row counts F·K | grad norms F | grad flag 1]`` (float64).

    Rows with a non-finite loss are left out, so one diverging row cannot poison the EMAs. On CUDA
    ``index_add_`` sums in arbitrary order (workers still agree: they share the reduced tensor);
    ``torch.use_deterministic_algorithms`` makes it bitwise reproducible run to run.
    """
    if (arch.dim() != 2 or arch.shape[1] != f or tuple(row_loss.shape) != (arch.shape[0],)
            or (grad is not None and grad.numel() != f)):
        raise ValueError(f"expected arch [B, {f}], row_loss [B], field_grad_norm [{f}]; got "
                         f"{tuple(arch.shape)}, {tuple(row_loss.shape)}, "
                         f"{None if grad is None else tuple(grad.shape)}")
    dev = row_loss.device
    loss = row_loss.detach().to(_F64)
    ok = torch.isfinite(loss)
    loss = torch.where(ok, loss, torch.zeros_like(loss))
    cell = (arch.to(dev) + torch.arange(f, device=dev) * k).reshape(-1)  # row-major [B*F]
    zeros = torch.zeros(2, f * k, dtype=_F64, device=dev)
    sums = zeros[0].index_add_(0, cell, loss.repeat_interleave(f))
    counts = zeros[1].index_add_(0, cell, ok.to(_F64).repeat_interleave(f))
    flag = torch.full((1,), float(grad is not None), dtype=_F64, device=dev)
    g = torch.zeros(f, dtype=_F64, device=dev) if grad is None else grad.detach().to(dev, _F64)
    return torch.cat([sums, counts, g.reshape(f), flag])


def _ema(old: Tensor, new: Tensor, gamma: float, mask: Tensor | None = None) -> Tensor:
    """EMA step where ``mask`` (default everywhere); an unset (NaN) entry starts at ``new``."""
    blended = torch.where(torch.isnan(old), new, gamma * old + (1.0 - gamma) * new)
    return blended if mask is None else torch.where(mask, blended, old)


class UniformSampler:
    """Every field of every row uniform over the K candidates (SPOS / OptEmbed baseline).

    Args:
        num_fields: F.
        num_candidates: K.

    Raises:
        ConfigError: F or K below 1.
    """

    name = "uniform"

    def __init__(self, num_fields: int, num_candidates: int) -> None:
        self.num_fields = _int("num_fields", num_fields, 1)
        self.num_candidates = _int("num_candidates", num_candidates, 1)
        self._steps = 0

    def sample(self, batch_size: int, *, generator: torch.Generator) -> Tensor:
        return _uniform_arch(batch_size, self.num_fields, self.num_candidates, generator)

    def observe(self, arch: Tensor, row_loss: Tensor, field_grad_norm: Tensor | None,
                *, reduce: Reduce | None = None) -> None:
        """Count the step; nothing is learned, so ``reduce`` is never called."""
        self._steps += 1

    def state_dict(self) -> dict[str, Any]:
        return _save(self, ())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        _restore(self, state, ())

    def distribution(self) -> Tensor:
        return torch.full((self.num_fields, self.num_candidates), 1.0 / self.num_candidates,
                          dtype=_F64)


class AdaptiveSampler:
    """Embedding-table sampling (ES) + feature sampling (FS), DESIGN.md §2.2.

    ES: ``q_f(s) = (1-ε)·softmax_s(z_{f,s}/τ) + ε/K``, ``z`` the per-field z-score of the loss EMA
    ``L̄_{f,s}``; uniform for the first ``warmup_steps`` observations (warm-up applies to ES only,
    as specified). FS: a row resamples field f from ``q_f`` with probability
    ``ρ_f = clip(ρ·w_f/mean(w), ρ_min, 1)``, else takes the anchor; ``w`` is the EMA of the field
    gradient norms, uniform until one is seen.

    Our choices where the design is silent: ``L̄`` moves once per step towards the mean loss of the
    rows that used the candidate, and starts at its first observation; for the z-score a candidate
    never observed takes its field's worst (highest) EMA, i.e. counts as maximally under-trained
    (a field with nothing observed, or all EMAs equal, is uniform); population std; non-finite
    losses (per row) and gradient norms (per step) are ignored.

    Args:
        num_fields: F.
        num_candidates: K.
        tau: softmax temperature (> 0). Default 1: population z-scores span at most sqrt(2K), so
            a field's most and least trained candidates differ by at most e^sqrt(2K) (≈ 24, K=5).
        epsilon: uniform mixing in [0, 1]. Default 0.1: every candidate keeps ≥ ε/K (2 %, K=5).
        gamma: loss-EMA decay in [0, 1). Default 0.99: a ~100-step memory averages out row noise
            (the z-score would amplify it) yet follows the training-loss drift.
        grad_gamma: gradient-norm EMA decay in [0, 1); None uses ``gamma``.
        warmup_steps: observations before ES leaves uniform. Default 500: 0.99^500 < 1 %, so the
            first, untrained losses have left the EMAs.
        rho: mean resampling probability (≥ 0). Default 0.5: half the fields of a row explore,
            half train their anchor.
        rho_min: floor of ρ_f in [0, 1]. Default 0.1: small sizes of unimportant fields still train.
        es: False makes q uniform (FS-only ablation).
        fs: False resamples every field of every row, ρ_f = 1 (ES-only ablation).

    Raises:
        ConfigError: a constant out of range.
    """

    name = "adaptive"
    _KEYS = ("loss_ema", "rows", "grad_ema")

    def __init__(self, num_fields: int, num_candidates: int, *, tau: float = 1.0,
                 epsilon: float = 0.1, gamma: float = 0.99, grad_gamma: float | None = None,
                 warmup_steps: int = 500, rho: float = 0.5, rho_min: float = 0.1,
                 es: bool = True, fs: bool = True) -> None:
        self.num_fields = f = _int("num_fields", num_fields, 1)
        self.num_candidates = k = _int("num_candidates", num_candidates, 1)
        self.tau = _real("tau", tau, 0.0, torch.inf, lo_open=True, hi_open=True)
        self.epsilon = _real("epsilon", epsilon, 0.0, 1.0)
        self.gamma = _real("gamma", gamma, 0.0, 1.0, hi_open=True)
        self.grad_gamma = _real("grad_gamma", gamma if grad_gamma is None else grad_gamma,
                                0.0, 1.0, hi_open=True)
        self.warmup_steps = _int("warmup_steps", warmup_steps, 0)
        self.rho = _real("rho", rho, 0.0, torch.inf, hi_open=True)
        self.rho_min = _real("rho_min", rho_min, 0.0, 1.0)
        if not isinstance(es, bool) or not isinstance(fs, bool):
            raise ConfigError(f"sampler options es and fs must be true or false, got {es!r}, {fs!r}")
        self.es, self.fs = es, fs
        self._loss_ema = torch.full((f, k), torch.nan, dtype=_F64)
        self._rows = torch.zeros(f, k, dtype=_F64)  # rows seen per candidate, for logging only
        self._grad_ema = torch.full((f,), torch.nan, dtype=_F64)
        self._steps = 0

    def es_distribution(self) -> Tensor:
        """Return ``q`` ``[F, K]`` (float64): the law of a resampled field."""
        k = self.num_candidates
        if not self.es or self._steps < self.warmup_steps:
            return torch.full((self.num_fields, k), 1.0 / k, dtype=_F64)
        ema = self._loss_ema
        seen = ~torch.isnan(ema)
        worst = torch.where(seen, ema, -torch.inf).amax(1, keepdim=True)
        filled = torch.where(seen.any(1, keepdim=True), torch.where(seen, ema, worst), 0.0)
        mean, std = filled.mean(1, keepdim=True), filled.std(1, keepdim=True, correction=0)
        z = torch.where(std > 0, (filled - mean) / std, 0.0)
        return (1.0 - self.epsilon) * torch.softmax(z / self.tau, 1) + self.epsilon / k

    def resample_prob(self) -> Tensor:
        """Return ``ρ`` ``[F]`` (float64): probability that a row resamples each field."""
        w, ones = self._grad_ema, torch.ones(self.num_fields, dtype=_F64)
        if not self.fs:
            return ones
        ratio = w / w.mean() if not torch.isnan(w).any() and w.mean() > 0 else ones
        return (self.rho * ratio).clamp(self.rho_min, 1.0)

    def distribution(self) -> Tensor:
        """Return ``[F, K]``: ``ρ_f·q_f + (1-ρ_f)·onehot(anchor)``, what rows actually get."""
        rho = self.resample_prob()[:, None]
        anchor = torch.zeros(self.num_fields, self.num_candidates, dtype=_F64)
        anchor[:, -1] = 1.0
        return rho * self.es_distribution() + (1.0 - rho) * anchor

    def sample(self, batch_size: int, *, generator: torch.Generator) -> Tensor:
        dev, f, k = generator.device, self.num_fields, self.num_candidates
        cdf = self.es_distribution().cumsum(1)[:, :-1].to(dev)  # [F, K-1]; last edge is 1
        rho = self.resample_prob().to(dev)
        # One uniform per (row, field) decides both: resample iff u < ρ_f, and then u/ρ_f is again
        # uniform on [0, 1), so counting the CDF edges it passes is an inverse-CDF draw from q_f
        # (where ρ_f = 0 the quotient is NaN/inf, but those entries take the anchor anyway).
        u = torch.rand((batch_size, f), generator=generator, device=dev, dtype=_F64)
        choice = ((u / rho)[..., None] >= cdf).sum(-1)
        return torch.where(u < rho, choice, k - 1)

    def observe(self, arch: Tensor, row_loss: Tensor, field_grad_norm: Tensor | None,
                *, reduce: Reduce | None = None) -> None:
        """Update the loss and gradient-norm EMAs from one step.

        Args:
            arch: ``[B, F]`` int64 paths the rows used.
            row_loss: ``[B]`` per-row loss.
            field_grad_norm: ``[F]`` gradient norm at each field's unified output, or None.
            reduce: called exactly once with the packed 1-D float64 statistics
                ``[loss sums F·K | row counts F·K | grad norms F | grad flag 1]`` on
                ``row_loss.device``; its output updates the state. None is the identity.

        Raises:
            ValueError: shapes do not match ``[B, F]`` / ``[B]`` / ``[F]``.
        """
        f, k = self.num_fields, self.num_candidates
        packed = _pack_stats(arch, row_loss, field_grad_norm, f, k)
        packed = (packed if reduce is None else reduce(packed)).detach().to("cpu", _F64)
        sums, counts = packed[: f * k].view(f, k), packed[f * k : 2 * f * k].view(f, k)
        used = counts > 0
        self._loss_ema = _ema(self._loss_ema, sums / torch.where(used, counts, 1.0), self.gamma, used)
        self._rows += counts
        if packed[-1] > 0:
            # Mean over the workers that sent a norm (DDP norms agree, so sum and mean both work).
            grad = packed[2 * f * k : -1] / packed[-1]
            if torch.isfinite(grad).all():
                self._grad_ema = _ema(self._grad_ema, grad, self.grad_gamma)
        self._steps += 1
        if self._steps == self.warmup_steps and self.es:
            logger.info("adaptive sampler: warm-up over after %d steps, ES active", self._steps)

    def state_dict(self) -> dict[str, Any]:
        return _save(self, self._KEYS)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        _restore(self, state, self._KEYS)


class GreedySampler:
    """GreedyNAS-style: train rows from a bounded pool of paths that scored well.

    Every ``refresh_every`` observations from ``warmup_steps`` on (an untrained supernet's scores
    mean nothing), ``refresh`` draws ``num_candidates_paths`` uniform paths from the sampler's own
    seeded generator (the same on every worker), scores them with the ``rescore`` oldest pool
    entries (their scores came from older weights) through ``score_fn`` (lower is better), admits
    the ``keep_top`` best new paths (a duplicate replaces its old entry) and evicts the worst
    scores beyond ``pool_size`` (the older of equal scores goes). A training row comes from the
    pool, uniformly, with probability ``pool_prob``, else it is uniform over all paths.

    Args:
        num_fields: F.
        num_candidates: K.
        score_fn: ``archs [P, F] int64 (CPU) -> [P]`` loss on a held-out batch, called from
            ``observe`` (so it must set eval/no-grad itself and restore train mode); None until
            ``set_score_fn`` (refreshes are skipped meanwhile). Never checkpointed.
        num_candidates_paths: uniform paths scored per refresh (GreedyNAS: 10).
        keep_top: best new paths admitted per refresh, ≤ num_candidates_paths (GreedyNAS: 5).
        pool_size: pool capacity. Default 64.
        pool_prob: probability a row comes from the pool (GreedyNAS ends at 0.8).
        refresh_every: observations between refreshes. Default 50.
        rescore: oldest pool entries re-scored per refresh. Default 5.
        warmup_steps: observations before the first refresh. Default 500, as for adaptive.
        seed: seed of the generator drawing candidate paths.

    Raises:
        ConfigError: a constant out of range.
    """

    name = "greedy"
    _KEYS = ("pool_arch", "pool_score", "pool_step", "gen_state")

    def __init__(self, num_fields: int, num_candidates: int, *, score_fn: ScoreFn | None = None,
                 num_candidates_paths: int = 10, keep_top: int = 5, pool_size: int = 64,
                 pool_prob: float = 0.8, refresh_every: int = 50, rescore: int = 5,
                 warmup_steps: int = 500, seed: int = 0) -> None:
        self.num_fields = f = _int("num_fields", num_fields, 1)
        self.num_candidates = _int("num_candidates", num_candidates, 1)
        self.num_candidates_paths = _int("num_candidates_paths", num_candidates_paths, 1)
        self.keep_top = _int("keep_top", keep_top, 1)
        if self.keep_top > self.num_candidates_paths:
            raise ConfigError(f"sampler option keep_top ({keep_top}) must be <= "
                              f"num_candidates_paths ({num_candidates_paths})")
        self.pool_size = _int("pool_size", pool_size, 1)
        self.pool_prob = _real("pool_prob", pool_prob, 0.0, 1.0)
        self.refresh_every = _int("refresh_every", refresh_every, 1)
        self.rescore = _int("rescore", rescore, 0)
        self.warmup_steps = _int("warmup_steps", warmup_steps, 0)
        self._score_fn = score_fn
        self._gen = torch.Generator().manual_seed(_int("seed", seed, 0))
        self._pool_arch = torch.empty(0, f, dtype=torch.long)
        self._pool_score = torch.empty(0, dtype=_F64)
        self._pool_step = torch.empty(0, dtype=torch.long)  # step at which each score was taken
        self._steps = 0
        self._warned = False

    @property
    def _gen_state(self) -> Tensor:
        return self._gen.get_state()

    @_gen_state.setter
    def _gen_state(self, state: Tensor) -> None:
        self._gen.set_state(state.to(torch.uint8))

    def set_score_fn(self, score_fn: ScoreFn | None) -> None:
        """Inject (or clear) the scorer; the loop calls this once its held-out batch exists."""
        self._score_fn = score_fn

    def pool(self) -> tuple[Tensor, Tensor]:
        """Return copies of the pool: paths ``[N, F]`` int64 and scores ``[N]``, best first."""
        return self._pool_arch.clone(), self._pool_score.clone()

    def sample(self, batch_size: int, *, generator: torch.Generator) -> Tensor:
        dev = generator.device
        arch = _uniform_arch(batch_size, self.num_fields, self.num_candidates, generator)
        n = self._pool_arch.shape[0]
        if n == 0 or self.pool_prob == 0.0:
            return arch
        use = torch.rand(batch_size, generator=generator, device=dev) < self.pool_prob
        pick = torch.randint(n, (batch_size,), generator=generator, device=dev)
        return torch.where(use[:, None], self._pool_arch.to(dev)[pick], arch)

    def observe(self, arch: Tensor, row_loss: Tensor, field_grad_norm: Tensor | None,
                *, reduce: Reduce | None = None) -> None:
        """Count a step; refresh the pool when due (the only time ``reduce`` is called).

        The step counter is the same on every worker, so all workers refresh together.
        """
        self._steps += 1
        due = self._steps - self.warmup_steps
        if due >= 0 and due % self.refresh_every == 0:
            self.refresh(reduce=reduce)

    def refresh(self, *, reduce: Reduce | None = None) -> None:
        """Score fresh and stale paths and update the pool.

        Args:
            reduce: called once with ``[scores P+R | 1]`` (float64); the scores are divided by the
                last entry, so a summing or an averaging all-reduce both yield the mean score.

        Raises:
            ValueError: ``score_fn`` did not return one score per path.
        """
        if self._score_fn is None:
            if not self._warned:
                logger.warning("greedy sampler: no score_fn set yet, pool refresh skipped")
                self._warned = True
            return
        p = self.num_candidates_paths
        new = torch.randint(self.num_candidates, (p, self.num_fields), generator=self._gen)
        old = torch.argsort(self._pool_step, stable=True)[: self.rescore]
        archs = torch.cat([new, self._pool_arch[old]])
        scores = self._score_fn(archs).detach().to(_F64).reshape(-1)
        if scores.shape[0] != archs.shape[0]:
            raise ValueError(f"score_fn returned {scores.shape[0]} scores for {archs.shape[0]} paths")
        packed = torch.cat([scores, torch.ones(1, dtype=_F64, device=scores.device)])
        packed = (packed if reduce is None else reduce(packed)).detach().to("cpu", _F64)
        scores = packed[:-1] / packed[-1]
        self._pool_score[old], self._pool_step[old] = scores[p:], self._steps
        best = torch.argsort(scores[:p], stable=True)[: self.keep_top]
        arch = torch.cat([self._pool_arch, new[best]])
        score = torch.cat([self._pool_score, scores[:p][best]])
        step = torch.cat([self._pool_step, torch.full((best.numel(),), self._steps)])
        # Duplicates: keep the last occurrence, i.e. the newest score.
        _, inv = torch.unique(arch, dim=0, return_inverse=True)
        last = torch.full((int(inv.max()) + 1,), -1).scatter_reduce(
            0, inv, torch.arange(len(inv)), "amax")
        arch, score, step = arch[last], score[last], step[last]
        # Best score first, the newer of equal scores first, so eviction drops the older.
        order = torch.argsort(step, descending=True, stable=True)
        order = order[torch.argsort(score[order], stable=True)][: self.pool_size]
        self._pool_arch, self._pool_score, self._pool_step = arch[order], score[order], step[order]
        logger.debug("greedy sampler: pool %d, best score %.5f", len(order), float(score[order[0]]))

    def distribution(self) -> Tensor:
        f, k, n = self.num_fields, self.num_candidates, self._pool_arch.shape[0]
        uniform = torch.full((f, k), 1.0 / k, dtype=_F64)
        if n == 0:
            return uniform
        ones = torch.ones(f, n, dtype=_F64)
        freq = torch.zeros(f, k, dtype=_F64).scatter_add_(1, self._pool_arch.T, ones) / n
        return (1.0 - self.pool_prob) * uniform + self.pool_prob * freq

    def state_dict(self) -> dict[str, Any]:
        return _save(self, self._KEYS)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        _restore(self, state, self._KEYS)


_SAMPLERS: dict[str, Callable[..., Sampler]] = {
    "uniform": UniformSampler, "adaptive": AdaptiveSampler, "greedy": GreedySampler}


def build_sampler(name: str, *, num_fields: int, num_candidates: int, **kwargs: Any) -> Sampler:
    """Build a sampler by name.

    Args:
        name: "uniform", "adaptive" or "greedy".
        num_fields: F.
        num_candidates: K.
        **kwargs: the sampler's keyword-only options (see each class).

    Returns:
        The sampler.

    Raises:
        ConfigError: unknown name or option, or a constant out of range.
    """
    cls = _SAMPLERS.get(name)
    if cls is None:
        raise ConfigError(f"unknown sampler {name!r}; valid names: {', '.join(_SAMPLERS)}")
    params = inspect.signature(cls).parameters.values()
    allowed = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(f"sampler {name!r} has no option {', '.join(unknown)}; "
                          f"valid options: {', '.join(allowed) or 'none'}")
    return cls(num_fields, num_candidates, **kwargs)
