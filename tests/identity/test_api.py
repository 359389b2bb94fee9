"""actas's own APIs: SCIM 2.0 Users / Me, the impersonation configuration, and the audit of
impersonated calls (DESIGN §2, §4, §5.6, §7)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from typing import Any

import pytest
import time_machine
from django.db import connection, connections
from django.test import Client
from oauth2_provider.models import AccessToken

from identity.audit.models import AuditEvent
from identity.audit.services import audit_verify_chain
from identity.models import APIResource, Application, Role, SSOSession, User
from identity.services.applications import application_authorize_api
from identity.services.roles import role_assign, role_create
from identity.services.users import user_share
from organizations.models import OrganizationSettings
from tests.conftest import World, make_user, sign_in
from tests.identity.oauth_helpers import App, basic, exchange, get_code, make_app
from tests.impersonation.helpers import exchange_tokens, get_subject_token, impersonation_app

SCIM = "application/scim+json"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"

USER_SCOPES = [
    "internal_user_mgt_list",
    "internal_user_mgt_view",
    "internal_user_mgt_create",
    "internal_user_mgt_update",
    "internal_user_mgt_delete",
]
ORG_SCOPES = ["internal_org_user_mgt_list", "internal_org_user_mgt_view", "internal_org_user_mgt_update"]
CONFIG_SCOPES = ["internal_config_mgt_view", "internal_config_mgt_update"]
ALL_SCOPES = USER_SCOPES + ORG_SCOPES + CONFIG_SCOPES


def _authorize_all(world: World, app: App) -> None:
    for identifier in ("system:users", "org:users", "system:configs", "system:login"):
        resource = APIResource.objects.get(tenant=world.root, identifier=identifier)
        application_authorize_api(
            actor=None,
            application=app.app,
            resource=resource,
            scopes=list(resource.scopes.values_list("name", flat=True)),
        )


@pytest.fixture
def mgmt(world: World) -> App:
    """An application authorized for every management scope; the admin holds them all in
    Acme, the target holds the organization-user scopes in Acme EU (where they are shared)."""
    app = make_app(
        world,
        client_id="mgmt",
        grant_types=(
            "authorization_code",
            "refresh_token",
            "client_credentials",
            Application.GRANT_ORGANIZATION_SWITCH_TYPE,
        ),
    )
    _authorize_all(world, app)
    manager = role_create(
        actor=None, org=world.root, name="mgmt manager", audience_application=app.app, permissions=ALL_SCOPES
    )
    role_assign(actor=None, role=manager, org=world.root, user=world.admin)
    eu_manager = role_create(
        actor=None,
        org=world.root,
        name="mgmt eu manager",
        audience_application=app.app,
        permissions=ORG_SCOPES + CONFIG_SCOPES,
    )
    role_assign(actor=None, role=eu_manager, org=world.eu, user=world.target)
    # So the impersonator still dominates the target.
    role_assign(actor=None, role=eu_manager, org=world.root, user=world.impersonator)
    return app


@pytest.fixture
def pickup(world: World) -> App:
    """The impersonation app; target and impersonator both hold the user and config scopes
    (the impersonator dominates the target)."""
    app = impersonation_app(world)
    _authorize_all(world, app)
    writer = role_create(
        actor=None,
        org=world.root,
        name="pickup writer",
        audience_application=app.app,
        permissions=USER_SCOPES + CONFIG_SCOPES,
    )
    for user in (world.target, world.impersonator):
        role_assign(actor=None, role=writer, org=world.root, user=user)
    return app


def _token(world: World, app: App, user: User, scopes: list[str], *, org: Any = None) -> str:
    client = Client()
    code, verifier = get_code(client, world, app, user=user, org=org, scope="openid " + " ".join(scopes))
    response = exchange(client, app, code, verifier)
    assert response.status_code == 200, response.content
    token: str = response.json()["access_token"]
    return token


def _impersonated(world: World, app: App, *, read_only: bool = False) -> str:
    client = Client()
    scope = "openid internal_user_impersonate internal_login " + " ".join(USER_SCOPES + CONFIG_SCOPES)
    artifacts = get_subject_token(client, world, app, read_only=read_only, scope=scope)
    response = exchange_tokens(client, app, artifacts)
    assert response.status_code == 200, response.content
    token: str = response.json()["access_token"]
    return token


def _switch(app: App, token: str, org: Any, scopes: list[str]) -> str:
    response = Client().post(
        "/t/acme/oauth2/token",
        {
            "grant_type": "organization_switch",
            "token": token,
            "switching_organization": str(org.pk),
            "scope": "openid " + " ".join(scopes),
        },
        HTTP_AUTHORIZATION=basic(app.client_id, app.secret),
    )
    assert response.status_code == 200, response.content
    switched: str = response.json()["access_token"]
    return switched


@pytest.fixture
def admin_token(world: World, mgmt: App) -> str:
    return _token(world, mgmt, world.admin, ALL_SCOPES)


def call(method: str, url: str, token: str | None, body: Any = None, **extra: Any) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    headers.update(extra)
    client = Client()
    content_type = extra.pop("content_type", SCIM)
    headers.pop("content_type", None)
    data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    return getattr(client, method.lower())(url, data=data, content_type=content_type, **headers)


def patch_op(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def assert_scim_error(response: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status) and body["detail"]
    if scim_type:
        assert body["scimType"] == scim_type
    return body


# --- list, get, filter, pagination ------------------------------------------------------


def test_list_users_of_the_root_in_scim_shape(world: World, admin_token: str) -> None:
    response = call("GET", "/t/acme/scim2/Users", admin_token)
    assert response.status_code == 200
    assert response["Content-Type"].startswith(SCIM)
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    names = [r["userName"] for r in body["Resources"]]
    assert names == sorted(names) and {"admin", "target", "impersonator"} <= set(names)
    # Members of the root only: nobody resident in a child organization.
    assert not {"eu-user", "us-user", "sales-user", "eu-admin"} & set(names)
    assert body["totalResults"] == len(names) == body["itemsPerPage"] and body["startIndex"] == 1
    target = next(r for r in body["Resources"] if r["userName"] == "target")
    assert target == {
        "schemas": [USER_SCHEMA],
        "id": str(world.target.pk),
        "userName": "target",
        # An empty family name is left out (RFC 7643 §2.5), not sent as "".
        "name": {"givenName": "Target"},
        "emails": [{"value": "target@example.test"}],
        "active": True,
        "meta": {
            "resourceType": "User",
            "created": target["meta"]["created"],
            "lastModified": target["meta"]["lastModified"],
            "location": f"http://127.0.0.1:8000/t/acme/scim2/Users/{world.target.pk}",
            "version": target["meta"]["version"],
        },
    }
    assert target["meta"]["version"].startswith('W/"')


def test_filter_and_pagination(world: World, admin_token: str) -> None:
    one = call("GET", '/t/acme/scim2/Users?filter=userName eq "TARGET"', admin_token).json()
    assert one["totalResults"] == 1 and one["Resources"][0]["id"] == str(world.target.pk)
    none = call("GET", '/t/acme/scim2/Users?filter=userName eq "eu-user"', admin_token).json()
    assert none["totalResults"] == 0 and none["Resources"] == []
    everyone = call("GET", "/t/acme/scim2/Users", admin_token).json()
    page = call("GET", "/t/acme/scim2/Users?startIndex=2&count=1", admin_token).json()
    assert page["startIndex"] == 2 and page["itemsPerPage"] == 1
    assert page["totalResults"] == everyone["totalResults"]
    assert page["Resources"][0]["id"] == everyone["Resources"][1]["id"]
    assert call("GET", "/t/acme/scim2/Users?count=0", admin_token).json()["Resources"] == []
    clamped = call("GET", "/t/acme/scim2/Users?startIndex=-5&count=100000", admin_token).json()
    assert clamped["startIndex"] == 1
    # Past the end (even beyond what SQL can offset): an empty page, never a 500.
    beyond = call("GET", f"/t/acme/scim2/Users?startIndex={10**20}", admin_token)
    assert beyond.status_code == 200 and beyond.json()["Resources"] == []
    assert beyond.json()["totalResults"] == everyone["totalResults"]


@pytest.mark.parametrize(
    "expression",
    [
        "userName eq target",
        'title eq "x"',
        'userName eq "a" andd userName eq "b"',
        'userName eq "\x00"',
        'userName eq "' + "a" * 1200 + '"',
        'userName eq "\\q"',
    ],
)
def test_bad_filter_is_invalid_filter(admin_token: str, expression: str) -> None:
    response = Client().get(
        "/t/acme/scim2/Users", {"filter": expression}, HTTP_AUTHORIZATION=f"Bearer {admin_token}"
    )
    assert_scim_error(response, 400, "invalidFilter")


def test_bad_pagination_is_400(admin_token: str) -> None:
    assert_scim_error(call("GET", "/t/acme/scim2/Users?count=many", admin_token), 400, "invalidValue")


def test_get_user_and_other_orgs_users_are_404(world: World, admin_token: str) -> None:
    response = call("GET", f"/t/acme/scim2/Users/{world.target.pk}", admin_token)
    assert response.status_code == 200 and response.json()["userName"] == "target"
    for missing in (
        world.other_org_user.pk,
        world.eu_user.pk,
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
    ):
        assert_scim_error(call("GET", f"/t/acme/scim2/Users/{missing}", admin_token), 404)


def test_a_user_of_another_tenant_is_404(world: World, admin_token: str) -> None:
    from identity.services.tenants import tenant_bootstrap

    _, stranger = tenant_bootstrap(
        actor=None, handle="globex", name="Globex", admin_username="boss", admin_password="x-Passw0rd-long"
    )
    assert_scim_error(call("GET", f"/t/acme/scim2/Users/{stranger.pk}", admin_token), 404)
    # And the acme token means nothing to the other tenant.
    assert_scim_error(call("GET", "/t/globex/scim2/Users", admin_token), 401)


# --- authentication and scopes -------------------------------------------------------------


def test_no_bad_revoked_or_expired_token_is_401(world: World, mgmt: App, admin_token: str) -> None:
    for token in (None, "nope", admin_token[:-4] + "abcd"):
        response = call("GET", "/t/acme/scim2/Users", token)
        assert_scim_error(response, 401)
        assert response["WWW-Authenticate"].startswith("Bearer")
    with time_machine.travel(dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)):
        assert_scim_error(call("GET", "/t/acme/scim2/Users", admin_token), 401)
    revoked = Client().post(
        "/t/acme/oauth2/revoke", {"token": admin_token}, HTTP_AUTHORIZATION=basic(mgmt.client_id, mgmt.secret)
    )
    assert revoked.status_code == 200
    assert_scim_error(call("GET", "/t/acme/scim2/Users", admin_token), 401)
    assert_scim_error(call("GET", "/t/acme/scim2/Me", admin_token), 401)
    assert call("GET", "/t/acme/api/server/v1/configs/impersonation", admin_token).status_code == 401


def test_missing_scope_is_403_per_operation(world: World, mgmt: App) -> None:
    token = _token(world, mgmt, world.admin, ["internal_user_mgt_view"])
    assert call("GET", f"/t/acme/scim2/Users/{world.target.pk}", token).status_code == 200
    assert_scim_error(call("GET", "/t/acme/scim2/Users", token), 403)
    assert_scim_error(call("POST", "/t/acme/scim2/Users", token, {"userName": "new"}), 403)
    patch = patch_op({"op": "replace", "path": "name.givenName", "value": "X"})
    assert_scim_error(call("PATCH", f"/t/acme/scim2/Users/{world.target.pk}", token, patch), 403)
    assert_scim_error(call("DELETE", f"/t/acme/scim2/Users/{world.target.pk}", token), 403)
    assert call("GET", "/t/acme/api/server/v1/configs/impersonation", token).status_code == 403
    # /Me needs only a user token to read; PATCH needs internal_login.
    assert call("GET", "/t/acme/scim2/Me", token).status_code == 200
    assert_scim_error(call("PATCH", "/t/acme/scim2/Me", token, patch), 403)
    assert not User.objects.filter(username="new").exists()


def test_client_credentials_tokens_act_as_the_application_where_accepted(world: World, mgmt: App) -> None:
    response = Client().post(
        "/t/acme/oauth2/token",
        {"grant_type": "client_credentials", "scope": "internal_user_mgt_view"},
        HTTP_AUTHORIZATION=basic(mgmt.client_id, mgmt.secret),
    )
    assert response.status_code == 200, response.content
    token = response.json()["access_token"]
    # /Users/<id> with the view scope; the list needs its own scope; /Me needs a user.
    found = call("GET", f"/t/acme/scim2/Users/{world.target.pk}", token)
    assert found.status_code == 200 and found.json()["userName"] == "target"
    assert_scim_error(call("GET", "/t/acme/scim2/Users", token), 403)
    assert_scim_error(call("GET", "/t/acme/scim2/Me", token), 401)


# --- create, patch, delete -----------------------------------------------------------------


def test_create_then_duplicate_is_409(world: World, admin_token: str) -> None:
    body = {
        "schemas": [USER_SCHEMA],
        "userName": "New.Person",
        "password": "a-long-Passw0rd-for-tests",
        "name": {"givenName": "New", "familyName": "Person"},
        "emails": [{"value": "other@example.test"}, {"value": "new@example.test", "primary": True}],
    }
    response = call("POST", "/t/acme/scim2/Users", admin_token, body)
    assert response.status_code == 201, response.content
    created = response.json()
    user = User.objects.get(username="new.person")
    assert created["id"] == str(user.pk) and created["userName"] == "new.person"
    assert response["Location"] == created["meta"]["location"]
    assert user.organization_id == world.root.pk and user.email == "new@example.test"
    assert user.check_password("a-long-Passw0rd-for-tests")
    event = AuditEvent.objects.get(action="user-create", subject_id=user.pk)
    assert event.actor_id == world.admin.pk and event.impersonator_id is None
    assert_scim_error(call("POST", "/t/acme/scim2/Users", admin_token, body), 409, "uniqueness")
    inactive = call("POST", "/t/acme/scim2/Users", admin_token, {"userName": "sleeper", "active": False})
    assert inactive.status_code == 201 and inactive.json()["active"] is False


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"userName": ""},
        {"userName": "Bad Name!"},
        {"userName": "ok", "emails": [{"value": "not-an-email"}]},
        {"userName": "ok", "name": {"givenName": "a\x00b"}},
        {"userName": "a" * 400},
        {"userName": ["list"]},
        {"userName": "ok", "schemas": ["urn:wrong"]},
        {"userName": "ok", "password": "short"},
        [],
    ],
)
def test_create_rejects_bad_bodies(admin_token: str, body: Any) -> None:
    response = call("POST", "/t/acme/scim2/Users", admin_token, body)
    assert_scim_error(response, 400)
    assert not User.objects.filter(username="ok").exists()


def test_hostile_requests_never_500(world: World, admin_token: str) -> None:
    url = f"/t/acme/scim2/Users/{world.target.pk}"
    cases = [
        call("POST", "/t/acme/scim2/Users", admin_token, "{not json"),
        call("POST", "/t/acme/scim2/Users", admin_token, '{"userName": NaN}'),
        call("POST", "/t/acme/scim2/Users", admin_token, b"\xff\xfe\x00"),
        call(
            "POST",
            "/t/acme/scim2/Users",
            admin_token,
            "userName=x",
            content_type="application/x-www-form-urlencoded",
        ),
        call("POST", "/t/acme/scim2/Users", admin_token, "hello", content_type="text/plain"),
        call("PATCH", url, admin_token, json.dumps({"x": "a" * (70 * 1024)})),
        call("PATCH", url, admin_token, "[" * 30000 + "]" * 30000),
        call(
            "PATCH",
            url,
            admin_token,
            '{"schemas": ["'
            + PATCH_OP
            + '"], "Operations": [{"op": "replace", "path": "name.givenName", "value": "\\u0000"}]}',
        ),
        # PUT cannot rename (userName is immutable).
        call("PUT", url, admin_token, {"schemas": [USER_SCHEMA], "userName": "x"}),
        call("GET", "/t/acme/scim2/Users/" + "%00", admin_token),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, (response.status_code, response.content[:200])
    assert cases[0].status_code == 400 and cases[3].status_code == 415 and cases[5].status_code == 413
    assert cases[8].status_code == 400 and cases[8].json()["scimType"] == "mutability"
    world.target.refresh_from_db()
    assert world.target.given_name == "Target"


def test_patch_replaces_names_emails_and_active(world: World, admin_token: str) -> None:
    victim = make_user(world.root, "victim")
    url = f"/t/acme/scim2/Users/{victim.pk}"
    response = call(
        "PATCH",
        url,
        admin_token,
        patch_op(
            {"op": "replace", "path": "name.givenName", "value": "Vic"},
            {"op": "Replace", "path": "name.familyName", "value": "Tim"},
            {"op": "replace", "path": "emails", "value": [{"value": "vic@example.test", "primary": True}]},
            {"op": "replace", "path": "active", "value": "False"},
        ),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == {"givenName": "Vic", "familyName": "Tim"} and body["active"] is False
    assert body["emails"] == [{"value": "vic@example.test"}]
    victim.refresh_from_db()
    assert (victim.given_name, victim.family_name, victim.email, victim.is_active) == (
        "Vic",
        "Tim",
        "vic@example.test",
        False,
    )
    update = AuditEvent.objects.get(action="user-profile-update", subject_id=victim.pk)
    assert update.actor_id == world.admin.pk and update.impersonator_id is None
    assert AuditEvent.objects.filter(action="user-status-change", subject_id=victim.pk).exists()
    # Path-less replace and remove.
    again = call(
        "PATCH",
        url,
        admin_token,
        patch_op(
            {"op": "replace", "value": {"name": {"givenName": "V"}, "active": True}},
            {"op": "remove", "path": "emails"},
        ),
    )
    assert again.status_code == 200 and again.json()["active"] is True and "emails" not in again.json()
    # Nothing ordinary users can see leaked into the audit of the admin's own calls.
    assert not AuditEvent.objects.filter(action__endswith="-via-impersonation").exists()


@pytest.mark.parametrize(
    ("body", "scim_type"),
    [
        ({"Operations": [{"op": "replace", "path": "active", "value": True}]}, "invalidSyntax"),
        ({"schemas": [PATCH_OP], "Operations": []}, "invalidSyntax"),
        (
            {"schemas": [PATCH_OP], "Operations": [{"op": "move", "path": "active", "value": True}]},
            "invalidSyntax",
        ),
        (patch_op({"op": "replace", "path": "nickName", "value": "x"}), "invalidPath"),
        (patch_op({"op": "replace", "path": "userName", "value": "x"}), "mutability"),
        (patch_op({"op": "replace", "path": "active", "value": "maybe"}), "invalidValue"),
        (patch_op({"op": "replace", "path": "name.givenName", "value": 7}), "invalidValue"),
        (patch_op({"op": "replace", "path": "emails", "value": "x@example.test"}), "invalidValue"),
        (patch_op({"op": "replace", "path": "name.givenName"}), "invalidValue"),
        (patch_op({"op": "remove"}), "noTarget"),
        (patch_op({"op": "remove", "path": "active"}), "mutability"),
        (patch_op({"op": "replace", "value": "flat"}), "invalidValue"),
        (patch_op({"op": "replace", "path": "emails", "value": [{"value": "not-an-email"}]}), "invalidValue"),
        (patch_op({"op": "replace", "path": "name.familyName", "value": "x" * 151}), "invalidValue"),
        (patch_op(*[{"op": "replace", "path": "active", "value": True}] * 51), "invalidSyntax"),
    ],
)
def test_bad_patch_ops_are_400(world: World, admin_token: str, body: Any, scim_type: str) -> None:
    victim = make_user(world.root, "victim")
    assert_scim_error(call("PATCH", f"/t/acme/scim2/Users/{victim.pk}", admin_token, body), 400, scim_type)
    victim.refresh_from_db()
    assert victim.is_active and victim.given_name == "Victim"


def test_patch_and_delete_refuse_escalation_and_self(world: World, mgmt: App, admin_token: str) -> None:
    # The target (holding only their viewer role plus update here) cannot touch the admin.
    updater = role_create(
        actor=None,
        org=world.root,
        name="mgmt updater",
        audience_application=mgmt.app,
        permissions=["internal_user_mgt_update", "internal_user_mgt_delete"],
    )
    role_assign(actor=None, role=updater, org=world.root, user=world.target)
    token = _token(world, mgmt, world.target, ["internal_user_mgt_update", "internal_user_mgt_delete"])
    patch = patch_op({"op": "replace", "path": "active", "value": False})
    assert_scim_error(call("PATCH", f"/t/acme/scim2/Users/{world.admin.pk}", token, patch), 403)
    assert_scim_error(call("DELETE", f"/t/acme/scim2/Users/{world.admin.pk}", token), 403)
    # Nobody deactivates or deletes themself.
    assert_scim_error(call("PATCH", f"/t/acme/scim2/Users/{world.admin.pk}", admin_token, patch), 403)
    assert_scim_error(call("DELETE", f"/t/acme/scim2/Users/{world.admin.pk}", admin_token), 409)
    world.admin.refresh_from_db()
    assert world.admin.is_active


def test_delete(world: World, admin_token: str) -> None:
    victim = make_user(world.root, "victim")
    response = call("DELETE", f"/t/acme/scim2/Users/{victim.pk}", admin_token)
    assert response.status_code == 204
    assert not User.objects.filter(pk=victim.pk).exists()
    event = AuditEvent.objects.get(action="user-delete")
    assert event.subject_id == victim.pk and event.actor_id == world.admin.pk
    assert_scim_error(call("DELETE", f"/t/acme/scim2/Users/{victim.pk}", admin_token), 404)
    assert audit_verify_chain(tenant=world.root).ok


def test_a_user_with_impersonation_history_cannot_be_deleted(
    world: World, pickup: App, admin_token: str
) -> None:
    _impersonated(world, pickup)
    # The impersonator now dominates nobody less... the admin deletes the target: refused.
    response = call("DELETE", f"/t/acme/scim2/Users/{world.target.pk}", admin_token)
    assert_scim_error(response, 409)
    assert User.objects.filter(pk=world.target.pk).exists()
    assert not AuditEvent.objects.filter(action="user-delete").exists()


# --- /Me -----------------------------------------------------------------------------------


def test_me_get_and_patch(world: World, mgmt: App) -> None:
    token = _token(world, mgmt, world.target, ["internal_login"])
    me = call("GET", "/t/acme/scim2/Me", token)
    assert me.status_code == 200 and me.json()["id"] == str(world.target.pk)
    response = call(
        "PATCH",
        "/t/acme/scim2/Me",
        token,
        patch_op(
            {"op": "replace", "path": "name.familyName", "value": "Smith"},
            {"op": "replace", "path": "emails[primary eq true].value", "value": "t2@example.test"},
        ),
    )
    assert response.status_code == 200, response.content
    assert response.json()["name"]["familyName"] == "Smith"
    world.target.refresh_from_db()
    assert world.target.family_name == "Smith" and world.target.email == "t2@example.test"
    for field in ("active", "userName"):
        bad = call(
            "PATCH", "/t/acme/scim2/Me", token, patch_op({"op": "replace", "path": field, "value": False})
        )
        assert_scim_error(bad, 400, "mutability")
    # The version read before that change is stale now: 412, nothing changes.
    stale = call(
        "PATCH",
        "/t/acme/scim2/Me",
        token,
        patch_op({"op": "replace", "path": "name.familyName", "value": "Jones"}),
        HTTP_IF_MATCH=me.json()["meta"]["version"],
    )
    assert_scim_error(stale, 412)
    current = response.json()["meta"]["version"]
    fresh = call(
        "PATCH",
        "/t/acme/scim2/Me",
        token,
        patch_op({"op": "replace", "path": "name.familyName", "value": "Jones"}),
        HTTP_IF_MATCH=current,
    )
    assert fresh.status_code == 200 and fresh["ETag"] != current


# --- child organizations (switched tokens) -------------------------------------------------


def test_switched_token_sees_the_child_org_only(world: World, mgmt: App) -> None:
    root_token = _token(world, mgmt, world.target, ["internal_login"])
    token = _switch(mgmt, root_token, world.eu, ORG_SCOPES)
    body = call("GET", "/t/acme/o/scim2/Users", token).json()
    names = {r["userName"] for r in body["Resources"]}
    assert names == {"eu-admin", "eu-user", "target"}
    assert body["Resources"][0]["meta"]["location"].startswith("http://127.0.0.1:8000/t/acme/o/scim2/Users/")
    assert call("GET", f"/t/acme/o/scim2/Users/{world.eu_user.pk}", token).status_code == 200
    for outside in (world.sales_user, world.other_org_user, world.admin):
        assert_scim_error(call("GET", f"/t/acme/o/scim2/Users/{outside.pk}", token), 404)
    # The root endpoints are not for a child-org token, and the reverse.
    assert_scim_error(call("GET", "/t/acme/scim2/Users", token), 403)
    assert_scim_error(call("GET", "/t/acme/o/scim2/Users", root_token), 403)
    # PATCH a resident of the child org; a user shared in from the root is managed there.
    patch = patch_op({"op": "replace", "path": "name.givenName", "value": "Eve"})
    assert call("PATCH", f"/t/acme/o/scim2/Users/{world.eu_user.pk}", token, patch).status_code == 200
    assert_scim_error(call("PATCH", f"/t/acme/o/scim2/Users/{world.target.pk}", token, patch), 403)
    # No create or delete in a child org.
    assert call("POST", "/t/acme/o/scim2/Users", token, {"userName": "x"}).status_code == 405
    assert call("DELETE", f"/t/acme/o/scim2/Users/{world.eu_user.pk}", token).status_code == 405
    me = call("GET", "/t/acme/o/scim2/Me", token).json()
    assert me["id"] == str(world.target.pk) and "/o/scim2/" in me["meta"]["location"]


def test_child_org_scopes_are_the_org_ones(world: World, mgmt: App) -> None:
    token = _switch(
        mgmt, _token(world, mgmt, world.target, ["internal_login"]), world.eu, ["internal_org_user_mgt_view"]
    )
    assert_scim_error(call("GET", "/t/acme/o/scim2/Users", token), 403)
    assert call("GET", f"/t/acme/o/scim2/Users/{world.eu_user.pk}", token).status_code == 200
    patch = patch_op({"op": "replace", "path": "name.givenName", "value": "Eve"})
    assert_scim_error(call("PATCH", f"/t/acme/o/scim2/Users/{world.eu_user.pk}", token, patch), 403)


# --- the impersonation configuration ----------------------------------------------------


CONFIG = "/t/acme/api/server/v1/configs/impersonation"


def test_config_get_patch_round_trip(world: World, admin_token: str) -> None:
    response = call("GET", CONFIG, admin_token)
    assert response.status_code == 200
    assert response.json() == {
        "enableEmailNotification": True,
        "reasonRequired": True,
        "maxMinutes": 60,
        "reasonMaxLength": 500,
    }
    patched = call(
        "PATCH",
        CONFIG,
        admin_token,
        [
            {"operation": "REPLACE", "path": "/enableEmailNotification", "value": False},
            {"operation": "REPLACE", "path": "/reasonRequired", "value": False},
            {"operation": "REPLACE", "path": "/maxMinutes", "value": 30},
        ],
        content_type="application/json",
    )
    assert patched.status_code == 200, patched.content
    assert patched.json() == {
        "enableEmailNotification": False,
        "reasonRequired": False,
        "maxMinutes": 30,
        "reasonMaxLength": 500,
    }
    assert call("GET", CONFIG, admin_token).json()["maxMinutes"] == 30
    row = OrganizationSettings.objects.get(organization=world.root)
    assert row.impersonation_email_enabled is False and row.impersonation_max_minutes == 30
    assert AuditEvent.objects.filter(action="organization-settings-update", actor_id=world.admin.pk).exists()
    cleared = call(
        "PATCH",
        CONFIG,
        admin_token,
        [{"operation": "REMOVE", "path": "/maxMinutes"}],
        content_type="application/json",
    )
    assert cleared.json()["maxMinutes"] == 60


@pytest.mark.parametrize(
    "body",
    [
        [{"operation": "REPLACE", "path": "/enableEmailNotification", "value": "no"}],
        [{"operation": "REPLACE", "path": "/maxMinutes", "value": 0}],
        [{"operation": "REPLACE", "path": "/maxMinutes", "value": 1441}],
        [{"operation": "REPLACE", "path": "/maxMinutes", "value": 10.5}],
        [{"operation": "REPLACE", "path": "/maxMinutes", "value": True}],
        [{"operation": "REPLACE", "path": "/reasonMaxLength", "value": 10}],
        [{"operation": "REPLACE", "path": "/unknown", "value": 1}],
        [{"operation": "ADD", "path": "/maxMinutes", "value": 1}],
        [{"operation": "REPLACE", "path": "/maxMinutes"}],
        [],
        {"operation": "REPLACE"},
        "garbage",
    ],
)
def test_config_patch_validates(admin_token: str, body: Any) -> None:
    data = body if body != "garbage" else "{nope"
    response = call("PATCH", CONFIG, admin_token, data, content_type="application/json")
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["code"] == "ACT-400" and error["description"] and error["traceId"]
    assert not OrganizationSettings.objects.exclude(impersonation_max_minutes=None).exists()


def test_child_org_config_may_tighten_never_loosen(world: World, mgmt: App, admin_token: str) -> None:
    call(
        "PATCH",
        CONFIG,
        admin_token,
        [{"operation": "REPLACE", "path": "/maxMinutes", "value": 45}],
        content_type="application/json",
    )
    token = _switch(mgmt, _token(world, mgmt, world.target, ["internal_login"]), world.eu, CONFIG_SCOPES)
    for url in (CONFIG, "/t/acme/o/api/server/v1/configs/impersonation"):
        assert call("GET", url, token).json()["maxMinutes"] == 45  # inherited
    loosen = [
        [{"operation": "REPLACE", "path": "/maxMinutes", "value": 90}],
        [{"operation": "REPLACE", "path": "/reasonRequired", "value": False}],
    ]
    for body in loosen:
        response = call("PATCH", CONFIG, token, body, content_type="application/json")
        assert response.status_code == 400, response.content
    tighten = call(
        "PATCH",
        "/t/acme/o/api/server/v1/configs/impersonation",
        token,
        [
            {"operation": "REPLACE", "path": "/maxMinutes", "value": 15},
            {"operation": "REPLACE", "path": "/enableEmailNotification", "value": False},
        ],
        content_type="application/json",
    )
    assert tighten.status_code == 200, tighten.content
    assert tighten.json()["maxMinutes"] == 15 and tighten.json()["enableEmailNotification"] is False
    # The root is unchanged.
    assert call("GET", CONFIG, admin_token).json() == {
        "enableEmailNotification": True,
        "reasonRequired": True,
        "maxMinutes": 45,
        "reasonMaxLength": 500,
    }


# --- impersonated calls: audit and read-only ----------------------------------------------


def _via(action: str) -> AuditEvent:
    return AuditEvent.objects.get(action=action)


def _assert_impersonation_event(
    event: AuditEvent, world: World, *, path: str, method: str, request_id: str
) -> None:
    assert event.actor_id == world.impersonator.pk and event.impersonator_id == world.impersonator.pk
    assert event.subject_id == world.target.pk
    assert event.client_id == "pickup" and "internal_user_mgt_update" in event.scopes
    assert event.request_id == request_id and event.ip == "127.0.0.1"
    assert event.target_id == path
    data = event.data
    assert data["subject"] == str(world.target.pk) and data["impersonator"] == str(world.impersonator.pk)
    assert data["ResourcePath"] == path and data["httpMethod"] == method and data["clientId"] == "pickup"
    assert "internal_user_mgt_update" in data["scope"].split()


def test_impersonated_writes_are_audited_with_every_field(world: World, pickup: App) -> None:
    token = _impersonated(world, pickup)
    baseline = AuditEvent.objects.filter(action__endswith="-via-impersonation").count()
    # Reads are not audited.
    assert call("GET", "/t/acme/scim2/Users", token).status_code == 200
    assert call("GET", "/t/acme/scim2/Me", token).status_code == 200
    assert call("GET", CONFIG, token).status_code == 200
    assert AuditEvent.objects.filter(action__endswith="-via-impersonation").count() == baseline == 0

    created = call(
        "POST", "/t/acme/scim2/Users", token, {"userName": "made-by-imp"}, HTTP_X_REQUEST_ID="req-create-0001"
    )
    assert created.status_code == 201, created.content
    new_id = created.json()["id"]
    _assert_impersonation_event(
        _via("resource-creation-via-impersonation"),
        world,
        path="/t/acme/scim2/Users",
        method="POST",
        request_id="req-create-0001",
    )
    domain = AuditEvent.objects.get(action="user-create", subject_id=new_id)
    assert domain.actor_id == world.target.pk and domain.impersonator_id == world.impersonator.pk
    assert domain.request_id == "req-create-0001"

    path = f"/t/acme/scim2/Users/{new_id}"
    patch = patch_op({"op": "replace", "path": "name.givenName", "value": "Made"})
    assert call("PATCH", path, token, patch, HTTP_X_REQUEST_ID="req-patch-00001").status_code == 200
    _assert_impersonation_event(
        _via("resource-modification-via-impersonation"),
        world,
        path=path,
        method="PATCH",
        request_id="req-patch-00001",
    )
    update = AuditEvent.objects.get(action="user-profile-update", subject_id=new_id)
    assert update.impersonator_id == world.impersonator.pk and update.request_id == "req-patch-00001"

    assert call("DELETE", path, token, HTTP_X_REQUEST_ID="req-delete-0001").status_code == 204
    _assert_impersonation_event(
        _via("resource-deletion-via-impersonation"),
        world,
        path=path,
        method="DELETE",
        request_id="req-delete-0001",
    )
    deleted = AuditEvent.objects.get(action="user-delete")
    assert deleted.impersonator_id == world.impersonator.pk

    config = call(
        "PATCH",
        CONFIG,
        token,
        [{"operation": "REPLACE", "path": "/maxMinutes", "value": 20}],
        content_type="application/json",
    )
    assert config.status_code == 200
    assert AuditEvent.objects.filter(action="resource-modification-via-impersonation").count() == 2
    assert audit_verify_chain(tenant=world.root).ok


def test_other_methods_are_resource_access(world: World, pickup: App) -> None:
    token = _impersonated(world, pickup)
    # PUT where it is not served is a refused modification, audited as one.
    assert call("PUT", "/t/acme/scim2/Me", token, {"userName": "x"}).status_code == 405
    event = AuditEvent.objects.get(action="resource-modification-via-impersonation")
    assert event.outcome == AuditEvent.Outcome.FAILURE and event.data["httpMethod"] == "PUT"
    # A method with no action of its own is an access.
    other = Client().generic("PROPFIND", "/t/acme/scim2/Me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert other.status_code == 405
    event = AuditEvent.objects.get(action="resource-access-via-impersonation")
    assert event.outcome == AuditEvent.Outcome.FAILURE and event.data["httpMethod"] == "PROPFIND"


def test_impersonated_refusals_are_audited_and_roll_back(world: World, pickup: App) -> None:
    token = _impersonated(world, pickup)
    other = world.other_org_user
    cases = [
        (
            "PATCH",
            f"/t/acme/scim2/Users/{other.pk}",
            patch_op({"op": "replace", "path": "name.givenName", "value": "X"}),
            404,
        ),
        ("POST", "/t/acme/scim2/Users", {"userName": "admin"}, 409),
        ("PATCH", f"/t/acme/scim2/Users/{world.target.pk}", {"Operations": []}, 400),
        # The email address never changes while impersonating (DESIGN §7).
        (
            "PATCH",
            "/t/acme/scim2/Me",
            patch_op({"op": "replace", "path": "emails", "value": [{"value": "evil@example.test"}]}),
            403,
        ),
        # Deleting the admin: the target does not dominate them.
        ("DELETE", f"/t/acme/scim2/Users/{world.admin.pk}", None, 403),
        # Nor is a password set while impersonating, on a new user or with PUT.
        (
            "POST",
            "/t/acme/scim2/Users",
            {"schemas": [USER_SCHEMA], "userName": "pw-user", "password": "a-long-Passw0rd-for-tests"},
            403,
        ),
        (
            "PUT",
            f"/t/acme/scim2/Users/{world.target.pk}",
            {"schemas": [USER_SCHEMA], "userName": "target", "password": "a-long-Passw0rd-for-tests"},
            403,
        ),
    ]
    for method, url, body, status in cases:
        response = call(method, url, token, body)
        assert response.status_code == status, (url, response.content)
    refusals = AuditEvent.objects.filter(action__endswith="-via-impersonation").order_by("seq")
    assert [e.outcome for e in refusals] == [AuditEvent.Outcome.FAILURE] * len(cases)
    assert [e.data["status"] for e in refusals] == [c[3] for c in cases]
    assert all(
        e.impersonator_id == world.impersonator.pk and e.subject_id == world.target.pk for e in refusals
    )
    assert refusals[1].data["scimType"] == "uniqueness"
    assert refusals[6].action == "resource-modification-via-impersonation"  # PUT
    assert not User.objects.filter(username="pw-user").exists()
    world.target.refresh_from_db()
    assert world.target.email == "target@example.test"
    assert not AuditEvent.objects.filter(action="user-profile-update").exists()


def test_missing_scope_under_impersonation_is_audited(world: World, pickup: App) -> None:
    client = Client()
    artifacts = get_subject_token(
        client, world, pickup, scope="openid internal_user_impersonate internal_user_mgt_view"
    )
    token = exchange_tokens(client, pickup, artifacts).json()["access_token"]
    response = call("POST", "/t/acme/scim2/Users", token, {"userName": "nope"})
    assert_scim_error(response, 403)
    event = AuditEvent.objects.get(action="resource-creation-via-impersonation")
    assert event.outcome == AuditEvent.Outcome.FAILURE and event.data["status"] == 403


def test_read_only_impersonation_cannot_write(world: World, pickup: App) -> None:
    token = _impersonated(world, pickup, read_only=True)
    claims_scope = AccessToken.objects.filter(user=world.target).order_by("-id").first()
    assert claims_scope is not None and "internal_login" in claims_scope.scope.split()
    assert call("GET", "/t/acme/scim2/Me", token).status_code == 200
    assert call("GET", "/t/acme/scim2/Users", token).status_code == 200
    patch = patch_op({"op": "replace", "path": "name.givenName", "value": "RO"})
    response = call("PATCH", "/t/acme/scim2/Me", token, patch)
    body = assert_scim_error(response, 403)
    assert "read-only" in body["detail"]
    config = call(
        "PATCH",
        CONFIG,
        token,
        [{"operation": "REPLACE", "path": "/maxMinutes", "value": 5}],
        content_type="application/json",
    )
    assert config.status_code == 403 and "read-only" in config.json()["description"]
    world.target.refresh_from_db()
    assert world.target.given_name == "Target"
    refused = AuditEvent.objects.filter(action="resource-modification-via-impersonation")
    assert refused.count() == 2 and {e.outcome for e in refused} == {AuditEvent.Outcome.FAILURE}


def test_switched_impersonated_token_is_scoped_and_audited(world: World, pickup: App) -> None:
    writer = role_create(
        actor=None,
        org=world.root,
        name="pickup org writer",
        audience_application=pickup.app,
        permissions=ORG_SCOPES,
    )
    role_assign(actor=None, role=writer, org=world.eu, user=world.target)
    role_assign(actor=None, role=writer, org=world.root, user=world.impersonator)
    token = _switch(pickup, _impersonated(world, pickup), world.eu, ORG_SCOPES)
    names = {r["userName"] for r in call("GET", "/t/acme/o/scim2/Users", token).json()["Resources"]}
    assert names == {"eu-admin", "eu-user", "target"}
    path = f"/t/acme/o/scim2/Users/{world.eu_user.pk}"
    patch = patch_op({"op": "replace", "path": "name.familyName", "value": "Changed"})
    assert call("PATCH", path, token, patch).status_code == 200
    event = AuditEvent.objects.get(action="resource-modification-via-impersonation")
    assert event.org_id == world.eu.pk and event.data["ResourcePath"] == path
    assert event.impersonator_id == world.impersonator.pk


def test_impersonated_token_dies_with_the_session(world: World, pickup: App) -> None:
    from impersonation.models import ImpersonationSession

    token = _impersonated(world, pickup)
    assert call("GET", "/t/acme/scim2/Me", token).status_code == 200
    ImpersonationSession.objects.update(ended_at=dt.datetime.now(dt.UTC))
    assert_scim_error(call("GET", "/t/acme/scim2/Me", token), 401)


def test_shared_user_is_a_member(world: World, admin_token: str) -> None:
    user_share(actor=None, user=world.target, org=world.sales)
    assert call("GET", f"/t/acme/scim2/Users/{world.target.pk}", admin_token).status_code == 200


# --- the schema --------------------------------------------------------------------------


def test_openapi_schema_documents_every_api(client: Client) -> None:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    paths = schema["paths"]
    for path in (
        "/t/{tenant}/scim2/Users",
        "/t/{tenant}/scim2/Users/{user_id}",
        "/t/{tenant}/scim2/Me",
        "/t/{tenant}/o/scim2/Users",
        "/t/{tenant}/o/scim2/Users/{user_id}",
        "/t/{tenant}/api/server/v1/configs/impersonation",
        "/t/{tenant}/api/users/v1/me/organizations",
    ):
        assert path in paths, path
    assert set(paths["/t/{tenant}/scim2/Users/{user_id}"]) >= {"get", "patch", "delete"}
    assert "actasAccessToken" in schema["components"]["securitySchemes"]
    assert client.get("/api/schema/").status_code == 200  # YAML


def test_an_impersonated_config_change_names_the_impersonator_in_the_domain_event(
    client: Client, world: World
) -> None:
    """The settings event of an impersonated PATCH carries the impersonator, like the
    resource-modification-via-impersonation row of the same request."""
    app = impersonation_app(world)
    configs = APIResource.objects.get(tenant=world.root, scopes__name="internal_config_mgt_update")
    application_authorize_api(
        actor=None,
        application=app.app,
        resource=configs,
        scopes=list(configs.scopes.values_list("name", flat=True)),
    )
    role_assign(actor=None, role=world.system.administrator, org=world.root, user=world.target)
    role_assign(actor=None, role=world.system.administrator, org=world.root, user=world.impersonator)

    config_role = Role.objects.create(
        organization=world.root, name="Config editor", audience="application", audience_application=app.app
    )
    config_role.permissions.set(configs.scopes.all())
    role_assign(actor=None, role=config_role, org=world.root, user=world.target)
    role_assign(actor=None, role=config_role, org=world.root, user=world.impersonator)
    body = exchange_tokens(
        client,
        app,
        get_subject_token(
            client, world, app, scope="openid internal_user_impersonate internal_config_mgt_update"
        ),
    ).json()
    response = Client().patch(
        "/t/acme/api/server/v1/configs/impersonation",
        [{"operation": "REPLACE", "path": "/enableEmailNotification", "value": False}],
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer " + body["access_token"],
    )
    assert response.status_code == 200, response.content
    event = AuditEvent.objects.filter(action="organization-settings-update").latest("seq")
    assert event.actor_id == world.target.pk and event.impersonator_id == world.impersonator.pk


# --- versions under concurrency -------------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_concurrent_patches_with_one_version_let_exactly_one_win(world: World, admin_token: str) -> None:
    """Four provisioning calls PATCH the same user at the same moment, each with the version
    it read: one changes the user, the others get 412 — never two changes on one version, a
    500 or a stall (the If-Match check and the write hold the user's row together)."""
    victim = make_user(world.root, "raced")
    url = f"/t/acme/scim2/Users/{victim.pk}"
    for round_ in range(5):
        version = call("GET", url, admin_token).json()["meta"]["version"]
        barrier = threading.Barrier(4)
        answers: list[Any] = [None] * 4

        def run(
            i: int,
            version: str = version,
            round_: int = round_,
            barrier: threading.Barrier = barrier,
            answers: list[Any] = answers,
        ) -> None:
            try:
                barrier.wait()
                body = patch_op({"op": "replace", "path": "name.givenName", "value": f"R{round_}-{i}"})
                answers[i] = call("PATCH", url, admin_token, body, HTTP_IF_MATCH=version)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a PATCH stalled"
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [200, 412, 412, 412], codes
        winner = next(a for a in answers if a.status_code == 200).json()
        victim.refresh_from_db()
        assert victim.given_name == winner["name"]["givenName"]
        assert winner["meta"]["version"] != version
        for loser in (a for a in answers if a.status_code == 412):
            assert loser.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert AuditEvent.objects.filter(action="user-profile-update", subject_id=victim.pk).count() == 5


def test_a_new_or_removed_password_signs_the_user_out_everywhere(world: World, admin_token: str) -> None:
    victim = make_user(world.root, "reset-me")
    browser = sign_in(Client(), victim)
    assert SSOSession.objects.filter(user=victim, ended_at__isnull=True).count() == 1
    url = f"/t/acme/scim2/Users/{victim.pk}"
    new = call(
        "PATCH", url, admin_token, patch_op({"op": "replace", "path": "password", "value": "N3w-long-pass"})
    )
    assert new.status_code == 200, new.content
    assert "password" not in new.json()
    victim.refresh_from_db()
    assert victim.check_password("N3w-long-pass")
    assert not SSOSession.objects.filter(user=victim, ended_at__isnull=True).exists()
    assert browser.get("/t/acme/myaccount/").status_code == 302  # signed out
    event = AuditEvent.objects.get(action="user-password-set", subject_id=victim.pk)
    assert event.actor_id == world.admin.pk and event.data == {"sign_ins_ended": 1}
    assert "N3w-long-pass" not in json.dumps(list(AuditEvent.objects.values("data")), default=str)
    removed = call("PATCH", url, admin_token, patch_op({"op": "remove", "path": "password"}))
    assert removed.status_code == 200
    victim.refresh_from_db()
    assert not victim.has_usable_password()
    assert AuditEvent.objects.filter(action="user-password-remove", subject_id=victim.pk).exists()
    too_long = patch_op({"op": "replace", "path": "password", "value": "x" * 300})
    assert_scim_error(call("PATCH", url, admin_token, too_long), 400, "invalidValue")


def test_a_lone_surrogate_is_a_400_not_a_500(world: World, admin_token: str) -> None:
    url = f"/t/acme/scim2/Users/{world.target.pk}"
    body = (
        '{"schemas": ["'
        + PATCH_OP
        + '"], "Operations": [{"op": "replace", "path": "externalId", "value": "\\ud800"}]}'
    )
    assert call("PATCH", url, admin_token, body).status_code == 400
    response = Client().get(
        "/t/acme/scim2/Users", {"filter": 'userName eq "\\ud800"'}, HTTP_AUTHORIZATION=f"Bearer {admin_token}"
    )
    assert_scim_error(response, 400, "invalidFilter")
    impossible = Client().get(
        "/t/acme/scim2/Users",
        {"filter": 'meta.created gt "2024-02-30T00:00:00Z"'},
        HTTP_AUTHORIZATION=f"Bearer {admin_token}",
    )
    assert_scim_error(impossible, 400, "invalidFilter")
