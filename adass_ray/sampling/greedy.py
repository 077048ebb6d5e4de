"""The greedy sampler: GreedyNAS-style path filtering with a pool (DESIGN.md §2.2)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from adass_ray.errors import ConfigError
from adass_ray.sampling._common import (
    F64,
    Reduce,
    ScoreFn,
    WarmupMixin,
    check_int,
    check_real,
    load_state,
    save_state,
    uniform_arch,
)

logger = logging.getLogger(__name__)


class GreedySampler(WarmupMixin):
    """GreedyNAS-style: train rows from a bounded pool of paths that scored well.

    Every ``refresh_every`` observations from the end of the warm-up on (an untrained supernet's
    scores mean nothing), ``refresh`` draws ``num_candidates_paths`` uniform paths from the
    sampler's own seeded generator (the same on every worker), scores them with the ``rescore``
    oldest pool entries (their scores came from older weights) through ``score_fn`` (lower is
    better), admits the ``keep_top`` best new paths (a duplicate replaces its old entry) and evicts
    the worst scores beyond ``pool_size`` (the older of equal scores goes). A training row comes
    from the pool, uniformly, with probability ``pool_prob``, else it is uniform over all paths.

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
        warmup_steps: observations before the first refresh; None (default) takes
            ``warmup_frac`` of the run told by ``set_total_steps`` (no refresh until then).
        warmup_frac: warm-up as a fraction of the run, in [0, 1]. Default 0.1.
        seed: seed of the generator drawing candidate paths.

    Raises:
        ConfigError: a constant out of range.
    """

    name = "greedy"
    _KEYS = ("pool_arch", "pool_score", "pool_step", "gen_state")

    def __init__(self, num_fields: int, num_candidates: int, *, score_fn: ScoreFn | None = None,
                 num_candidates_paths: int = 10, keep_top: int = 5, pool_size: int = 64,
                 pool_prob: float = 0.8, refresh_every: int = 50, rescore: int = 5,
                 warmup_steps: int | None = None, warmup_frac: float = 0.1,
                 seed: int = 0) -> None:
        self.num_fields = f = check_int("num_fields", num_fields, 1)
        self.num_candidates = check_int("num_candidates", num_candidates, 1)
        self.num_candidates_paths = check_int("num_candidates_paths", num_candidates_paths, 1)
        self.keep_top = check_int("keep_top", keep_top, 1)
        if self.keep_top > self.num_candidates_paths:
            raise ConfigError(f"sampler option keep_top ({keep_top}) must be <= "
                              f"num_candidates_paths ({num_candidates_paths})")
        self.pool_size = check_int("pool_size", pool_size, 1)
        self.pool_prob = check_real("pool_prob", pool_prob, 0.0, 1.0)
        self.refresh_every = check_int("refresh_every", refresh_every, 1)
        self.rescore = check_int("rescore", rescore, 0)
        self.warmup_steps = None if warmup_steps is None else check_int(
            "warmup_steps", warmup_steps, 0)
        self.warmup_frac = check_real("warmup_frac", warmup_frac, 0.0, 1.0)
        self._score_fn = score_fn
        self._gen = torch.Generator().manual_seed(check_int("seed", seed, 0))
        self._pool_arch = torch.empty(0, f, dtype=torch.long)
        self._pool_score = torch.empty(0, dtype=F64)
        self._pool_step = torch.empty(0, dtype=torch.long)  # step at which each score was taken
        self._steps = 0
        self._total_steps: int | None = None
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
        """Return ``[batch_size, F]`` int64 candidate indices on ``generator.device``."""
        dev = generator.device
        arch = uniform_arch(batch_size, self.num_fields, self.num_candidates, generator)
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
        warmup = self.warmup_length()
        if warmup is None:
            return
        due = self._steps - warmup
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
        scores = self._score_fn(archs).detach().to(F64).reshape(-1)
        if scores.shape[0] != archs.shape[0]:
            raise ValueError(f"score_fn returned {scores.shape[0]} scores for {archs.shape[0]} "
                             "paths")
        packed = torch.cat([scores, torch.ones(1, dtype=F64, device=scores.device)])
        packed = (packed if reduce is None else reduce(packed)).detach().to("cpu", F64)
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
        logger.debug("greedy sampler: pool %d, best score %.5f", len(order),
                     float(score[order[0]]))

    def distribution(self) -> Tensor:
        """Return ``[F, K]`` float64: the marginal of a row (pool frequency mixed with uniform)."""
        f, k, n = self.num_fields, self.num_candidates, self._pool_arch.shape[0]
        uniform = torch.full((f, k), 1.0 / k, dtype=F64)
        if n == 0:
            return uniform
        ones = torch.ones(f, n, dtype=F64)
        freq = torch.zeros(f, k, dtype=F64).scatter_add_(1, self._pool_arch.T, ones) / n
        return (1.0 - self.pool_prob) * uniform + self.pool_prob * freq

    def state_dict(self) -> dict[str, Any]:
        """Return the pool, the path generator's state and the step counters."""
        return save_state(self, self._KEYS)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output.

        Raises:
            ConfigError: the state is another sampler's, or of other fields.
        """
        load_state(self, state, self._KEYS)
