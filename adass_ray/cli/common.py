"""Arguments every tracked subcommand shares, and the tracking spec they give."""

from __future__ import annotations

import argparse

from adass_ray.tracking import TrackingSpec


def add_tracking_args(p: argparse.ArgumentParser) -> None:
    """``--tracking-uri``, ``--experiment`` and ``--no-tracking``."""
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)",
    )
    p.add_argument(
        "--experiment", default=None, help="MLflow experiment (default: the dataset name)"
    )
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")


def tracking_of(args: argparse.Namespace) -> TrackingSpec:
    """The tracking spec the tracking arguments describe."""
    return TrackingSpec(
        enabled=not args.no_tracking, uri=args.tracking_uri, experiment=args.experiment
    )
