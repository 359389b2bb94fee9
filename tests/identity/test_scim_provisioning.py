"""A provisioning run as a provisioning tool makes it (an HR system, an IdP's outbound SCIM):
a client-credentials token of an application authorized for the user-management API, then
create, find by filter, replace and change with ETags, deactivate; audited with the
application as the actor. Over the network, against a live actas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.test import Client as DjangoClient

from identity.audit.models import AuditEvent
from identity.audit.services import audit_verify_chain
from identity.models import APIResource, Application, User
from identity.services.application_edits import application_remove_api_authorization
from identity.services.applications import application_authorize_api
from tests.conftest import PASSWORD, World, console_url, sign_in
from tests.identity.scim_helpers import (
    LIST_SCHEMA,
    PATCH_OP,
    SCIM_MEDIA,
    USER_SCHEMA,
    USER_SCOPES,
    Provisioner,
    Scim,
    assert_scim_error,
    client_credentials_token,
    provisioning_app,
    request_client_credentials,
    signed_in_client,
)

pytestmark = pytest.mark.django_db(transaction=True)

EXTERNAL_ID = "hr-000417"
USER_CHANGES = ("user-create", "user-profile-update", "user-status-change", "user-delete")


@pytest.fixture
def scim_base(live_server: Any, settings: Any, world: World) -> str:
    """The live server's address; tokens' issuer and SCIM ``meta.location`` are BASE_URL's."""
    settings.BASE_URL = live_server.url
    return str(live_server.url)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """Closes its connections at the end, so the live server's request threads let go of their
    database connections before the test database is dropped."""
    session = requests.Session()
    yield session
    session.close()


@pytest.fixture
def provisioner(world: World) -> Provisioner:
    return provisioning_app(world)


@pytest.fixture
def scim(scim_base: str, http: requests.Session, provisioner: Provisioner) -> Scim:
    return Scim(http, scim_base, client_credentials_token(scim_base, provisioner, USER_SCOPES))


def patch_op(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def versioned(response: requests.Response, status: int = 200) -> tuple[dict[str, Any], str]:
    """A single resource answer: its body and version; the ETag header is the ``meta.version``
    (RFC 7644 §3.14)."""
    assert response.status_code == status, (response.status_code, response.text[:800])
    assert response.headers["Content-Type"].startswith(SCIM_MEDIA)
    body: dict[str, Any] = response.json()
    etag = response.headers.get("ETag")
    assert etag, f"no ETag header: {dict(response.headers)}"
    assert body["meta"]["version"] == etag, (body["meta"], etag)
    return body, etag


def listed(response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, (response.status_code, response.text[:800])
    body = response.json()
    assert body["schemas"] == [LIST_SCHEMA]
    assert body["totalResults"] == len(body["Resources"]), body
    resources: list[dict[str, Any]] = body["Resources"]
    return resources


def new_user_body() -> dict[str, Any]:
    return {
        "schemas": [USER_SCHEMA],
        "userName": "jane.provisioned",
        "externalId": EXTERNAL_ID,
        "name": {"givenName": "Jane", "familyName": "Provisioned"},
        "emails": [{"value": "jane.provisioned@example.test", "type": "work", "primary": True}],
        "active": True,
        "password": PASSWORD,
    }


def test_provisioning_run_creates_finds_updates_with_etags_and_deactivates(
    world: World, scim: Scim, provisioner: Provisioner
) -> None:
    # Create: 201, Location, ETag = meta.version.
    created, v1 = versioned(scim("POST", "/Users", new_user_body()), 201)
    user_id = created["id"]
    assert created["schemas"][0] == USER_SCHEMA
    assert created["userName"] == "jane.provisioned" and created["externalId"] == EXTERNAL_ID
    assert created["name"]["givenName"] == "Jane" and created["name"]["familyName"] == "Provisioned"
    assert [e["value"] for e in created["emails"]] == ["jane.provisioned@example.test"]
    assert created["active"] is True and "password" not in created
    assert created["meta"]["resourceType"] == "User"
    assert created["meta"]["location"].endswith(f"/t/acme/scim2/Users/{user_id}")
    user = User.objects.get(pk=user_id)
    assert user.organization_id == world.root.pk and user.is_active
    assert signed_in_client(DjangoClient(), "jane.provisioned", PASSWORD)

    # Read back: the same version while nothing changed.
    again, same = versioned(scim("GET", f"/Users/{user_id}"))
    assert same == v1 and again["id"] == user_id

    # Find: by externalId, and with a compound filter; a filter matching nobody is empty.
    found = listed(scim("GET", "/Users", filter=f'externalId eq "{EXTERNAL_ID}"'))
    assert [r["id"] for r in found] == [user_id]
    found = listed(scim("GET", "/Users", filter='userName sw "jane." and active eq true'))
    assert [r["id"] for r in found] == [user_id]
    assert listed(scim("GET", "/Users", filter='externalId eq "hr-999999"')) == []

    # Replace with the current version: 200 and a new version.
    replacement = new_user_body() | {
        "name": {"givenName": "Janet", "familyName": "Provisioned-Smith"},
        "emails": [{"value": "janet.smith@example.test", "type": "work", "primary": True}],
    }
    del replacement["password"]
    replaced, v2 = versioned(scim("PUT", f"/Users/{user_id}", replacement, headers={"If-Match": v1}))
    assert v2 != v1
    assert (replaced["name"]["givenName"], replaced["name"]["familyName"]) == ("Janet", "Provisioned-Smith")
    assert [e["value"] for e in replaced["emails"]] == ["janet.smith@example.test"]
    assert replaced["externalId"] == EXTERNAL_ID and replaced["active"] is True

    # A change made with the old version is refused: 412, SCIM error, nothing changes.
    stale = scim(
        "PATCH",
        f"/Users/{user_id}",
        patch_op({"op": "replace", "path": "name.givenName", "value": "Stale"}),
        headers={"If-Match": v1},
    )
    assert_scim_error(stale, 412)
    assert User.objects.get(pk=user_id).given_name == "Janet"

    # Deactivate with the current version.
    deactivated, v3 = versioned(
        scim(
            "PATCH",
            f"/Users/{user_id}",
            patch_op({"op": "replace", "path": "active", "value": False}),
            headers={"If-Match": v2},
        )
    )
    assert deactivated["active"] is False and v3 not in (v1, v2)
    shown, _ = versioned(scim("GET", f"/Users/{user_id}"))
    assert shown["active"] is False
    assert listed(scim("GET", "/Users", filter='userName sw "jane." and active eq true')) == []
    assert [r["id"] for r in listed(scim("GET", "/Users", filter="active eq false"))] == [user_id]

    # The account is inactive: the user can no longer sign in.
    user.refresh_from_db()
    assert user.is_active is False
    assert (user.given_name, user.family_name, user.email) == (
        "Janet",
        "Provisioned-Smith",
        "janet.smith@example.test",
    )
    assert not signed_in_client(DjangoClient(), "jane.provisioned", PASSWORD)

    # Audited with the application as the actor (no user acted), in an intact chain.
    # (The sign-ins above are audited too, with no client: only the changes are the application's.)
    events = list(AuditEvent.objects.filter(subject_id=user.pk, action__in=USER_CHANGES).order_by("seq"))
    actions = [e.action for e in events]
    assert actions.count("user-create") == 1, actions
    assert "user-profile-update" in actions, actions
    assert actions.count("user-status-change") == 1, actions
    for event in events:
        assert event.client_id == provisioner.client_id, (event.action, event.client_id)
        assert event.actor_id is None, (event.action, event.actor_id)
        assert event.actor_label == provisioner.actor_label, (event.action, event.actor_label)
        assert event.impersonator_id is None
    status_change = next(e for e in events if e.action == "user-status-change")
    assert status_change.data["is_active"] == {"from": True, "to": False}
    profile = [e for e in events if e.action == "user-profile-update"]
    changed = {name for e in profile for name in e.data["changes"]}
    assert {"given_name", "family_name", "email"} <= changed, [e.data for e in profile]
    report = audit_verify_chain(tenant=world.root)
    assert report.ok, report
    # The Console's Logs name the application as the initiator.
    console = sign_in(DjangoClient(), world.admin)
    page = console.get(console_url(world.root, "logs/"))
    assert page.status_code == 200
    assert f'<td class="who">{provisioner.actor_label}</td>' in page.content.decode()


def test_an_application_not_authorized_for_users_gets_no_scim_scope(
    world: World, scim_base: str, http: requests.Session, provisioner: Provisioner
) -> None:
    reporting = provisioning_app(world, client_id="reporting", name="Reporting", resources=())

    # Asking for the user-management scopes: refused outright (RFC 6749 §5.2).
    refused = request_client_credentials(scim_base, reporting.client_id, reporting.secret, USER_SCOPES)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_scope"
    # An authorized application asking beyond its authorization is refused the same way.
    beyond = request_client_credentials(
        scim_base, provisioner.client_id, provisioner.secret, [*USER_SCOPES, "internal_config_mgt_view"]
    )
    assert beyond.status_code == 400 and beyond.json()["error"] == "invalid_scope", beyond.text

    # A token without scopes is a valid token that may do nothing here: 403, not 401.
    plain = request_client_credentials(scim_base, reporting.client_id, reporting.secret, None)
    assert plain.status_code == 200, plain.text
    assert not plain.json().get("scope", "").split()
    scim = Scim(http, scim_base, plain.json()["access_token"])
    assert_scim_error(scim("GET", "/Users"), 403)
    assert_scim_error(scim("GET", f"/Users/{world.target.pk}"), 403)
    assert_scim_error(scim("POST", "/Users", new_user_body()), 403)
    assert_scim_error(
        scim(
            "PATCH",
            f"/Users/{world.target.pk}",
            patch_op({"op": "replace", "path": "active", "value": False}),
        ),
        403,
    )
    assert not User.objects.filter(username="jane.provisioned").exists()
    assert User.objects.get(pk=world.target.pk).is_active


def test_an_application_cannot_change_a_user_holding_permissions_it_is_not_authorized_for(
    world: World, scim: Scim
) -> None:
    """The administrator holds the Console's permissions (configuration, roles, applications…),
    which the provisioning application is not authorized for: it may read them, not change or
    delete them. A user holding no permissions (target) it may change."""
    admin_id = str(world.admin.pk)
    before = User.objects.get(pk=world.admin.pk)
    admin, version = versioned(scim("GET", f"/Users/{admin_id}"))
    assert admin["userName"] == "admin"

    rename = patch_op({"op": "replace", "path": "name.givenName", "value": "Mallory"})
    assert_scim_error(scim("PATCH", f"/Users/{admin_id}", rename, headers={"If-Match": version}), 403)
    disable = patch_op({"op": "replace", "path": "active", "value": False})
    assert_scim_error(scim("PATCH", f"/Users/{admin_id}", disable, headers={"If-Match": version}), 403)
    replacement = {
        "schemas": [USER_SCHEMA],
        "userName": "admin",
        "name": {"givenName": "Mallory", "familyName": ""},
        "emails": [{"value": "mallory@example.test", "primary": True}],
        "active": True,
    }
    assert_scim_error(scim("PUT", f"/Users/{admin_id}", replacement, headers={"If-Match": version}), 403)
    assert_scim_error(scim("DELETE", f"/Users/{admin_id}", headers={"If-Match": version}), 403)

    kept = User.objects.get(pk=world.admin.pk)
    assert (kept.is_active, kept.given_name, kept.email) == (True, before.given_name, before.email)
    assert (
        not AuditEvent.objects.filter(
            subject_id=world.admin.pk, action__in=USER_CHANGES, outcome=AuditEvent.Outcome.SUCCESS
        )
        .exclude(action="user-create")
        .exists()
    )

    # The same change to a user without permissions goes through.
    changed = scim("PATCH", f"/Users/{world.target.pk}", rename)
    assert changed.status_code == 200, changed.text
    assert User.objects.get(pk=world.target.pk).given_name == "Mallory"


def test_taking_the_api_away_stops_the_applications_own_tokens_at_once(
    world: World, scim_base: str, http: requests.Session, provisioner: Provisioner
) -> None:
    token = client_credentials_token(scim_base, provisioner, USER_SCOPES)
    listed = http.get(f"{scim_base}/t/acme/scim2/Users", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    users = APIResource.objects.get(tenant=world.root, identifier="system:users")
    app = Application.objects.get(client_id=provisioner.client_id)
    # Narrowed: the token that carried a scope taken away stops.
    application_authorize_api(
        actor=world.admin, application=app, resource=users, scopes=["internal_user_mgt_view"]
    )
    after = http.get(f"{scim_base}/t/acme/scim2/Users", headers={"Authorization": f"Bearer {token}"})
    assert after.status_code == 401
    # Removed: a new token with what was left stops too.
    viewer = client_credentials_token(scim_base, provisioner, ["internal_user_mgt_view"])
    one = f"{scim_base}/t/acme/scim2/Users/{world.target.pk}"
    assert http.get(one, headers={"Authorization": f"Bearer {viewer}"}).status_code == 200
    application_remove_api_authorization(actor=world.admin, application=app, resource=users)
    assert http.get(one, headers={"Authorization": f"Bearer {viewer}"}).status_code == 401
    event = AuditEvent.objects.filter(action="application-api-unauthorize").latest("seq")
    assert event.data["own_tokens_revoked"] == 1
