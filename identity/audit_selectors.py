"""Reads of the audit trail for the Console's Logs pages.

An administrator sees the events of their organization's subtree: ``AuditEvent.org_id`` in
the subtree. Events recorded without an organization (``org_id`` null) belong to the tenant
root only, so a child organization's administrator never sees them, nor the events of the
parent or of sibling organizations.

Pages are keyset-paginated on ``seq`` descending (``(tenant, seq)`` is unique and ``seq``
grows with time inside a tenant because writers lock the chain head).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet

from identity.models import AuditChainHead, AuditEvent, User
from identity.selectors import plan_per_call
from identity.services.audit import GENESIS_HASH, HASHED_FIELDS, UUID_FIELDS
from identity.services.users import normalise_username
from organizations.models import Organization
from organizations.selectors import org_descendant_filter

VERIFY_ACTION = "audit-chain-verify"
EXPORT_MAX_ROWS = 50_000
SEQ_MAX = 2**63 - 1  # bigint: larger values would make PostgreSQL raise instead of matching nothing


@dataclass(frozen=True)
class AuditFilters:
    """What the Logs page filters on. Empty strings and None mean "any"."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    action: str = ""  # exact, or a prefix when it ends with "*"
    initiator: str = ""  # username or user id
    target_type: str = ""
    target: str = ""  # target id, or the subject's username or id
    impersonator: str = ""  # username or user id
    outcome: str = ""


@dataclass
class AuditPage:
    events: list[AuditEvent]
    next_before: int | None  # pass as ``before`` for the next (older) page
    org_names: dict[uuid.UUID, str] = field(default_factory=dict)


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _person(value: str, *, id_field: str, label_field: str, tenant_id: uuid.UUID) -> Q:
    """A person named by id or username: the id recorded on the row, or the label captured
    when it was written ("username" or "username (Display Name)"), or the id of a user of the
    tenant with this username (one subquery, never a query per row)."""
    pk = _as_uuid(value)
    if pk is not None:
        return Q(**{id_field: pk})
    username = normalise_username(value)
    users = User.objects.filter(organization__tenant_id=tenant_id, username=username).values("pk")
    return (
        Q(**{label_field: username})
        | Q(**{f"{label_field}__startswith": f"{username} ("})
        | Q(**{f"{id_field}__in": users})
    )


def audit_events_visible(*, org: Organization) -> QuerySet[AuditEvent]:
    """The events an administrator of ``org`` may read: the whole tenant for its root,
    else the events of ``org``'s subtree."""
    tenant_id = org.tenant_id or org.pk
    qs = AuditEvent.objects.filter(tenant_id=tenant_id)
    if org.parent_id is None:
        return qs
    subtree = Organization.objects.filter(**org_descendant_filter(org, prefix="", include_self=True))
    return qs.filter(org_id__in=subtree.values("pk"))


def audit_events_filtered(*, org: Organization, filters: AuditFilters) -> QuerySet[AuditEvent]:
    qs = audit_events_visible(org=org)
    tenant_id = org.tenant_id or org.pk
    if filters.since is not None:
        qs = qs.filter(created_at__gte=filters.since)
    if filters.until is not None:
        qs = qs.filter(created_at__lt=filters.until)
    if filters.action:
        if filters.action.endswith("*"):
            qs = qs.filter(action__startswith=filters.action.rstrip("*"))
        else:
            qs = qs.filter(action=filters.action)
    if filters.initiator:
        qs = qs.filter(
            _person(filters.initiator, id_field="actor_id", label_field="actor_label", tenant_id=tenant_id)
        )
    if filters.impersonator:
        qs = qs.filter(
            _person(
                filters.impersonator,
                id_field="impersonator_id",
                label_field="impersonator_label",
                tenant_id=tenant_id,
            )
        )
    if filters.target_type:
        qs = qs.filter(target_type=filters.target_type)
    if filters.target:
        qs = qs.filter(
            Q(target_id=filters.target)
            | _person(filters.target, id_field="subject_id", label_field="subject_label", tenant_id=tenant_id)
        )
    if filters.outcome:
        qs = qs.filter(outcome=filters.outcome)
    return qs


def audit_org_names(org_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Names of the organizations on a page: one query whatever the page size."""
    if not org_ids:
        return {}
    return dict(Organization.objects.filter(pk__in=org_ids).values_list("pk", "name"))


def audit_event_page(
    *, org: Organization, filters: AuditFilters, before: int | None = None, size: int = 25
) -> AuditPage:
    """One page, newest first, of the events ``org``'s administrators see; ``before`` is the
    ``seq`` the page starts below. Two queries (events, organization names)."""
    qs = audit_events_filtered(org=org, filters=filters)
    if before is not None:
        qs = qs.filter(seq__lt=before)
    with plan_per_call():  # time windows, prefixes, subtrees: a generic plan fits none of them
        rows = list(qs.order_by("-seq")[: size + 1])
    events = rows[:size]
    next_before = events[-1].seq if len(rows) > size else None
    names = audit_org_names({e.org_id for e in events if e.org_id is not None})
    return AuditPage(events=events, next_before=next_before, org_names=names)


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


def audit_export_rows(*, org: Organization, filters: AuditFilters) -> tuple[Iterator[AuditEvent], bool]:
    """The filtered events in chain order (oldest first), at most the newest
    :data:`EXPORT_MAX_ROWS`; and whether older matching rows were left out."""
    qs = audit_events_filtered(org=org, filters=filters)
    with plan_per_call():
        cut = list(qs.order_by("-seq").values_list("seq", flat=True)[EXPORT_MAX_ROWS : EXPORT_MAX_ROWS + 1])
    truncated = bool(cut)
    if truncated:
        qs = qs.filter(seq__gt=cut[0])
    return qs.order_by("seq").iterator(chunk_size=2000), truncated
