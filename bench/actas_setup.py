"""Create actas's benchmark client_credentials application (run by bench/run.py through
`manage.py shell`). Writes its credentials as JSON to $BENCH_OUT, with the ids of the demo
users `alice` and `bob` and of the organization Acme EU (for the impersonation cases)."""

import json
import os
from pathlib import Path

from identity.models import Application, User
from identity.services.applications import application_create
from organizations.models import Organization
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
users = {u.username: str(u.pk) for u in User.objects.filter(organization=root, username__in=["alice", "bob"])}
eu = Organization.objects.get(tenant=root, handle="acme-eu")
out = {
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "alice_id": users["alice"],
    "eu_id": str(eu.pk),
}
out["bob_id"] = users["bob"]
# How long a subject token lives (run.py mints right before each cell and the soak).
out["subject_token_expiry"] = Application.objects.get(client_id="pickup").subject_token_expiry
Path(os.environ["BENCH_OUT"]).write_text(json.dumps(out))
