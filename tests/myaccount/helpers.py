"""Helpers for My Account tests: follow the OIDC round trip through the real endpoints."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.test import Client

from identity.models import Application
from identity.services.applications import application_share
from organizations.models import Organization
from tests.conftest import World

ROOT = "/t/acme/myaccount/"


def org_base(org: Organization) -> str:
    return ROOT if org.parent_id is None else f"/t/acme/o/{org.pk}/myaccount/"


def local(location: str) -> str:
    """A redirect target as a path the test client can request (BASE_URL stripped)."""
    if location.startswith(settings.BASE_URL):
        location = location[len(settings.BASE_URL) :]
    parts = urlsplit(location)
    assert not parts.netloc, f"redirect off-site: {location}"
    return location


def follow(client: Client, response: Any, *, limit: int = 10) -> tuple[Any, list[str]]:
    """Follow redirects (GET), returning the last response and the chain of paths."""
    chain: list[str] = []
    while response.status_code in (301, 302, 303) and limit:
        target = local(response["Location"])
        chain.append(target)
        response = client.get(target)
        limit -= 1
    return response, chain


def open_myaccount(client: Client, path: str = ROOT) -> tuple[Any, list[str]]:
    """GET a My Account page, running the sign-in round trip when it asks for one."""
    return follow(client, client.get(path))


def share_myaccount(world: World, orgs: list[Organization] | None = None) -> Application:
    app = world.system.myaccount
    if orgs is None:
        application_share(actor=None, application=app, mode=Application.SharedAccess.ALL)
    else:
        application_share(
            actor=None, application=app, mode=Application.SharedAccess.SELECTED, organizations=orgs
        )
    app.refresh_from_db()
    return app


def start_impersonation(client: Client, world: World, app: Any, **extra: Any) -> dict[str, Any]:
    """The impersonator signs in in ``client`` and impersonates ``world.target`` through the
    app (subject token + token exchange), which binds this browser's SSO session."""
    from tests.impersonation.helpers import exchange_tokens, get_subject_token

    response = exchange_tokens(client, app, get_subject_token(client, world, app, **extra))
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def twin(client: Client) -> Client:
    """A second tab of the same browser: another client with the same cookies."""
    other = Client()
    other.cookies = client.cookies
    return other


def introspect_active(app: Any, token: str) -> bool:
    from tests.identity.oauth_helpers import basic

    response = Client().post(
        "/t/acme/oauth2/introspect", {"token": token}, HTTP_AUTHORIZATION=basic(app.client_id, app.secret)
    )
    assert response.status_code == 200, response.content
    return bool(response.json()["active"])
