"""Reads of the audit trail itself: what an administrator of an organization may see, one
event, the fields its hash covers, the chain head and the last recorded verification.

An administrator sees the events of their organization's subtree: ``AuditEvent.org_id`` in
the subtree. Events recorded without an organization (``org_id`` null) belong to the tenant
root only. The Logs pages' filters and the events in words are in
``identity.selectors.audit_log`` (they name users, roles and applications of identity's core).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet

from identity.audit.models import AuditChainHead, AuditEvent
from identity.audit.services import GENESIS_HASH, HASHED_FIELDS, UUID_FIELDS
from organizations.models import Organization
from organizations.selectors import org_descendant_filter

VERIFY_ACTION = "audit-chain-verify"
SEQ_MAX = 2**63 - 1  # bigint: larger values would make PostgreSQL raise instead of matching nothing


def audit_events_visible(*, org: Organization) -> QuerySet[AuditEvent]:
    """The events an administrator of ``org`` may read: the whole tenant for its root,
    else the events of ``org``'s subtree."""
    tenant_id = org.tenant_id or org.pk
    qs = AuditEvent.objects.filter(tenant_id=tenant_id)
    if org.parent_id is None:
        return qs
    subtree = Organization.objects.filter(**org_descendant_filter(org, prefix="", include_self=True))
    return qs.filter(org_id__in=subtree.values("pk"))


def audit_event_get(*, org: Organization, seq: int) -> AuditEvent | None:
    if not 0 < seq <= SEQ_MAX:
        return None
    return audit_events_visible(org=org).filter(seq=seq).first()


def audit_event_fields(event: AuditEvent) -> dict[str, Any]:
    """The fields the hash covers, in the exact form the hash is computed over (UUIDs and
    times as strings), so an auditor can recompute
    ``sha256(prev_hash + "\\n" + canonical_json(fields))``."""
    values: dict[str, Any] = {}
    for name in HASHED_FIELDS:
        value = getattr(event, name)
        if name in UUID_FIELDS:
            value = str(value) if value is not None else None
        elif isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC).isoformat(timespec="microseconds")
        values[name] = value
    return values


def audit_chain_head(*, org: Organization) -> tuple[int, str]:
    """(seq, hash) of the tenant's chain head."""
    head = AuditChainHead.objects.filter(tenant_id=org.tenant_id or org.pk).first()
    return (head.seq, head.hash) if head else (0, GENESIS_HASH)


def audit_last_verification(*, org: Organization) -> AuditEvent | None:
    """The tenant's most recent recorded chain verification (whoever ran it)."""
    return (
        AuditEvent.objects.filter(tenant_id=org.tenant_id or org.pk, action=VERIFY_ACTION)
        .order_by("-seq")
        .first()
    )
