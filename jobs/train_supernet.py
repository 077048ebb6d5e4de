"""`adass-ray train-supernet` as a Ray job.

    ray job submit --working-dir . -- python jobs/train_supernet.py --help
    ray job submit --working-dir . -- python jobs/train_supernet.py \
        --smoke-test --out runs/smoke-train_supernet

Arguments are those of `adass-ray train-supernet`; inside a job the script joins the job's cluster.
"""

from __future__ import annotations

import sys

import _common  # noqa: F401  (puts the package on sys.path)

from adass_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["train-supernet", *sys.argv[1:]]))
