"""The methods the harness compares: one :class:`Method` record each, plus its sizes function.

Adding a baseline is one record in :data:`METHODS` and one function ``(job) -> Found``: the
harness runs it once per seed and budget, re-ranks a search's history on the selection half of
the validation rows exactly as it does ours, retrains its sizes with every other method's
recipe, and gives it a row (and paired differences against ours) in every table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from adass_ray.search.agent import SearchConfig
from adass_ray.search.evaluator import CachedEvaluator
from adass_ray.search.space import Arch, SearchSpace
from adass_ray.train.config import TrainConfig

#: supernet variants (sampler / layout): name -> TrainConfig overrides
VARIANTS: dict[str, tuple[str, ...]] = {
    "adaptive": (),
    "uniform": ("sampler.name=uniform",),
    "es-only": ("sampler.fs=false",),
    "fs-only": ("sampler.es=false",),
    "greedy": ("sampler.name=greedy",),
    "nested": ("model.layout=nested",),
}
#: the supernet every method's selection is also scored on (Q_B percentile)
REFERENCE_VARIANT = "adaptive"


@dataclass
class Job:
    """What a sizes function gets: the space, the budget, the seed and, for a method that
    searches a supernet, the evaluator of its search half (Q_A)."""

    data: Path
    space: SearchSpace
    budget: int
    seed: int
    search: SearchConfig
    train: TrainConfig
    evaluations: int | None = None
    evaluator: CachedEvaluator | None = None


@dataclass
class Found:
    """A method's answer: fixed ``sizes``, or a search's ``history`` of ``(arch, Q_A)`` (plus
    ``extra`` candidates such as a policy's constrained argmax) for the common re-ranking."""

    sizes: tuple[int, ...] | None = None
    history: list[tuple[Arch, float]] = field(default_factory=list)
    extra: list[Arch] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


SizesFn = Callable[[Job], Found]


@dataclass(frozen=True)
class Method:
    """One row of the report.

    Attributes:
        name: the row's label. group: ``ours``, ``baseline`` or ``ablation``.
        sizes: the function that makes the sizes (see :class:`Found`).
        variant: the supernet variant it searches (None: it needs no supernet).
        overrides: SearchConfig overrides (``key=value``) for this method.
        equal_evals: it gets exactly as many distinct evaluations as our search used.
        rule: a fixed rule (the same sizes for every seed).
        kind: ``fixed`` (a stand-alone model with the method's sizes) or ``linear`` (the linear
            floor: no embedding sizes, not scored on the supernet, trained with its own recipe).
    """

    name: str
    group: Literal["ours", "baseline", "ablation"]
    sizes: SizesFn
    variant: str | None = None
    overrides: tuple[str, ...] = ()
    equal_evals: bool = False
    rule: bool = False
    kind: Literal["fixed", "linear"] = "fixed"


def _evaluator(job: Job) -> CachedEvaluator:
    assert job.evaluator is not None, "a searching method needs the supernet's evaluator"
    return job.evaluator


def uniform_d_base(job: Job) -> Found:
    """Every field at the uniform baseline's size."""
    return Found(sizes=(job.search.d_base,) * job.space.num_fields)


def uniform_matched(job: Job) -> Found:
    """The largest uniform size that fits the budget."""
    from adass_ray.search.baselines import uniform_matched as rule

    return Found(sizes=rule(job.space, job.budget))


def card_rule(job: Job) -> Found:
    """Sizes proportional to V_f^0.25, scaled to the budget."""
    from adass_ray.search.baselines import card_rule as rule

    sizes, k = rule(job.space, job.budget)
    return Found(sizes=sizes, info={"card_k": k})


def saliency(job: Job) -> Found:
    """SSEDS-style: train a uniform model at the largest size, prune it to the budget."""
    from adass_ray.search.baselines import saliency_sizes
    from adass_ray.train.local import train_local

    cfg = replace(job.train, seed=job.seed, model=replace(job.train.model, sparse=False))
    top = max(job.space.candidate_sizes)
    model, metrics = train_local(job.data, cfg, "fixed", (top,) * job.space.num_fields)
    sizes, _ = saliency_sizes(model, job.data, job.space, job.budget)
    return Found(sizes=tuple(sizes), info={"base_test_auc": metrics["test_auc"]})


def linear_floor(job: Job) -> Found:
    """The one-hot logistic regression: no table to size (every size 0 marks that)."""
    return Found(sizes=(0,) * job.space.num_fields)


def rl_search(job: Job) -> Found:
    """Our stage 2 (in this process): the controllers, then their constrained argmaxes."""
    from adass_ray.search.driver import search_local

    state, extra = search_local(
        _evaluator(job), job.space, job.budget, replace(job.search, seed=job.seed)
    )
    history = [(tuple(r["arch"]), float(r["quality"])) for r in state.history]
    return Found(history=history, extra=extra)


def random_search(job: Job) -> Found:
    """Uniform random architectures repaired to the budget (equal evaluations)."""
    from adass_ray.search.baselines import random_search as search

    return Found(
        history=search(_evaluator(job), job.space, job.budget, job.evaluations or 1, job.seed)
    )


def evolution(job: Job) -> Found:
    """Regularised evolution with repair (equal evaluations)."""
    from adass_ray.search.baselines import evolutionary_search

    return Found(
        history=evolutionary_search(
            _evaluator(job), job.space, job.budget, job.evaluations or 1, job.seed
        )
    )


OURS = "AdaS&S (ours)"
FLOOR = "linear floor (one-hot LR)"
METHODS: tuple[Method, ...] = (
    Method(FLOOR, "baseline", linear_floor, rule=True, kind="linear"),
    Method("uniform d_base", "baseline", uniform_d_base, rule=True),
    Method("uniform matched to budget", "baseline", uniform_matched, rule=True),
    Method("card^0.25 rule", "baseline", card_rule, rule=True),
    Method("SSEDS-style saliency", "baseline", saliency),
    Method(OURS, "ours", rl_search, variant="adaptive"),
    Method("random search", "baseline", random_search, variant="adaptive", equal_evals=True),
    Method("evolution", "baseline", evolution, variant="adaptive", equal_evals=True),
    Method(
        "uniform sampling + evolution", "baseline", evolution, variant="uniform", equal_evals=True
    ),
    Method("ablation: uniform sampler + RL", "ablation", rl_search, variant="uniform"),
    Method("ablation: ES only + RL", "ablation", rl_search, variant="es-only"),
    Method("ablation: FS only + RL", "ablation", rl_search, variant="fs-only"),
    Method("ablation: greedy sampler + RL", "ablation", rl_search, variant="greedy"),
    Method("ablation: nested tables + RL", "ablation", rl_search, variant="nested"),
)
BY_NAME = {m.name: m for m in METHODS}


def chosen(*, ablations: bool, quick: bool, names: Sequence[str] = ()) -> list[Method]:
    """The methods a report runs: ``names`` (ours and the linear floor are always among them),
    else everything, or
    without the ablations (and, in quick mode, without the evolution on its own supernet).

    Raises:
        ConfigError: an unknown method name.
    """
    if names:
        from adass_ray.errors import ConfigError

        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            raise ConfigError(f"unknown method(s) {unknown}; choose from {list(BY_NAME)}")
        return [m for m in METHODS if m.name in names or m.name in (OURS, FLOOR)]
    out = [m for m in METHODS if ablations or m.group != "ablation"]
    if quick:
        out = [m for m in out if m.name != "uniform sampling + evolution"]
    return out


def slug(name: str) -> str:
    """A file-name-safe form of a method's name."""
    text = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    while "--" in text:
        text = text.replace("--", "-")
    return text


def timed(fn: SizesFn, job: Job) -> tuple[Found, float]:
    """``fn(job)`` and its wall time in seconds."""
    t0 = time.perf_counter()
    found = fn(job)
    return found, time.perf_counter() - t0


def arch_list(archs: Sequence[Sequence[int]]) -> list[list[int]]:
    return [list(map(int, a)) for a in archs]
