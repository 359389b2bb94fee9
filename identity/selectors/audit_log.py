"""Reads of the audit trail for the Console's Logs pages and My Account: filters that name
people, and the events in words with the names they refer to (users, roles, applications, API
resources), which is why they sit in identity's core and not in the audit app below it.

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from identity.audit.labels import API_CALL_ACTIONS, AuditNames, EventView, as_uuid, describe
from identity.audit.models import AuditEvent
from identity.audit.selectors import audit_events_visible
from identity.models import APIResource, Application, Role, User
from identity.selectors.users import plan_per_call
from identity.services.users import normalise_username
from organizations.models import Organization

EXPORT_MAX_ROWS = 50_000


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
    views: list[EventView] = field(default_factory=list)  # the events in words, in page order


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
    ``seq`` the page starts below, each event also in words (:func:`audit_event_views`). The
    events in one query, then at most one query per kind of name the page refers to."""
    qs = audit_events_filtered(org=org, filters=filters)
    if before is not None:
        qs = qs.filter(seq__lt=before)
    with plan_per_call():  # time windows, prefixes, subtrees: a generic plan fits none of them
        rows = list(qs.order_by("-seq")[: size + 1])
    more = len(rows) > size
    if not filters.action.startswith("resource-"):  # asked for by name: the calls themselves
        folded = _api_calls_with_their_change(rows)
        rows = [e for e in rows if e.pk not in folded]
    events = rows[:size]
    next_before = events[-1].seq if more and events else None
    views = audit_event_views(events)
    names = {e.org_id: v.org_name for e, v in zip(events, views, strict=True) if e.org_id and v.org_name}
    return AuditPage(events=events, next_before=next_before, org_names=names, views=views)


# How far apart in time the two events of one request may be (they share a transaction).
_ONE_REQUEST = dt.timedelta(minutes=1)


def _api_calls_with_their_change(events: Sequence[AuditEvent]) -> set[int]:
    """The API-call events among ``events`` (``resource-…-via-impersonation``) whose request
    also recorded the change itself (``user-profile-update`` …): one change, one entry in Logs.
    A call whose request recorded nothing else (a refused call, say) stays. One query, on the
    impersonator index, and only when the page holds such a call."""
    calls = [e for e in events if e.action in API_CALL_ACTIONS and e.request_id and e.impersonator_id]
    if not calls:
        return set()
    times = [e.created_at for e in calls]
    recorded = set(
        AuditEvent.objects.filter(
            tenant_id__in={e.tenant_id for e in calls},
            impersonator_id__in={e.impersonator_id for e in calls},
            created_at__gte=min(times) - _ONE_REQUEST,
            created_at__lte=max(times) + _ONE_REQUEST,
            request_id__in={e.request_id for e in calls},
        )
        .exclude(action__in=API_CALL_ACTIONS)
        .values_list("tenant_id", "request_id")
    )
    return {e.pk for e in calls if (e.tenant_id, e.request_id) in recorded}


def _uuids(values: set[str]) -> list[uuid.UUID]:
    return [pk for pk in (as_uuid(v) for v in values) if pk is not None]


def audit_names(events: Sequence[AuditEvent]) -> AuditNames:
    """The names the events refer to (organizations, roles, applications, API resources,
    users), each kind in one query whatever the number of events, and only for kinds some
    event refers to. Names are looked up inside the events' tenants."""
    tenants = {e.tenant_id for e in events}
    orgs: set[str] = set()
    roles: set[str] = set()
    apps: set[str] = set()
    resources: set[str] = set()
    users: set[str] = set()
    for e in events:
        data = e.data if isinstance(e.data, dict) else {}
        if e.org_id:
            orgs.add(str(e.org_id))
        if e.client_id:
            apps.add(e.client_id)
        kind = e.target_type
        if kind == "organization" and e.target_id:
            orgs.add(e.target_id)
        elif kind == "role" and e.target_id:
            roles.add(e.target_id)
        elif kind == "application" and e.target_id:
            apps.add(e.target_id)
        elif kind == "api-resource" and as_uuid(e.target_id) is not None:
            resources.add(e.target_id)
        elif kind == "user" and e.target_id and not e.subject_id:
            users.add(e.target_id)
        if e.action == "application-share" and isinstance(data.get("organizations"), list):
            orgs.update(str(o) for o in data["organizations"])
        if isinstance(data.get("resource"), str):
            resources.add(data["resource"])
    in_tenant = Q(tenant_id__in=tenants) | Q(pk__in=tenants)
    org_names = (
        {
            str(pk): name
            for pk, name in Organization.objects.filter(in_tenant, pk__in=_uuids(orgs)).values_list(
                "pk", "name"
            )
        }
        if orgs
        else {}
    )
    org_scope = Q(organization_id__in=tenants) | Q(organization__tenant_id__in=tenants)
    role_names = (
        {
            str(pk): name
            for pk, name in Role.objects.filter(org_scope, pk__in=_uuids(roles)).values_list("pk", "name")
        }
        if roles
        else {}
    )
    app_names = (
        dict(Application.objects.filter(org_scope, client_id__in=apps).values_list("client_id", "name"))
        if apps
        else {}
    )
    resource_names: dict[str, str] = {}
    if resources:
        ids = _uuids(resources)
        found = APIResource.objects.filter(
            Q(pk__in=ids) | Q(identifier__in=[r for r in resources if as_uuid(r) is None]),
            tenant_id__in=tenants,
        ).values_list("pk", "identifier", "name")
        for pk, identifier, name in found:
            resource_names[str(pk)] = name
            resource_names[identifier] = name
    user_names = (
        {
            str(pk): username
            for pk, username in User.objects.filter(org_scope, pk__in=_uuids(users)).values_list(
                "pk", "username"
            )
        }
        if users
        else {}
    )
    return AuditNames(
        organizations=org_names,
        roles=role_names,
        applications=app_names,
        api_resources=resource_names,
        users=user_names,
    )


def audit_event_views(events: Sequence[AuditEvent]) -> list[EventView]:
    """The events in people's words (label, sentence, initiator, changes), names resolved in
    bulk: a handful of queries for any number of events."""
    names = audit_names(events)
    return [describe(e, names) for e in events]


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
