"""The permission question, checked case by case and against a brute-force oracle."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

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
from identity.selectors.applications import application_available_in
from identity.selectors.permission_map import user_switchable_organizations
from identity.selectors.permissions import user_scopes_along_path, user_scopes_for_application
from identity.selectors.roles import roles_in_org
from identity.selectors.users import org_member_page
from identity.services.applications import application_authorize_api, application_create, application_share
from identity.services.roles import role_assign, role_create
from identity.services.users import user_share
from organizations.models import Organization
from organizations.services import org_set_status
from tests.conftest import World, make_user

IMPERSONATE = {IMPERSONATE_SCOPE, ORG_IMPERSONATE_SCOPE}


def _pickup(world: World, *, share: str = Application.SharedAccess.ALL) -> Application:
    app, _ = application_create(
        actor=None,
        org=world.root,
        name="Pickup",
        grant_types=["authorization_code"],
        redirect_uris=["http://127.0.0.1:8765/callback"],
    )
    for identifier in ("system:impersonation", "org:impersonation", "system:users"):
        resource = APIResource.objects.get(tenant=world.root, identifier=identifier)
        application_authorize_api(
            actor=None,
            application=app,
            resource=resource,
            scopes=list(resource.scopes.values_list("name", flat=True)),
        )
    application_share(
        actor=None,
        application=app,
        mode=share,
        organizations=[world.eu] if share == Application.SharedAccess.SELECTED else [],
    )
    return app


def test_resident_user_with_application_role(world: World) -> None:
    app = _pickup(world)
    role = role_create(
        actor=None,
        org=world.root,
        name="Pickup Impersonator",
        audience_application=app,
        permissions=sorted(IMPERSONATE),
    )
    role_assign(actor=None, role=role, org=world.root, user=world.admin)
    assert user_scopes_for_application(user=world.admin, application=app, org=world.root) == IMPERSONATE
    assert user_scopes_for_application(user=world.target, application=app, org=world.root) == frozenset()


def test_shared_role_assigned_to_association_counts_only_in_that_org(world: World) -> None:
    app = _pickup(world)
    role = role_create(
        actor=None,
        org=world.root,
        name="Pickup Impersonator",
        audience_application=app,
        permissions=sorted(IMPERSONATE),
    )
    role_assign(actor=None, role=role, org=world.eu, user=world.target)  # via the association
    assert RoleAssignment.objects.get(role=role).association is not None
    assert user_scopes_for_application(user=world.target, application=app, org=world.eu) == IMPERSONATE
    assert user_scopes_for_application(user=world.target, application=app, org=world.root) == frozenset()
    assert user_scopes_for_application(user=world.target, application=app, org=world.sales) == frozenset()


def test_org_audience_role_grants_for_any_authorized_application(world: World) -> None:
    app = _pickup(world)
    role = role_create(
        actor=None,
        org=world.eu,
        name="Helpdesk",
        audience_application=None,
        permissions=["internal_user_mgt_view", "internal_config_mgt_view"],
    )
    role_assign(actor=None, role=role, org=world.eu, user=world.eu_user)
    # internal_config_mgt_view is not authorized for Pickup, so it never reaches Pickup's tokens.
    assert user_scopes_for_application(user=world.eu_user, application=app, org=world.eu) == {
        "internal_user_mgt_view"
    }


def test_unshared_org_gets_nothing(world: World) -> None:
    app = _pickup(world, share=Application.SharedAccess.SELECTED)
    role = role_create(
        actor=None,
        org=world.root,
        name="Pickup Impersonator",
        audience_application=app,
        permissions=sorted(IMPERSONATE),
    )
    role_assign(actor=None, role=role, org=world.eu, user=world.eu_admin)
    assert user_scopes_for_application(user=world.eu_admin, application=app, org=world.eu) == IMPERSONATE
    application_share(actor=None, application=app, mode=Application.SharedAccess.NONE)
    assert not application_available_in(application=app, org=world.eu)
    assert user_scopes_for_application(user=world.eu_admin, application=app, org=world.eu) == frozenset()


def test_disabled_org_or_user_gets_nothing(world: World) -> None:
    console = world.system.console
    assert user_scopes_for_application(user=world.eu_admin, application=console, org=world.eu)
    org_set_status(org=world.eu, status=Organization.Status.DISABLED)
    assert user_scopes_for_application(user=world.eu_admin, application=console, org=world.eu) == frozenset()
    world.admin.is_active = False
    assert user_scopes_for_application(user=world.admin, application=console, org=world.root) == frozenset()


def test_switchable_organizations_skip_those_under_a_disabled_parent(world: World) -> None:
    """What ``me/organizations`` lists is what ``organization_switch`` accepts: an organization
    below a disabled one is not usable, so it is not offered either."""
    app = _pickup(world)
    listed = user_switchable_organizations(user=world.sales_user, org=world.root, client_id=app.client_id)
    assert [o.pk for o in listed] == [world.sales.pk]
    org_set_status(org=world.eu, status=Organization.Status.DISABLED)
    assert user_switchable_organizations(user=world.sales_user, org=world.root, client_id=app.client_id) == []


def test_console_scopes_reach_down_never_up_or_sideways(world: World) -> None:
    console = world.system.console
    assert user_scopes_along_path(user=world.eu_admin, application=console, org=world.sales)
    assert user_scopes_along_path(user=world.eu_admin, application=console, org=world.root) == frozenset()
    assert user_scopes_along_path(user=world.eu_admin, application=console, org=world.us) == frozenset()
    assert user_scopes_along_path(user=world.admin, application=console, org=world.sales)


def test_selector_query_count_is_bounded(world: World) -> None:
    app = _pickup(world)
    role = role_create(
        actor=None, org=world.root, name="R", audience_application=app, permissions=sorted(IMPERSONATE)
    )
    for i in range(20):
        role_assign(actor=None, role=role, org=world.root, user=make_user(world.root, f"bulk{i}"))
    with CaptureQueriesContext(connection) as ctx:
        user_scopes_for_application(user=world.target, application=app, org=world.eu)
    assert len(ctx.captured_queries) <= 4


def test_roles_in_org_lists_own_and_shared(world: World) -> None:
    names = {(r.name, r.organization_id) for r in roles_in_org(world.eu)}
    assert ("Administrator", world.root.pk) in names  # Console is available everywhere
    assert ("Impersonator", world.root.pk) not in names  # My Account is not shared yet
    application_share(actor=None, application=world.system.myaccount, mode=Application.SharedAccess.ALL)
    assert ("Impersonator", world.root.pk) in {(r.name, r.organization_id) for r in roles_in_org(world.eu)}


def test_member_page_keyset(world: World) -> None:
    for i in range(7):
        make_user(world.eu, f"p{i:02d}")
    seen: list[str] = []
    after = None
    while True:
        page = org_member_page(org=world.eu, after=after, size=3)
        seen.extend(u.username for u in page.users)
        if page.next_cursor is None:
            break
        after = page.next_cursor
    # residents plus the shared-in target, each once, in order
    assert seen == sorted(seen)
    assert "target" in seen and "eu-admin" in seen and len(seen) == len(set(seen)) == 10
    assert [u.username for u in org_member_page(org=world.eu, search="p0", size=50).users][:2] == [
        "p00",
        "p01",
    ]
    assert org_member_page(org=world.eu, after="garbage!!", size=2).users  # a bad cursor is the first page


# --- the oracle -----------------------------------------------------------------------------


class Oracle:
    """Brute force over raw rows, loaded once and walked in plain Python, independently of
    the selector's queries."""

    def __init__(self) -> None:
        self.orgs = {o.pk: o for o in Organization.objects.all()}
        self.shares = {(s.application_id, s.organization_id) for s in ApplicationShare.objects.all()}
        self.associations = [(a.pk, a.user_id, a.organization_id) for a in UserAssociation.objects.all()]
        self.authorized: dict[int, set[str]] = {}
        for auth in ApplicationAPIAuthorization.objects.all():
            self.authorized.setdefault(auth.application_id, set()).update(s.name for s in auth.scopes.all())
        self.roles = {r.pk: (r, {s.name for s in r.permissions.all()}) for r in Role.objects.all()}
        self.assignments = list(RoleAssignment.objects.all())

    def chain(self, org: Organization) -> list[Organization]:
        out = [self.orgs[org.pk]]
        while out[-1].parent_id is not None:
            out.append(self.orgs[out[-1].parent_id])
        return out

    def __call__(self, user: User, app: Application, org: Organization) -> frozenset[str]:
        path = self.chain(org)
        if not user.is_active or user.is_locked or any(o.status != "active" for o in path):
            return frozenset()
        if app.organization_id == org.pk:
            available = True
        elif app.organization_id in {o.pk for o in path}:
            available = (
                app.system_key == "console"
                or app.shared_access == "all"
                or (app.shared_access == "selected" and (app.pk, org.pk) in self.shares)
            )
        else:
            available = False
        if not available:
            return frozenset()
        mine_assoc = {pk for pk, uid, oid in self.associations if uid == user.pk and oid == org.pk}
        held: set[str] = set()
        for a in self.assignments:
            direct = a.user_id == user.pk and user.organization_id == org.pk
            if not (direct or a.association_id in mine_assoc):
                continue
            role, perms = self.roles[a.role_id]
            # An application role counts when its application's owner made it (a shared
            # role) or when it belongs to this very organization.
            if (
                role.audience == "application"
                and role.audience_application_id == app.pk
                and role.organization_id in (app.organization_id, org.pk)
            ):
                held |= perms
            # An organization role counts only at home, and never grants impersonation.
            if role.audience == "organization" and role.organization_id == org.pk:
                held |= perms - IMPERSONATE
        return frozenset(held & self.authorized.get(app.pk, set()))


def _choose(rng: random.Random, items: Iterable[Any], k: int) -> list[Any]:
    pool = list(items)
    return rng.sample(pool, min(k, len(pool)))


@pytest.mark.parametrize("seed", range(12))
def test_selector_matches_oracle(world: World, seed: int) -> None:
    rng = random.Random(seed)
    orgs = [world.root, world.eu, world.sales, world.us]
    scopes = list(Scope.objects.filter(tenant=world.root))
    users = [world.admin, world.target, world.eu_admin, world.eu_user, world.sales_user, world.other_org_user]
    for user in users:  # random sharing into descendants
        below = [o for o in orgs if o.pk != user.organization_id and o.is_descendant_of(user.organization)]
        for org in _choose(rng, below, rng.randint(0, 2)):
            user_share(actor=None, user=user, org=org)
    apps = [world.system.console, world.system.myaccount]
    for n in range(2):
        owner = rng.choice(orgs[:2])
        app, _ = application_create(actor=None, org=owner, name=f"App{n}", grant_types=["client_credentials"])
        resources = _choose(rng, APIResource.objects.filter(tenant=world.root), 3)
        for resource in resources:
            application_authorize_api(
                actor=None,
                application=app,
                resource=resource,
                scopes=[s.name for s in _choose(rng, resource.scopes.all(), 3)],
            )
        mode = rng.choice(["none", "all", "selected"])
        below = [o for o in orgs if o.is_descendant_of(owner)]
        application_share(
            actor=None,
            application=app,
            mode=mode,
            organizations=_choose(rng, below, 2) if mode == "selected" else [],
        )
        apps.append(app)
    for n in range(5):
        org = rng.choice(orgs)
        audience = rng.choice([None, *[a for a in apps if application_available_in(application=a, org=org)]])
        pool = (
            list(
                Scope.objects.filter(
                    pk__in=ApplicationAPIAuthorization.objects.filter(application=audience).values("scopes")
                )
            )
            if audience
            else [s for s in scopes if s.name not in IMPERSONATE]
        )
        role = role_create(
            actor=None,
            org=org,
            name=f"Role{n}",
            audience_application=audience,
            permissions=[s.name for s in _choose(rng, pool, 4)],
        )
        members = [
            u
            for u in users
            if u.organization_id == org.pk
            or UserAssociation.objects.filter(user=u, organization=org).exists()
        ]
        for user in _choose(rng, members, 3):
            role_assign(actor=None, role=role, org=org, user=user)
    # Rows no service would write (a role assigned where it is not visible, an organization
    # role carrying impersonation): the selector must not trust the services alone.
    all_roles = list(Role.objects.all())
    for role in _choose(rng, all_roles, 3):
        user = rng.choice(users)
        association = UserAssociation.objects.filter(user=user).first()
        if association is not None and rng.random() < 0.5:
            RoleAssignment.objects.get_or_create(role=role, association=association)
        else:
            RoleAssignment.objects.get_or_create(role=role, user=user)
    org_roles = [r for r in all_roles if r.audience == "organization"]
    if org_roles:
        rng.choice(org_roles).permissions.add(*Scope.objects.filter(name__in=IMPERSONATE))
    if rng.random() < 0.3:
        org_set_status(org=world.eu, status=Organization.Status.DISABLED)
    if rng.random() < 0.5:
        app = rng.choice(apps[2:])
        application_share(actor=None, application=app, mode=Application.SharedAccess.NONE)
    for org in orgs:
        org.refresh_from_db()
    checked = 0
    oracle = Oracle()
    for user in users:
        for app in Application.objects.select_related("organization"):
            for org in orgs:
                expected = oracle(user, app, org)
                assert user_scopes_for_application(user=user, application=app, org=org) == expected, (
                    user.username,
                    app.name,
                    org.handle,
                )
                checked += 1 if expected else 0
    # The scenario must exercise real grants, or the comparison proves little.
    assert checked > 0
