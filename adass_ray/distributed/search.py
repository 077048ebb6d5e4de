"""Stage 2 on Ray: parallel controller actors against one frozen supernet snapshot.

The driver puts the supernet's weights and the validation rows in the object store once; each
long-lived :class:`SearchWorker` actor builds its evaluator from them when it starts, and the
one search loop (:func:`adass_ray.search.driver.drive`) steps the actors through
:class:`ActorRunner`. The whole search state is written atomically after every iteration; a
dead actor is recreated from it and continues exactly; ``resume`` continues a killed search.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from adass_ray import configio
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.io import atomic_write_bytes
from adass_ray.distributed import faults
from adass_ray.errors import AdassError
from adass_ray.model.checkpoint import load_plain
from adass_ray.model.config import ModelConfig, build_supernet
from adass_ray.search.agent import SearchConfig
from adass_ray.search.context import SearchContext
from adass_ray.search.driver import AgentRunner, Cache, SearchState, drive
from adass_ray.search.evaluator import CachedEvaluator
from adass_ray.search.space import SearchSpace

logger = logging.getLogger(__name__)
STATE_FILE = "search_state.pt"


class SearchWorker(AgentRunner):
    """The actor body: an :class:`AgentRunner` over the shared supernet snapshot."""

    def __init__(
        self,
        *,
        fm: dict[str, Any],
        model_config: dict[str, Any],
        weights: Any,
        batch: Any,
        space: SearchSpace,
        budget: int,
        config: SearchConfig,
        index: int,
        fault: dict[str, Any] | None = None,
    ) -> None:
        torch.set_num_threads(1)
        net = build_supernet(
            FeatureMap.from_dict(fm), configio.from_mapping(ModelConfig, model_config)
        )
        net.load_state_dict(weights)
        super().__init__(
            evaluator=CachedEvaluator(net, batch),
            space=space,
            budget=budget,
            config=config,
            index=index,
        )
        self.fault = fault

    def step(self, new_cache: Mapping[Any, float]) -> dict[str, Any]:
        faults.search_step(self.fault, index=self.agent.index, iteration=self.agent.iteration)
        return super().step(new_cache)


class ActorRunner:
    """A :class:`SearchWorker` actor behind the loop's runner interface; restarts it on death."""

    def __init__(self, start: Callable[[], Any], index: int, state: SearchState) -> None:
        self.start, self.index, self.state = start, index, state
        self.actor = start()

    def load(self) -> Any:
        return self.actor.load.remote(self.state.states[self.index], self.state.cache)

    def submit(self, new_cache: Cache) -> Any:
        return self.actor.step.remote(new_cache)

    def result(self, handle: Any) -> dict[str, Any] | None:
        import ray

        try:
            return ray.get(handle)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorDiedError):
            logger.warning(
                "controller %d died; restarting it from iteration %d",
                self.index,
                self.state.done(self.index),
            )
            self.actor = self.start()
            ray.get(self.load())
            return None


def run_search(
    *,
    ctx: SearchContext,
    out: str | Path,
    budget: int,
    config: SearchConfig,
    resume: bool = False,
    on_iteration: Callable[[int, SearchState], None] | None = None,
) -> SearchState:
    """Run the search with ``config.controllers`` actors; returns the final state.

    Raises:
        AdassError: ``out`` holds a search and ``resume`` is false.
        ConfigError: an ``actor_resource`` the cluster does not have.
    """
    import ray

    from adass_ray.distributed.runtime import require_resource

    out = Path(out)
    state_path = out / STATE_FILE
    if state_path.exists() and not resume:
        raise AdassError(
            f"{out} already holds a search; pass --resume to continue it or choose another --out"
        )
    if resume and state_path.exists():
        state = SearchState.from_dict(load_plain(state_path, what="search state"))
        state.resumed_at = state.iteration()
        logger.info("resuming the search in %s at iteration %d", out, state.resumed_at)
    else:
        state = SearchState.fresh(config.controllers)
    out.mkdir(parents=True, exist_ok=True)
    require_resource(config.actor_resource)
    extra = {config.actor_resource: 1.0} if config.actor_resource else {}
    actor_cls = ray.remote(num_cpus=min(1.0, 2.0 / config.controllers), resources=extra)(
        SearchWorker
    )
    shared = {
        "fm": ctx.fm.to_dict(),
        "model_config": ctx.model_config,
        "weights": ray.put(ctx.net.state_dict()),
        "batch": ray.put(ctx.batch_a),
        "space": ctx.space,
        "budget": budget,
        "config": config,
        "fault": faults.spec("search"),
    }

    def starter(i: int) -> Callable[[], Any]:
        return lambda: actor_cls.remote(**shared, index=i)

    runners = [ActorRunner(starter(i), i, state) for i in range(config.controllers)]
    ray.get([r.load() for r in runners])

    def save(iteration: int, st: SearchState) -> None:
        _save(state_path, {**st.to_dict(), "budget": budget, "config": config.__dict__})
        if on_iteration is not None:
            on_iteration(iteration, st)

    try:
        return drive(runners, state, iterations=config.iterations, on_iteration=save)
    finally:
        for r in runners:
            ray.kill(r.actor)


def _save(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())
