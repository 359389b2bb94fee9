"""Reads: who holds what, where (an impersonator's dominance over a subject, the scopes of an
impersonated token, the organizations a user may switch to)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import connection
from django.db.models import Exists, OuterRef, Q

from identity.models import (
    IMPERSONATION_SCOPES,
    Application,
    Scope,
    User,
    UserAssociation,
)
from identity.selectors.applications import application_authorized_scopes, application_available_in
from identity.selectors.permissions import ASSIGNED_PERMISSIONS_SQL
from organizations.models import Organization
from organizations.selectors import (
    org_ancestor_sets,
    org_descendant_filter,
    org_ids_below_inactive,
    org_in_tree_order,
)

# --- impersonation: who holds what, where -----------------------------------------------------


# One fixed statement (no ORM compilation per call; planned once per connection with prepared
# statements): every (assignment, permission) of the user, with where it counts. ``owned``: the
# role belongs to the organization where it is assigned (_role_owned_where_assigned_q).
_PERMISSION_MAP_SQL = (
    """
SELECT u.organization_id, a.organization_id, s.name,
       COALESCE((ra.user_id IS NOT NULL AND r.organization_id = u.organization_id)
                OR (ra.association_id IS NOT NULL AND r.organization_id = a.organization_id), FALSE),
       r.audience_application_id, r.organization_id, app.organization_id"""
    + ASSIGNED_PERMISSIONS_SQL
    + """LEFT JOIN identity_application app ON app.id = r.audience_application_id
WHERE ra.user_id = %s OR a.user_id = %s
"""
)


def _as_uuid(value: object) -> uuid.UUID | None:
    return value if isinstance(value, uuid.UUID) else None


def _hex_uuid(value: object) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


def user_permission_map(user: User) -> dict[uuid.UUID, frozenset[str]]:
    """Every permission ``user`` holds, by the organization where it counts: roles assigned to
    the resident user count in the resident organization, roles assigned to a shared profile
    count in that organization; a role counts where it is owned, or — the application owner's
    role — wherever its application is available. One query, plus one per distinct
    (application, organization) of a shared role."""
    uuid_db = User._meta.pk.get_db_prep_value
    user_id = uuid_db(user.pk, connection)
    with connection.cursor() as cursor:
        cursor.execute(_PERMISSION_MAP_SQL, [user_id, user_id])
        fetched = cursor.fetchall()
    # PostgreSQL answers with UUIDs; SQLite (no native UUID) with hex strings, as the ORM reads them.
    as_uuid = _as_uuid if connection.features.has_native_uuid_field else _hex_uuid
    rows = [
        (
            as_uuid(resident),
            as_uuid(shared),
            scope,
            bool(owned),
            app_id,
            as_uuid(role_org),
            as_uuid(app_owner),
        )
        for resident, shared, scope, owned, app_id, role_org, app_owner in fetched
    ]
    found: dict[uuid.UUID, set[str]] = {}
    available: dict[tuple[int, uuid.UUID], bool] = {}
    apps: dict[int, Application] = {}
    for resident_org, shared_org, scope, owned, app_id, role_org, app_owner in rows:
        org_id = resident_org or shared_org
        if org_id is None:  # an assignment names a user or a shared profile (a constraint)
            continue
        if not owned:
            # Only the application owner's roles count elsewhere, and only where the
            # application is available (shared roles).
            if app_id is None or role_org != app_owner:
                continue
            key = (app_id, org_id)
            if key not in available:
                app = apps.get(app_id) or Application.objects.select_related("organization").get(pk=app_id)
                apps[app_id] = app
                org = Organization.objects.get(pk=org_id)
                available[key] = application_available_in(application=app, org=org)
            if not available[key]:
                continue
        found.setdefault(org_id, set()).add(scope)
    return {org_id: frozenset(scopes) for org_id, scopes in found.items()}


def dominance_gaps(*, impersonator: User, subject: User) -> dict[uuid.UUID, frozenset[str]]:
    """Privilege dominance (DESIGN §7): for every organization where ``subject`` holds a
    permission, ``impersonator`` must hold it there or in an ancestor. Returns what is
    missing, by organization (empty when the impersonator dominates). Four queries."""
    if not impersonator.can_sign_in:
        return {org_id: scopes for org_id, scopes in user_permission_map(subject).items()}
    theirs = user_permission_map(subject)
    if not theirs:
        return {}
    mine = user_permission_map(impersonator)
    paths = org_ancestor_sets(theirs.keys())
    gaps: dict[uuid.UUID, frozenset[str]] = {}
    for org_id, scopes in theirs.items():
        held: set[str] = set()
        for ancestor in paths.get(org_id, frozenset({org_id})):
            held |= mine.get(ancestor, frozenset())
        missing = scopes - held
        if missing:
            gaps[org_id] = frozenset(missing)
    return gaps


def application_dominance_gaps(*, application: Application, subject: User) -> frozenset[str]:
    """Privilege dominance for an application acting with its own token: what ``subject``
    holds anywhere that the application is not authorized for (empty when it may manage
    them). An application authorized only for user management cannot disable an
    administrator."""
    theirs: set[str] = set()
    for scopes in user_permission_map(subject).values():
        theirs |= scopes
    if not theirs:
        return frozenset()
    authorized = set(application_authorized_scopes(application).values_list("name", flat=True))
    return frozenset(theirs - authorized)


def impersonated_scopes(scopes: Iterable[str], *, tenant_id: uuid.UUID, read_only: bool) -> list[str]:
    """What an impersonated token may carry of ``scopes``: never the impersonate scopes; in a
    read-only impersonation only the OIDC scopes and scopes flagged read-only."""
    kept = [s for s in scopes if s not in IMPERSONATION_SCOPES]
    if read_only:
        writable = set(
            Scope.objects.filter(tenant_id=tenant_id, name__in=kept, read_only=False).values_list(
                "name", flat=True
            )
        )
        kept = [s for s in kept if s not in writable]
    return sorted(kept)


def user_switchable_organizations(*, user: User, org: Organization, client_id: str) -> list[Organization]:
    """Active descendants of ``org`` where ``user`` is a member (resident or shared) and the
    client's application is available: the targets of an ``organization_switch``."""
    application = Application.objects.filter(client_id=client_id).first()
    if application is None:
        return []
    shared = UserAssociation.objects.filter(user=user, organization=OuterRef("pk"))
    candidates = (
        Organization.objects.filter(**org_descendant_filter(org, prefix="", include_self=False))
        .filter(Q(pk=user.organization_id) | Q(Exists(shared)))
        .filter(status=Organization.Status.ACTIVE)
    )
    # Under a disabled ancestor an organization is not usable, and the switch grant refuses it.
    found = list(org_in_tree_order(candidates))
    unusable = org_ids_below_inactive(tree_of=org, orgs=found)
    return [
        o for o in found if o.pk not in unusable and application_available_in(application=application, org=o)
    ]
