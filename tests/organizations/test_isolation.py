"""Tenant isolation as a property (issue 7, item 6).

Over generated worlds (tests/isolation_tree.py: two tenants, one with a random tree of 50+
organizations, random users, sharing, applications, roles and administrators holding random
Console scopes at random organizations), for every administrator ("actor") and a sample of
targets of every kind and every relation to the actor's organization — the same organization,
a descendant, an ancestor, another branch, another tenant — nothing outside the actor's reach
is visible or actionable:

* the Console (signed in as the actor): organization Consoles, the tree, users, the users list
  and search, roles, applications, Impersonate User, force-ending impersonations;
* the APIs (the actor's access tokens): SCIM Users list / get / PATCH / DELETE, the
  impersonation configuration, my organizations, ``organization_switch``;
* the token endpoints: client authentication across tenants and organizations, introspection
  across tenants, subject tokens for users of another tenant or outside the organization, and
  a subject token exchanged at another tenant.

Expected answers come from :class:`tests.isolation_tree.Oracle`, which reads raw rows; refused
writes are checked to have changed nothing. Each kind of pair must have been checked at least
once per world (``Coverage``), so a sampling slip cannot make the property vacuous.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import random
import re
import secrets
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from oauth2_provider.models import AccessToken

from identity.models import APIResource, Application, Role, RoleAssignment, User
from identity.services.applications import application_authorize_api, application_create
from identity.services.roles import role_assign, role_create
from impersonation.models import ImpersonationSession
from organizations.models import Organization, OrganizationSettings
from tests.isolation_tree import (
    DESCENDANT,
    OTHER_BRANCH,
    OTHER_TENANT,
    PASSWORD,
    REDIRECT,
    RELATIONS,
    SAME,
    SECRET,
    Actor,
    IsoWorld,
    Oracle,
    Tenant,
    build_world,
)

pytestmark = pytest.mark.django_db

# Worlds per test (ACTAS_ISOLATION_EXAMPLES=20 for a longer search by hand). A world of 50+
# organizations is costly: no shrinking (the assertion messages name the pair instead), and the
# Console, which answers several hundred pages per world, looks at one world per run.
EXAMPLES = int(os.environ.get("ACTAS_ISOLATION_EXAMPLES", "0"))


def _settings(default: int) -> settings:
    return settings(
        max_examples=EXAMPLES or default,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# Hypothesis picks the seeds; a seeded Random draws the world (HypothesisRandom's early,
# "simple" draws would make every choice the first one: one flat branch, all apps at the root).
SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
PER_RELATION = 2  # targets sampled per (actor, relation, kind)
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TX = "urn:ietf:params:oauth:grant-type:token-exchange"


class _Rollback(Exception):
    pass


@contextmanager
def world_of(rng: random.Random) -> Iterator[IsoWorld]:
    """A world that lives for one hypothesis example (rolled back afterwards)."""
    try:
        with transaction.atomic():
            world = build_world(rng)
            print(  # -s shows it
                f"world: {len(world.a.orgs)} + {len(world.b.orgs)} organizations, "
                f"{User.objects.count()} users, {len(world.actors)} administrators "
                f"({', '.join(a.kind for a in world.actors)}), {len(world.sessions)} impersonations"
            )
            yield world
            raise _Rollback
    except _Rollback:
        pass


class Coverage:
    """Which (surface, relation) kinds were checked; every relation must appear."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()

    def add(self, surface: str, relation: str) -> None:
        self.seen[(surface, relation)] += 1

    def require(self, surface: str, relations: tuple[str, ...] = RELATIONS) -> int:
        missing = [r for r in relations if not self.seen[(surface, r)]]
        assert not missing, f"{surface}: no pair of kind {missing} was checked ({dict(self.seen)})"
        checked = sum(n for (s, _), n in self.seen.items() if s == surface)
        print(f"{surface}: {checked} pairs", {r: self.seen[(surface, r)] for r in RELATIONS})  # -s shows it
        return checked


def _sample_by_relation(
    rng: random.Random, oracle: Oracle, home: uuid.UUID, items: list[Any], org_of: Any, k: int = PER_RELATION
) -> list[tuple[str, Any]]:
    """Up to ``k`` items of each relation of their organization to ``home``."""
    buckets: dict[str, list[Any]] = {r: [] for r in RELATIONS}
    for item in items:
        buckets[oracle.relation(org_of(item), home)].append(item)
    picked = []
    for relation, bucket in buckets.items():
        for item in rng.sample(bucket, min(len(bucket), k)):
            picked.append((relation, item))
    return picked


def _base(org: Organization, oracle: Oracle, handle_of: dict[uuid.UUID, str]) -> str:
    tenant = oracle.tenant(org.pk)
    handle = handle_of[tenant]
    return f"/t/{handle}" if org.pk == tenant else f"/t/{handle}/o/{org.pk}"


def console(world: IsoWorld, org: Organization, path: str = "") -> str:
    tenant = world.tenant_of(org.pk)
    base = f"/t/{tenant.handle}" if org.pk == tenant.root.pk else f"/t/{tenant.handle}/o/{org.pk}"
    return f"{base}/console/{path}"


def sign_in(world: IsoWorld, user: User) -> Client:
    client = Client()
    tenant = world.tenant_of(user.organization_id)
    org = user.organization
    url = (
        f"/t/{tenant.handle}/login/" if org.pk == tenant.root.pk else f"/t/{tenant.handle}/o/{org.pk}/login/"
    )
    response = client.post(url, {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:300]
    return client


def _world_users(world: IsoWorld) -> list[User]:
    return list(User.objects.filter(pk__in=[u.pk for t in world.tenants for u in t.users]))


# --- the Console ---------------------------------------------------------------------------


def _expect_scope(oracle: Oracle, actor: Actor, org: Organization, scope: str | None) -> int | None:
    """The status the Console shell alone answers for ``org`` (None when it lets the page decide)."""
    held = oracle.console_scopes(actor.user.pk, org.pk)
    if not held or (scope is not None and scope not in held):
        return 403
    return None


def _user_ids_in(html: str, known: set[uuid.UUID]) -> set[uuid.UUID]:
    return {uuid.UUID(m) for m in UUID_RE.findall(html)} & known


def check_console(rng: random.Random, world: IsoWorld, cov: Coverage) -> None:
    oracle = Oracle()
    orgs = world.all_orgs()
    users = _world_users(world)
    user_ids = {u.pk for u in users}
    roles = list(Role.objects.filter(organization__in=[o.pk for o in orgs]))
    apps = list(Application.objects.filter(organization__in=[o.pk for o in orgs]))
    org_count = Organization.objects.count()
    for actor in world.actors:
        client = sign_in(world, actor.user)
        me = actor.user.pk
        home = actor.home
        held_home = oracle.console_scopes(me, home.pk)
        assert held_home, (actor.kind, "the actor must administer its home")
        # 1. The Console of each sampled organization, and the tree below the home's Console.
        for relation, org in _sample_by_relation(rng, oracle, home.pk, orgs, lambda o: o.pk):
            cov.add("console-org", relation)
            expected = 200 if oracle.console_scopes(me, org.pk) else 403
            got = client.get(console(world, org)).status_code
            assert got == expected, (actor.kind, relation, org.name, got, expected)
            if expected == 200:  # isolation itself, independent of how the oracle got there
                assert relation != OTHER_TENANT
            if relation == OTHER_TENANT:
                # The organization under the actor's own tenant handle does not exist.
                mixed = f"/t/{actor.tenant.handle}/o/{org.pk}/console/"
                assert client.get(mixed).status_code == 404, mixed
            inside = relation in (SAME, DESCENDANT)
            node = _expect_scope(oracle, actor, home, "internal_org_mgt_view") or (200 if inside else 404)
            got = client.get(console(world, home, f"organizations/?node={org.pk}")).status_code
            assert got == node, ("tree node", actor.kind, relation, org.name, got, node)
            if inside:
                continue
            got = client.get(console(world, home, f"organizations/{org.pk}/children/")).status_code
            assert got == node, ("children", actor.kind, relation, org.name, got, node)
            status_before = Organization.objects.get(pk=org.pk).status
            denied = _expect_scope(oracle, actor, home, "internal_org_mgt_update") or 404
            got = client.post(
                console(world, home, f"organizations/{org.pk}/status/"), {"status": "disabled"}
            ).status_code
            assert got == denied, ("status", actor.kind, relation, org.name, got, denied)
            assert Organization.objects.get(pk=org.pk).status == status_before
            if relation != OTHER_BRANCH:
                continue
            created = client.post(
                console(world, home, "organizations/create/"),
                {"parent": str(org.pk), "name": "Intruder", "handle": f"intruder-{secrets.token_hex(3)}"},
            )
            assert created.status_code in (400, 403), created.status_code
            assert Organization.objects.count() == org_count
        # 2. Users: the detail page in the home's Console and in the user's own organization's.
        members = oracle.members(home.pk)
        for relation, user in _sample_by_relation(rng, oracle, home.pk, users, lambda u: u.organization_id):
            cov.add("console-user", relation)
            expected = _expect_scope(oracle, actor, home, "internal_user_mgt_view") or (
                200 if user.pk in members else 404
            )
            response = client.get(console(world, home, f"users/{user.pk}/"))
            assert response.status_code == expected, (actor.kind, relation, user.username, expected)
            if expected == 200:
                assert user.username in response.content.decode()
            else:
                assert user.username not in response.content.decode()
            own = user.organization
            expected_own = _expect_scope(oracle, actor, own, "internal_user_mgt_view") or 200
            got = client.get(console(world, own, f"users/{user.pk}/")).status_code
            assert got == expected_own, ("own org", actor.kind, relation, user.username, got, expected_own)
            if expected_own == 200:
                assert relation != OTHER_TENANT and oracle.console_scopes(me, own.pk)
            # The search of the home's users finds the user only when a member.
            if relation != SAME and not _expect_scope(oracle, actor, home, "internal_user_mgt_list"):
                page = client.get(console(world, home, "users/"), {"q": user.username})
                assert page.status_code == 200
                found = {u.pk for u in page.context["page"].users}
                q = user.username.lower()
                matching = {
                    u.pk
                    for u in users
                    if any(
                        v.lower().startswith(q) for v in (u.username, u.email, u.given_name, u.family_name)
                    )
                }
                assert found == matching & members, (relation, user.username)
                assert (user.pk in found) == (user.pk in members)
                assert _user_ids_in(page.content.decode(), user_ids) <= members | {me}
        # 3. The whole users list of the home: exactly its members, nothing else on the page.
        if not _expect_scope(oracle, actor, home, "internal_user_mgt_list"):
            page = client.get(console(world, home, "users/"))
            assert page.status_code == 200
            assert {u.pk for u in page.context["page"].users} == members
            assert _user_ids_in(page.content.decode(), user_ids) <= members | {me}
        # 4. Roles and applications.
        for relation, role in _sample_by_relation(
            rng, oracle, home.pk, roles, lambda r: r.organization_id, 1
        ):
            cov.add("console-role", relation)
            visible = oracle.role_visible(role.pk, home.pk)
            expected = _expect_scope(oracle, actor, home, "internal_role_mgt_view") or (
                200 if visible else 404
            )
            got = client.get(console(world, home, f"roles/{role.pk}/")).status_code
            assert got == expected, (actor.kind, relation, role.name, got, expected)
            if not visible:
                outsider = next(u for u in users if u.organization_id == home.pk or u.pk == me)
                before = RoleAssignment.objects.count()
                denied = _expect_scope(oracle, actor, home, "internal_role_mgt_update") or 404
                got = client.post(
                    console(world, home, f"roles/{role.pk}/assign/"), {"username": outsider.username}
                ).status_code
                assert got == denied, ("assign", actor.kind, relation, role.name, got, denied)
                assert RoleAssignment.objects.count() == before
        for relation, app in _sample_by_relation(rng, oracle, home.pk, apps, lambda a: a.organization_id, 1):
            cov.add("console-application", relation)
            visible = oracle.available(app.pk, home.pk)
            expected = _expect_scope(oracle, actor, home, "internal_application_mgt_view") or (
                200 if visible else 404
            )
            got = client.get(console(world, home, f"applications/{app.pk}/")).status_code
            assert got == expected, (actor.kind, relation, app.name, got, expected)
        # 5. Impersonate User: never reaches a user who is not a member of the home.
        for relation, user in _sample_by_relation(rng, oracle, home.pk, users, lambda u: u.organization_id):
            cov.add("console-impersonate", relation)
            url = console(world, home, f"users/{user.pk}/impersonate/")
            gate = _expect_scope(oracle, actor, home, "internal_user_mgt_view")
            if user.pk not in members or user.organization_id != home.pk or user.pk == me:
                before = ImpersonationSession.objects.count()
                got = client.post(url, {"reason": "isolation probe"}).status_code
                assert got == (gate or 404), (actor.kind, relation, user.username, got)
                assert ImpersonationSession.objects.count() == before
            else:  # a resident: the confirmation page or the reason it is not possible
                got = client.get(url).status_code
                assert got in ((gate,) if gate else (200, 403)), (actor.kind, relation, user.username, got)
        # 6. Impersonation sessions: seen and force-ended only inside the home's subtree.
        sessions = _sample_by_relation(rng, oracle, home.pk, world.sessions, lambda s: s.organization_id, 1)
        for relation, session in sessions:
            cov.add("console-impersonation", relation)
            inside = relation in (SAME, DESCENDANT)
            expected = _expect_scope(oracle, actor, home, "internal_audit_view") or (200 if inside else 404)
            got = client.get(console(world, home, f"impersonations/{session.pk}/")).status_code
            assert got == expected, ("detail", actor.kind, relation, got, expected)
            expected = _expect_scope(oracle, actor, home, "internal_user_mgt_update") or (
                303 if inside else 404
            )
            got = client.post(console(world, home, f"impersonations/{session.pk}/end/")).status_code
            assert got == expected, ("force-end", actor.kind, relation, got, expected)
            ended = ImpersonationSession.objects.get(pk=session.pk).ended_at is not None
            assert ended == (expected == 303), (actor.kind, relation)
            if ended:  # live again for the next actor
                ImpersonationSession.objects.filter(pk=session.pk).update(ended_at=None, end_reason="")
        # 7. Another tenant's Console as a whole.
        other = world.b if actor.tenant is world.a else world.a
        assert client.get(f"/t/{other.handle}/console/").status_code == 403
        assert client.get(f"/t/{other.handle}/console/users/").status_code == 403


@_settings(1)
@given(seed=SEEDS)
def test_console_shows_and_changes_nothing_outside_the_administered_subtree(seed: int) -> None:
    rng, cov = random.Random(seed), Coverage()
    with world_of(rng) as world:
        assert len(world.a.orgs) >= 50
        check_console(rng, world, cov)
    for surface in ("console-org", "console-user", "console-impersonate"):
        cov.require(surface)
    cov.require("console-role", (SAME, OTHER_TENANT))
    cov.require("console-application", (SAME, OTHER_TENANT))
    cov.require("console-impersonation", (OTHER_TENANT,))


# --- the APIs ------------------------------------------------------------------------------

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM = "application/scim+json"


def basic(client_id: str, secret: str = SECRET) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (the endpoints verify; the test only reads)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def org_base(world: IsoWorld, org: Organization) -> str:
    tenant = world.tenant_of(org.pk)
    return f"/t/{tenant.handle}" if org.pk == tenant.root.pk else f"/t/{tenant.handle}/o/{org.pk}"


def user_token(world: IsoWorld, actor: Actor, client_id: str, scope: str) -> str:
    """An access token for the actor at its resident organization, through the real sign-in,
    /authorize (PKCE) and token endpoints."""
    client = sign_in(world, actor.user)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "st",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    response = client.get(f"{org_base(world, actor.user.organization)}/oauth2/authorize?{urlencode(params)}")
    assert response.status_code == 302 and response["Location"].startswith(REDIRECT), response.content[:300]
    code = parse_qs(urlsplit(response["Location"]).query)["code"][0]
    answer = Client().post(
        f"/t/{actor.tenant.handle}/oauth2/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        HTTP_AUTHORIZATION=basic(client_id),
    )
    assert answer.status_code == 200, answer.content
    token: str = answer.json()["access_token"]
    return token


def switch(tenant: Tenant, token: str, org_id: uuid.UUID, scope: str) -> Any:
    assert tenant.mgmt is not None
    return Client().post(
        f"/t/{tenant.handle}/oauth2/token",
        {
            "grant_type": "organization_switch",
            "token": token,
            "switching_organization": str(org_id),
            "scope": scope,
        },
        HTTP_AUTHORIZATION=basic(tenant.mgmt.client_id),
    )


def _scim_prefix(tenant: Tenant, org_id: uuid.UUID) -> str:
    return f"/t/{tenant.handle}/scim2" if org_id == tenant.root.pk else f"/t/{tenant.handle}/o/scim2"


def check_scim_at(
    rng: random.Random, world: IsoWorld, oracle: Oracle, actor: Actor, token: str, cov: Coverage, k: int = 2
) -> None:
    """The token's organization bounds everything the SCIM Users API shows or changes."""
    claims = claims_of(token)
    org_id = uuid.UUID(claims["org_id"])
    tenant = actor.tenant
    assert tenant.mgmt is not None
    root = org_id == tenant.root.pk
    granted = set(claims["scope"].split())
    held = oracle.app_scopes_at(actor.user.pk, tenant.mgmt.pk, [org_id])
    # Token claims: only what the user holds there (and the open scopes).
    assert granted - {"openid", "internal_login"} <= held, (granted, held)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    prefix = _scim_prefix(tenant, org_id)
    members = oracle.members(org_id)
    list_scope = "internal_user_mgt_list" if root else "internal_org_user_mgt_list"
    view_scope = "internal_user_mgt_view" if root else "internal_org_user_mgt_view"
    update_scope = "internal_user_mgt_update" if root else "internal_org_user_mgt_update"
    listed = api.get(f"{prefix}/Users", {"count": 200})
    if list_scope in granted:
        assert listed.status_code == 200, listed.content
        assert {uuid.UUID(r["id"]) for r in listed.json()["Resources"]} == members
        assert listed.json()["totalResults"] == len(members)
    else:
        assert listed.status_code == 403
    users = _world_users(world)
    for relation, user in _sample_by_relation(rng, oracle, org_id, users, lambda u: u.organization_id, k):
        cov.add("api-user", relation)
        inside = user.pk in members
        got = api.get(f"{prefix}/Users/{user.pk}")
        expected = (200 if inside else 404) if view_scope in granted else 403
        assert got.status_code == expected, (relation, user.username, got.status_code, expected)
        if inside:
            continue
        before = User.objects.filter(pk=user.pk).values("given_name", "is_active").get()
        body = {
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "replace", "path": "name.givenName", "value": "Intruder"},
                {"op": "replace", "path": "active", "value": False},
            ],
        }
        got = api.patch(f"{prefix}/Users/{user.pk}", json.dumps(body), content_type=SCIM)
        assert got.status_code == (404 if update_scope in granted else 403), (relation, got.status_code)
        if root:
            got = api.delete(f"{prefix}/Users/{user.pk}")
            assert got.status_code == (404 if "internal_user_mgt_delete" in granted else 403), relation
        assert User.objects.filter(pk=user.pk).values("given_name", "is_active").get() == before
    # The other tenant's APIs do not know the token at all.
    other = world.b if tenant is world.a else world.a
    stranger = other.users[0]
    for url in (
        f"/t/{other.handle}/scim2/Users",
        f"/t/{other.handle}/o/scim2/Users",
        f"/t/{other.handle}/scim2/Users/{stranger.pk}",
        f"/t/{other.handle}/scim2/Me",
        f"/t/{other.handle}/api/server/v1/configs/impersonation",
        f"/t/{other.handle}/api/users/v1/me/organizations",
    ):
        assert api.get(url).status_code == 401, url
    settings_before = list(OrganizationSettings.objects.filter(organization=other.root).values())
    got = api.patch(
        f"/t/{other.handle}/api/server/v1/configs/impersonation",
        json.dumps([{"operation": "REPLACE", "path": "/enableEmailNotification", "value": False}]),
        content_type="application/json",
    )
    assert got.status_code == 401
    assert list(OrganizationSettings.objects.filter(organization=other.root).values()) == settings_before
    # The configuration API of its own tenant answers for the token's organization only.
    config = api.get(
        f"/t/{tenant.handle}/api/server/v1/configs/impersonation"
        if root
        else f"/t/{tenant.handle}/o/api/server/v1/configs/impersonation",
    )
    assert config.status_code == (200 if "internal_config_mgt_view" in granted else 403), config.content


def _may_switch(oracle: Oracle, tenant: Tenant, actor: Actor, org_id: uuid.UUID) -> bool:
    assert tenant.mgmt is not None
    return (
        oracle.tenant(org_id) == tenant.root.pk
        and oracle.below(org_id, actor.user.organization_id, include_self=False)
        and oracle.usable(org_id)
        and oracle.member(actor.user.pk, org_id)
        and oracle.available(tenant.mgmt.pk, org_id)
    )


def check_apis(rng: random.Random, world: IsoWorld, cov: Coverage) -> dict[uuid.UUID, str]:
    oracle = Oracle()
    orgs = world.all_orgs()
    scope = "openid " + " ".join(
        sorted(
            {
                "internal_user_mgt_list",
                "internal_user_mgt_view",
                "internal_user_mgt_update",
                "internal_user_mgt_delete",
                "internal_org_user_mgt_list",
                "internal_org_user_mgt_view",
                "internal_org_user_mgt_update",
                "internal_config_mgt_view",
                "internal_config_mgt_update",
            }
        )
    )
    tokens_by_actor: dict[uuid.UUID, str] = {}
    for actor in world.actors:
        tenant = actor.tenant
        assert tenant.mgmt is not None
        me = actor.user.pk
        token = user_token(world, actor, tenant.mgmt.client_id, scope)
        tokens_by_actor[me] = token
        resident = actor.user.organization_id
        assert uuid.UUID(claims_of(token)["org_id"]) == resident
        check_scim_at(rng, world, oracle, actor, token, cov)

        # Where the token may switch to: listed, and accepted, exactly the oracle's organizations.
        may_switch = functools.partial(_may_switch, oracle, tenant, actor)

        listed = Client().get(
            f"/t/{tenant.handle}/api/users/v1/me/organizations", HTTP_AUTHORIZATION=f"Bearer {token}"
        )
        assert listed.status_code == 200
        assert {uuid.UUID(o["id"]) for o in listed.json()["organizations"]} == {
            o.pk for o in orgs if may_switch(o.pk)
        }, actor.kind
        targets = _sample_by_relation(rng, oracle, resident, orgs, lambda o: o.pk)
        if actor.home.pk != resident:
            targets.append((DESCENDANT, actor.home))
        for relation, org in targets:
            cov.add("api-switch", relation)
            answer = switch(tenant, token, org.pk, scope)
            if not may_switch(org.pk):
                assert answer.status_code == 400, (relation, org.name, answer.content)
                assert answer.json()["error"] == "invalid_grant"
                continue
            assert answer.status_code == 200, (relation, org.name, answer.content)
            switched = answer.json()["access_token"]
            assert uuid.UUID(claims_of(switched)["org_id"]) == org.pk
            check_scim_at(rng, world, oracle, actor, switched, cov, k=1)
        # A switch at another tenant's endpoint, with that tenant's client: the token is unknown.
        other = world.b if tenant is world.a else world.a
        answer = switch(other, token, other.orgs[-1].pk, scope)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", answer.content
    return tokens_by_actor


@_settings(2)
@given(seed=SEEDS)
def test_apis_show_and_change_nothing_outside_the_tokens_organization(seed: int) -> None:
    rng, cov = random.Random(seed), Coverage()
    with world_of(rng) as world:
        check_apis(rng, world, cov)
    cov.require("api-user")
    cov.require("api-switch")


# --- the token endpoints -------------------------------------------------------------------


def _impersonation_app(tenant: Tenant, actors: list[Actor]) -> Application:
    """A Pickup-like application of ``tenant`` (subject tokens, token exchange), shared with
    every organization; its impersonator role is held by the tenant's actors at home."""
    app, _ = application_create(
        actor=None,
        org=tenant.root,
        name=f"{tenant.handle} pickup",
        client_id=f"{tenant.handle}-pickup",
        client_secret=SECRET,
        grant_types=[Application.GRANT_AUTHORIZATION_CODE_TYPE, Application.GRANT_TOKEN_EXCHANGE_TYPE],
        redirect_uris=[REDIRECT],
        skip_login_consent=True,
        subject_token_enabled=True,
        shared_access=Application.SharedAccess.ALL,
    )
    for identifier in ("system:impersonation", "org:impersonation", "system:users"):
        resource = APIResource.objects.get(tenant=tenant.root, identifier=identifier)
        application_authorize_api(
            actor=None,
            application=app,
            resource=resource,
            scopes=list(resource.scopes.values_list("name", flat=True)),
        )
    role = role_create(
        actor=None,
        org=tenant.root,
        name="pickup impersonator",
        audience_application=app,
        permissions=["internal_user_impersonate", "internal_org_user_impersonate"],
    )
    for actor in actors:
        if actor.tenant is tenant:
            role_assign(actor=None, role=role, org=actor.home, user=actor.user)
    return app


def _fragment(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}


def check_token_endpoints(rng: random.Random, world: IsoWorld, cov: Coverage) -> None:
    oracle = Oracle()
    orgs = world.all_orgs()
    handle_of = {t.root.pk: t.handle for t in world.tenants}
    apps = list(
        Application.objects.filter(organization__in=[o.pk for o in orgs], client_secret__gt="").exclude(
            system_key__gt=""
        )
    )
    # 1. Client authentication (client credentials) at every kind of token endpoint.
    for app in apps:
        owner = app.organization_id
        endpoints = _sample_by_relation(rng, oracle, owner, orgs, lambda o: o.pk)
        for relation, org in endpoints:
            cov.add("token-client", relation)
            handle = handle_of[oracle.tenant(org.pk)]
            url = (
                f"/t/{handle}/oauth2/token"
                if org.parent_id is None
                else f"/t/{handle}/o/{org.pk}/oauth2/token"
            )
            before = AccessToken.objects.count()
            answer = Client().post(
                url, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(app.client_id)
            )
            ok = org.pk == owner and oracle.usable(owner)
            if ok:
                assert answer.status_code == 200, (app.client_id, relation, answer.content)
                assert uuid.UUID(claims_of(answer.json()["access_token"])["org_id"]) == owner
                continue
            assert answer.status_code in (400, 401), (app.client_id, relation, org.name, answer.content)
            if relation == OTHER_TENANT or not oracle.available(app.pk, org.pk):
                assert answer.status_code == 401 and answer.json()["error"] == "invalid_client", (
                    app.client_id,
                    relation,
                    answer.content,
                )
            assert AccessToken.objects.count() == before
            if relation == OTHER_TENANT:  # the organization under the client's own tenant handle
                mixed = f"/t/{handle_of[oracle.tenant(owner)]}/o/{org.pk}/oauth2/token"
                answer = Client().post(
                    mixed, {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic(app.client_id)
                )
                assert answer.status_code in (401, 404), (mixed, answer.content)
                assert AccessToken.objects.count() == before
    # 2. Introspection across tenants: another tenant's client never learns about a token.
    for tenant in world.tenants:
        other = world.b if tenant is world.a else world.a
        assert tenant.mgmt is not None and other.mgmt is not None
        token = (
            Client()
            .post(
                f"/t/{tenant.handle}/oauth2/token",
                {"grant_type": "client_credentials"},
                HTTP_AUTHORIZATION=basic(tenant.mgmt.client_id),
            )
            .json()["access_token"]
        )
        mine = Client().post(
            f"/t/{tenant.handle}/oauth2/introspect",
            {"token": token},
            HTTP_AUTHORIZATION=basic(tenant.mgmt.client_id),
        )
        assert mine.status_code == 200 and mine.json()["active"] is True
        theirs = Client().post(
            f"/t/{other.handle}/oauth2/introspect",
            {"token": token},
            HTTP_AUTHORIZATION=basic(other.mgmt.client_id),
        )
        assert theirs.status_code == 200 and theirs.json() == {"active": False}, theirs.content
        crossed = Client().post(
            f"/t/{tenant.handle}/oauth2/introspect",
            {"token": token},
            HTTP_AUTHORIZATION=basic(other.mgmt.client_id),
        )
        assert crossed.status_code == 401 and crossed.json()["error"] == "invalid_client"
    # 3. Subject tokens: requested_subject outside the organization or in another tenant is refused.
    pickup = {t.root.pk: _impersonation_app(t, world.actors) for t in world.tenants}
    users = _world_users(world)
    oracle = Oracle()
    exchanged = False
    for actor in world.actors:
        if actor.user.organization_id != actor.home.pk:
            continue  # signing in at a shared-in organization is another test's subject
        tenant = actor.tenant
        app = pickup[tenant.root.pk]
        home = actor.home
        client = sign_in(world, actor.user)
        scope = (
            "openid internal_user_impersonate"
            if home.parent_id is None
            else "openid internal_org_user_impersonate"
        )
        targets = _sample_by_relation(rng, oracle, home.pk, users, lambda u: u.organization_id)
        for relation, user in targets:
            cov.add("token-subject", relation)
            params = {
                "response_type": "id_token subject_token",
                "client_id": app.client_id,
                "redirect_uri": REDIRECT,
                "scope": scope,
                "requested_subject": str(user.pk),
                "nonce": "n-1",
                "state": "s-1",
            }
            before = ImpersonationSession.objects.count()
            page = client.get(f"{org_base(world, home)}/oauth2/authorize?{urlencode(params)}")
            if user.organization_id != home.pk or user.pk == actor.user.pk:
                assert page.status_code == 302, (actor.kind, relation, user.username, page.status_code)
                refusal = _fragment(page["Location"])
                assert refusal.get("error") == "access_denied", page["Location"]
                assert "subject_token" not in refusal
                assert ImpersonationSession.objects.count() == before
                continue
            assert page.status_code in (200, 302), (relation, page.status_code)
            if page.status_code != 200 or exchanged:
                continue
            # One full start: the subject token is worthless at the other tenant's endpoint.
            done = client.post(
                page.context["action"],
                {"pending": page.context["pending"], "decision": "impersonate", "reason": "t"},
            )
            artifacts = _fragment(done["Location"])
            data = {
                "grant_type": TX,
                "subject_token": artifacts["subject_token"],
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
                "actor_token": artifacts["id_token"],
                "actor_token_type": "urn:ietf:params:oauth:token-type:id_token",
                "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
            }
            other = world.b if tenant is world.a else world.a
            other_app = pickup[other.root.pk]
            before_tokens = AccessToken.objects.count()
            crossed = Client().post(
                f"/t/{other.handle}/oauth2/token", data, HTTP_AUTHORIZATION=basic(other_app.client_id)
            )
            assert crossed.status_code == 400, crossed.content
            assert crossed.json()["error"] in ("invalid_target", "invalid_request", "invalid_grant")
            crossed = Client().post(
                f"/t/{other.handle}/oauth2/token", data, HTTP_AUTHORIZATION=basic(app.client_id)
            )
            assert crossed.status_code == 401 and crossed.json()["error"] == "invalid_client"
            assert AccessToken.objects.count() == before_tokens
            mine = Client().post(
                f"/t/{tenant.handle}/oauth2/token", data, HTTP_AUTHORIZATION=basic(app.client_id)
            )
            assert mine.status_code == 200, mine.content
            assert claims_of(mine.json()["access_token"])["act"] == {"sub": str(actor.user.pk)}
            exchanged = True
    assert exchanged, "no impersonation started: the positive control never ran"


@_settings(2)
@given(seed=SEEDS)
def test_token_endpoints_never_cross_tenants_or_branches(seed: int) -> None:
    rng, cov = random.Random(seed), Coverage()
    with world_of(rng) as world:
        check_token_endpoints(rng, world, cov)
    cov.require("token-client")
    cov.require("token-subject")
