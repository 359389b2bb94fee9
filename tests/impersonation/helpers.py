"""Helpers for impersonation tests: an impersonation-ready business app and the full
subject-token → token-exchange dance through the real endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from django.test import Client

from identity.models import APIResource, Application, Role, User
from identity.services.applications import application_authorize_api
from identity.services.roles import role_assign, role_create
from organizations.models import Organization
from tests.conftest import World, sign_in
from tests.identity.oauth_helpers import REDIRECT, App, basic, make_app

TX = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT = "urn:ietf:params:oauth:token-type:jwt"
ID = "urn:ietf:params:oauth:token-type:id_token"
AT = "urn:ietf:params:oauth:token-type:access_token"


def impersonation_app(world: World, *, client_id: str = "pickup", **options: Any) -> App:
    """Pickup as DESIGN §8: token exchange + refresh, subject token enabled, authorized for
    both impersonation resources; "Pickup Impersonator" (both impersonate scopes and the
    user-management scope the target holds, so the impersonator dominates) held by
    ``impersonator`` in Acme."""
    app = make_app(
        world,
        client_id=client_id,
        grant_types=(
            "authorization_code",
            "refresh_token",
            Application.GRANT_TOKEN_EXCHANGE_TYPE,
            Application.GRANT_ORGANIZATION_SWITCH_TYPE,
        ),
        subject_token_enabled=True,
        **options,
    )
    for identifier in ("system:impersonation", "org:impersonation"):
        resource = APIResource.objects.get(tenant=world.root, identifier=identifier)
        application_authorize_api(
            actor=None,
            application=app.app,
            resource=resource,
            scopes=list(resource.scopes.values_list("name", flat=True)),
        )
    role = role_create(
        actor=None,
        org=world.root,
        name=f"{client_id} impersonator",
        audience_application=app.app,
        permissions=["internal_user_impersonate", "internal_org_user_impersonate", "internal_user_mgt_view"],
    )
    role_assign(actor=None, role=role, org=world.root, user=world.impersonator)
    return app


def impersonator_role(client_id: str = "pickup") -> Role:
    return Role.objects.get(name=f"{client_id} impersonator")


def fragment(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def subject_authorize_url(
    client_id: str,
    subject: User,
    *,
    base: str = "/t/acme",
    response_type: str = "id_token subject_token",
    scope: str = "openid internal_user_impersonate internal_user_mgt_view",
    **extra: str,
) -> str:
    params = {
        "response_type": response_type,
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "requested_subject": str(subject.pk),
        "nonce": "n-1",
        "state": "s-1",
        "impersonation_reason": "Ticket 42",
    }
    params.update(extra)
    return f"{base}/oauth2/authorize?{urlencode(params)}"


@dataclass
class Artifacts:
    subject_token: str
    id_token: str


def get_subject_token(
    client: Client,
    world: World,
    app: App,
    *,
    subject: User | None = None,
    impersonator: User | None = None,
    org: Organization | None = None,
    signed_in: bool = False,
    read_only: bool = False,
    reason: str = "Ticket 42",
    **extra: str,
) -> Artifacts:
    subject = subject or world.target
    if not signed_in:
        sign_in(client, impersonator or world.impersonator, org=org)
    base = "/t/acme" if org is None or org.parent_id is None else f"/t/acme/o/{org.pk}"
    page = client.get(subject_authorize_url(app.client_id, subject, base=base, **extra))
    assert page.status_code == 200, (page.status_code, page.get("Location"), page.content[:300])
    assert b"Impersonate" in page.content
    data = {"pending": page.context["pending"], "decision": "impersonate", "reason": reason}
    if read_only:
        data["read_only"] = "on"
    done = client.post(page.context["action"], data)
    assert done.status_code == 302, done.content[:300]
    answer = fragment(done["Location"])
    assert answer["state"] == "s-1"
    return Artifacts(answer["subject_token"], answer["id_token"])


def exchange_tokens(
    client: Client, app: App, artifacts: Artifacts, *, base: str = "/t/acme", **extra: str
) -> Any:
    data = {
        "grant_type": TX,
        "subject_token": artifacts.subject_token,
        "subject_token_type": JWT,
        "actor_token": artifacts.id_token,
        "actor_token_type": ID,
        "requested_token_type": AT,
    }
    data.update(extra)
    return client.post(f"{base}/oauth2/token", data, HTTP_AUTHORIZATION=basic(app.client_id, app.secret))
