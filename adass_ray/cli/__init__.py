"""The ``adass-ray`` command: argparse → a stage → a printout; nothing else.

Each subcommand lives in the module named after what it runs (:mod:`.data`, :mod:`.train`,
:mod:`.search`, :mod:`.run`). A user error (:class:`AdassError`) prints one line on stderr and
exits 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Callable, Sequence

from adass_ray.cli import data, run, search, train
from adass_ray.cli.progress import maybe_bars
from adass_ray.data.io import check_out_path, mark_output_dir
from adass_ray.errors import AdassError

Handler = Callable[[argparse.Namespace], int]
# OSErrors that say something about the machine (full disk, read-only or foreign folder)
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                       errno.ENAMETOOLONG}


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = argparse.ArgumentParser(
        prog="adass-ray",
        description="Per-feature embedding-size search (AdaS&S) on Ray, tracked in MLflow.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data.add_prepare(sub)
    run.add_run(sub)
    train.add_train(sub, "train-supernet")
    train.add_train(sub, "train")
    train.add_retrain(sub)
    search.add_search(sub)
    search.add_stability(sub)
    search.add_sweep(sub)
    run.add_report(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the subcommand, return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s"
        if args.verbose
        else "%(levelname)s: %(message)s",
    )
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if not args.verbose:  # MLflow's and Ray's own INFO lines are noise for a user of the CLI
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        for name in ("mlflow", "alembic", "ray", "ray.train", "ray.tune", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)
    handler: Handler = args.handler
    out = getattr(args, "out", None)
    try:
        made = out is not None and not check_out_path(out).exists()
        try:
            # bars on stderr only when it is a terminal (or ADASS_RAY_PROGRESS=1)
            with maybe_bars():
                return handler(args)
        finally:
            if made and out is not None:  # a folder this command made is ours (see MARKER_FILE)
                mark_output_dir(out)
    except AdassError as e:
        print(f"adass-ray {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        if e.errno not in _ENVIRONMENT_ERRNOS:
            raise
        # the disk or the file system, not a bug: one line (outputs are atomic: nothing half-made)
        where = f" ({e.filename})" if e.filename else ""
        print(f"adass-ray {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"adass-ray {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
