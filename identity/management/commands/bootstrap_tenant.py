from __future__ import annotations

import getpass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from identity.services.tenants import tenant_bootstrap


class Command(BaseCommand):
    help = (
        "Create a tenant: its root organization, the Console and My Account applications, the "
        "system API resources and roles, and a first administrator."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("handle", help="The tenant handle used in URLs (/t/<handle>/).")
        parser.add_argument("--name", required=True, help="The root organization's display name.")
        parser.add_argument("--admin-username", default="admin")
        parser.add_argument("--admin-email", default="")
        parser.add_argument(
            "--admin-password",
            help="The first administrator's password (asked for when omitted).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = options["admin_password"]
        if not password:
            if not options.get("interactive", True):
                raise CommandError("--admin-password is required")
            password = getpass.getpass("Password for the first administrator: ")
        try:
            system, admin = tenant_bootstrap(
                actor=None,
                handle=options["handle"],
                name=options["name"],
                admin_username=options["admin_username"],
                admin_password=password,
                admin_email=options["admin_email"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Tenant {system.tenant.handle} created; administrator {admin.username}. "
                f"Console: {settings.BASE_URL}/t/{system.tenant.handle}/console/"
            )
        )
