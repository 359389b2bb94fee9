#!/usr/bin/env bash
# Run the token-endpoint benchmark with the project's venv. Arguments go to bench/run.py
# (--duration, --rounds, --quick, --help, ...). See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    echo "bench: .venv is missing; create it first (scripts/venv.sh or scripts/test.sh)" >&2
    exit 2
fi
exec .venv/bin/python bench/run.py "$@"
