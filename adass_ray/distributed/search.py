"""Stage 2 on Ray: parallel controller actors against one frozen supernet snapshot.

The driver puts the supernet's weights and the validation rows in the object store once; each
long-lived :class:`SearchWorker` actor builds its evaluator from them when it starts. Every
iteration the driver steps all actors, merges the architectures they scored into one shared
evaluation cache (sent to the others with the next step, so no architecture is scored twice),
and writes the whole search state atomically. A dead actor is recreated from the last saved
state; ``resume`` continues a killed search from the state file.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from adass_ray.artifacts import load_model
from adass_ray.data.feature_map import FeatureMap
from adass_ray.data.io import atomic_write_bytes
from adass_ray.data.loader import ShardLoader
from adass_ray.errors import AdassError, ConfigError
from adass_ray.model.supernet import Supernet
from adass_ray.search.agent import SearchAgent, SearchConfig
from adass_ray.search.evaluator import CachedEvaluator, validation_subsample
from adass_ray.search.space import SearchSpace

logger = logging.getLogger(__name__)
STATE_FILE = "search_state.pt"


class SearchWorker:
    """The actor body: one :class:`SearchAgent` with an evaluator over the shared snapshot."""

    def __init__(self, *, fm: dict[str, Any], model_config: dict[str, Any], weights: Any, batch: Any,
                 space: SearchSpace, budget: int, config: SearchConfig, index: int,
                 fault: dict[str, Any] | None = None) -> None:
        from adass_ray import config as cfgmod
        from adass_ray.training import ModelConfig, build_supernet

        torch.set_num_threads(1)
        net = build_supernet(FeatureMap.from_dict(fm), cfgmod.from_mapping(ModelConfig, model_config))
        net.load_state_dict(weights)
        self.evaluator = CachedEvaluator(net, batch)
        self.agent = SearchAgent(space=space, budget=budget, evaluator=self.evaluator, config=config, index=index)
        self.fault = fault or {}

    def load(self, state: dict[str, Any] | None, cache: Mapping[Sequence[int], float]) -> int:
        if state is not None:
            self.agent.load_state_dict(state)
        self.evaluator.load_cache(cache)
        return self.agent.iteration

    def step(self, new_cache: Mapping[Sequence[int], float]) -> dict[str, Any]:
        self.evaluator.load_cache(new_cache)
        f = self.fault
        if f and f.get("index") == self.agent.index and self.agent.iteration >= f["at"] \
                and not os.path.exists(f["marker"]):
            Path(f["marker"]).write_text("x")
            os._exit(1)  # fault injection for tests: this actor's process dies once
        records = self.agent.step()
        return {"records": records, "state": self.agent.state_dict(), "summary": self.agent.summary()}


def run_search(
    *,
    data: str | Path,
    supernet: str | Path,
    out: str | Path,
    budget_spec: str,
    config: SearchConfig,
    resume: bool = False,
    fault: dict[str, Any] | None = None,
    on_iteration: Any = None,
) -> dict[str, Any]:
    """Run the search; returns the final state (history, cache, per-controller summaries).

    Raises:
        AdassError: ``out`` holds a search and ``resume`` is false; a non-supernet model.
        ConfigError: a budget below the smallest architecture.
    """
    import ray

    from adass_ray.search.space import Budget

    out = Path(out)
    ctx = search_context(Path(data), Path(supernet), config)
    fm, net, space, batch = ctx["fm"], ctx["net"], ctx["space"], ctx["batch"]
    budget = Budget.parse(budget_spec).resolve(space, d_base=config.d_base)
    state_path = out / STATE_FILE
    if state_path.exists() and not resume:
        raise AdassError(f"{out} already holds a search; pass --resume to continue it or choose another --out")
    saved = torch.load(state_path, weights_only=False) if resume and state_path.exists() else None
    out.mkdir(parents=True, exist_ok=True)

    refs = {"weights": ray.put(net.state_dict()), "batch": ray.put(batch)}
    from adass_ray.distributed.runtime import require_resource

    require_resource(config.actor_resource)
    extra: dict[str, float] = {config.actor_resource: 1.0} if config.actor_resource else {}
    actor_cls = ray.remote(num_cpus=min(1.0, 2.0 / config.controllers), resources=extra)(SearchWorker)

    def start(i: int) -> Any:
        return actor_cls.remote(fm=fm.to_dict(), model_config=ctx["model_config"], weights=refs["weights"],
                                batch=refs["batch"], space=space, budget=budget, config=config, index=i,
                                fault=fault)

    history: list[dict[str, Any]] = saved["history"] if saved else []
    cache: dict[tuple[int, ...], float] = saved["cache"] if saved else {}
    states: list[dict[str, Any] | None] = saved["states"] if saved else [None] * config.controllers
    actors = [start(i) for i in range(config.controllers)]
    ray.get([a.load.remote(states[i], cache) for i, a in enumerate(actors)])
    pending: list[dict[tuple[int, ...], float]] = [{} for _ in actors]
    summaries: list[dict[str, Any]] = [{} for _ in actors]

    def done(i: int) -> int:
        return int((states[i] or {}).get("iteration", 0))

    while min(done(i) for i in range(len(actors))) < config.iterations:
        # actors that are ahead (after another one was restarted) wait for the others
        futures = [a.step.remote(pending[i]) if done(i) < config.iterations else None
                   for i, a in enumerate(actors)]
        results: list[dict[str, Any] | None] = []
        for i, fut in enumerate(futures):
            if fut is None:
                results.append(None)
                continue
            try:
                results.append(ray.get(fut))
            except (ray.exceptions.RayActorError, ray.exceptions.ActorDiedError):
                logger.warning("controller %d died; restarting it from iteration %d", i, done(i))
                actors[i] = start(i)
                ray.get(actors[i].load.remote(states[i], cache))
                results.append(None)
        for i, res in enumerate(results):
            if res is None:
                continue
            pending[i] = {}
            states[i], summaries[i] = res["state"], res["summary"]
            history.extend(res["records"])
            fresh = {tuple(r["arch"]): r["quality"] for r in res["records"] if tuple(r["arch"]) not in cache}
            cache.update(fresh)
            for j in range(len(actors)):
                if j != i:
                    pending[j].update(fresh)
        iteration = min(done(i) for i in range(len(actors)))
        _save(state_path, {"history": history, "cache": cache, "states": states, "budget": budget,
                           "config": config.__dict__})
        if on_iteration is not None:
            on_iteration(iteration, history, summaries)
    for a in actors:
        ray.kill(a)
    return {"history": history, "cache": cache, "states": states, "summaries": summaries,
            "budget": budget, "space": space, "feature_map": fm, "context": ctx}


def search_context(data: Path, supernet: Path, cfg: SearchConfig) -> dict[str, Any]:
    """Load the dataset, the supernet and the validation rows a search scores on (once).

    Raises:
        ConfigError: ``supernet`` holds a fixed-size model, not a supernet.
    """
    fm = FeatureMap.load(data)
    net, blob = load_model(supernet, fm)
    if not isinstance(net, Supernet):
        raise ConfigError(f"{supernet} holds a {blob['kind']} model; give the train-supernet output folder")
    batch = validation_subsample(ShardLoader(data, fm, split="valid", shuffle=False), cfg.val_rows, cfg.seed)
    space = SearchSpace.from_feature_map(fm, candidate_sizes=net.candidate_sizes)
    return {"fm": fm, "net": net, "model_config": blob["model_config"], "batch": batch, "space": space}


def _save(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())

