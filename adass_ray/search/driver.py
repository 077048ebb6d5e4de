"""The one search loop: step every controller, share their scores, save, repeat, select.

A controller is driven through a :class:`Runner`: the in-process :class:`LocalRunner` (the
harness, a Tune trial) or a Ray actor behind the same two calls (:mod:`adass_ray.distributed.
search`). Every iteration the loop steps all runners, merges the architectures they scored into
one evaluation cache (sent to the others with their next step, so nothing is scored twice),
and hands the whole :class:`SearchState` to ``on_iteration`` (which saves it, reports progress
or checkpoints a trial). A state saved that way continues exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from adass_ray.search.agent import SearchAgent, SearchConfig
from adass_ray.search.evaluator import CachedEvaluator
from adass_ray.search.selection import PairedScorer, ScoreFn, rerank
from adass_ray.search.space import Arch, SearchSpace, Selection, select

Cache = dict[Arch, float]


@dataclass
class SearchState:
    """Everything a search has done so far (what a resumed search continues from).

    Attributes:
        history: one record per scored proposal, in order (see :meth:`SearchAgent.step`).
        cache: every architecture scored, with its quality.
        states: each controller's :meth:`SearchAgent.state_dict` (None before its first step).
        summaries: each controller's latest :meth:`SearchAgent.summary`.
        resumed_at: set when the state was loaded to continue a search.
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    cache: Cache = field(default_factory=dict)
    states: list[dict[str, Any] | None] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    resumed_at: int | None = None  # the iteration a resumed search continued from (not saved)

    @classmethod
    def fresh(cls, controllers: int) -> SearchState:
        return cls(states=[None] * controllers, summaries=[{} for _ in range(controllers)])

    def done(self, i: int) -> int:
        """Iterations controller ``i`` has finished."""
        return int((self.states[i] or {}).get("iteration", 0))

    def iteration(self) -> int:
        """Iterations every controller has finished."""
        return min(self.done(i) for i in range(len(self.states)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "cache": self.cache,
            "states": self.states,
            "summaries": self.summaries,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchState:
        states = list(d["states"])
        return cls(
            history=list(d["history"]),
            cache=dict(d["cache"]),
            states=states,
            summaries=list(d.get("summaries") or [{} for _ in states]),
        )


class Runner(Protocol):
    """One controller as the loop sees it."""

    def submit(self, new_cache: Cache) -> Any:
        """Start one step after folding ``new_cache`` into the evaluator; returns a handle."""
        ...

    def result(self, handle: Any) -> dict[str, Any] | None:
        """The step's ``{"records", "state", "summary"}``, or None if the controller died
        (the runner then restarts it from the loop's last state before returning)."""
        ...


class AgentRunner:
    """A :class:`SearchAgent` and its evaluator; the body of both local and Ray runners."""

    def __init__(
        self,
        *,
        evaluator: CachedEvaluator,
        space: SearchSpace,
        budget: int,
        config: SearchConfig,
        index: int,
    ) -> None:
        self.evaluator = evaluator
        self.agent = SearchAgent(
            space=space, budget=budget, evaluator=evaluator.evaluate, config=config, index=index
        )

    def load(self, state: Mapping[str, Any] | None, cache: Mapping[Any, float]) -> int:
        """Restore the agent (when ``state``) and the evaluation memo; returns the iteration."""
        if state is not None:
            self.agent.load_state_dict(state)
        self.evaluator.load_cache(cache)
        return self.agent.iteration

    def step(self, new_cache: Mapping[Any, float]) -> dict[str, Any]:
        """One policy update after folding in the others' scores."""
        self.evaluator.load_cache(new_cache)
        records = self.agent.step()
        return {
            "records": records,
            "state": self.agent.state_dict(),
            "summary": self.agent.summary(),
        }


class LocalRunner:
    """Runs an :class:`AgentRunner` in this process (a step runs inside :meth:`submit`)."""

    def __init__(self, body: AgentRunner) -> None:
        self.body = body

    def submit(self, new_cache: Cache) -> Any:
        return self.body.step(new_cache)

    def result(self, handle: Any) -> dict[str, Any] | None:
        return handle


Progress = Callable[[int, SearchState], None]


def drive(
    runners: Sequence[Runner],
    state: SearchState,
    *,
    iterations: int,
    on_iteration: Progress | None = None,
) -> SearchState:
    """Step ``runners`` until each has done ``iterations`` updates; returns ``state`` updated.

    A runner that is ahead (after another one was restarted) waits for the others, so every
    controller sees the same shared scores as in an uninterrupted run.
    """
    pending: list[Cache] = [{} for _ in runners]
    while state.iteration() < iterations:
        handles = [
            r.submit(pending[i]) if state.done(i) < iterations else None
            for i, r in enumerate(runners)
        ]
        for i, handle in enumerate(handles):
            res = None if handle is None else runners[i].result(handle)
            if res is None:
                continue
            pending[i] = {}
            state.states[i], state.summaries[i] = res["state"], res["summary"]
            state.history.extend(res["records"])
            fresh = {
                tuple(r["arch"]): r["quality"]
                for r in res["records"]
                if tuple(r["arch"]) not in state.cache
            }
            state.cache.update(fresh)
            for j in range(len(runners)):
                if j != i:
                    pending[j].update(fresh)
        if on_iteration is not None:
            on_iteration(state.iteration(), state)
    return state


def candidates(state: SearchState) -> list[Arch]:
    """Every controller's selection candidates (its constrained argmax, and its repaired plain
    argmax when that differs), as its latest summary reported them."""
    out: list[Arch] = []
    for summary in state.summaries:
        out.extend(tuple(int(i) for i in a) for a in summary.get("candidates") or [])
    return out


def choose(
    space: SearchSpace,
    state: SearchState,
    budget: int,
    *,
    score_b: ScoreFn | PairedScorer | None = None,
    top_k: int = 8,
    lam: float = 0.0,
    tie_se: float = 0.0,
    occam: float = 0.0,
) -> Selection:
    """The architecture a search hands on (the hard budget always holds).

    With ``score_b`` (the selection half's scorer) the top ``top_k`` of the history by Q_A and
    the controllers' constrained argmaxes are re-ranked by Q_B − λ·C/B (with the noise band
    ``tie_se`` and the budget mode's cost prior ``occam`` of
    :func:`~adass_ray.search.selection.rerank`); without it, the best
    feasible Q_A wins (the previous rule, for tests and tiny searches).
    """
    history = [(r["arch"], r["quality"]) for r in state.history]
    if score_b is None:
        return select(space, history, budget)
    return rerank(space, budget, history, score_b, top_k=top_k, extra=candidates(state), lam=lam,
                  tie_se=tie_se, occam=occam)


def search_local(
    evaluator: CachedEvaluator, space: SearchSpace, budget: int, cfg: SearchConfig
) -> tuple[SearchState, list[Arch]]:
    """Stage 2 in this process: ``cfg.controllers`` controllers sharing one evaluator.

    Returns the final state and the controllers' constrained argmaxes (re-ranking candidates).
    """
    runners = [
        LocalRunner(
            AgentRunner(evaluator=evaluator, space=space, budget=budget, config=cfg, index=i)
        )
        for i in range(cfg.controllers)
    ]
    state = drive(runners, SearchState.fresh(cfg.controllers), iterations=cfg.iterations)
    extra = [a for r in runners for a in r.body.agent.candidates()]
    return state, extra
