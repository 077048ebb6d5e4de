#!/usr/bin/env bash
# Install (if needed) and run the test suite. CI runs exactly this script.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m slow` for the long checks.
# pytest keeps only the last -m it is given, so a user's -m would silently replace the default
# "not slow": a -m EXPR that does not mention slow becomes -m "not slow and (EXPR)"; one that
# does (-m slow, -m "slow or not slow") is used as given.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 MLFLOW_DISABLE_TELEMETRY=true
.venv/bin/python -m ruff check adass_ray tests bench jobs
.venv/bin/python -m mypy adass_ray
args=()
while (($#)); do
  case "$1" in
    -m) expr="${2-}"; shift $(($# > 1 ? 2 : 1)) ;;
    -m*) expr="${1#-m}"; shift ;;
    *) args+=("$1"); shift; continue ;;
  esac
  if [[ "$expr" == *slow* ]]; then args+=(-m "$expr"); else args+=(-m "not slow and ($expr)"); fi
done
exec .venv/bin/python -m pytest -q -p no:cacheprovider ${args[@]+"${args[@]}"}
