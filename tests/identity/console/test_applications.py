"""Console pages for applications and API resources: what each persona sees and may do."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.contrib.auth.hashers import check_password
from django.test import Client

from identity.audit.models import AuditEvent
from identity.models import (
    APIResource,
    Application,
    ApplicationAPIAuthorization,
    ApplicationShare,
    LoginFlow,
    Role,
    Scope,
)
from identity.selectors.applications import login_flow_steps
from identity.services.applications import application_authorize_api, application_create
from identity.services.resources import ScopeSpec, api_resource_create
from identity.services.roles import role_assign, role_create
from tests.conftest import World, console_url, sign_in
from tests.impersonation.helpers import fragment, impersonation_app, subject_authorize_url


def _app(world: World, org_attr: str = "root", name: str = "Pickup", **options: Any) -> Application:
    app, _ = application_create(
        actor=None,
        org=getattr(world, org_attr),
        name=name,
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=["https://pickup.example/callback"],
        **options,
    )
    return app


def _secret_on(body: str) -> str:
    match = re.search(r'id="client-secret" value="([^"]+)"', body)
    assert match is not None, body[:2000]
    return match.group(1)


def _protocol_data(app: Application, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "client_type": app.client_type,
        "grant_types": list(app.grant_types),
        "redirect_uris": "\n".join(app.redirect_uris.split()),
        "post_logout_redirect_uris": "",
        "pkce_required": "on",
        "access_token_lifetime": 3600,
        "refresh_token_lifetime": 86400,
        "id_token_lifetime": 3600,
        "subject_token_expiry": 180,
    }
    data.update(overrides)
    return data


# --- who gets in ------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["applications/", "applications/create/", "api-resources/"])
def test_ordinary_user_gets_403(client: Client, world: World, page: str) -> None:
    sign_in(client, world.target)
    assert client.get(console_url(world.root, page)).status_code == 403


def test_nav_and_writes_need_the_application_scopes(client: Client, world: World) -> None:
    helpdesk = role_create(
        actor=None,
        org=world.root,
        name="Helpdesk",
        audience_application=world.system.console,
        permissions=["internal_user_mgt_list"],
    )
    role_assign(actor=None, role=helpdesk, org=world.root, user=world.target)
    sign_in(client, world.target)
    home = client.get(console_url(world.root)).content.decode()
    assert "Users" in home and "Applications" not in home and "API Resources" not in home
    assert client.get(console_url(world.root, "applications/")).status_code == 403

    viewer = role_create(
        actor=None,
        org=world.root,
        name="Viewer",
        audience_application=world.system.console,
        permissions=["internal_application_mgt_view"],
    )
    role_assign(actor=None, role=viewer, org=world.root, user=world.target)
    app = _app(world)
    home = client.get(console_url(world.root)).content.decode()
    assert "Applications" in home and "API Resources" in home
    page = client.get(console_url(world.root, f"applications/{app.pk}/"))
    assert page.status_code == 200 and b"Update" not in page.content
    response = client.post(console_url(world.root, f"applications/{app.pk}/"), {"name": "Renamed"})
    assert response.status_code == 403
    assert client.post(console_url(world.root, "applications/create/"), {"name": "X"}).status_code == 403
    app.refresh_from_db()
    assert app.name == "Pickup"


def test_another_orgs_application_is_404(client: Client, world: World) -> None:
    us_app = _app(world, "us", name="US only")
    sign_in(client, world.eu_admin)
    for page in ("", "protocol/", "login-flow/", "roles/", "shared-access/"):
        assert client.get(console_url(world.eu, f"applications/{us_app.pk}/{page}")).status_code == 404
    assert client.post(console_url(world.eu, f"applications/{us_app.pk}/login-flow/"), {}).status_code == 404
    admin = sign_in(Client(), world.admin)
    # Not shared with Acme EU: its Console does not show it even to the root's administrator.
    assert admin.get(console_url(world.eu, f"applications/{us_app.pk}/")).status_code == 404
    assert admin.get(console_url(world.root, "applications/99999999999999999999/")).status_code == 404


# --- list and create --------------------------------------------------------------------


def test_list_marks_system_and_shared_applications(client: Client, world: World) -> None:
    _app(world, shared_access=Application.SharedAccess.ALL)
    _app(world, "eu", name="EU Portal")
    _app(world, "us", name="US only")
    sign_in(client, world.eu_admin)
    body = client.get(console_url(world.eu, "applications/")).content.decode()
    assert "Pickup" in body and "EU Portal" in body and "US only" not in body
    assert "Console" in body and "System" in body and "Shared from Acme" in body
    # My Account is not shared with Acme EU until its Shared Access says so.
    assert "My Account" not in body


def test_create_shows_the_secret_once_then_never(admin_client: Client, world: World) -> None:
    response = admin_client.post(
        console_url(world.root, "applications/create/"),
        {
            "name": "Pickup",
            "description": "Pick-up points",
            "client_type": "confidential",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": "https://pickup.example/callback\nhttps://pickup.example/other",
        },
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    secret = _secret_on(body)
    app = Application.objects.get(name="Pickup")
    assert app.client_id in body and app.organization == world.root
    assert app.redirect_uris == "https://pickup.example/callback https://pickup.example/other"
    assert app.client_secret != secret and app.client_secret.startswith("client_secret_hmac$")
    assert check_password(secret, app.client_secret)
    assert AuditEvent.objects.filter(action="application-create", target_id=app.client_id).exists()
    for page in (
        "",
        "protocol/",
        "api-authorization/",
        "roles/",
        "login-flow/",
        "advanced/",
        "shared-access/",
    ):
        again = admin_client.get(console_url(world.root, f"applications/{app.pk}/{page}"))
        assert again.status_code == 200 and secret not in again.content.decode(), page
    assert secret not in admin_client.get(console_url(world.root, "applications/")).content.decode()


def test_create_public_client_has_no_secret(admin_client: Client, world: World) -> None:
    response = admin_client.post(
        console_url(world.eu, "applications/create/"),
        {
            "name": "SPA",
            "client_type": "public",
            "grant_types": ["authorization_code"],
            "redirect_uris": "https://spa.example/cb",
            "pkce_required": "on",
        },
    )
    assert response.status_code == 200 and b'id="client-secret"' not in response.content
    spa = Application.objects.get(name="SPA")
    assert spa.organization == world.eu and spa.pkce_required


def test_create_form_requires_pkce_by_default_and_explains_it(admin_client: Client, world: World) -> None:
    url = console_url(world.root, "applications/create/")
    page = admin_client.get(url).content.decode()
    box = re.search(r'<input[^>]*name="pkce_required"[^>]*>', page)
    assert box and "checked" in box.group(0)
    assert "Require PKCE" in page and "OIDC_USE_PKCE" in page
    form = {
        "client_type": "public",
        "grant_types": ["authorization_code"],
        "redirect_uris": "https://spa.example/cb",
    }
    refused = admin_client.post(url, {**form, "name": "No PKCE SPA"})
    assert refused.status_code == 400 and b"A public client must use PKCE." in refused.content
    assert not Application.objects.filter(name="No PKCE SPA").exists()
    # A confidential client whose library cannot send PKCE may go without.
    admin_client.post(url, {**form, "name": "Legacy", "client_type": "confidential"})
    assert Application.objects.get(name="Legacy").pkce_required is False


def test_create_errors_are_shown(admin_client: Client, world: World) -> None:
    _app(world)
    url = console_url(world.root, "applications/create/")
    for data, message in [
        (
            {"name": "Pickup", "client_type": "confidential", "grant_types": ["client_credentials"]},
            b"already",
        ),
        ({"name": "A", "client_type": "public", "grant_types": ["client_credentials"]}, b"public client"),
        (
            {"name": "B", "client_type": "confidential", "grant_types": ["authorization_code"]},
            b"redirect URI",
        ),
        ({"name": "C", "client_type": "confidential", "grant_types": []}, b"at least one grant"),
        (
            {
                "name": "D",
                "client_type": "confidential",
                "grant_types": ["authorization_code"],
                "redirect_uris": "javascript:alert(1)",
            },
            b"Not a valid http(s) URL",
        ),
        ({"name": "E", "client_type": "confidential", "grant_types": ["implicit"]}, b"valid choice"),
    ]:
        response = admin_client.post(url, data)
        assert response.status_code == 400 and message in response.content, data
    assert Application.objects.filter(organization=world.root, system_key="").count() == 1


# --- General / Protocol / Advanced ------------------------------------------------------


def test_general_tab_updates_and_audits(admin_client: Client, world: World) -> None:
    app = _app(world)
    url = console_url(world.root, f"applications/{app.pk}/")
    response = admin_client.post(
        url,
        {
            "name": "Pickup 2",
            "description": "d",
            "discoverable": "on",
            "access_url": "https://pickup.example/",
        },
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert (app.name, app.discoverable, app.access_url) == ("Pickup 2", True, "https://pickup.example/")
    event = AuditEvent.objects.get(action="application-update", target_id=app.client_id)
    assert event.actor_id == world.admin.pk and event.data["changes"]["name"]["to"] == "Pickup 2"
    response = admin_client.post(url, {"name": "Pickup 2", "discoverable": "on", "access_url": ""})
    assert response.status_code == 400 and b"needs an access URL" in response.content


def test_system_application_cannot_be_renamed_or_deleted(admin_client: Client, world: World) -> None:
    console = world.system.console
    url = console_url(world.root, f"applications/{console.pk}/")
    response = admin_client.post(url, {"name": "Hacked", "description": "new words"})
    assert response.status_code == 302  # the name field is fixed: only the description changes
    console.refresh_from_db()
    assert console.name == "Console" and console.description == "new words"
    assert admin_client.get(url + "delete/").status_code == 403
    assert admin_client.post(url + "delete/", {"confirm": "Console"}).status_code == 403
    assert Application.objects.filter(pk=console.pk).exists()


def test_system_application_protocol_keeps_grants_and_redirects(admin_client: Client, world: World) -> None:
    myaccount = world.system.myaccount
    before = (myaccount.grant_types, myaccount.redirect_uris, myaccount.client_type)
    response = admin_client.post(
        console_url(world.root, f"applications/{myaccount.pk}/protocol/"),
        _protocol_data(
            myaccount,
            client_type="confidential",
            grant_types=["client_credentials"],
            redirect_uris="https://evil.example/cb",
            access_token_lifetime=600,
            subject_token_enabled="on",
        ),
    )
    assert response.status_code == 302
    myaccount.refresh_from_db()
    assert (myaccount.grant_types, myaccount.redirect_uris, myaccount.client_type) == before
    assert myaccount.access_token_lifetime == 600


def test_protocol_tab_shows_the_endpoints_to_configure(client: Client, world: World) -> None:
    """The issuer is the token endpoint's address (people guess wrong otherwise); a child
    organization's Console gives that organization's authorize and token endpoints."""
    app = _app(world, shared_access=Application.SharedAccess.ALL)
    base = "http://127.0.0.1:8000/t/acme"
    sign_in(client, world.admin)
    page = client.get(console_url(world.root, f"applications/{app.pk}/protocol/")).content.decode()
    fields = dict(re.findall(r'<input type="text" id="endpoint-(\w+)" value="([^"]+)"', page))
    assert fields == {
        "issuer": f"{base}/oauth2/token",
        "discovery": f"{base}/oauth2/token/.well-known/openid-configuration",
        "authorize": f"{base}/oauth2/authorize",
        "token": f"{base}/oauth2/token",
        "userinfo": f"{base}/oauth2/userinfo",
        "jwks": f"{base}/oauth2/jwks",
        "logout": f"{base}/oidc/logout",
    }
    assert 'data-copy="endpoint-issuer"' in page and app.client_id in page
    discovery = client.get(fields["discovery"].removeprefix("http://127.0.0.1:8000")).json()
    assert discovery["issuer"] == fields["issuer"] and discovery["jwks_uri"] == fields["jwks"]
    sign_in(client, world.eu_admin)
    eu_page = client.get(console_url(world.eu, f"applications/{app.pk}/protocol/")).content.decode()
    eu_fields = dict(re.findall(r'<input type="text" id="endpoint-(\w+)" value="([^"]+)"', eu_page))
    assert eu_fields["authorize"] == f"{base}/o/{world.eu.pk}/oauth2/authorize"
    assert eu_fields["token"] == f"{base}/o/{world.eu.pk}/oauth2/token"
    assert eu_fields["issuer"] == f"{base}/oauth2/token"


def test_protocol_tab_saves(admin_client: Client, world: World) -> None:
    app = _app(world)
    response = admin_client.post(
        console_url(world.root, f"applications/{app.pk}/protocol/"),
        _protocol_data(
            app,
            grant_types=["authorization_code", "refresh_token"],
            post_logout_redirect_uris="https://pickup.example/bye https://pickup.example/again",
            access_token_lifetime=900,
            subject_token_enabled="on",
            subject_token_expiry=120,
            pkce_required="",
        ),
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert Application.GRANT_TOKEN_EXCHANGE_TYPE in app.grant_types
    assert app.post_logout_redirect_uris == "https://pickup.example/bye https://pickup.example/again"
    assert (app.access_token_lifetime, app.subject_token_enabled, app.subject_token_expiry) == (
        900,
        True,
        120,
    )
    assert app.pkce_required is False
    assert AuditEvent.objects.filter(action="application-update", target_id=app.client_id).exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"redirect_uris": "not a url"}, b"Not a valid http(s) URL"),
        ({"redirect_uris": "https://x.example/cb#frag"}, b"must not contain a fragment"),
        ({"post_logout_redirect_uris": "ftp://x.example/"}, b"Not a valid http(s) URL"),
        ({"access_token_lifetime": 0}, b"greater than or equal to 1"),
        ({"refresh_token_lifetime": 10**9}, b"less than or equal to 31536000"),
        ({"id_token_lifetime": "soon"}, b"Enter a whole number"),
        ({"subject_token_expiry": 0}, b"greater than or equal to 1"),
        (
            {"client_type": "public", "grant_types": ["client_credentials"]},
            b"public client cannot use client",
        ),
        ({"client_type": "public", "pkce_required": ""}, b"must use PKCE"),
        ({"redirect_uris": ""}, b"needs at least one redirect URI"),
    ],
)
def test_protocol_validation_errors(
    admin_client: Client, world: World, overrides: dict[str, object], message: bytes
) -> None:
    app = _app(world)
    before = Application.objects.filter(pk=app.pk).values().get()
    response = admin_client.post(
        console_url(world.root, f"applications/{app.pk}/protocol/"), _protocol_data(app, **overrides)
    )
    assert response.status_code == 400 and message in response.content
    assert Application.objects.filter(pk=app.pk).values().get() == before


def test_regenerate_secret(admin_client: Client, world: World) -> None:
    app, old_secret = application_create(
        actor=None,
        org=world.root,
        name="Pickup",
        grant_types=["client_credentials"],
    )
    old_hash = app.client_secret
    response = admin_client.post(console_url(world.root, f"applications/{app.pk}/protocol/secret/"))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    new_secret = _secret_on(response.content.decode())
    app.refresh_from_db()
    assert app.client_secret != old_hash and new_secret != old_secret
    assert check_password(new_secret, app.client_secret)
    assert not check_password(old_secret, app.client_secret)
    assert AuditEvent.objects.filter(action="application-secret-regenerate", target_id=app.client_id).exists()
    page = admin_client.get(console_url(world.root, f"applications/{app.pk}/protocol/")).content.decode()
    assert new_secret not in page and "Regenerate client secret" in page
    # A GET never regenerates; a system (public) application has no secret.
    assert (
        admin_client.get(console_url(world.root, f"applications/{app.pk}/protocol/secret/")).status_code
        == 405
    )
    console = world.system.console
    assert (
        admin_client.post(console_url(world.root, f"applications/{console.pk}/protocol/secret/")).status_code
        == 403
    )


def test_turning_public_into_confidential_shows_a_new_secret(admin_client: Client, world: World) -> None:
    app = _app(world, client_type=Application.CLIENT_PUBLIC)
    response = admin_client.post(
        console_url(world.root, f"applications/{app.pk}/protocol/"),
        _protocol_data(app, client_type="confidential"),
    )
    assert response.status_code == 200
    secret = _secret_on(response.content.decode())
    app.refresh_from_db()
    assert app.client_type == "confidential" and check_password(secret, app.client_secret)


def test_advanced_tab(admin_client: Client, world: World) -> None:
    app = _app(world)
    url = console_url(world.root, f"applications/{app.pk}/advanced/")
    assert (
        admin_client.post(url, {"skip_login_consent": "on", "skip_logout_consent": "on"}).status_code == 302
    )
    app.refresh_from_db()
    assert app.skip_login_consent and app.skip_logout_consent
    assert AuditEvent.objects.filter(action="application-update", data__tab="advanced").exists()


# --- a shared application seen from a child organization --------------------------------


def test_child_admin_sees_shared_app_read_only_but_sets_its_own_flow(client: Client, world: World) -> None:
    app = _app(world, shared_access=Application.SharedAccess.ALL)
    sign_in(client, world.eu_admin)
    base = console_url(world.eu, f"applications/{app.pk}/")
    page = client.get(base)
    assert page.status_code == 200 and b"read-only here" in page.content and b"disabled" in page.content
    for tab in (
        "General",
        "Protocol",
        "API Authorization",
        "Roles",
        "Login Flow",
        "Advanced",
        "Shared Access",
    ):
        assert f">{tab}<".encode() in page.content, tab
    assert client.post(base, {"name": "Mine now"}).status_code == 403
    assert client.post(base + "protocol/", _protocol_data(app, access_token_lifetime=5)).status_code == 403
    assert client.post(base + "advanced/", {"skip_login_consent": "on"}).status_code == 403
    assert client.post(base + "shared-access/", {"mode": "none"}).status_code == 403
    assert client.post(base + "roles/", {"name": "Mine"}).status_code == 403
    assert client.post(base + "delete/", {"confirm": "Pickup"}).status_code == 403
    assert client.post(base + "protocol/secret/").status_code == 403
    app.refresh_from_db()
    assert app.name == "Pickup" and app.access_token_lifetime == 3600 and app.shared_access == "all"

    response = client.post(
        base + "login-flow/",
        {"step": ["SharedUserIdentifierExecutor", "BasicAuthenticator"], "action": "save"},
    )
    assert response.status_code == 302
    assert login_flow_steps(application=app, org=world.eu) == [
        ["SharedUserIdentifierExecutor"],
        ["BasicAuthenticator"],
    ]
    assert login_flow_steps(application=app, org=world.root) == [["BasicAuthenticator"]]
    assert AuditEvent.objects.filter(action="login-flow-update", actor_id=world.eu_admin.pk).exists()
    flow_page = html.unescape(client.get(base + "login-flow/").content.decode())
    assert "Acme EU's own flow" in flow_page and "Use Acme's flow" in flow_page
    assert client.post(base + "login-flow/", {"reset": "1"}).status_code == 302
    assert not LoginFlow.objects.filter(application=app, organization=world.eu).exists()
    assert AuditEvent.objects.filter(action="login-flow-reset", actor_id=world.eu_admin.pk).exists()


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (
            ["BasicAuthenticator,SharedUserIdentifierExecutor"],
            "must be the only authentication in step 1: remove Username &amp; Password.",
        ),
        (
            ["BasicAuthenticator", "SharedUserIdentifierExecutor"],
            "Shared User Identifier can only be in step 1.",
        ),
        (["SharedUserIdentifierExecutor"], "add a second step that authenticates them"),
        (["email-otp"], "Email one-time code cannot be in step 1"),
        (["MagicLink"], "Step 1 has an authentication actas does not know."),
        (["BasicAuthenticator", ""], "Step 2 has no authentication: add one or remove the step."),
        ([], "A login flow needs at least one step."),
    ],
)
def test_broken_flow_shows_the_error_and_saves_nothing(
    client: Client, world: World, steps: list[str], message: str
) -> None:
    app = _app(world, shared_access=Application.SharedAccess.ALL)
    sign_in(client, world.eu_admin)
    response = client.post(
        console_url(world.eu, f"applications/{app.pk}/login-flow/"), {"step": steps, "action": "save"}
    )
    body = response.content.decode()
    assert response.status_code == 400 and "The login flow was not saved" in body
    assert message in body
    assert "SharedUserIdentifierExecutor<" not in body and ">BasicAuthenticator" not in body
    assert not LoginFlow.objects.filter(application=app).exists()


def test_owner_edits_its_own_flow(admin_client: Client, world: World) -> None:
    app = _app(world)
    url = console_url(world.root, f"applications/{app.pk}/login-flow/")
    response = admin_client.post(url, {"step": ["BasicAuthenticator", "email-otp"], "action": "save"})
    assert response.status_code == 302
    assert login_flow_steps(application=app, org=world.root) == [["BasicAuthenticator"], ["email-otp"]]
    admin_client.post(url, {"reset": "1"})  # the owner has nothing to reset to
    assert LoginFlow.objects.filter(application=app, organization=world.root).exists()


# --- Shared Access ----------------------------------------------------------------------


def test_share_my_account_with_selected_organizations(admin_client: Client, world: World) -> None:
    myaccount = world.system.myaccount
    url = console_url(world.root, f"applications/{myaccount.pk}/shared-access/")
    page = admin_client.get(url).content.decode()
    assert "Acme EU Sales" in page and "Acme US" in page
    response = admin_client.post(url, {"mode": "selected", "organizations": [str(world.eu.pk)]})
    assert response.status_code == 302
    myaccount.refresh_from_db()
    assert myaccount.shared_access == "selected"
    assert list(
        ApplicationShare.objects.filter(application=myaccount).values_list("organization", flat=True)
    ) == [world.eu.pk]
    assert AuditEvent.objects.filter(action="application-share", target_id=myaccount.client_id).exists()
    assert admin_client.post(url, {"mode": "selected"}).status_code == 400
    assert admin_client.post(url, {"mode": "all"}).status_code == 302
    myaccount.refresh_from_db()
    assert (
        myaccount.shared_access == "all"
        and not ApplicationShare.objects.filter(application=myaccount).exists()
    )


def test_console_sharing_cannot_change(admin_client: Client, world: World) -> None:
    console = world.system.console
    url = console_url(world.root, f"applications/{console.pk}/shared-access/")
    assert admin_client.post(url, {"mode": "none"}).status_code == 403
    console.refresh_from_db()
    assert console.shared_access == "all"


def test_selected_sharing_stays_within_the_subtree(admin_client: Client, world: World) -> None:
    app = _app(world, "eu", name="EU Portal")
    url = console_url(world.eu, f"applications/{app.pk}/shared-access/")
    page = admin_client.get(url).content.decode()
    assert "Acme EU Sales" in page and "Acme US" not in page
    for outside in (world.us, world.root, world.eu):
        response = admin_client.post(url, {"mode": "selected", "organizations": [str(outside.pk)]})
        assert response.status_code == 400 and b"valid choice" in response.content
    assert admin_client.post(url, {"mode": "selected", "organizations": ["not-a-uuid"]}).status_code == 400
    assert not ApplicationShare.objects.filter(application=app).exists()
    response = admin_client.post(url, {"mode": "selected", "organizations": [str(world.sales.pk)]})
    assert response.status_code == 302
    assert ApplicationShare.objects.filter(application=app, organization=world.sales).exists()


# --- API Authorization and Roles --------------------------------------------------------


def _orders(world: World) -> APIResource:
    return api_resource_create(
        actor=None,
        tenant=world.root,
        identifier="https://orders.example",
        name="Orders",
        scopes=[ScopeSpec("orders:read", "Read orders", read_only=True), ScopeSpec("orders:write")],
    )


def test_authorize_and_remove_an_api_resource(admin_client: Client, world: World) -> None:
    app = _app(world)
    orders = _orders(world)
    url = console_url(world.root, f"applications/{app.pk}/api-authorization/")
    page = admin_client.get(url + f"?resource={orders.pk}").content.decode()
    assert "orders:read" in page and "orders:write" in page
    assert admin_client.get(url + "?resource=%00junk").status_code == 200
    response = admin_client.post(url, {"resource": str(orders.pk), "scopes": ["orders:read"]})
    assert response.status_code == 302
    authorization = ApplicationAPIAuthorization.objects.get(application=app, resource=orders)
    assert [s.name for s in authorization.scopes.all()] == ["orders:read"]
    response = admin_client.post(url, {"resource": str(orders.pk), "scopes": ["internal_user_mgt_view"]})
    assert response.status_code == 400 and b"valid choice" in response.content
    response = admin_client.post(url, {"resource": str(orders.pk)})
    assert response.status_code == 400 and b"Choose at least one scope" in response.content
    assert admin_client.post(url, {"resource": "nope", "scopes": ["orders:read"]}).status_code == 400
    response = admin_client.post(url + "remove/", {"resource": str(orders.pk)})
    assert response.status_code == 302
    assert not ApplicationAPIAuthorization.objects.filter(application=app).exists()
    assert AuditEvent.objects.filter(action="application-api-unauthorize", target_id=app.client_id).exists()
    assert admin_client.post(url + "remove/", {"resource": "\x00"}).status_code == 302


def test_system_application_authorizations_are_fixed(admin_client: Client, world: World) -> None:
    console = world.system.console
    url = console_url(world.root, f"applications/{console.pk}/api-authorization/")
    before = ApplicationAPIAuthorization.objects.filter(application=console).count()
    resource = APIResource.objects.get(tenant=world.root, identifier="system:console")
    assert admin_client.post(url + "remove/", {"resource": str(resource.pk)}).status_code == 403
    assert ApplicationAPIAuthorization.objects.filter(application=console).count() == before


def test_application_roles_use_authorized_scopes_without_escalation(
    admin_client: Client, world: World
) -> None:
    app = _app(world)
    orders = _orders(world)
    impersonation = APIResource.objects.get(tenant=world.root, identifier="system:impersonation")
    application_authorize_api(actor=None, application=app, resource=orders, scopes=["orders:read"])
    application_authorize_api(
        actor=None, application=app, resource=impersonation, scopes=["internal_user_impersonate"]
    )
    url = console_url(world.root, f"applications/{app.pk}/roles/")
    page = admin_client.get(url).content.decode()
    assert "internal_user_impersonate" in page and "orders:read" in page and "orders:write" not in page
    response = admin_client.post(
        url, {"name": "Pickup Impersonator", "permissions": ["internal_user_impersonate"]}
    )
    assert response.status_code == 302
    role = Role.objects.get(name="Pickup Impersonator")
    assert role.audience_application == app and role.organization == world.root
    assert list(role.permissions.values_list("name", flat=True)) == ["internal_user_impersonate"]
    assert f"roles/{role.pk}/" in admin_client.get(url).content.decode()
    # The administrator does not hold orders:read: no privilege escalation.
    response = admin_client.post(url, {"name": "Order reader", "permissions": ["orders:read"]})
    assert response.status_code == 400 and b"You can only grant permissions you hold" in response.content
    response = admin_client.post(url, {"name": "Writer", "permissions": ["orders:write"]})
    assert response.status_code == 400
    assert not Role.objects.filter(name__in=["Order reader", "Writer"]).exists()


# --- Delete -----------------------------------------------------------------------------


def test_delete_business_application(admin_client: Client, world: World) -> None:
    app = _app(world)
    role_create(actor=None, org=world.root, name="App role", audience_application=app)
    url = console_url(world.root, f"applications/{app.pk}/delete/")
    assert admin_client.get(url).status_code == 200
    assert admin_client.post(url, {"confirm": "pickup"}).status_code == 400
    assert Application.objects.filter(pk=app.pk).exists()
    response = admin_client.post(url, {"confirm": "Pickup"})
    assert response.status_code == 302 and response["Location"] == console_url(world.root, "applications/")
    assert not Application.objects.filter(pk=app.pk).exists()
    assert not Role.objects.filter(name="App role").exists()
    assert AuditEvent.objects.filter(action="application-delete", target_id=app.client_id).exists()


# --- API resources ----------------------------------------------------------------------


def test_api_resource_list_and_create(admin_client: Client, world: World) -> None:
    body = admin_client.get(console_url(world.root, "api-resources/")).content.decode()
    assert "User Impersonation" in body and "internal_user_impersonate" in body and "New API resource" in body
    response = admin_client.post(
        console_url(world.root, "api-resources/create/"),
        {
            "identifier": "https://orders.example",
            "name": "Orders",
            "description": "Order API",
            "scopes-TOTAL_FORMS": "3",
            "scopes-INITIAL_FORMS": "0",
            "scopes-0-name": "orders:read",
            "scopes-0-display_name": "Read orders",
            "scopes-0-read_only": "on",
            "scopes-1-name": "orders:write",
            "scopes-2-name": "",
        },
    )
    resource = APIResource.objects.get(identifier="https://orders.example")
    assert response.status_code == 302 and response["Location"].endswith(f"api-resources/{resource.pk}/")
    assert not resource.is_system and resource.tenant == world.root
    scopes = {s.name: s.read_only for s in resource.scopes.all()}
    assert scopes == {"orders:read": True, "orders:write": False}
    assert AuditEvent.objects.filter(action="api-resource-create", actor_id=world.admin.pk).exists()
    detail = admin_client.get(console_url(world.root, f"api-resources/{resource.pk}/")).content.decode()
    assert "Read orders" in detail and "Add a scope" in detail


def _create_payload(**overrides: str) -> dict[str, str]:
    data = {
        "identifier": "https://billing.example",
        "name": "Billing",
        "scopes-TOTAL_FORMS": "2",
        "scopes-INITIAL_FORMS": "0",
        "scopes-0-name": "billing:read",
        "scopes-1-name": "",
    }
    data.update(overrides)
    return data


def test_duplicate_scope_names_are_form_errors(admin_client: Client, world: World) -> None:
    orders = _orders(world)
    url = console_url(world.root, "api-resources/create/")
    response = admin_client.post(url, _create_payload(**{"scopes-0-name": "orders:read"}))
    assert response.status_code == 400 and b"already exists in this tenant" in response.content
    response = admin_client.post(url, _create_payload(**{"scopes-1-name": "billing:read"}))
    assert response.status_code == 400 and b"Listed twice" in response.content
    response = admin_client.post(url, _create_payload(identifier="https://orders.example"))
    assert response.status_code == 400 and b"identifier already exists" in response.content
    response = admin_client.post(url, _create_payload(**{"scopes-0-name": "internal_user_mgt_view"}))
    assert response.status_code == 400 and b"reserved" in response.content
    assert not APIResource.objects.filter(identifier="https://billing.example").exists()
    add = console_url(world.root, f"api-resources/{orders.pk}/scopes/add/")
    response = admin_client.post(add, {"name": "orders:write"})
    assert response.status_code == 400 and b"already exists in this tenant" in response.content
    response = admin_client.post(add, {"name": "orders:cancel", "read_only": ""})
    assert response.status_code == 302
    assert orders.scopes.filter(name="orders:cancel").exists()
    assert AuditEvent.objects.filter(action="scope-create", data__scope="orders:cancel").exists()


def test_system_resources_and_child_consoles_are_read_only(client: Client, world: World) -> None:
    orders = _orders(world)
    system = APIResource.objects.get(tenant=world.root, identifier="system:users")
    admin = sign_in(Client(), world.admin)
    response = admin.post(console_url(world.root, f"api-resources/{system.pk}/scopes/add/"), {"name": "x:y"})
    assert response.status_code == 403
    sign_in(client, world.eu_admin)
    body = client.get(console_url(world.eu, "api-resources/")).content.decode()
    assert "Orders" in body and "New API resource" not in body
    detail = client.get(console_url(world.eu, f"api-resources/{orders.pk}/"))
    assert detail.status_code == 200 and b"Add a scope" not in detail.content
    assert client.get(console_url(world.eu, "api-resources/create/")).status_code == 403
    assert client.post(console_url(world.eu, "api-resources/create/"), _create_payload()).status_code == 403
    response = client.post(console_url(world.eu, f"api-resources/{orders.pk}/scopes/add/"), {"name": "o:x"})
    assert response.status_code == 403
    assert not Scope.objects.filter(name__in=["x:y", "o:x"]).exists()
    assert (
        client.get(console_url(world.eu, "api-resources/00000000-0000-0000-0000-000000000000/")).status_code
        == 404
    )


# --- hostile input ----------------------------------------------------------------------


def test_nul_bytes_and_oversized_input_are_never_500(admin_client: Client, world: World) -> None:
    app = _app(world)
    orders = _orders(world)
    base = console_url(world.root, f"applications/{app.pk}/")
    huge = "x" * 20000
    posts: list[tuple[str, dict[str, Any]]] = [
        (console_url(world.root, "applications/create/"), {"name": "a\x00b", "client_type": "confidential"}),
        (
            console_url(world.root, "applications/create/"),
            {"name": huge, "description": huge, "client_type": "x\x00", "grant_types": ["\x00"]},
        ),
        (
            console_url(world.root, "applications/create/"),
            {
                "name": "ok",
                "client_type": "public",
                "grant_types": ["authorization_code"],
                "redirect_uris": huge,
            },
        ),
        (base, {"name": "n\x00", "access_url": "https://x.example/\x00"}),
        (base, {"name": "n", "description": huge, "access_url": "https://" + "a" * 300 + ".example/"}),
        (
            base + "protocol/",
            _protocol_data(app, redirect_uris="https://a.example/\x00", access_token_lifetime="9" * 5000),
        ),
        (base + "protocol/", _protocol_data(app, grant_types=["\x00"], client_type=huge)),
        (base + "login-flow/", {"step": "BasicAuthenticator\x00", "action": "save"}),
        (base + "login-flow/", {"step": [huge] * 50, "action": "save"}),
        (base + "shared-access/", {"mode": "\x00", "organizations": ["\x00", huge]}),
        (base + "api-authorization/", {"resource": "\x00", "scopes": [huge]}),
        (base + "api-authorization/", {"resource": str(orders.pk), "scopes": ["\x00"]}),
        (base + "roles/", {"name": "r\x00", "permissions": ["\x00"]}),
        (base + "roles/", {"name": huge}),
        (base + "delete/", {"confirm": "\x00"}),
        (console_url(world.root, "api-resources/create/"), _create_payload(identifier="a\x00b")),
        (
            console_url(world.root, "api-resources/create/"),
            _create_payload(identifier="has space", name=huge),
        ),
        (
            console_url(world.root, "api-resources/create/"),
            _create_payload(**{"scopes-TOTAL_FORMS": "100000"}),
        ),
        (console_url(world.root, "api-resources/create/"), _create_payload(**{"scopes-TOTAL_FORMS": "\x00"})),
        (console_url(world.root, "api-resources/create/"), _create_payload(**{"scopes-0-name": "bad name"})),
        (
            console_url(world.root, f"api-resources/{orders.pk}/scopes/add/"),
            {"name": "o\x00", "description": huge},
        ),
    ]
    for url, data in posts:
        response = admin_client.post(url, data)
        assert response.status_code == 400, (url, list(data), response.status_code)
    # A checkbox is on whatever its value says.
    assert admin_client.post(base + "advanced/", {"skip_login_consent": "\x00"}).status_code == 302
    app.refresh_from_db()
    assert app.name == "Pickup"
    for url in (
        base + "?x=%00",
        base + "api-authorization/?resource=" + huge,
        console_url(world.root, "applications/%00/"),
    ):
        assert admin_client.get(url).status_code in (200, 404)


# --- Protocol → Impersonation -----------------------------------------------------------


def test_impersonation_switch_turns_on_subject_tokens_and_token_exchange(
    admin_client: Client, world: World
) -> None:
    app = _app(world)
    url = console_url(world.root, f"applications/{app.pk}/protocol/")
    page = admin_client.get(url).content.decode()
    assert "Allow impersonation" in page and "Turns on subject tokens and the token-exchange grant" in page
    assert Application.GRANT_TOKEN_EXCHANGE_TYPE not in page  # not a grant type to tick here
    assert 'badge--neutral">Off<' in page

    response = admin_client.post(url, _protocol_data(app, subject_token_enabled="on"))
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.subject_token_enabled and Application.GRANT_TOKEN_EXCHANGE_TYPE in app.grant_types
    event = AuditEvent.objects.filter(action="application-update", target_id=app.client_id).get()
    assert event.actor_id == world.admin.pk
    assert event.data["impersonation"] == {"from": False, "to": True}
    assert set(event.data["changes"]) == {"subject_token_enabled", "grant_types"}
    assert 'badge--success">On<' in admin_client.get(url).content.decode()

    # Off again: both go, the other grant types stay.
    off = _protocol_data(app, grant_types=["authorization_code", "refresh_token"])
    assert admin_client.post(url, off).status_code == 302
    app.refresh_from_db()
    assert not app.subject_token_enabled
    assert sorted(app.grant_types) == ["authorization_code", "refresh_token"]


def test_impersonation_off_is_named_to_the_client_and_the_switch_fixes_it(
    client: Client, world: World
) -> None:
    app = impersonation_app(world, client_id="pickup").app
    app.subject_token_enabled = False
    app.save()
    impersonator = sign_in(Client(), world.impersonator)
    refused = impersonator.get(subject_authorize_url("pickup", world.target))
    answer = fragment(refused["Location"])
    assert answer["error"] == "unauthorized_client" and answer["state"] == "s-1"
    assert answer["error_description"] == (
        "Impersonation is turned off for App pickup. Turn it on in the Console: "
        "Applications → App pickup → Protocol → Impersonation."
    )

    sign_in(client, world.admin)
    url = console_url(world.root, f"applications/{app.pk}/protocol/")
    grants = ["authorization_code", "refresh_token", Application.GRANT_ORGANIZATION_SWITCH_TYPE]
    data = _protocol_data(app, grant_types=grants, subject_token_enabled="on")
    assert client.post(url, data).status_code == 302
    confirmation = impersonator.get(subject_authorize_url("pickup", world.target))
    assert confirmation.status_code == 200 and "pending" in confirmation.context
