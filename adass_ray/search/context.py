"""What a search reads once: the dataset, the frozen supernet and the validation rows it scores.

:func:`load_context` is the one place a search, a sweep, a stability run or the harness loads a
supernet for stage 2, so they all score architectures on the same rows the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from adass_ray.data.batch import Batch
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.loader import ShardLoader
from adass_ray.errors import ConfigError
from adass_ray.model.checkpoint import load_model
from adass_ray.model.supernet import Supernet
from adass_ray.search.evaluator import CachedEvaluator
from adass_ray.search.rows import RowPlan, search_and_selection_rows
from adass_ray.search.space import SearchSpace


@dataclass(frozen=True)
class SearchContext:
    """A loaded supernet and the rows it is scored on.

    Attributes:
        fm: the dataset's feature map. net: the frozen supernet.
        model_config: the supernet's model config as plain data (to rebuild it in a worker).
        batch: the search's validation subsample (A and B's first half; B may hold more).
        space: the search space (the supernet's candidate sizes over the dataset's fields).
        batch_a, batch_b: ``batch`` split in two halves by label (seeded): the search scores
            on A (Q_A), selection re-ranks its short list on B (Q_B), so the result is not the
            maximum of thousands of noisy scores on the rows that found it. Where the
            validation split is larger than ``batch``, B also holds rows outside it (see
            :func:`~adass_ray.search.rows.search_and_selection_rows`).
    """

    fm: FeatureMap
    net: Supernet
    model_config: dict[str, Any]
    batch: Batch
    space: SearchSpace
    batch_a: Batch
    batch_b: Batch

    @cached_property
    def evaluator_a(self) -> CachedEvaluator:
        """The cached evaluator on the search half (Q_A), built once per context."""
        return CachedEvaluator(self.net, self.batch_a)

    @cached_property
    def evaluator_b(self) -> CachedEvaluator:
        """The cached evaluator on the selection half (Q_B), built once per context (selection,
        the uniform points and a sweep's front share its memo)."""
        return CachedEvaluator(self.net, self.batch_b)


def load_context(
    data: str | Path, supernet: str | Path, *, rows: RowPlan, seed: int
) -> SearchContext:
    """Load the dataset, the supernet and the validation rows ``rows`` plans (once): the
    search's subsample, split in halves A and B, and B's top-up from the rows outside it
    (:func:`~adass_ray.search.rows.search_and_selection_rows`); ``seed`` picks the rows.

    Raises:
        ConfigError: ``supernet`` holds a fixed-size model, not a supernet.
        DataError: a missing model, or one trained on other data.
    """
    fm = FeatureMap.load(data)
    net, blob = load_model(supernet, fm)
    if not isinstance(net, Supernet):
        raise ConfigError(
            f"{supernet} holds a {blob['kind']} model; give the train-supernet output folder"
        )
    loader = ShardLoader(data, fm, split="valid", shuffle=False)
    batch, batch_a, batch_b = search_and_selection_rows(loader.full_batch(), rows, seed=seed)
    space = SearchSpace.from_feature_map(fm, candidate_sizes=net.candidate_sizes)
    return SearchContext(fm=fm, net=net, model_config=blob["model_config"], batch=batch,
                         space=space, batch_a=batch_a, batch_b=batch_b)


def uniform_points(ctx: SearchContext) -> list[dict[str, Any]]:
    """Q_B and cost of every uniform architecture (each field at one candidate size)."""
    space = ctx.space
    evaluator = ctx.evaluator_b
    archs = space.uniform_archs()
    return [
        {"size": space.candidate_sizes[a[0]], "cost": space.cost(a), "quality": q}
        for a, q in zip(archs, evaluator.evaluate(archs), strict=True)
    ]


def first_steps(ctx: SearchContext) -> list[tuple[float, float]]:
    """``(ΔQ_B, Δcost)`` of each single-field step up from the cheapest architecture (every
    field at the first candidate, i.e. dropped where the space has size 0; that field at the
    second): the rates at which λ stops paying for any field's first step
    (:func:`~adass_ray.pareto.auto_lams`)."""
    space = ctx.space
    if space.num_candidates < 2:
        return []
    base = (0,) * space.num_fields
    ups = [base[:f] + (1,) + base[f + 1:] for f in range(space.num_fields)]
    q = ctx.evaluator_b.evaluate([base, *ups])
    c0 = space.cost(base)
    return [(qf - q[0], float(space.cost(a) - c0)) for a, qf in zip(ups, q[1:], strict=True)]
