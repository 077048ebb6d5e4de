"""``adass-ray run`` (the whole pipeline) and ``report`` (the harness): parsing and printout."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from adass_ray.cli.common import add_tracking_args, tracking_of
from adass_ray.errors import AdassError
from adass_ray.stages import smoke

if TYPE_CHECKING:
    from adass_ray.stages.pipeline import DataInput


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="the whole pipeline: a built-in dataset (the demo), a prepared folder or a raw file",
        description="prepare → supernet → search → retrain (searched and uniform sizes) → the "
        "linear floor → report.json. Data: --source NAME (default movielens-100k), --data DIR "
        "(a prepared folder) or --input FILE [--format F] [--schema S | --label COL]; a CSV or "
        "parquet file without --schema gets an inferred schema, written to OUT/schema.yaml.",
    )
    p.add_argument("--source", default=None,
                   help="built-in dataset or 'synthetic' (default movielens-100k)")
    p.add_argument("--data", help="a prepared dataset folder (from `adass-ray prepare`)")
    p.add_argument("--input", help="a raw file (or parquet folder) to prepare")
    p.add_argument("--format", choices=("csv", "parquet", "criteo", "avazu"),
                   help="format of --input (default: from its suffix)")
    p.add_argument("--schema", help="YAML schema of --input (default: inferred for csv/parquet)")
    p.add_argument("--label", help="label column of --input when the schema is inferred")
    p.add_argument("--out", default="runs/demo", help="output folder (stages reuse what is there)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--config", help="YAML TrainConfig (default: configs/<source>.yaml when it exists)"
    )
    p.add_argument(
        "--budget", default="0.8", help="search budget (ratio of the uniform-16 cost, or abs:N)"
    )
    p.add_argument(
        "--seeds", type=int, default=3, help="retraining seeds for searched and uniform sizes"
    )
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="TrainConfig overrides; SearchConfig ones prefixed search., e.g. "
                   "search.occam=0.5")
    p.add_argument("--smoke-test", action="store_true", help="tiny synthetic data and a tiny run")
    p.add_argument(
        "--dry-run", action="store_true",
        help="prepare the data, print the supernet's and the retrained models' memory per "
        "worker and stop",
    )
    add_tracking_args(p)
    p.set_defaults(handler=_run_pipeline)


def _check_train_settings(config: str | None, inp: DataInput,
                          overrides: list[str]) -> None:
    """Load the training settings once before any stage runs, so a bad key or value is one
    line and exit 2 with nothing written; skipped where the config depends on the prepared
    folder's dataset name (``--data`` without ``--config``), which the pipeline checks later."""
    from adass_ray import configio
    from adass_ray.stages.pipeline import default_config
    from adass_ray.train.config import TrainConfig

    if config is None and inp.data is not None:
        return
    shipped = default_config(inp.source) if inp.source and not inp.input else None
    configio.load(TrainConfig, config or shipped, overrides)


def _run_pipeline(args: argparse.Namespace) -> int:
    from adass_ray import configio
    from adass_ray.search.agent import SearchConfig
    from adass_ray.stages import pipeline
    from adass_ray.tracking.mlflow import ui_url
    from adass_ray.tracking.uri import resolve_tracking_uri

    overrides = [o for o in args.overrides if not o.startswith("search.")]
    search_overrides = [o[len("search."):] for o in args.overrides if o.startswith("search.")]
    configio.load(SearchConfig, None, search_overrides)  # a bad key: one line, before any work
    seeds = args.seeds
    inp = pipeline.DataInput(
        source=args.source,
        data=Path(args.data) if args.data else None,
        input=Path(args.input) if args.input else None,
        fmt=args.format,
        schema=Path(args.schema) if args.schema else None,
        label=args.label,
    )
    if not (inp.source or inp.data or inp.input):
        inp = replace(inp, source="movielens-100k")
    inp.check()  # a bad combination: one line, exit 2, before anything starts
    if args.smoke_test:
        if inp.source not in (None, "movielens-100k", "synthetic"):
            raise AdassError("--smoke-test runs on its own tiny synthetic data; drop --source")
        inp = replace(inp, source="synthetic") if inp.source else inp
        overrides = [*smoke.TRAIN, *overrides]
        search_overrides = [*smoke.PIPELINE_SEARCH, *search_overrides]
        seeds = min(seeds, smoke.PIPELINE_SEEDS)
    _check_train_settings(args.config, inp, overrides)
    if args.dry_run:
        return _dry_run(args, overrides, inp)
    result = pipeline.run(
        data_input=inp,
        out=args.out,
        seed=args.seed,
        config=args.config,
        overrides=tuple(overrides),
        search_overrides=tuple(search_overrides),
        budget=args.budget,
        seeds=seeds,
        tracking=tracking_of(args),
        verbose=args.verbose,
        rows=smoke.PIPELINE_ROWS if args.smoke_test else 100_000,
    )
    fm, rep = result.feature_map, result.metrics["report"]
    print(
        f"data:      {result.data} ({fm.name}: {len(fm.fields)} fields, "
        f"{sum(s.rows for s in fm.splits.values()):,} rows)"
    )
    print(f"supernet:  {result.stages['supernet'] / 'model.pt'}")
    print(f"sizes:     {result.stages['search'] / 'sizes.json'}  {rep['sizes']}")
    for name in ("searched", "uniform"):
        print(
            f"{name + ':':<10} {rep[f'{name}_embedding_params']:>9,} embedding params, val AUC "
            f"{rep.get(f'{name}_val_auc_mean', float('nan')):.4f}, test AUC "
            f"{rep[f'{name}_test_auc_mean']:.4f} ± {rep[f'{name}_test_auc_std']:.4f} "
            f"({seeds} seeds); "
            f"models in {result.stages[f'retrain-{name}']}"
        )
    print(
        f"{'floor:':<10} one-hot logistic regression, val AUC {rep['floor_val_auc_mean']:.4f}, "
        f"test AUC {rep['floor_test_auc_mean']:.4f} ± {rep['floor_test_auc_std']:.4f} "
        f"({seeds} seeds)"
    )
    if result.schema:
        print(f"schema:    {result.schema} (inferred; edit it and pass --schema to change it)")
    print(f"report:    {result.out / 'report.json'} (budget {rep['budget']:,} params)")
    for message in result.warnings:
        print(f"WARNING:   {message}")
    if not args.no_tracking:
        uri = resolve_tracking_uri(args.tracking_uri)
        experiment = args.experiment or fm.name
        print(f"MLflow:    {uri} (experiment {experiment!r}); browse with:")
        print(f"           mlflow ui --backend-store-uri {uri}")
        link = ui_url(uri, experiment)
        if link:  # the model-training view with AUC / logloss / params columns first
            print(f"           then open {link}")
    return 0


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="evaluation harness: baselines, ablations, stability, ranking consistency",
        description="Every method's sizes under each budget, retrained from scratch for each "
        "seed with the same config; writes report.md, results.json, auc_vs_params.png and "
        "sizes_heatmap.png into --out. "
        "Finished units are reused on a re-run.",
    )
    p.add_argument("--data", required=True, help="prepared dataset folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seeds", type=int, default=3, help="seeds per method (default 3)")
    p.add_argument(
        "--budgets",
        default="0.25,0.5,0.8",
        help="comma-separated budgets, as for `search` (default 0.25,0.5,0.8)",
    )
    p.add_argument("--budget", default=None, help="one budget (same as --budgets with one value)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI-sized: 2 epochs, short searches, one budget, no ablations "
        "(checks the harness, not the method)",
    )
    p.add_argument(
        "--no-ablations", action="store_true", help="skip our method's ablations (5 more supernets)"
    )
    p.add_argument(
        "--methods", default="",
        help="comma-separated method names to run (ours is always included; default: all)")
    p.add_argument(
        "--no-retrain", action="store_true",
        help="compare the searches on Q_B percentiles only (no stand-alone retraining, no panel)")
    p.add_argument(
        "--panel", type=int, default=12, help="architectures in the ranking-consistency panel"
    )
    p.add_argument(
        "--config", help="YAML TrainConfig (default: configs/<dataset>.yaml when it exists)"
    )
    p.add_argument("--search-config", help="YAML SearchConfig")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="TrainConfig overrides; SearchConfig ones prefixed search., e.g. search.iterations=30",
    )
    add_tracking_args(p)
    p.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from adass_ray import configio
    from adass_ray.data.feature_map import FeatureMap
    from adass_ray.harness.run import run_report
    from adass_ray.search.agent import SearchConfig
    from adass_ray.stages.pipeline import default_config
    from adass_ray.train.config import TrainConfig

    fm = FeatureMap.load(args.data)
    train_over = [o for o in args.overrides if not o.startswith("search.")]
    search_over = [o[len("search.") :] for o in args.overrides if o.startswith("search.")]
    train_cfg = configio.load(TrainConfig, args.config or default_config(fm.name), train_over)
    search_cfg = configio.load(SearchConfig, args.search_config, search_over)
    budgets = tuple(x.strip() for x in (args.budget or args.budgets).split(",") if x.strip())
    if args.quick and args.budget is None:
        budgets = budgets[-1:]  # quick: one budget
    res = run_report(
        data=Path(args.data),
        out=Path(args.out),
        train_cfg=train_cfg,
        search_cfg=search_cfg,
        budgets=budgets,
        seeds=args.seeds,
        quick=args.quick,
        ablations=not args.no_ablations,
        panel_size=args.panel,
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        retrain=not args.no_retrain,
        tracking=None if args.no_tracking else tracking_of(args),
        verbose=args.verbose,
    )
    print(
        f"{res['dataset']}: {len(res['budgets'][0]['methods'])} methods x "
        f"{len(res['seeds'])} seeds x {len(budgets)} budgets, {res['seconds'] / 60:.1f} min"
    )
    for per in res["budgets"]:
        print(f"budget {per['spec']} ({per['budget']:,} params):")
        for r in per["methods"]:
            vs = r.get("vs_ours_auc")
            tail = f"  ours − it {vs['mean']:+.4f} ({vs['verdict']})" if vs else ""
            print(
                f"  {r['method']:<34} {r['embedding_params_mean']:>11,.0f} params  test AUC "
                f"{r['test_auc_mean']:.4f} ± {r['test_auc_std']:.4f}  Q_B pct "
                f"{r['percentile_mean']:5.1f}{tail}"
            )
    for message in res.get("floor_warnings", []):
        print(f"WARNING: {message}")
    rk = res["ranking"] or {"seed_tau": float("nan"), "variants": []}
    print(
        f"ranking: seed-to-seed tau {rk['seed_tau']:.3f}; "
        + ", ".join(f"{r['variant']} {r['kendall_tau']:.3f}" for r in rk["variants"])
    )
    print(
        f"report: {Path(args.out) / 'report.md'}  "
        "(results.json, auc_vs_params.png, sizes_heatmap.png)"
    )
    return 0


def _dry_run(args: argparse.Namespace, overrides: list[str], inp: DataInput) -> int:
    """Prepare the data (the pipeline's first stage), then print both training plans."""
    from adass_ray import configio
    from adass_ray.stages import pipeline
    from adass_ray.train.config import TrainConfig
    from adass_ray.train.memory import available_per_worker, check_fits, plan_memory

    rows = smoke.PIPELINE_ROWS if args.smoke_test else 100_000
    _, fm, _ = pipeline.prepare_input(inp, Path(args.out), seed=args.seed, rows=rows)
    shipped = pipeline.default_config(inp.source or fm.name) if not inp.input else None
    cfg = configio.load(TrainConfig, args.config or shipped, [f"seed={args.seed}", *overrides])
    available = available_per_worker(cfg)
    # by default the searched sizes cost a fraction of the uniform baseline, so its plan bounds
    # both retraining stages
    plans = [plan_memory(fm, cfg, "supernet"),
             plan_memory(fm, cfg, "fixed", (cfg.model.d,) * fm.num_fields)]
    for plan in plans:
        print(plan.summary())
    print(f"available ≈ {available / (1 << 30):.2f} GiB per worker")
    for plan in plans:
        check_fits(plan, available)
    print("fits: the pipeline would start (nothing was trained: --dry-run)")
    return 0
