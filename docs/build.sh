#!/usr/bin/env bash
# Build the documentation offline, warnings as errors; every gallery example runs.
# Installs nothing: needs the "docs" extra (pip install -e ".[docs]").
# Usage: docs/build.sh [--clean] [extra sphinx options]
#   --clean  removes the previous build, the generated API pages and the gallery's
#            outputs first, so every page is read and every example runs again
#            (sphinx-gallery otherwise skips examples whose source did not change)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--clean" ]; then
    shift
    rm -rf docs/_build docs/auto_examples docs/api/generated docs/sg_execution_times.rst
fi
export MPLBACKEND=agg
start=$(date +%s)
python -m sphinx -W --keep-going -b html "$@" docs docs/_build/html
echo "documentation built in $(( $(date +%s) - start )) s: docs/_build/html/index.html"
