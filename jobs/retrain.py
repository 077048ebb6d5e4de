"""`adass-ray retrain` as a Ray job.

    ray job submit --working-dir . -- python jobs/retrain.py --help

Arguments are those of `adass-ray retrain`; inside a job the script joins the job's cluster.
"""

from __future__ import annotations

import sys

import _common  # noqa: F401  (puts the package on sys.path)

from adass_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["retrain", *sys.argv[1:]]))
