from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError
from django.db.models import Max

from identity.models import Application
from identity.oauth import tokens


class Command(BaseCommand):
    # Creates what the signing key check asks for: it must run while that check fails, and
    # before the first migrate.
    requires_system_checks: list[str] = []
    help = (
        "Create a new active JWT signing key. The previous key stays published in the JWKS until "
        "every token it signed has expired; keys past that are removed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--alg", choices=tokens.SUPPORTED_ALGORITHMS, default="RS256")
        parser.add_argument(
            "--publish-old-for",
            type=int,
            default=None,
            help="Seconds to keep publishing the previous key (default: the longest access, ID or "
            "subject token lifetime of any application, plus a minute).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        seconds = options["publish_old_for"]
        if seconds is None:
            try:
                longest = Application.objects.aggregate(
                    a=Max("access_token_lifetime"), i=Max("id_token_lifetime"), s=Max("subject_token_expiry")
                )
            except DatabaseError:  # not migrated yet: no application has issued a token
                longest = {}
            seconds = max([v for v in longest.values() if v is not None] or [3600]) + 60
        kid = tokens.rotate_signing_key(alg=options["alg"], publish_old_for=dt.timedelta(seconds=seconds))
        self.stdout.write(
            f"New active signing key {kid} ({options['alg']}) in {tokens.keys_dir()}; "
            f"the previous key stays published for {seconds} s."
        )
