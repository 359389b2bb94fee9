"""Helpers for the OAuth endpoint tests: a business application, PKCE, a signed-in code."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from django.test import Client

from identity.models import APIResource, Application, User
from identity.services.applications import application_authorize_api, application_create, application_share
from identity.services.roles import role_assign, role_create
from organizations.models import Organization
from tests.conftest import World, sign_in

REDIRECT = "http://127.0.0.1:8765/callback"
LOGOUT_REDIRECT = "http://127.0.0.1:8765/"
SECRET = "pickup-secret-for-tests-0123456789"


@dataclass
class App:
    app: Application
    secret: str

    @property
    def client_id(self) -> str:
        return self.app.client_id


def make_app(
    world: World,
    *,
    client_id: str = "pickup",
    client_type: str = Application.CLIENT_CONFIDENTIAL,
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token", "client_credentials"),
    skip_login_consent: bool = True,
    skip_logout_consent: bool = False,
    pkce_required: bool = True,
    share: bool = True,
    redirect: str = REDIRECT,
    **options: Any,
) -> App:
    """A Pickup-like app: user-management scopes authorized, an app role holding
    ``internal_user_mgt_view`` given to ``target`` in the root organization."""
    if client_type == Application.CLIENT_PUBLIC:
        grant_types = tuple(g for g in grant_types if g != "client_credentials")
    app, secret = application_create(
        actor=None,
        org=world.root,
        name=f"App {client_id}",
        client_type=client_type,
        client_id=client_id,
        client_secret=SECRET if client_type == Application.CLIENT_CONFIDENTIAL else None,
        grant_types=grant_types,
        redirect_uris=[redirect],
        post_logout_redirect_uris=[LOGOUT_REDIRECT],
        skip_login_consent=skip_login_consent,
        skip_logout_consent=skip_logout_consent,
        pkce_required=pkce_required,
        **options,
    )
    users = APIResource.objects.get(tenant=world.root, scopes__name="internal_user_mgt_view")
    application_authorize_api(
        actor=None,
        application=app,
        resource=users,
        scopes=[
            s.name for s in users.scopes.filter(name__in=["internal_user_mgt_view", "internal_user_mgt_list"])
        ],
    )
    role = role_create(
        actor=None,
        org=world.root,
        name=f"{client_id} viewer",
        audience_application=app,
        permissions=["internal_user_mgt_view"],
    )
    role_assign(actor=None, role=role, org=world.root, user=world.target)
    if share:
        application_share(actor=None, application=app, mode=Application.SharedAccess.ALL)
    app.refresh_from_db()
    return App(app, secret)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(
    client_id: str,
    *,
    challenge: str | None,
    scope: str = "openid profile email",
    base: str = "/t/acme",
    **extra: str,
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": "st-123",
        "nonce": "n-456",
    }
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return f"{base}/oauth2/authorize?{urlencode(params)}"


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(
    client: Client,
    world: World,
    app: App,
    *,
    user: User | None = None,
    org: Organization | None = None,
    scope: str = "openid profile email",
    signed_in: bool = False,
) -> tuple[str, str]:
    """Sign in (unless already) and run /authorize to a code. Returns (code, verifier)."""
    user = user or world.target
    if not signed_in:
        sign_in(client, user, org=org)
    verifier, challenge = pkce_pair()
    base = "/t/acme" if org is None or org.pk == world.root.pk else f"/t/acme/o/{org.pk}"
    response = client.get(authorize_url(app.client_id, challenge=challenge, scope=scope, base=base))
    assert response.status_code == 302, response.content[:400]
    assert response["Location"].startswith(REDIRECT), response["Location"]
    params = query_of(response["Location"])
    assert params["state"] == "st-123"
    return params["code"], verifier


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def exchange(client: Client, app: App, code: str, verifier: str, *, base: str = "/t/acme") -> Any:
    return client.post(
        f"{base}/oauth2/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        HTTP_AUTHORIZATION=basic(app.client_id, app.secret),
    )
