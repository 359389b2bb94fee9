"""Reads: memberships, roles and the core permission question.

*Which scopes does user U hold for application A in organization O?* is answered by
:func:`user_scopes_for_application` and nowhere else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from django.db import connection
from django.db.models import F, Q

from identity.models import (
    IMPERSONATION_SCOPES,
    OPEN_SCOPES,
    Application,
    Role,
    RoleAssignment,
    Scope,
    User,
    UserAssociation,
)
from identity.selectors.applications import application_authorized_scopes, application_available_in
from organizations.models import Organization
from organizations.selectors import (
    org_ancestor_ids,
    org_ancestors,
)

# --- the permission question --------------------------------------------------------------


def _principal_q(*, user: User, org_ids: Sequence[uuid.UUID]) -> Q:
    """Assignments that belong to ``user`` in any of ``org_ids``: direct ones where the user is
    resident, association ones where the user is shared in."""
    return Q(user=user, user__organization__in=list(org_ids)) | Q(
        association__user=user, association__organization__in=list(org_ids)
    )


def _role_owned_where_assigned_q() -> Q:
    """The role belongs to the organization where it is assigned."""
    return Q(user__isnull=False, role__organization=F("user__organization")) | Q(
        association__isnull=False, role__organization=F("association__organization")
    )


# The permission question runs on every token request, so it is one fixed statement: nothing
# to compile per call, and with prepared statements (DB_PREPARED_STATEMENTS) PostgreSQL plans
# it once per connection — planning its joins was ~4.6 ms of backend CPU per call, running it
# 0.2 ms. The rules: an
# assignment is the user's where they are resident (direct) or shared in (association); an
# application role of ``application`` counts if the application's owner made it (a shared
# role) or it belongs to the organization where it is assigned; an organization role counts
# only where it is owned and never grants the impersonate scopes. The oracle tests in
# tests/identity/test_selectors.py compare it with a brute force over raw rows.
# Every (role assignment, permission) row: ``ra`` the assignment, ``r`` its role, ``u`` the
# resident user or ``a`` the shared profile it names, ``s`` the permission.
ASSIGNED_PERMISSIONS_SQL = """
FROM identity_roleassignment ra
JOIN identity_role r ON r.id = ra.role_id
LEFT JOIN identity_user u ON u.id = ra.user_id
LEFT JOIN identity_userassociation a ON a.id = ra.association_id
JOIN identity_role_permissions rp ON rp.role_id = r.id
JOIN identity_scope s ON s.id = rp.scope_id
"""
_HELD_SCOPES_WHERE = """WHERE (
        (ra.user_id = %s AND u.organization_id IN ({orgs}))
     OR (a.user_id = %s AND a.organization_id IN ({orgs}))
  )
  AND s.id IN (
        SELECT aas.scope_id
        FROM identity_applicationapiauthorization_scopes aas
        JOIN identity_applicationapiauthorization aa ON aa.id = aas.applicationapiauthorization_id
        WHERE aa.application_id = %s
  )
  AND (
        (r.audience = %s AND r.audience_application_id = %s
         AND (r.organization_id = %s
              OR (ra.user_id IS NOT NULL AND r.organization_id = u.organization_id)
              OR (ra.association_id IS NOT NULL AND r.organization_id = a.organization_id)))
     OR (r.audience = %s AND s.name NOT IN ({impersonate})
         AND ((ra.user_id IS NOT NULL AND r.organization_id = u.organization_id)
              OR (ra.association_id IS NOT NULL AND r.organization_id = a.organization_id)))
  )
"""
_HELD_SCOPES_SQL = "\nSELECT DISTINCT s.name" + ASSIGNED_PERMISSIONS_SQL + _HELD_SCOPES_WHERE  # noqa: S608 (constants)


def _held_scope_names(
    *, user: User, application: Application, org_ids: Sequence[uuid.UUID]
) -> frozenset[str]:
    """Scopes ``user`` holds for ``application`` through roles assigned in ``org_ids``: the
    application's roles that count there (the owner's, or the assigning organization's own)
    and organization roles (never the impersonate scopes), ∩ what the application is
    authorized for. One query."""
    if not org_ids:
        return frozenset()
    uuid_db = User._meta.pk.get_db_prep_value
    user_id = uuid_db(user.pk, connection)
    orgs = [uuid_db(o, connection) for o in org_ids]
    placeholders = ", ".join(["%s"] * len(orgs))
    impersonate = sorted(IMPERSONATION_SCOPES)
    params = [
        user_id,
        *orgs,
        user_id,
        *orgs,
        application.pk,
        Role.Audience.APPLICATION.value,
        application.pk,
        uuid_db(application.organization_id, connection),
        Role.Audience.ORGANIZATION.value,
        *impersonate,
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            _HELD_SCOPES_SQL.format(orgs=placeholders, impersonate=", ".join(["%s"] * len(impersonate))),
            params,
        )
        return frozenset(row[0] for row in cursor.fetchall())


def user_grantable_scope_names(
    *, user: User, org: Organization, path: Sequence[Organization] | None = None
) -> frozenset[str]:
    """Every scope ``user`` holds through any role that counts in ``org`` or its ancestors,
    whatever the application: what they may hand to others there (no privilege escalation)."""
    if not user.can_sign_in:
        return frozenset()
    if path is None:
        path = org_ancestors(org, include_self=True)
    mine = RoleAssignment.objects.filter(_principal_q(user=user, org_ids=[n.pk for n in path]))
    counted = mine.filter(
        _role_owned_where_assigned_q()
        | Q(
            role__audience=Role.Audience.APPLICATION,
            role__organization=F("role__audience_application__organization"),
        )
    )
    return frozenset(
        Scope.objects.filter(roles__assignments__in=counted).values_list("name", flat=True).distinct()
    )


def user_scopes_for_application(*, user: User, application: Application, org: Organization) -> frozenset[str]:
    """The role-granted scopes ``user`` holds for ``application`` in ``org``.

    Nothing unless: ``org`` and its ancestors are active; the application is owned by or
    shared with ``org``; the user is resident in ``org`` (direct assignments) or shared into
    it (assignments to the association). Only scopes the application is authorized for count.
    At most four queries.
    """
    if not user.can_sign_in:
        return frozenset()
    path = org_ancestors(org, include_self=True)
    if any(node.status != Organization.Status.ACTIVE for node in path):
        return frozenset()
    if application.organization_id != org.pk:
        if application.organization_id not in {node.pk for node in path}:
            return frozenset()
        if not application_available_in(application=application, org=org):
            return frozenset()
    return _held_scope_names(user=user, application=application, org_ids=[org.pk])


def user_scopes_along_path(
    *, user: User, application: Application, org: Organization, path: Sequence[Organization] | None = None
) -> frozenset[str]:
    """Scopes held for ``application`` in ``org`` *or any ancestor of it*.

    This is how Console administration reaches down the tree: an administrator of an
    organization administers its descendants, never its siblings or ancestors.
    """
    if not user.can_sign_in:
        return frozenset()
    if path is None:
        path = org_ancestors(org, include_self=True)
    if any(node.status != Organization.Status.ACTIVE for node in path):
        return frozenset()
    return _held_scope_names(user=user, application=application, org_ids=[n.pk for n in path])


def scope_names(scopes: Iterable[Scope]) -> list[str]:
    return sorted(s.name for s in scopes)


def user_ancestor_member_orgs(*, user: User, org: Organization) -> list[uuid.UUID]:
    ids = org_ancestor_ids(org, include_self=True)
    member = {user.organization_id} | set(
        UserAssociation.objects.filter(user=user, organization__in=ids).values_list(
            "organization_id", flat=True
        )
    )
    return [i for i in ids if i in member]


# --- OAuth scopes ---------------------------------------------------------------------------


def oauth_user_scopes(
    *, user: User, application: Application, org: Organization, requested: Iterable[str]
) -> list[str]:
    """What a user's authorization of ``application`` in ``org`` carries: the requested OIDC
    scopes and ``internal_login``, plus requested ∩ held for the application in ``org`` (which
    is already ∩ what the application is authorized for). Unknown or unheld scopes drop out."""
    wanted = set(requested)
    granted = wanted & OPEN_SCOPES
    others = wanted - OPEN_SCOPES
    if others:
        granted |= others & user_scopes_for_application(user=user, application=application, org=org)
    return sorted(granted)


def oauth_client_scopes(*, application: Application, requested: Iterable[str]) -> frozenset[str] | None:
    """Client credentials: the requested scopes if the application is authorized for every one
    of them (impersonation never), else None."""
    wanted = set(requested)
    if not wanted:
        return frozenset()
    if wanted & IMPERSONATION_SCOPES:
        return None
    allowed = set(application_authorized_scopes(application).values_list("name", flat=True))
    return frozenset(wanted) if wanted <= allowed else None
