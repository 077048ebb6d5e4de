"""``adass-ray search`` / ``stability`` / ``sweep``: argument parsing and the printout."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from adass_ray.cli.common import add_tracking_args, tracking_of
from adass_ray.errors import AdassError
from adass_ray.stages import smoke

LAMS = "auto"
FIXED_LAMS = "0,0.002,0.005,0.01,0.02,0.05"


def add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="stage 2: RL controllers on Ray search sizes under a budget",
        description="Overrides are key=value pairs on SearchConfig, e.g. iterations=100 "
        "lam=2 controller=lstm archs_per_iter=64.",
    )
    p.add_argument("--data", help="prepared dataset folder (the supernet's)")
    p.add_argument("--supernet", help="train-supernet output folder")
    p.add_argument(
        "--budget",
        default="0.8",
        help="embedding-parameter budget: a ratio of the uniform-16 cost (0.8), or abs:N params",
    )
    p.add_argument("--out", required=True, help="output folder (sizes.json, history.json)")
    p.add_argument("--controllers", type=int, default=None, help="parallel controller actors")
    p.add_argument("--config", help="YAML file with SearchConfig keys")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--resume", action="store_true", help="continue the search already in --out")
    p.add_argument(
        "--smoke-test", action="store_true", help="tiny data, a tiny supernet and a short search"
    )
    add_tracking_args(p)
    p.set_defaults(handler=_run_search)


def _run_search(args: argparse.Namespace) -> int:
    from adass_ray import configio
    from adass_ray.search.agent import SearchConfig
    from adass_ray.stages.search import search as stage_search

    overrides = list(args.overrides)
    if args.controllers is not None:
        overrides.append(f"controllers={args.controllers}")
    if args.smoke_test:
        overrides = [*smoke.SEARCH, *overrides]
    cfg = configio.load(SearchConfig, args.config, overrides)
    out = Path(args.out)
    data, supernet = args.data, args.supernet
    if args.smoke_test and not (data and supernet):
        data, supernet = smoke.smoke_supernet(out, args.verbose)
    if not (data and supernet):
        raise AdassError("--data and --supernet are required (or --smoke-test)")
    result = stage_search(
        data=Path(data),
        supernet=Path(supernet),
        out=out,
        budget=args.budget,
        cfg=cfg,
        resume=args.resume,
        tracking=tracking_of(args),
        verbose=args.verbose,
    )
    sel, doc = result["selection"], result["sizes"]
    print(f"selected: {dict(zip(doc['fields'], sel.sizes, strict=True))}")
    print(
        f"cost {sel.cost:,} params ≤ budget {sel.budget:,} "
        f"(uniform-16: {doc['uniform_baseline']['cost']:,}); "
        f"supernet AUC {sel.quality_b if sel.quality_b is not None else float('nan'):.4f} "
        "(selection half)"
        f"{' (repaired)' if sel.repaired else ''}"
    )
    print(f"sizes: {out / 'sizes.json'}   history: {out / 'history.json'}")
    return 0


def add_stability(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stability", help="repeat a search with several seeds and measure agreement")
    p.add_argument("--data", required=True, help="prepared dataset folder")
    p.add_argument("--supernet", required=True, help="train-supernet output folder")
    p.add_argument("--budget", default="0.8", help="as for `search`")
    p.add_argument(
        "--out", required=True, help="output folder (seed-<r>/ per search, stability.json)"
    )
    p.add_argument("--repeats", type=int, default=3, help="number of searches (seeds)")
    p.add_argument("--config", help="YAML file with SearchConfig keys")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="SearchConfig overrides")
    add_tracking_args(p)
    p.set_defaults(handler=_run_stability)


def _run_stability(args: argparse.Namespace) -> int:
    from adass_ray import configio
    from adass_ray.search.agent import SearchConfig
    from adass_ray.stages.search import stability as stage_stability

    cfg = configio.load(SearchConfig, args.config, args.overrides)
    rep = stage_stability(
        data=Path(args.data),
        supernet=Path(args.supernet),
        out=Path(args.out),
        budget=args.budget,
        cfg=cfg,
        repeats=args.repeats,
        tracking=tracking_of(args),
        verbose=args.verbose,
    )
    print(
        f"{args.repeats} searches: exact agreement {rep['agreement']:.3f}, mean |log2 ratio| "
        f"{rep['mean_abs_log2_diff']:.3f}, Kendall tau {rep['kendall_tau']:.3f}"
    )
    print(f"report: {Path(args.out) / 'stability.json'}")
    return 0


def add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="Ray Tune over penalty strength λ × budget on one supernet: the Pareto front",
        description="Every trial searches the same frozen supernet with its own λ and budget. "
        "Writes "
        "pareto.csv, pareto.png and sweep.json into --out and logs them to the sweep's "
        "MLflow run (each trial a child run). Overrides are SearchConfig key=value pairs.",
    )
    p.add_argument("--data", help="prepared dataset folder (the supernet's)")
    p.add_argument("--supernet", help="train-supernet output folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--lams", default=LAMS,
        help="comma-separated λ: AUC traded per unit of cost/budget, e.g. "
        f"{FIXED_LAMS}; 'auto' (default): 0 and up to 5 values scaled to this supernet's "
        "uniform sizes, from the costliest architecture that fits towards the cheapest, plus "
        "one where no field's first step up from the cheapest architecture pays"
    )
    p.add_argument(
        "--budgets",
        default="0.5,0.8",
        help="comma-separated budgets, as for `search` (default 0.5,0.8)",
    )
    p.add_argument(
        "--retrain-best",
        type=int,
        default=0,
        metavar="SEEDS",
        help="retrain the winner (highest supernet AUC) from scratch with this many seeds",
    )
    p.add_argument(
        "--train-config", help="YAML TrainConfig for --retrain-best (use the supernet's config)"
    )
    p.add_argument(
        "--cpus-per-trial", type=float, default=1.0, help="CPUs each trial reserves (default 1)"
    )
    p.add_argument("--config", help="YAML file with SearchConfig keys")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="SearchConfig overrides")
    p.add_argument(
        "--resume", action="store_true", help="restore a killed sweep in --out (Tuner.restore)"
    )
    p.add_argument(
        "--smoke-test", action="store_true", help="tiny data, a tiny supernet and 3 short trials"
    )
    add_tracking_args(p)
    p.set_defaults(handler=_run_sweep)


def _run_sweep(args: argparse.Namespace) -> int:
    from adass_ray import configio
    from adass_ray.search.agent import SearchConfig
    from adass_ray.stages.sweep import sweep as stage_sweep
    from adass_ray.train.config import TrainConfig

    overrides = list(args.overrides)
    train_overrides: list[str] = []
    if args.smoke_test:
        overrides = [*smoke.SWEEP, *overrides]
        train_overrides = list(smoke.TRAIN)
        if (args.lams, args.budgets) == (LAMS, "0.5,0.8"):  # unless given: 3 trials
            args.lams, args.budgets = smoke.SWEEP_GRID
    lams: tuple[float, ...] | None = None
    if args.lams.strip() != "auto":
        try:
            lams = tuple(float(x) for x in args.lams.split(",") if x.strip())
        except ValueError:
            raise AdassError(
                f"--lams {args.lams!r}: expected 'auto' or comma-separated numbers, "
                f"e.g. {FIXED_LAMS}"
            ) from None
    budgets = tuple(b.strip() for b in args.budgets.split(",") if b.strip())
    cfg = configio.load(SearchConfig, args.config, overrides)
    train_cfg = (
        configio.load(TrainConfig, args.train_config, train_overrides)
        if args.retrain_best
        else None
    )
    out = Path(args.out)
    data, supernet = args.data, args.supernet
    if args.smoke_test and not (data and supernet):
        data, supernet = smoke.smoke_supernet(out, args.verbose)
    if not (data and supernet):
        raise AdassError("--data and --supernet are required (or --smoke-test)")
    summary = stage_sweep(
        data=Path(data),
        supernet=Path(supernet),
        out=out,
        lams=lams,
        budgets=budgets,
        cfg=cfg,
        resume=args.resume,
        tracking=tracking_of(args),
        verbose=args.verbose,
        retrain_best=args.retrain_best,
        train_cfg=train_cfg,
        cpus_per_trial=args.cpus_per_trial,
    )
    print(
        f"{len(summary['trials'])} trials; Pareto front ({len(summary['front'])} points, "
        "embedding params ↓, "
        f"supernet validation AUC ↑):"
    )
    from adass_ray.stages.sweep import TRIAL_PREFIX

    by_key = {f"{TRIAL_PREFIX}{r['key']}": r for r in summary["trials"]}
    by_key.update({r["key"]: r for r in summary["selections"]})
    from_pool = 0
    for key in summary["front"]:
        if key not in by_key:  # another architecture of the pooled short lists
            from_pool += 1
            continue
        r = by_key[key]
        print(f"  {key:<30} {int(r['cost']):>10,} params  AUC {r['quality']:.4f}")
    if from_pool:
        print(f"  + {from_pool} more from the pooled short lists, between the λ picks "
              "(every point: pareto.csv)")
    print(f"winner: {summary['winner']}")
    grid = ", ".join(f"{x:g}" for x in summary["lams"])
    print(f"λ grid{' (auto)' if summary['lams_auto'] else ''}: {grid}; Spearman(λ, cost) "
          + ", ".join(f"{b} B: {r:+.2f}" if math.isfinite(r) else f"{b} B: n/a (constant)"
                      for b, r in summary["spearman_lam_cost"].items()))
    reach = max(int(r["budget_params"]) for r in summary["selections"])
    missed = [u["size"] for u in summary["uniform_covered"] if u["covered_by"] is None
              and u["cost"] <= reach and math.isfinite(u["quality"])]
    if missed:
        print(f"uniform sizes the front does not match at equal cost: {missed}")
    if "winner_retrained" in summary:
        w = summary["winner_retrained"]
        print(
            f"winner retrained: test AUC {w['test_auc_mean']:.4f} ± {w['test_auc_std']:.4f} "
            f"({len(w['seeds'])} seeds) → {out / 'best'}"
        )
    print(f"front: {out / 'pareto.csv'}  plot: {out / 'pareto.png'}  all: {out / 'sweep.json'}")
    return 0
