"""Thin Celery tasks of the audit trail.

Task names keep the ``identity.tasks.`` prefix they had before the audit trail became an app
of its own, so messages already queued and the beat schedule stay valid."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task
from django.core.cache import cache

log = logging.getLogger(__name__)

# The last scheduled verification's result, in the cache every process shares (Redis when
# deployed), so the web processes' /metrics can report it (config.observability).
LAST_VERIFICATION_KEY = "audit:last-verification"


@shared_task(name="identity.tasks.audit_verify_all")
def audit_verify_all() -> dict[str, object]:
    """Verify every tenant's audit chain (scheduled hourly by celery beat)."""
    from identity.audit.services import audit_verify_all_chains

    reports = audit_verify_all_chains()
    broken = [r for r in reports if not r.ok]
    for report in broken:
        log.error(
            "audit chain of %s broken at event %s: %s", report.tenant_handle, report.broken_seq, report.reason
        )
    result = {"at": time.time(), "tenants": {r.tenant_handle: r.ok for r in reports}}
    try:
        cache.set(LAST_VERIFICATION_KEY, result, timeout=None)
    except Exception:  # the cache being down must not fail the verification
        log.warning("audit verification: cannot record the result for /metrics", exc_info=True)
    return {"tenants": len(reports), "broken": [r.tenant_handle for r in broken]}


def audit_last_verification_result() -> dict[str, Any] | None:
    """``{"at": <unix time>, "tenants": {handle: ok}}`` of the last scheduled verification."""
    found = cache.get(LAST_VERIFICATION_KEY)
    return found if isinstance(found, dict) else None
