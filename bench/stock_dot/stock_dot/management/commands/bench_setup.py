"""Create the benchmark's stock DOT applications and user; write their credentials as JSON."""

import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from oauth2_provider.models import Application

CC_SECRET = "stock-cc-secret-0123456789abcdef0123456789"
AC_SECRET = "stock-ac-secret-0123456789abcdef0123456789"
USERNAME, PASSWORD = "bench-user", "bench-password-1"


class Command(BaseCommand):
    help = "Create a client_credentials app, a confidential authorization-code app and a user."

    def add_arguments(self, parser):
        parser.add_argument("--redirect-uri", required=True)
        parser.add_argument("--out", required=True, help="JSON file to write the credentials to")

    def handle(self, *args, **options):
        Application.objects.filter(name__startswith="bench-").delete()
        user_model: Any = get_user_model()  # this project's auth.User (not actas's)
        user_model.objects.filter(username=USERNAME).delete()
        user = user_model.objects.create_user(username=USERNAME, password=PASSWORD)
        cc = Application.objects.create(
            name="bench-cc",
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            client_secret=CC_SECRET,
            hash_client_secret=False,
        )
        ac = Application.objects.create(
            name="bench-ac",
            user=user,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
            redirect_uris=options["redirect_uri"],
            client_secret=AC_SECRET,
            hash_client_secret=False,
            skip_authorization=True,
            algorithm=Application.RS256_ALGORITHM,
        )
        data = {
            "cc": {"client_id": cc.client_id, "client_secret": CC_SECRET},
            "ac": {"client_id": ac.client_id, "client_secret": AC_SECRET},
            "user": {"username": USERNAME, "password": PASSWORD},
        }
        Path(options["out"]).write_text(json.dumps(data))
        self.stdout.write(f"stock DOT apps: cc={cc.client_id} ac={ac.client_id}")
