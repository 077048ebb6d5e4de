"""`adass-ray stability` as a Ray job.

    ray job submit --working-dir . -- python jobs/stability.py --help

Arguments are those of `adass-ray stability`; inside a job the script joins the job's cluster.
"""

from __future__ import annotations

import sys

import _common  # noqa: F401  (puts the package on sys.path)

from adass_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["stability", *sys.argv[1:]]))
