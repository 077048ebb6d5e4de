"""`adass-ray prepare` as a Ray job.

    ray job submit --working-dir . -- python jobs/prepare.py --help
    ray job submit --working-dir . -- python jobs/prepare.py --smoke-test --out runs/smoke-prepare

Arguments are those of `adass-ray prepare`; inside a job the script joins the job's cluster.
"""

from __future__ import annotations

import sys

import _common  # noqa: F401  (puts the package on sys.path)

from adass_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
