"""Reads: memberships, roles and the core permission question.

*Which scopes does user U hold for application A in organization O?* is answered by
:func:`user_scopes_for_application` and nowhere else.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, QuerySet, Value, prefetch_related_objects
from django.db.models.functions import Concat

from identity.models import (
    IMPERSONATION_SCOPES,
    OPEN_SCOPES,
    APIResource,
    Application,
    ApplicationAPIAuthorization,
    ApplicationShare,
    LoginFlow,
    Role,
    RoleAssignment,
    Scope,
    User,
    UserAssociation,
)
from organizations.models import Organization
from organizations.selectors import (
    org_ancestor_ids,
    org_ancestor_sets,
    org_ancestors,
    org_descendant_filter,
    org_descendant_ids,
    org_is_descendant,
    org_subtree_size,
)

# --- memberships --------------------------------------------------------------------------


def user_is_member(*, user: User, org: Organization) -> bool:
    """Resident in ``org``, or shared into it."""
    if user.organization_id == org.pk:
        return True
    return UserAssociation.objects.filter(user=user, organization=org).exists()


def user_association_get(*, user: User, org: Organization) -> UserAssociation | None:
    return UserAssociation.objects.filter(user=user, organization=org).first()


def org_members(org: Organization) -> QuerySet[User]:
    """Users resident in ``org`` or shared into it."""
    shared = UserAssociation.objects.filter(user=OuterRef("pk"), organization=org)
    return User.objects.filter(Q(organization=org) | Q(Exists(shared)))


@dataclass(frozen=True)
class UserPage:
    users: list[User]
    next_cursor: str | None
    # Users on this page who are shared into the organization (resident elsewhere).
    shared_ids: frozenset[uuid.UUID] = frozenset()


def _encode_cursor(user: User) -> str:
    raw = f"{user.username}\x00{user.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, uuid.UUID] | None:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        username, _, raw_id = base64.urlsafe_b64decode(padded.encode()).decode().partition("\x00")
        return username, uuid.UUID(raw_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _member_search_q(search: str) -> Q:
    """The start of the username, email, given or family name (case-insensitive). On
    PostgreSQL each is served by an ``UPPER(col) text_pattern_ops`` index (identity 0008)."""
    return (
        Q(username__istartswith=search)
        | Q(email__istartswith=search)
        | Q(given_name__istartswith=search)
        | Q(family_name__istartswith=search)
    )


def _keyset_page(
    qs: QuerySet[User], *, after: tuple[str, uuid.UUID] | None, limit: int, searching: bool = False
) -> list[User]:
    """The first ``limit`` rows of ``qs`` in (username, id) order after the cursor.

    The redundant ``username >= name`` lets the database start its (username, id) index scan
    at the cursor instead of filtering from the beginning. A search orders by an expression of
    the username instead (the same order): walking the username index in order while
    filtering on the other columns' prefixes would read every username before the first
    match ("ja" skipped 37,000 rows at 100k users); this way the database collects the matches
    from the prefix indexes and sorts only those."""
    if after is not None:
        name, pk = after
        qs = qs.filter(Q(username__gte=name), Q(username__gt=name) | Q(username=name, pk__gt=pk))
    username = Concat("username", Value(""), output_field=CharField()) if searching else F("username")
    return list(qs.order_by(username.asc(), "pk")[:limit])


@contextmanager
def plan_per_call() -> Iterator[None]:
    """On PostgreSQL, plan the statements inside for their actual values.

    With prepared statements (DB_PREPARED_STATEMENTS) a statement run often gets one generic
    plan. For a prefix search that plan cannot use the prefix indexes (the pattern is unknown
    when it is made) and reads every user (measured: 260 ms instead of 0.1 ms for a prefix
    that matches nobody, after a few broad searches on the same connection); a subtree's
    size decides its best plan too. ``SET LOCAL`` ends with the transaction."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        yield


# Subtrees of at most this many organizations are listed by naming their organizations.
SMALL_SUBTREE = 300


def org_member_page(
    *,
    org: Organization,
    search: str = "",
    after: str | None = None,
    size: int = 25,
    subtree: bool = False,
) -> UserPage:
    """One page of ``org``'s members ordered by (username, id): keyset pagination, no count.

    Members are the users resident in ``org`` (with ``subtree``, in ``org`` or any organization
    below it) and the users shared into ``org``. ``search`` matches the start of the username,
    email, given or family name.

    Two queries whatever the page size (three for a small subtree): the residents (an indexed
    range on the tree, or the ``(organization, username)`` index) and the shared-in users (the
    associations of ``org``), each at most one page long, merged here. One OR of the two in
    SQL would leave the database no index to order by.
    """
    cursor = _decode_cursor(after) if after else None
    limit = size + 1
    search = search.strip()
    residents = User.objects.select_related("organization")
    if subtree and org_subtree_size(org) <= SMALL_SUBTREE:
        # A small subtree holds a small share of the users: walking the username index in
        # order would read many rows of other organizations per row shown, so name the
        # organizations (one indexed range query) and let (organization, username) serve.
        residents = residents.filter(organization__in=list(org_descendant_ids(org, include_self=True)))
    elif subtree and search:
        # Many matches to sort: test membership against the subtree's ids (a semi-join over
        # narrow rows) rather than joining every match to its whole organization row; the
        # organizations of the page are fetched afterwards.
        residents = User.objects.filter(organization__in=org_descendant_ids(org, include_self=True))
    elif subtree:
        residents = residents.filter(**org_descendant_filter(org, prefix="organization__", include_self=True))
    else:
        residents = residents.filter(organization=org)
    shared = User.objects.select_related("organization").filter(associations__organization=org)
    if search:
        residents, shared = (
            residents.filter(_member_search_q(search)),
            shared.filter(_member_search_q(search)),
        )
    with plan_per_call():
        rows = _keyset_page(residents, after=cursor, limit=limit, searching=bool(search))
        shared_rows = _keyset_page(shared, after=cursor, limit=limit, searching=bool(search))
    # Merged in Python by code point, which is the database's order under a C / C.UTF-8
    # collation (the (username, id) order the cursor continues from); system check actas.E001
    # (identity/checks.py, run by migrate) refuses any other collation on PostgreSQL.
    rows = sorted([*rows, *shared_rows], key=lambda u: (u.username, str(u.pk)))[:limit]
    next_cursor = _encode_cursor(rows[size - 1]) if len(rows) > size else None
    page = rows[:size]
    prefetch_related_objects(page, "organization")  # no query when every row has it already
    shared_ids = frozenset(u.pk for u in shared_rows)
    return UserPage(users=page, next_cursor=next_cursor, shared_ids=shared_ids & {u.pk for u in page})


def user_memberships(user: User, *, within: Organization) -> list[Organization]:
    """The resident organization first, then the organizations the user is shared into that
    lie in ``within``'s subtree (an administrator does not learn about other branches)."""
    shared = [
        a.organization
        for a in user.associations.filter(
            **org_descendant_filter(within, prefix="organization__", include_self=True)
        ).select_related("organization")
    ]
    return [user.organization, *sorted(shared, key=lambda o: o.name)]


# --- applications and sharing -------------------------------------------------------------


def application_available_in(*, application: Application, org: Organization) -> bool:
    """Owned by ``org``, or shared with it (all descendants, or selected)."""
    if application.organization_id == org.pk:
        return True
    owner = application.organization
    if not org_is_descendant(org, of=owner):
        return False
    if application.system_key == Application.SystemKey.CONSOLE:
        return True  # the Console serves every organization of its tenant
    if application.shared_access == Application.SharedAccess.ALL:
        return True
    if application.shared_access == Application.SharedAccess.SELECTED:
        return ApplicationShare.objects.filter(application=application, organization=org).exists()
    return False


def applications_available_in(org: Organization) -> list[Application]:
    """Applications owned by ``org`` or shared with it. Two queries."""
    ancestors = org_ancestors(org, include_self=False)
    ancestor_ids = [a.pk for a in ancestors]
    selected = ApplicationShare.objects.filter(application=OuterRef("pk"), organization=org)
    qs = Application.objects.filter(
        Q(organization=org)
        | Q(organization__in=ancestor_ids)
        & (
            Q(shared_access=Application.SharedAccess.ALL)
            | Q(system_key=Application.SystemKey.CONSOLE)
            | Q(shared_access=Application.SharedAccess.SELECTED) & Q(Exists(selected))
        )
    ).select_related("organization")
    return list(qs.order_by("name"))


def tenant_system_application(*, tenant: Organization, key: str) -> Application | None:
    return Application.objects.filter(organization=tenant, system_key=key).first()


def application_authorized_scopes(application: Application) -> QuerySet[Scope]:
    auths = ApplicationAPIAuthorization.objects.filter(application=application)
    return Scope.objects.filter(pk__in=auths.values("scopes"))


def login_flow_steps(*, application: Application, org: Organization) -> list[list[str]]:
    """The flow for (application, org): the org's own, else the owner's, else one basic step."""
    rows = {
        f.organization_id: f.steps
        for f in LoginFlow.objects.filter(
            application=application, organization__in=[org.pk, application.organization_id]
        )
    }
    steps = rows.get(org.pk) or rows.get(application.organization_id)
    return steps or [["BasicAuthenticator"]]


def login_flow_is_own(*, application: Application, org: Organization) -> bool:
    return LoginFlow.objects.filter(application=application, organization=org).exists()


# --- roles --------------------------------------------------------------------------------


def tenant_system_role(*, tenant: Organization, name: str) -> Role:
    """One of the tenant's system roles (Administrator, Impersonator)."""
    return Role.objects.select_related("audience_application").get(
        organization=tenant, name=name, is_system=True
    )


def roles_in_org(org: Organization) -> list[Role]:
    """Roles an administrator of ``org`` sees: its own, and the shared roles — the roles that
    the owner of an application shared with ``org`` created for it (the system roles of the
    Console and My Account among them). A role another organization made for a shared
    application stays that organization's own."""
    available = [a.pk for a in applications_available_in(org) if a.organization_id != org.pk]
    qs = Role.objects.filter(
        Q(organization=org)
        | Q(audience_application__in=available, organization=F("audience_application__organization"))
    ).select_related("audience_application", "organization")
    return list(qs.order_by("name", "audience_application__name"))


def role_is_shared_into(*, role: Role, org: Organization) -> bool:
    """A role owned by another organization that appears in ``org`` as a shared role: it was
    made by the owner of its application, and that application is shared with ``org``."""
    if role.organization_id == org.pk:
        return False
    app = role.audience_application
    return (
        app is not None
        and role.organization_id == app.organization_id
        and application_available_in(application=app, org=org)
    )


def role_assignments_in_org(*, role: Role, org: Organization) -> QuerySet[RoleAssignment]:
    return (
        RoleAssignment.objects.filter(role=role)
        .filter(Q(user__organization=org) | Q(association__organization=org))
        .select_related("user", "association__user")
        .order_by("assigned_at")
    )


def user_roles_in_org(*, user: User, org: Organization) -> list[Role]:
    """The roles assigned to ``user`` in ``org``: directly where the user is resident, through
    the user's association where shared in. Which of the two is known from the user, so the
    query filters one indexed column (an OR of both joined every user of the database)."""
    if user.organization_id == org.pk:
        assignments = RoleAssignment.objects.filter(user=user)
    else:
        assignments = RoleAssignment.objects.filter(association__user=user, association__organization=org)
    return list(
        Role.objects.filter(assignments__in=assignments)
        .select_related("audience_application")
        .distinct()
        .order_by("name")
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
_ASSIGNED_PERMISSIONS = """
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
_HELD_SCOPES_SQL = "\nSELECT DISTINCT s.name" + _ASSIGNED_PERMISSIONS + _HELD_SCOPES_WHERE  # noqa: S608 (constants)


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


# --- Console: applications and API resources ----------------------------------------------


def application_api_authorizations(application: Application) -> list[ApplicationAPIAuthorization]:
    """The application's API authorizations with their resources and scopes. Two queries."""
    return list(
        ApplicationAPIAuthorization.objects.filter(application=application)
        .select_related("resource")
        .prefetch_related("scopes")
        .order_by("resource__name")
    )


def application_roles_in_org(*, application: Application, org: Organization) -> list[Role]:
    """Roles whose audience is ``application`` that ``org`` sees: the owner's (shared roles,
    where the application is shared) and ``org``'s own."""
    qs = Role.objects.filter(audience=Role.Audience.APPLICATION, audience_application=application).filter(
        Q(organization=org) | Q(organization_id=application.organization_id)
    )
    return list(qs.select_related("organization").prefetch_related("permissions").order_by("name"))


def tenant_api_resources(tenant: Organization) -> list[APIResource]:
    """Every API resource of the tenant (system first, then by name) with its scopes."""
    return list(
        APIResource.objects.filter(tenant=tenant).prefetch_related("scopes").order_by("-is_system", "name")
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
    + _ASSIGNED_PERMISSIONS
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
        .order_by("lft")
    )
    # Under a disabled ancestor an organization is not usable, and the switch grant refuses it:
    # the tree's inactive organizations, read once, rule out whatever they enclose.
    inactive = list(
        Organization.objects.filter(tree_id=org.tree_id)
        .exclude(status=Organization.Status.ACTIVE)
        .only("lft", "rght")
    )
    return [
        o
        for o in candidates
        if not any(i.lft < o.lft and i.rght > o.rght for i in inactive)
        and application_available_in(application=application, org=o)
    ]


# --- sharing users and picking people in the Console --------------------------------------


@dataclass(frozen=True)
class OrgSharePage:
    orgs: list[Organization]
    next_cursor: str | None
    # Organizations on this page the user is shared with already.
    shared_ids: frozenset[uuid.UUID] = frozenset()
    # Organizations on this page that are disabled or lie below a disabled one.
    unusable_ids: frozenset[uuid.UUID] = frozenset()


def _encode_org_cursor(org: Organization) -> str:
    raw = f"{org.name}\x00{org.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def user_share_candidate_page(
    *, user: User, org: Organization, search: str = "", after: str | None = None, size: int = 25
) -> OrgSharePage:
    """One page of the organizations strictly below ``org`` (the Console's organization),
    ordered by (name, id) with keyset pagination; ``search`` matches the start of the name.
    Three queries whatever the subtree's size: the page, the user's shares among it, and the
    tree's inactive organizations."""
    qs = Organization.objects.filter(**org_descendant_filter(org, prefix="", include_self=False))
    search = search.strip()
    if search:
        qs = qs.filter(name__istartswith=search)
    cursor = _decode_cursor(after) if after else None
    if cursor is not None:
        name, pk = cursor
        qs = qs.filter(Q(name__gt=name) | Q(name=name, pk__gt=pk))
    rows = list(qs.select_related("parent").order_by("name", "pk")[: size + 1])
    next_cursor = _encode_org_cursor(rows[size - 1]) if len(rows) > size else None
    page = rows[:size]
    shared = frozenset(
        UserAssociation.objects.filter(user=user, organization__in=[o.pk for o in page]).values_list(
            "organization_id", flat=True
        )
    )
    inactive = (
        list(
            Organization.objects.filter(tree_id=org.tree_id)
            .exclude(status=Organization.Status.ACTIVE)
            .only("lft", "rght")
        )
        if page
        else []
    )
    unusable = frozenset(o.pk for o in page if any(i.lft <= o.lft and i.rght >= o.rght for i in inactive))
    return OrgSharePage(orgs=page, next_cursor=next_cursor, shared_ids=shared, unusable_ids=unusable)


def role_holder_ids(*, role: Role, org: Organization, user_ids: Iterable[uuid.UUID]) -> frozenset[uuid.UUID]:
    """Which of ``user_ids`` hold ``role`` in ``org`` (directly as residents, or through their
    shared profile). One query."""
    ids = list(user_ids)
    if not ids:
        return frozenset()
    rows = RoleAssignment.objects.filter(role=role).filter(
        Q(user__in=ids, user__organization=org) | Q(association__user__in=ids, association__organization=org)
    )
    found: set[uuid.UUID] = set()
    for user_id, association_user_id in rows.values_list("user_id", "association__user_id"):
        found.add(user_id or association_user_id)
    return frozenset(found)


def user_shared_orgs_below(*, user: User, org: Organization) -> list[Organization]:
    """The organizations strictly below ``org`` that ``user`` is shared into, by name, each
    with its parent. One query."""
    return list(
        Organization.objects.filter(
            shared_users__user=user, **org_descendant_filter(org, prefix="", include_self=False)
        )
        .select_related("parent")
        .order_by("name", "pk")
    )


def user_holds_roles_in(*, user: User, org: Organization) -> bool:
    """Does ``user`` hold any role in ``org`` through their shared profile there?"""
    return RoleAssignment.objects.filter(association__user=user, association__organization=org).exists()
