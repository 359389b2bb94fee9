"""Reads of the organization tree. The only module (with ``services``) that uses mptt's API."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet

from organizations.models import Organization, OrganizationSettings

DEFAULT_IMPERSONATION_EMAIL_ENABLED = True
DEFAULT_IMPERSONATION_REASON_REQUIRED = True
DEFAULT_IMPERSONATION_MAX_MINUTES = 60


def tenant_get(*, handle: str) -> Organization | None:
    """The root organization with this handle (active or not), or None (handles of roots are
    unique: constraint org_root_handle_unique)."""
    return Organization.objects.filter(handle=str(handle), parent__isnull=True).order_by().first()


def org_tenant(org: Organization) -> Organization:
    """The root of ``org``'s tree (``org`` itself for a root). No query for a root."""
    if org.parent_id is None:
        return org
    tenant = org.tenant
    assert tenant is not None
    return tenant


def org_get_in_tenant(*, tenant: Organization, org_id: uuid.UUID | str) -> Organization | None:
    try:
        org_uuid = uuid.UUID(str(org_id))
    except ValueError:
        return None
    return Organization.objects.filter(tenant_id=tenant.pk, pk=org_uuid).order_by().first()


def org_ancestors(org: Organization, *, include_self: bool = True) -> list[Organization]:
    """Root first, ``org`` last (when included). One query below the root, none for a root."""
    if org.parent_id is None:
        return [org] if include_self else []
    return list(org.get_ancestors(include_self=include_self))


def org_ancestor_ids(org: Organization, *, include_self: bool = True) -> list[uuid.UUID]:
    if org.parent_id is None:
        return [org.pk] if include_self else []
    return list(org.get_ancestors(include_self=include_self).values_list("pk", flat=True))


def org_descendants(org: Organization, *, include_self: bool = False) -> QuerySet[Organization]:
    return org.get_descendants(include_self=include_self)


def org_descendant_filter(org: Organization, *, prefix: str, include_self: bool) -> dict[str, int]:
    """Keyword filters selecting ``org``'s subtree through a relation named ``prefix``.

    Used by other apps to query "rows whose organization is in this subtree" in one
    indexed range condition instead of an IN list.
    """
    lower = "gte" if include_self else "gt"
    upper = "lte" if include_self else "lt"
    return {
        f"{prefix}tree_id": org.tree_id,
        f"{prefix}lft__{lower}": org.lft,
        f"{prefix}rght__{upper}": org.rght,
    }


def org_subtree_size(org: Organization) -> int:
    """How many organizations ``org``'s subtree holds, itself included (no query)."""
    return (org.rght - org.lft + 1) // 2


def org_descendant_ids(org: Organization, *, include_self: bool = False) -> QuerySet[Organization, uuid.UUID]:
    """The ids of ``org``'s subtree: one range scan of the ``(tree_id, lft)`` index."""
    return org.get_descendants(include_self=include_self).values_list("pk", flat=True)


def org_is_descendant(org: Organization, *, of: Organization, include_self: bool = False) -> bool:
    """True when ``org`` lies in the subtree of ``of`` (no query)."""
    return bool(org.is_descendant_of(of, include_self=include_self))


def org_ancestor_sets(org_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, frozenset[uuid.UUID]]:
    """For each organization id, the ids of it and its ancestors. Two queries at most."""
    wanted = set(org_ids)
    if not wanted:
        return {}
    nodes = list(Organization.objects.filter(pk__in=wanted).only("pk", "tree_id", "lft", "rght"))
    if not nodes:
        return {}
    on_a_path = Q()
    for n in nodes:
        on_a_path |= Q(tree_id=n.tree_id, lft__lte=n.lft, rght__gte=n.rght)
    candidates = list(Organization.objects.filter(on_a_path).only("pk", "tree_id", "lft", "rght"))
    result: dict[uuid.UUID, frozenset[uuid.UUID]] = {}
    for node in nodes:
        result[node.pk] = frozenset(
            c.pk
            for c in candidates
            if c.tree_id == node.tree_id and c.lft <= node.lft and c.rght >= node.rght
        )
    return result


def org_children(org: Organization) -> QuerySet[Organization]:
    return org.get_children().order_by("name")


def org_roots_of_tenant(tenant: Organization) -> QuerySet[Organization]:
    return Organization.objects.filter(pk=tenant.pk)


def org_has_children(org: Organization) -> bool:
    return not org.is_leaf_node()


def org_is_usable(org: Organization) -> bool:
    """An organization is usable when it and every ancestor are active. One query below the
    root, none for a root."""
    if org.status != Organization.Status.ACTIVE:
        return False
    if org.parent_id is None:
        return True
    return not org.get_ancestors(include_self=False).exclude(status=Organization.Status.ACTIVE).exists()


def org_id_is_usable(org_id: uuid.UUID) -> bool:
    """:func:`org_is_usable` for an organization known by id only (a token's ``org_id``): it
    exists and neither it nor an ancestor is disabled. One indexed query: the row by primary
    key, and whether a disabled node of its tree encloses it."""
    blocked = Organization.objects.filter(
        tree_id=OuterRef("tree_id"), lft__lte=OuterRef("lft"), rght__gte=OuterRef("rght")
    ).exclude(status=Organization.Status.ACTIVE)
    found = Organization.objects.filter(pk=org_id).annotate(blocked=Exists(blocked)).values_list("blocked")
    row = found.first()
    return row is not None and not row[0]


@dataclass(frozen=True)
class EffectiveOrgSettings:
    impersonation_email_enabled: bool
    impersonation_reason_required: bool
    impersonation_max_minutes: int
    # Where each value comes from: the organization that set it, or None for the default.
    email_source: Organization | None
    reason_source: Organization | None
    max_minutes_source: Organization | None


def org_effective_settings(org: Organization, *, include_self: bool = True) -> EffectiveOrgSettings:
    """Resolve the settings of ``org`` from its own row and its ancestors'. Two queries.

    - email notification: the nearest organization that set it wins (a child may switch it
      either way); default on.
    - reason required: the root's value (default on); below the root a value can only
      switch it on (tighten), never off.
    - maximum impersonation length: the root's value (default 60 minutes), lowered by any
      smaller value set below it.
    With ``include_self=False`` the result is what ``org`` inherits from its parent.
    """
    path = org_ancestors(org, include_self=include_self)
    found = OrganizationSettings.objects.filter(organization__in=[o.pk for o in path])
    rows = {row.organization_id: row for row in found}
    email: bool | None = None
    email_source = None
    reason = DEFAULT_IMPERSONATION_REASON_REQUIRED
    reason_source = None
    max_minutes = DEFAULT_IMPERSONATION_MAX_MINUTES
    max_source = None
    for node in path:  # root first
        row = rows.get(node.pk)
        if row is None:
            continue
        if row.impersonation_email_enabled is not None:
            email, email_source = row.impersonation_email_enabled, node
        if row.impersonation_reason_required is not None:
            if node.parent_id is None or (row.impersonation_reason_required and not reason):
                reason, reason_source = row.impersonation_reason_required, node
        if row.impersonation_max_minutes is not None:
            if node.parent_id is None or row.impersonation_max_minutes < max_minutes:
                max_minutes, max_source = row.impersonation_max_minutes, node
    return EffectiveOrgSettings(
        impersonation_email_enabled=DEFAULT_IMPERSONATION_EMAIL_ENABLED if email is None else email,
        impersonation_reason_required=reason,
        impersonation_max_minutes=max_minutes,
        email_source=email_source,
        reason_source=reason_source,
        max_minutes_source=max_source,
    )


# --- tree order and reach, for other apps (they never read lft, rght or tree_id) ----------


def org_in_tree_order(orgs: QuerySet[Organization]) -> QuerySet[Organization]:
    """``orgs`` ordered depth-first, each organization before the ones below it (a tenant's
    tree after another's)."""
    return orgs.order_by("tree_id", "lft")


def org_ids_below_inactive(*, tree_of: Organization, orgs: Iterable[Organization]) -> frozenset[uuid.UUID]:
    """The ids of those of ``orgs`` (all in ``tree_of``'s tree) that are disabled or lie below
    a disabled organization, i.e. are not usable (:func:`org_is_usable`). One query: the
    tree's disabled organizations, read once, rule out whatever they enclose."""
    inactive = list(
        Organization.objects.filter(tree_id=tree_of.tree_id)
        .exclude(status=Organization.Status.ACTIVE)
        .only("lft", "rght")
    )
    return frozenset(o.pk for o in orgs if any(i.lft <= o.lft and i.rght >= o.rght for i in inactive))
