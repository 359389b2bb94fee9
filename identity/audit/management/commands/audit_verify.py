from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from identity.audit.services import audit_verify_all_chains, audit_verify_chain
from organizations.selectors import tenant_get


class Command(BaseCommand):
    help = "Verify the audit hash chain of one tenant (or all) and name the first broken link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Tenant handle; all tenants when omitted.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options.get("tenant"):
            tenant = tenant_get(handle=options["tenant"])
            if tenant is None:
                raise CommandError(f"No tenant {options['tenant']!r}.")
            reports = [audit_verify_chain(tenant=tenant)]
        else:
            reports = audit_verify_all_chains()
        broken = False
        for report in reports:
            if report.ok:
                purged = f" (events 1-{report.first_seq - 1} purged)" if report.first_seq > 1 else ""
                self.stdout.write(
                    f"{report.tenant_handle}: intact, {report.events} events{purged}, head {report.head_hash}"
                )
            else:
                broken = True
                self.stdout.write(
                    f"{report.tenant_handle}: BROKEN at event {report.broken_seq}: {report.reason}"
                )
        if broken:
            raise CommandError("audit chain verification failed")
