#!/usr/bin/env bash
# Build the documentation offline, warnings as errors; every gallery example runs.
# Installs nothing: needs the "docs" extra (pip install -e ".[docs]").
# Usage: docs/build.sh [extra sphinx options, e.g. -E for a clean rebuild]
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=agg
start=$(date +%s)
python -m sphinx -W --keep-going -b html "$@" docs docs/_build/html
echo "documentation built in $(( $(date +%s) - start )) s: docs/_build/html/index.html"
