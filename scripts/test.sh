#!/usr/bin/env bash
# Install (if needed) and run the test suite. CI runs exactly this script.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m slow` for the long checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 MLFLOW_DISABLE_TELEMETRY=true
.venv/bin/python -m ruff check adass_ray tests bench jobs
.venv/bin/python -m mypy adass_ray
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
