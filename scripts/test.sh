#!/usr/bin/env bash
# Run the test suite: scripts/test.sh [pytest arguments...]
#
# Creates the virtual environment if missing ($VENV, default .venv, with scripts/python.sh's
# interpreter), installs the project with its dev extras, then runs
#     python -m pytest "$@"
# with DEBUG=1 and a test SECRET_KEY, from the project root.
#
# Embedded by default (SQLite, eager Celery). To test against real services, set them; they
# are passed through unchanged:
#     DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
#     CELERY_BROKER_URL=redis://127.0.0.1:6379/0 REDIS_URL=redis://127.0.0.1:6379/1 \
#     REQUIRE_SERVICES=1 scripts/test.sh          # (what .ci/run does)
# With REQUIRE_SERVICES=1 a missing service fails the run instead of skipping its tests.
#
# The exit status is pytest's; "no tests collected" (pytest's 5) counts as a failure.
# The install step is skipped while pyproject.toml is unchanged since the last install into
# this environment; ACTAS_REINSTALL=1 forces it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/venv.sh
. "$ROOT/scripts/venv.sh"
ensure_venv test.sh "[dev]"

export DEBUG=1
export SECRET_KEY="actas-test-secret-key-not-for-production"

set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e

if [ "$status" -eq 5 ]; then
    echo "test.sh: FAILED: pytest collected no tests (exit code 5); a test run must run tests." >&2
fi
exit "$status"
