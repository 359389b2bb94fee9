"""Create actas's benchmark client_credentials application (run by bench/run.py through
`manage.py shell`). Writes its credentials as JSON to $BENCH_OUT."""

import json
import os
from pathlib import Path

from identity.models import Application
from identity.services.applications import application_create
from organizations.selectors import tenant_get

CLIENT_ID = "bench-cc"
CLIENT_SECRET = "bench-cc-secret-0123456789abcdef0123456789"

root = tenant_get(handle="acme")
if root is None:
    raise SystemExit("tenant acme is missing: run manage.py seed_demo first")
if not Application.objects.filter(client_id=CLIENT_ID).exists():
    application_create(
        actor=None,
        org=root,
        name="Bench client credentials",
        client_type=Application.CLIENT_CONFIDENTIAL,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        grant_types=[Application.GRANT_CLIENT_CREDENTIALS_TYPE],
    )
Path(os.environ["BENCH_OUT"]).write_text(json.dumps({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}))
