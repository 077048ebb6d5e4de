"""`adass-ray sweep` as a Ray job: Ray Tune over penalty strength λ × budget on one supernet.

    ray job submit --working-dir . -- python jobs/sweep_penalty.py \
        --smoke-test --out runs/sweep-smoke
    ray job submit --working-dir . -- python jobs/sweep_penalty.py \
        --data runs/demo/data --supernet runs/demo/supernet --out runs/demo/sweep \
        --budgets 0.5,0.8 [--lams 0,0.002,0.005,0.01,0.02,0.05] \
        [--retrain-best 3 --train-config configs/movielens-100k.yaml]

Arguments are those of `adass-ray sweep`; inside a job the script joins the job's cluster.
Writes pareto.csv, pareto.png and sweep.json into --out; --resume restores a killed sweep.
"""

from __future__ import annotations

import sys

import _common  # noqa: F401  (puts the package on sys.path)

from adass_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))
