"""The harness's units of work: each is a 1-CPU Ray task that writes ``work/<name>.json``.

A unit whose file exists is not run again, so a stopped report continues where it stopped.
Units take plain data (config mappings, paths, size lists) so they travel to Ray workers.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from adass_ray import configio
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.io import write_json
from adass_ray.harness.methods import BY_NAME, Job, timed
from adass_ray.metrics import paired_bootstrap_se
from adass_ray.model.checkpoint import save_model
from adass_ray.search.agent import SearchConfig
from adass_ray.search.context import SearchContext, load_context
from adass_ray.search.evaluator import CachedEvaluator
from adass_ray.search.selection import rerank
from adass_ray.search.space import SearchSpace
from adass_ray.train.config import TrainConfig

logger = logging.getLogger(__name__)

SPLIT_SEED = 0  # the validation rows and their A/B halves are the same for every method and seed


def supernet_dir(work: str | Path, variant: str) -> Path:
    return Path(work) / f"supernet-{variant}"


def evaluators(ctx: SearchContext) -> tuple[CachedEvaluator, CachedEvaluator]:
    """The search half's (Q_A) and the selection half's (Q_B) evaluators of a supernet."""
    return ctx.evaluator_a, ctx.evaluator_b


def unit_supernet(*, data: str, work: str, variant: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Train the supernet of one sampler / layout variant (in this process)."""
    from adass_ray.train.local import train_local

    train_cfg = configio.from_mapping(TrainConfig, cfg)
    fm = FeatureMap.load(data)
    model, metrics = train_local(Path(data), train_cfg, "supernet")
    out = supernet_dir(work, variant)
    out.mkdir(parents=True, exist_ok=True)
    save_model(out / "model.pt", kind="supernet", model=model, model_config=train_cfg.model, fm=fm)
    return {"variant": variant, **metrics}


def unit_method(
    *,
    data: str,
    work: str,
    method: str,
    seed: int,
    budget: int,
    search: dict[str, Any],
    train: dict[str, Any],
    evaluations: int | None = None,
) -> dict[str, Any]:
    """One method's sizes for one seed and budget; a search's history is re-ranked on Q_B."""
    m = BY_NAME[method]
    scfg = configio.from_mapping(
        SearchConfig, configio.merge(search, configio.parse_overrides(list(m.overrides)))
    )
    tcfg = configio.from_mapping(TrainConfig, train)
    fm = FeatureMap.load(data)
    space = SearchSpace.from_feature_map(fm, candidate_sizes=tcfg.model.candidate_sizes or None)
    job = Job(
        data=Path(data),
        space=space,
        budget=budget,
        seed=seed,
        search=scfg,
        train=tcfg,
        evaluations=evaluations,
    )
    score_b = None
    if m.variant is not None:
        ctx = load_context(
            data, supernet_dir(work, m.variant), rows=scfg.rows, seed=SPLIT_SEED
        )
        job.space = space = ctx.space
        job.evaluator, ev_b = evaluators(ctx)
        score_b = ev_b
    if m.kind == "linear":  # the floor: nothing to size, nothing to score on a supernet
        return {"method": method, "seed": seed, "budget": budget, "seconds": 0.0,
                "sizes": [0] * space.num_fields, "evaluations": 0, "cost": 0}
    found, seconds = timed(m.sizes, job)
    out: dict[str, Any] = {
        "method": method,
        "seed": seed,
        "budget": budget,
        "seconds": seconds,
        **found.info,
    }
    if found.sizes is not None:
        sizes = tuple(found.sizes)
        out.update(sizes=list(sizes), evaluations=0, cost=space.cost(space.arch_of(sizes)))
        return out
    assert score_b is not None and job.evaluator is not None
    chosen = rerank(space, budget, found.history, score_b, top_k=scfg.top_k, extra=found.extra,
                    tie_se=scfg.tie_se, occam=scfg.occam)
    out.update(
        sizes=list(chosen.sizes),
        arch=list(chosen.arch),
        cost=chosen.cost,
        quality_a=chosen.quality,
        quality_b=chosen.quality_b,
        evaluations=len({a for a, _ in found.history}),
        repaired=chosen.repaired,
        ties=chosen.ties,
    )
    return out


def unit_retrain(
    *, data: str, work: str, seed: int, sizes: list[int], cfg: dict[str, Any],
    kind: str = "fixed",
) -> dict[str, Any]:
    """Train the stand-alone model with ``sizes`` from scratch (seed ``seed``), or with
    ``kind="linear"`` the linear floor (its own recipe, :func:`floor_config`)."""
    from adass_ray.train.floor import floor_config
    from adass_ray.train.local import train_local

    train_cfg = replace(configio.from_mapping(TrainConfig, cfg), seed=seed)
    if kind == "linear":
        _, metrics = train_local(Path(data), floor_config(train_cfg), "linear")
        return {"seed": seed, "sizes": sizes, "kind": kind, **metrics}
    _, metrics = train_local(Path(data), train_cfg, "fixed", tuple(sizes))
    return {"seed": seed, "sizes": sizes, **metrics}


def unit_score(
    *,
    data: str,
    work: str,
    budget: int,
    archs: list[list[int]],
    population: list[list[int]],
    search: dict[str, Any],
) -> dict[str, Any]:
    """Q_B on the reference supernet of the selected architectures and of a fixed population
    of feasible architectures (for percentiles), plus the paired-bootstrap standard error of
    Q_B differences between the selected architectures (the noise floor of Q)."""
    from adass_ray.harness.methods import REFERENCE_VARIANT

    scfg = configio.from_mapping(SearchConfig, search)
    ctx = load_context(
        data, supernet_dir(work, REFERENCE_VARIANT), rows=scfg.rows, seed=SPLIT_SEED
    )
    _, ev_b = evaluators(ctx)
    pop = [tuple(a) for a in population]
    chosen = [tuple(a) for a in archs]
    q_pop = ev_b.evaluate(pop)
    q_sel = ev_b.evaluate(chosen)
    return {
        "budget": budget,
        "population": len(pop),
        "population_q": q_pop,
        "selected_q": q_sel,
        "bootstrap_se": _bootstrap_se(ev_b, chosen),
    }


def _bootstrap_se(ev: CachedEvaluator, archs: list[tuple[int, ...]], reps: int = 200) -> float:
    """Median, over pairs of distinct architectures, of the bootstrap SE of their AUC
    difference on the same (resampled) rows."""
    distinct = list(dict.fromkeys(archs))[:6]
    if len(distinct) < 2:
        return math.nan
    se = paired_bootstrap_se(np.asarray(ev.labels), ev.logits(distinct).numpy(), 0, reps=reps)
    ses = sorted(float(x) for x in se[1:] if not math.isnan(x))
    return ses[len(ses) // 2] if ses else math.nan


def is_exhaustive(space: SearchSpace, limit: int) -> bool:
    """Whether every architecture over the three smallest positive sizes fits in ``limit``."""
    small = [s for s in space.candidate_sizes if s > 0][:3]
    return bool(len(small) ** space.num_fields <= limit)


def population(space: SearchSpace, budget: int, *, limit: int, seed: int = 0,
               exhaustive: bool = True) -> list[list[int]]:
    """The feasible architectures a method's Q_B percentile is measured against: every
    architecture over the three smallest positive sizes when there are at most ``limit`` of
    them (the exhaustive ranking), else ``limit`` seeded random ones repaired to the budget."""
    from itertools import product

    from adass_ray.search.space import repair

    small = [k for k, s in enumerate(space.candidate_sizes) if s > 0][:3]
    if exhaustive and is_exhaustive(space, limit):
        return [list(a) for a in product(small, repeat=space.num_fields) if space.cost(a) <= budget]
    rng = np.random.default_rng([seed, 23])
    seen: dict[tuple[int, ...], None] = {}
    for _ in range(20 * limit):
        if len(seen) >= limit:
            break
        seen.setdefault(repair(space, space.random_arch(rng), budget), None)
    return [list(a) for a in seen]


UNITS: dict[str, Any] = {
    "supernet": unit_supernet,
    "method": unit_method,
    "retrain": unit_retrain,
    "score": unit_score,
}


def run_unit(kind: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run one unit unless its result file exists and was made from the same inputs; write the
    result atomically, with a digest of the inputs (a changed config, budget or architecture
    list re-runs the unit instead of reusing a result that no longer matches)."""
    kwargs = dict(kwargs)
    path = Path(kwargs["work"]) / f"{kwargs.pop('_name')}.json"
    digest = _inputs_digest(kind, kwargs)
    if path.is_file():
        stored = dict(json.loads(path.read_text()))
        made_from = stored.pop(INPUTS_KEY, None)
        if made_from == digest:
            return stored
        # a file without a digest (an older report's) may have been made with other settings
        # that its name does not show (a search setting, say): it is never trusted
        logger.info("%s: %s; running it again", path.name,
                    "its inputs changed since it was run" if made_from
                    else "made by an older report that did not record its inputs")
    result = UNITS[kind](**kwargs)
    write_json(path, {**result, INPUTS_KEY: digest})
    return dict(result)


INPUTS_KEY = "_inputs_sha256"


def _inputs_digest(kind: str, kwargs: dict[str, Any]) -> str:
    """A digest of what a unit computes from (its kind and arguments, not the work folder)."""
    import hashlib

    what = {"kind": kind, **{k: v for k, v in kwargs.items() if k != "work"}}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()
