"""Random two-tenant worlds for the tenant-isolation property (tests/organizations/test_isolation.py).

``build_world(rng)`` makes, through the ordinary services:

* tenant ``iso-a`` with a random tree of 50+ organizations (depth 4 or more), tenant ``iso-b``
  with a small one;
* users resident at random organizations, some shared into random descendants;
* administrators ("actors") at random organizations, holding random Console scopes through the
  system Administrator role, a Console role the organization made itself, or an organization
  role, some through a shared profile (an association), some with a second grant elsewhere;
* business applications owned at random organizations and shared with none / all / selected
  descendants, with their own roles; live impersonation sessions at random organizations.

:class:`Oracle` answers the isolation questions from raw rows (``values()`` of the tables, no
selector of actas), so the property compares the endpoints against an independent reading.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field

from django.utils import timezone

from identity.models import (
    IMPERSONATE_SCOPE,
    ORG_IMPERSONATE_SCOPE,
    APIResource,
    Application,
    ApplicationAPIAuthorization,
    ApplicationShare,
    Role,
    RoleAssignment,
    Scope,
    User,
    UserAssociation,
)
from identity.services.applications import application_authorize_api, application_create, application_share
from identity.services.roles import role_assign, role_create
from identity.services.sessions import sso_session_start
from identity.services.tenants import CONSOLE_RESOURCES, TenantSystem, tenant_bootstrap
from identity.services.users import user_create, user_share
from impersonation.models import ImpersonationSession
from organizations.models import Organization
from organizations.services import organization_create, organization_set_status

PASSWORD = "correct-horse-battery"
SECRET = "isolation-secret-0123456789abcdef"
REDIRECT = "http://127.0.0.1:8765/callback"
IMPERSONATION = frozenset({IMPERSONATE_SCOPE, ORG_IMPERSONATE_SCOPE})
MGMT_SCOPES = [
    "internal_user_mgt_list",
    "internal_user_mgt_view",
    "internal_user_mgt_update",
    "internal_user_mgt_delete",
    "internal_org_user_mgt_list",
    "internal_org_user_mgt_view",
    "internal_org_user_mgt_update",
    "internal_config_mgt_view",
    "internal_config_mgt_update",
]
# How a target's organization T lies relative to the organization H an actor administers.
SAME, DESCENDANT, ANCESTOR, OTHER_BRANCH, OTHER_TENANT = (
    "same",
    "descendant",
    "ancestor",
    "other-branch",
    "other-tenant",
)
RELATIONS = (SAME, DESCENDANT, ANCESTOR, OTHER_BRANCH, OTHER_TENANT)


@dataclass
class Tenant:
    system: TenantSystem
    orgs: list[Organization]
    users: list[User] = field(default_factory=list)
    apps: list[Application] = field(default_factory=list)
    mgmt: Application | None = None

    @property
    def root(self) -> Organization:
        return self.system.tenant

    @property
    def handle(self) -> str:
        return self.root.handle


@dataclass
class Actor:
    user: User
    tenant: Tenant
    home: Organization  # the organization whose Console the actor mainly administers
    kind: str  # how the Console scopes were granted


@dataclass
class IsoWorld:
    a: Tenant
    b: Tenant
    actors: list[Actor]
    sessions: list[ImpersonationSession]

    @property
    def tenants(self) -> tuple[Tenant, Tenant]:
        return (self.a, self.b)

    def all_orgs(self) -> list[Organization]:
        return self.a.orgs + self.b.orgs

    def all_users(self) -> list[User]:
        return list(User.objects.filter(organization__tenant_id__in=[self.a.root.pk, self.b.root.pk]))

    def tenant_of(self, org_id: uuid.UUID) -> Tenant:
        return self.a if any(o.pk == org_id for o in self.a.orgs) else self.b


def _random_tree(rng: random.Random, tenant: Organization, n: int, prefix: str) -> list[Organization]:
    """``n`` organizations (the root included). Parents are drawn mostly from recent ones, so the
    tree is deep as well as wide."""
    orgs = [tenant]
    for i in range(1, n):
        window = orgs[-6:] if rng.random() < 0.6 else orgs
        parent = rng.choice(window)
        orgs.append(
            organization_create(actor=None, parent=parent, name=f"{prefix} {i}", handle=f"{prefix}-{i}")
        )
    return orgs


def _chain(org: Organization, orgs: list[Organization]) -> list[uuid.UUID]:
    """``org`` and its ancestors, nearest first (from the parent links only)."""
    parent = {o.pk: o.parent_id for o in orgs}
    chain: list[uuid.UUID] = []
    node: uuid.UUID | None = org.pk
    while node is not None:
        chain.append(node)
        node = parent.get(node)
    return chain


def _descendants(org: Organization, orgs: list[Organization]) -> list[Organization]:
    return [o for o in orgs if o.pk != org.pk and org.pk in _chain(o, orgs)]


def _build_tenant(rng: random.Random, handle: str, n_orgs: int, counter: Counter[str]) -> Tenant:
    system, _admin = tenant_bootstrap(
        actor=None,
        handle=handle,
        name=handle.upper(),
        admin_username="root-admin",
        admin_password=PASSWORD,
        admin_email=f"root-admin@{handle}.test",
    )
    # My Account everywhere, so the Console's Impersonate User can succeed in any organization.
    application_share(actor=None, application=system.myaccount, mode=Application.SharedAccess.ALL)
    orgs = _random_tree(rng, system.tenant, n_orgs, handle)
    for o in orgs:
        o.refresh_from_db()
    tenant = Tenant(system=system, orgs=orgs)
    tenant.users.append(User.objects.get(organization=system.tenant, username="root-admin"))
    # Ordinary users, globally unique usernames, some shared into descendants.
    for org in orgs:
        for _ in range(rng.choice([0, 1, 1, 2])):
            counter["user"] += 1
            user = user_create(
                actor=None,
                org=org,
                username=f"u{counter['user']}-{handle}",
                password=PASSWORD,
                email=f"u{counter['user']}@{handle}.test",
            )
            tenant.users.append(user)
            below = _descendants(org, orgs)
            for target in rng.sample(below, min(len(below), rng.choice([0, 0, 1, 2]))):
                user_share(actor=None, user=user, org=target)
    # A management application owned by the root and shared with every organization.
    mgmt, _ = application_create(
        actor=None,
        org=system.tenant,
        name=f"{handle} mgmt",
        client_id=f"{handle}-mgmt",
        client_secret=SECRET,
        grant_types=[
            Application.GRANT_AUTHORIZATION_CODE_TYPE,
            Application.GRANT_CLIENT_CREDENTIALS_TYPE,
            Application.GRANT_ORGANIZATION_SWITCH_TYPE,
        ],
        redirect_uris=[REDIRECT],
        skip_login_consent=True,
        pkce_required=True,
    )
    for identifier in ("system:users", "org:users", "system:configs", "system:login"):
        resource = APIResource.objects.get(tenant=system.tenant, identifier=identifier)
        application_authorize_api(
            actor=None,
            application=mgmt,
            resource=resource,
            scopes=list(resource.scopes.values_list("name", flat=True)),
        )
    application_share(actor=None, application=mgmt, mode=Application.SharedAccess.ALL)
    tenant.mgmt = mgmt
    # Business applications at random organizations with random sharing and a role each.
    for i in range(4 if n_orgs > 10 else 2):
        # The first at the root, the others below it (inside the tree, not only at leaves).
        owner = orgs[0] if i == 0 else rng.choice(orgs[1 : max(2, len(orgs) // 2)])
        app, _ = application_create(
            actor=None,
            org=owner,
            name=f"{handle} app {i}",
            client_id=f"{handle}-app-{i}",
            client_secret=SECRET,
            grant_types=[Application.GRANT_CLIENT_CREDENTIALS_TYPE],
        )
        resource = APIResource.objects.get(tenant=system.tenant, identifier="system:users")
        application_authorize_api(
            actor=None, application=app, resource=resource, scopes=["internal_user_mgt_view"]
        )
        below = _descendants(owner, orgs)
        mode = rng.choice(list(Application.SharedAccess.values))
        chosen = rng.sample(below, min(len(below), 3)) if mode == Application.SharedAccess.SELECTED else []
        application_share(actor=None, application=app, mode=mode, organizations=chosen)
        app.refresh_from_db()
        role_create(
            actor=None,
            org=owner,
            name=f"{handle} app {i} viewer",
            audience_application=app,
            permissions=["internal_user_mgt_view"],
        )
        tenant.apps.append(app)
    # Organization roles here and there (targets for the Roles pages).
    for org in rng.sample(orgs, min(len(orgs), 6)):
        counter["role"] += 1
        role_create(
            actor=None,
            org=org,
            name=f"org role {counter['role']}",
            audience_application=None,
            permissions=["internal_user_mgt_view"],
        )
    return tenant


def _console_scope_names(tenant: Organization) -> list[str]:
    return sorted(
        Scope.objects.filter(resource__identifier__in=CONSOLE_RESOURCES, tenant=tenant).values_list(
            "name", flat=True
        )
    )


def _make_actor(rng: random.Random, tenant: Tenant, home: Organization, counter: Counter[str]) -> Actor:
    """An administrator of ``home``: resident there or shared in from an ancestor, holding
    random Console scopes there (and sometimes somewhere else too)."""
    counter["actor"] += 1
    ancestors = [o for o in tenant.orgs if o.pk in _chain(home, tenant.orgs)[1:]]
    resident_at = home if not ancestors or rng.random() < 0.7 else rng.choice(ancestors)
    user = user_create(
        actor=None,
        org=resident_at,
        username=f"actor{counter['actor']}-{tenant.handle}",
        password=PASSWORD,
        email=f"actor{counter['actor']}@{tenant.handle}.test",
    )
    if resident_at.pk != home.pk:
        user_share(actor=None, user=user, org=home)
    tenant.users.append(user)
    console = tenant.system.console
    every = _console_scope_names(tenant.root)
    kind = rng.choice(["administrator", "administrator", "console-role", "org-role"])
    if kind == "administrator":
        role = tenant.system.administrator
    else:
        must = ["internal_user_mgt_view", "internal_user_mgt_list", "internal_org_mgt_view"]
        extra = rng.sample([s for s in every if s not in must], rng.randint(2, len(every) - len(must)))
        role = role_create(
            actor=None,
            org=home,
            name=f"console {counter['actor']}",
            audience_application=console if kind == "console-role" else None,
            permissions=must + extra,
        )
    role_assign(actor=None, role=role, org=home, user=user)
    if rng.random() < 0.6:  # may impersonate in the Console of its organization
        role_assign(actor=None, role=tenant.system.impersonator, org=home, user=user)
    # The management application's role: what the actor's API token may carry.
    mgmt_role = Role.objects.filter(audience_application=tenant.mgmt, name="mgmt manager").first()
    if mgmt_role is None:
        mgmt_role = role_create(
            actor=None,
            org=tenant.root,
            name="mgmt manager",
            audience_application=tenant.mgmt,
            permissions=MGMT_SCOPES,
        )
    role_assign(actor=None, role=mgmt_role, org=home, user=user)
    # Sometimes a second, narrower grant in another branch below the resident organization.
    elsewhere = [o for o in _descendants(resident_at, tenant.orgs) if o.pk != home.pk]
    if elsewhere and rng.random() < 0.3:
        second = rng.choice(elsewhere)
        user_share(actor=None, user=user, org=second)
        narrow = role_create(
            actor=None,
            org=second,
            name=f"viewer {counter['actor']}",
            audience_application=console,
            permissions=["internal_user_mgt_view"],
        )
        role_assign(actor=None, role=narrow, org=second, user=user)
        kind += "+second"
    return Actor(user=user, tenant=tenant, home=home, kind=kind)


def build_world(rng: random.Random, *, n_orgs: int = 52) -> IsoWorld:
    counter: Counter[str] = Counter()
    a = _build_tenant(rng, "iso-a", n_orgs, counter)
    b = _build_tenant(rng, "iso-b", 7, counter)
    depth = {o.pk: o.level for o in a.orgs}
    by_depth = sorted(a.orgs, key=lambda o: o.level)
    deep = [o for o in a.orgs if o.level >= 2]
    mid = [o for o in a.orgs if o.level == 1]
    homes = [a.root, rng.choice(mid), *rng.sample(deep, min(len(deep), 5))]
    # Make sure one home has a strict ancestor and a sibling among the other homes' subjects.
    assert max(depth.values()) >= 3, [o.level for o in by_depth]
    actors = [_make_actor(rng, a, home, counter) for home in homes]
    actors += [_make_actor(rng, b, b.root, counter), _make_actor(rng, b, rng.choice(b.orgs[1:]), counter)]
    # Live impersonation sessions at random organizations of both tenants (force-end targets).
    sessions = []
    now = timezone.now()
    for tenant in (a, b):
        for org in rng.sample(tenant.orgs, min(len(tenant.orgs), 8 if tenant is a else 2)):
            residents = [u for u in tenant.users if u.organization_id == org.pk]
            if not residents:
                continue
            impersonator = tenant.users[0]
            sso = sso_session_start(user=impersonator, org=org, amr=["pwd"])
            sessions.append(
                ImpersonationSession.objects.create(
                    tenant=tenant.root,
                    organization=org,
                    impersonator=impersonator,
                    subject=residents[0],
                    application=tenant.system.myaccount,
                    sso_session=sso,
                    channel=ImpersonationSession.Channel.CONSOLE,
                    reason="isolation",
                    started_at=now,
                    expires_at=now + dt.timedelta(minutes=30),
                )
            )
    # One organization disabled, away from every actor's home and residence: its subtree must
    # drop out of every Console (and token switch) even for the administrators above it.
    actor_orgs = {x.home.pk for x in actors if x.tenant is a} | {
        x.user.organization_id for x in actors if x.tenant is a
    }
    candidates = [o for o in a.orgs[1:] if not any(p == o.pk or _is_below(p, o, a.orgs) for p in actor_orgs)]
    if candidates:
        organization_set_status(actor=None, org=rng.choice(candidates), status=Organization.Status.DISABLED)
    for tenant in (a, b):
        for o in tenant.orgs:
            o.refresh_from_db()
    return IsoWorld(a=a, b=b, actors=actors, sessions=sessions)


def _is_below(org_id: uuid.UUID, of: Organization, orgs: list[Organization]) -> bool:
    org = next(o for o in orgs if o.pk == org_id)
    return of.pk in _chain(org, orgs)[1:]


class Oracle:
    """Isolation answers from raw rows: the organization parent links, residences,
    associations, role assignments, application sharing. Nothing of actas's selectors."""

    def __init__(self) -> None:
        rows = list(Organization.objects.values("id", "parent_id", "status"))
        self.parent = {r["id"]: r["parent_id"] for r in rows}
        self.active = {r["id"]: r["status"] == Organization.Status.ACTIVE for r in rows}
        users = list(User.objects.values("id", "organization_id", "is_active", "is_locked"))
        self.resident = {r["id"]: r["organization_id"] for r in users}
        self.can_sign_in = {r["id"]: r["is_active"] and not r["is_locked"] for r in users}
        assoc = list(UserAssociation.objects.values("id", "user_id", "organization_id"))
        self.association = {r["id"]: (r["user_id"], r["organization_id"]) for r in assoc}
        self.shared_into = {(r["user_id"], r["organization_id"]) for r in assoc}
        self.apps = {
            r["id"]: r
            for r in Application.objects.values("id", "organization_id", "shared_access", "system_key")
        }
        self.shares = set(ApplicationShare.objects.values_list("application_id", "organization_id"))
        self.roles = {
            r["id"]: r
            for r in Role.objects.values("id", "organization_id", "audience", "audience_application_id")
        }
        self.perms: dict[uuid.UUID, set[str]] = {}
        for role_id, name in Role.permissions.through.objects.values_list("role_id", "scope__name"):
            self.perms.setdefault(role_id, set()).add(name)
        self.assignments: list[tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None]] = list(
            RoleAssignment.objects.values_list("role_id", "user_id", "association_id")
        )
        self.authorized: dict[int, set[str]] = {}
        for app_id, name in ApplicationAPIAuthorization.objects.values_list("application_id", "scopes__name"):
            if name:
                self.authorized.setdefault(app_id, set()).add(name)

    def path(self, org_id: uuid.UUID) -> list[uuid.UUID]:
        """``org_id`` and its ancestors, nearest first."""
        chain: list[uuid.UUID] = []
        node: uuid.UUID | None = org_id
        while node is not None:
            chain.append(node)
            node = self.parent[node]
        return chain

    def tenant(self, org_id: uuid.UUID) -> uuid.UUID:
        return self.path(org_id)[-1]

    def below(self, org_id: uuid.UUID, of: uuid.UUID, *, include_self: bool = True) -> bool:
        chain = self.path(org_id)
        return of in (chain if include_self else chain[1:])

    def usable(self, org_id: uuid.UUID) -> bool:
        return all(self.active[o] for o in self.path(org_id))

    def member(self, user_id: uuid.UUID, org_id: uuid.UUID) -> bool:
        return self.resident[user_id] == org_id or (user_id, org_id) in self.shared_into

    def members(self, org_id: uuid.UUID) -> set[uuid.UUID]:
        return {u for u in self.resident if self.member(u, org_id)}

    def relation(self, target_org: uuid.UUID, home: uuid.UUID) -> str:
        if self.tenant(target_org) != self.tenant(home):
            return OTHER_TENANT
        if target_org == home:
            return SAME
        if self.below(target_org, home, include_self=False):
            return DESCENDANT
        if self.below(home, target_org, include_self=False):
            return ANCESTOR
        return OTHER_BRANCH

    def available(self, app_id: int, org_id: uuid.UUID) -> bool:
        app = self.apps[app_id]
        owner = app["organization_id"]
        if owner == org_id:
            return True
        if not self.below(org_id, owner, include_self=False):
            return False
        if app["system_key"] == Application.SystemKey.CONSOLE:
            return True
        if app["shared_access"] == Application.SharedAccess.ALL:
            return True
        return app["shared_access"] == Application.SharedAccess.SELECTED and (app_id, org_id) in self.shares

    def role_visible(self, role_id: uuid.UUID, org_id: uuid.UUID) -> bool:
        """Own, or made by its application's owner for an application available here."""
        role = self.roles[role_id]
        if role["organization_id"] == org_id:
            return True
        app_id = role["audience_application_id"]
        return (
            app_id is not None
            and role["organization_id"] == self.apps[app_id]["organization_id"]
            and self.available(app_id, org_id)
        )

    def _assignment_org(
        self, a: tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None], user_id: uuid.UUID
    ) -> uuid.UUID | None:
        _, direct, association = a
        if direct == user_id:
            return self.resident[user_id]
        if association is not None:
            owner, org = self.association[association]
            if owner == user_id:
                return org
        return None

    def app_scopes_at(self, user_id: uuid.UUID, app_id: int, org_ids: list[uuid.UUID]) -> set[str]:
        """Scopes of application ``app_id`` held through roles assigned in any of ``org_ids``."""
        if not self.can_sign_in[user_id]:
            return set()
        held: set[str] = set()
        app_owner = self.apps[app_id]["organization_id"]
        for a in self.assignments:
            where = self._assignment_org(a, user_id)
            if where is None or where not in org_ids:
                continue
            role = self.roles[a[0]]
            perms = self.perms.get(role["id"], set())
            if role["audience"] == Role.Audience.APPLICATION and role["audience_application_id"] == app_id:
                if role["organization_id"] in (app_owner, where):
                    held |= perms
            elif role["audience"] == Role.Audience.ORGANIZATION and role["organization_id"] == where:
                held |= perms - IMPERSONATION
        return held & self.authorized.get(app_id, set())

    def console_scopes(self, user_id: uuid.UUID, org_id: uuid.UUID) -> set[str]:
        """Console scopes ``user_id`` holds for the Console of ``org_id``: granted there or above,
        in the same tenant, with the whole path active."""
        if self.tenant(self.resident[user_id]) != self.tenant(org_id) or not self.usable(org_id):
            return set()
        console = next(
            pk
            for pk, app in self.apps.items()
            if app["system_key"] == Application.SystemKey.CONSOLE
            and app["organization_id"] == self.tenant(org_id)
        )
        return self.app_scopes_at(user_id, console, self.path(org_id))
