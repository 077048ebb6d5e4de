"""What the supernet-only search benches share: loading one frozen supernet with its A / B / test
rows, and running ours, random search and evolution at equal distinct evaluations."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

import torch

from adass_ray import configio
from adass_ray.data.batch import Batch
from adass_ray.data.loader import ShardLoader
from adass_ray.model.supernet import Supernet
from adass_ray.search.agent import SearchConfig
from adass_ray.search.baselines import evolutionary_search, random_search
from adass_ray.search.context import load_context
from adass_ray.search.driver import search_local
from adass_ray.search.evaluator import CachedEvaluator
from adass_ray.search.rows import RowPlan, search_and_selection_rows, validation_subsample
from adass_ray.search.space import Arch, Budget, SearchSpace

METHODS = ("ours", "random search", "evolution")
Found = dict[str, tuple[list[tuple[Arch, float]], list[Arch]]]


@dataclass(frozen=True)
class Bench:
    """One supernet scored on the search half (A), the selection half (B) and unseen test rows
    (Q_T), the base SearchConfig and the budgets ``(text, params)``; ``net`` and ``valid`` (the
    whole validation split) let :func:`with_rows` draw other A / B rows."""

    base: SearchConfig
    space: SearchSpace
    ev_a: CachedEvaluator
    ev_b: CachedEvaluator
    ev_t: CachedEvaluator
    budgets: list[tuple[str, int]]
    net: Supernet
    valid: Batch

    def describe(self) -> str:
        """The rows each score uses, for the bench's first line."""
        return (f"{self.space.num_fields} fields, sizes {self.space.candidate_sizes}; Q_A / Q_B "
                f"on {self.ev_a.labels.size} / {self.ev_b.labels.size} validation rows, Q_T on "
                f"{self.ev_t.labels.size} test rows")


def load(ap: argparse.ArgumentParser, args: argparse.Namespace) -> Bench:
    """The bench's supernet and rows from ``args`` (``data``, ``supernet``, ``overrides``,
    ``test_rows``, ``budgets``); every bad input fails here, before any output."""
    torch.set_num_threads(1)
    base = configio.load(SearchConfig, None, args.overrides)
    if base.mode != "budget":
        ap.error(f"mode={base.mode}: this bench compares the budget mode's searches")
    ctx = load_context(args.data, args.supernet, rows=base.rows, seed=0)
    test = validation_subsample(ShardLoader(args.data, ctx.fm, split="test", shuffle=False),
                                args.test_rows, 0)
    budgets = [(text, Budget.parse(text).resolve(ctx.space, d_base=base.d_base))
               for text in args.budgets.split(",")]
    valid = ShardLoader(args.data, ctx.fm, split="valid", shuffle=False).full_batch()
    return Bench(base, ctx.space, ctx.evaluator_a, ctx.evaluator_b,
                 CachedEvaluator(ctx.net, test), budgets, ctx.net, valid)


def with_rows(bench: Bench, plan: RowPlan, seed: int) -> Bench:
    """``bench`` with its A and B rows drawn by ``plan`` with ``seed`` (the test rows stay)."""
    _, a, b = search_and_selection_rows(bench.valid, plan, seed=seed)
    return replace(bench, ev_a=CachedEvaluator(bench.net, a), ev_b=CachedEvaluator(bench.net, b))


def run_searches(bench: Bench, budget: int, cfg: SearchConfig) -> Found:
    """Ours with ``cfg``, then random search and evolution with as many distinct evaluations
    (same seed): each method's ``(history, extra candidates)``; only ours has extras."""
    state, extra = search_local(bench.ev_a, bench.space, budget, cfg)
    hist = [(tuple(r["arch"]), float(r["quality"])) for r in state.history]
    count = len({a for a, _ in hist})
    found: Found = {"ours": (hist, extra)}
    for name, fn in (("random search", random_search), ("evolution", evolutionary_search)):
        found[name] = (fn(bench.ev_a, bench.space, budget, count, cfg.seed), [])
    return found
