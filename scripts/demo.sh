#!/usr/bin/env bash
# Run the demo: migrate, seed the demo tenant (DESIGN §8), serve actas on http://127.0.0.1:8000
# and beside it Pickup, the demo application (demo/pickup), on http://127.0.0.1:8765.
#
# Embedded default, no configuration needed: SQLite (db.sqlite3), Celery tasks run in-process,
# email printed to this console. Creates the virtual environment if missing ($VENV, default
# .venv, with scripts/python.sh's interpreter) and installs the project into it. Safe to run
# again: seed_demo is idempotent. ACTAS_REINSTALL=1 forces the install step.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/venv.sh
. "$ROOT/scripts/venv.sh"
ensure_venv demo.sh ""

export DEBUG=1
PY="$VENV/bin/python"

echo "demo.sh: python manage.py migrate"
"$PY" manage.py migrate --no-input

echo "demo.sh: python manage.py seed_demo"
seed_output="$("$PY" manage.py seed_demo)"
printf '%s\n' "$seed_output"
eu_console="$(printf '%s\n' "$seed_output" | grep -o 'https\?://[^ ]*/t/acme/o/[^ ]*/console/' | tail -n1 || true)"
alice_id="$("$PY" manage.py shell -v 0 -c 'from identity.models import User
print(User.objects.get(username="alice", organization__handle="acme", organization__parent=None).pk)' || true)"

echo "demo.sh: python -m demo.pickup"
ACTAS_URL=http://127.0.0.1:8000 "$PY" -m demo.pickup &
pickup_pid=$!
trap 'kill "$pickup_pid" 2>/dev/null || true' EXIT

cat <<EOF

============================================================================
 actas demo: http://127.0.0.1:8000   (password of every demo user: actas-demo-1)

   Acme Console:     http://127.0.0.1:8000/t/acme/console/
                     admin / actas-demo-1
   Acme EU Console:  ${eu_console:-(see the seed_demo output above)}
                     eu-admin / actas-demo-1

   Pickup demo app:  http://127.0.0.1:8765/
                     sign in as admin, then impersonate alice
                     (her user id: ${alice_id:-see Console > Users > alice})

   Other users: alice, bob (Acme), erin (Acme EU). Stop with Ctrl-C.
============================================================================

EOF

"$PY" manage.py runserver 127.0.0.1:8000
