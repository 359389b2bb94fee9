from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from identity.audit.retention import PurgeRefused, audit_purge_tenant
from organizations.models import Organization
from organizations.selectors import tenant_get


class Command(BaseCommand):
    help = (
        "Export audit events older than the retention period (ACTAS_AUDIT_RETENTION_DAYS) to JSON "
        "Lines, one file per tenant, then delete exactly those events; the chain keeps a "
        "checkpoint so audit_verify still verifies what remains."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--export-dir", required=True, help="Directory for the JSON Lines exports.")
        parser.add_argument("--tenant", help="Tenant handle; all tenants when omitted.")
        parser.add_argument(
            "--days", type=int, help="Retention in days (default: ACTAS_AUDIT_RETENTION_DAYS; 0 keeps all)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Report what would go; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"] if options.get("days") is not None else settings.ACTAS_AUDIT_RETENTION_DAYS
        if not days or days <= 0:
            self.stdout.write("Audit retention is off (keep forever): nothing to purge.")
            return
        cutoff = timezone.now() - dt.timedelta(days=days)
        if options.get("tenant"):
            tenant = tenant_get(handle=options["tenant"])
            if tenant is None:
                raise CommandError(f"No tenant {options['tenant']!r}.")
            tenants = [tenant]
        else:
            tenants = list(Organization.objects.filter(parent__isnull=True).order_by("handle"))
        export_dir = Path(options["export_dir"])
        failed = False
        for tenant in tenants:
            try:
                result = audit_purge_tenant(
                    tenant=tenant, cutoff=cutoff, export_dir=export_dir, dry_run=options["dry_run"]
                )
            except PurgeRefused as exc:
                failed = True
                self.stderr.write(f"REFUSED {exc}")
                continue
            if result.count == 0:
                self.stdout.write(f"{tenant.handle}: nothing older than {cutoff:%Y-%m-%d %H:%M} UTC")
            elif result.dry_run:
                self.stdout.write(
                    f"{tenant.handle}: would export and delete {result.count} events "
                    f"({result.first_seq}..{result.last_seq}, {result.first_at} .. {result.last_at})"
                )
            else:
                self.stdout.write(
                    f"{tenant.handle}: exported and deleted {result.count} events "
                    f"({result.first_seq}..{result.last_seq}) to {result.export_path} "
                    f"(sha256 {result.export_sha256})"
                )
        if failed:
            raise CommandError("audit purge refused for at least one tenant (see above)")
