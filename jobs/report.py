"""`adass-ray report` as a Ray job: baselines, ablations, stability and ranking consistency.

    ray job submit --working-dir . -- python jobs/report.py \
        --data runs/demo/data --out runs/demo/report --seeds 3
    ray job submit --working-dir . -- python jobs/report.py \
        --data runs/demo/data --out runs/demo/report-quick --quick

Arguments are those of `adass-ray report`; every unit of work is a 1-CPU Ray task, so a larger
cluster runs more of them at once. A re-run reuses finished units.
"""

from __future__ import annotations

import sys

import _common  # noqa: F401  (puts the package on sys.path)

from adass_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
