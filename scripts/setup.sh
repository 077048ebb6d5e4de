#!/usr/bin/env bash
# Create .venv (if needed) and install adass_ray with its pinned dependencies.
# Re-running is cheap: the install is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.adass_ray-install-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "installing adass_ray and its dependencies into .venv (first time: about a minute)…"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>/dev/null || true
  # torch is pinned exactly in pyproject.toml (a looser pin resolves to a multi-GB CUDA build).
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  rm -f .venv/.adass_ray-install-*
  touch "$stamp"
fi
