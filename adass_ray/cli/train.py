"""``adass-ray train-supernet`` / ``train`` / ``retrain``: argument parsing and the printout."""

from __future__ import annotations

import argparse
from pathlib import Path

from adass_ray.cli.common import add_tracking_args, tracking_of
from adass_ray.errors import AdassError
from adass_ray.stages import smoke


def add_train(sub: argparse._SubParsersAction, name: str) -> None:
    supernet = name == "train-supernet"
    p = sub.add_parser(
        name,
        help="stage 1: train the supernet (Ray Train)"
        if supernet
        else "train a stand-alone model with fixed sizes (uniform baseline or a sizes.json)",
        description="Overrides are key=value pairs on TrainConfig, e.g. epochs=3 "
        "model.backbone=deepfm "
        "sampler.name=uniform num_workers=2.",
    )
    p.add_argument(
        "--data", help="prepared dataset folder (omit with --smoke-test: tiny synthetic data)"
    )
    p.add_argument(
        "--out", required=True, help="output folder (model.pt, metrics.json, history.json)"
    )
    p.add_argument("--config", help="YAML file with TrainConfig keys")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--resume", action="store_true", help="continue the run already in --out")
    p.add_argument("--smoke-test", action="store_true", help="a tiny run in seconds")
    _add_dry_run(p)
    if not supernet:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--sizes", help="sizes.json (field → size) from a search")
        g.add_argument(
            "--uniform", type=int, default=None, help="one size for every field (default: model.d)"
        )
    add_tracking_args(p)
    p.set_defaults(handler=_run_train, kind="supernet" if supernet else "fixed")


def _run_train(args: argparse.Namespace) -> int:
    from adass_ray import configio
    from adass_ray.stages.train import train as stage_train
    from adass_ray.train.config import TrainConfig

    overrides = [*(smoke.TRAIN if args.smoke_test else []), *args.overrides]
    cfg = configio.load(TrainConfig, args.config, overrides)
    data = Path(args.data) if args.data else None
    if data is None:
        if not args.smoke_test:
            raise AdassError("--data is required (or --smoke-test for tiny synthetic data)")
        data = smoke.smoke_data(Path(args.out))
    if args.dry_run:
        return _dry_run(data, cfg, args.kind, getattr(args, "sizes", None),
                        getattr(args, "uniform", None))
    result = stage_train(
        data=data,
        out=Path(args.out),
        cfg=cfg,
        kind=args.kind,
        sizes_file=getattr(args, "sizes", None),
        uniform=getattr(args, "uniform", None),
        resume=args.resume,
        tracking=tracking_of(args),
        verbose=args.verbose,
    )
    keys = ("test_auc", "test_logloss", "embedding_params", "total_params", "supernet_params")
    shown = {k: round(result.metrics[k], 4) for k in keys if k in result.metrics}
    print(f"{args.kind} model: {result.out / 'model.pt'}")
    print(f"metrics: {shown}")
    return 0


def add_retrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrain",
        help="train the stand-alone model with fixed sizes over several seeds",
        description="Overrides are key=value pairs on TrainConfig (use the same config "
        "as the uniform baseline so both get the same epochs).",
    )
    p.add_argument("--data", required=True, help="prepared dataset folder")
    p.add_argument("--out", required=True, help="output folder (seed-<s>/ per seed, summary.json)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--sizes", help="sizes.json (field → size)")
    g.add_argument("--uniform", type=int, help="one size for every field (the uniform baseline)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    p.add_argument(
        "--inherit",
        default=None,
        metavar="SUPERNET_DIR",
        help="start from the supernet's weights for these sizes instead of from scratch",
    )
    p.add_argument("--config", help="YAML file with TrainConfig keys")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    _add_dry_run(p)
    add_tracking_args(p)
    p.set_defaults(handler=_run_retrain)


def _run_retrain(args: argparse.Namespace) -> int:
    from adass_ray import configio
    from adass_ray.stages.train import retrain as stage_retrain
    from adass_ray.train.config import TrainConfig

    cfg = configio.load(TrainConfig, args.config, args.overrides)
    if args.dry_run:
        return _dry_run(Path(args.data), cfg, "fixed", args.sizes, args.uniform)
    summary = stage_retrain(
        data=Path(args.data),
        out=Path(args.out),
        cfg=cfg,
        sizes_file=args.sizes,
        uniform=args.uniform,
        seeds=args.seeds,
        init_from=Path(args.inherit) if args.inherit else None,
        tracking=tracking_of(args),
        verbose=args.verbose,
    )
    print(
        f"embedding params {summary['embedding_params']:,}; test AUC "
        f"{summary['test_auc_mean']:.4f} ± {summary['test_auc_std']:.4f} "
        f"over {len(summary['seeds'])} seeds "
        f"({', '.join(f'{v:.4f}' for v in summary['test_auc'])})"
    )
    print(f"summary: {Path(args.out) / 'summary.json'}")
    return 0


def _add_dry_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run", action="store_true",
        help="check the config and print the memory each worker will need; train nothing",
    )


def _dry_run(data: Path, cfg: object, kind: str, sizes: str | None, uniform: int | None) -> int:
    """Print the memory plan; exit 2 (one line) when a worker would not fit."""
    from adass_ray.stages.train import memory_plan
    from adass_ray.train.config import TrainConfig
    from adass_ray.train.memory import available_per_worker, check_fits

    assert isinstance(cfg, TrainConfig)
    plan = memory_plan(data=data, cfg=cfg, kind=kind, sizes_file=sizes, uniform=uniform)
    available = available_per_worker(cfg)
    print(plan.summary())
    print("\n".join(plan.table()))
    print(f"  {'available':<16} {available / (1 << 30):>6.2f} GiB per worker")
    check_fits(plan, available)
    print("fits: the run would start (nothing was trained: --dry-run)")
    return 0
