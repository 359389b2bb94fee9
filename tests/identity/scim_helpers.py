"""What the SCIM tests against a live server share: a provisioning application (a confidential
client of the tenant with the client credentials grant, authorized for the user-management API),
its tokens from the tenant's token endpoint, and SCIM requests over the network."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from django.test import Client

from identity.models import APIResource, Application
from identity.services.applications import application_authorize_api, application_create, application_share
from tests.conftest import World

TENANT = "acme"
SCIM_MEDIA = "application/scim+json"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

USER_SCOPES = (
    "internal_user_mgt_view",
    "internal_user_mgt_list",
    "internal_user_mgt_create",
    "internal_user_mgt_update",
    "internal_user_mgt_delete",
)
ORG_USER_SCOPES = ("internal_org_user_mgt_view", "internal_org_user_mgt_list", "internal_org_user_mgt_update")
PROVISIONER_SECRET = "scim-provisioner-secret-0123456789"  # noqa: S105 (a test client's secret)
TIMEOUT = 30


@dataclass
class Provisioner:
    """An application of the tenant, as a provisioning tool holds it: client id and secret."""

    app: Application
    secret: str

    @property
    def client_id(self) -> str:
        return self.app.client_id

    @property
    def actor_label(self) -> str:
        """How the audit trail (and the Console's Logs initiator) names the application."""
        return f"{self.app.name} (application)"


def provisioning_app(
    world: World,
    *,
    client_id: str = "scim-provisioner",
    name: str = "SCIM Provisioner",
    resources: Iterable[str] = ("system:users",),
    grant_types: Sequence[str] = (Application.GRANT_CLIENT_CREDENTIALS_TYPE,),
    redirect_uris: Sequence[str] = (),
    **options: Any,
) -> Provisioner:
    """A confidential application of the tenant's root organization, created and authorized
    through the services (as the Console does), for every scope of each API resource named."""
    app, secret = application_create(
        actor=None,
        org=world.root,
        name=name,
        client_id=client_id,
        client_secret=PROVISIONER_SECRET,
        grant_types=grant_types,
        redirect_uris=redirect_uris,
        **options,
    )
    for identifier in resources:
        resource = APIResource.objects.get(tenant=world.root, identifier=identifier)
        application_authorize_api(
            actor=None,
            application=app,
            resource=resource,
            scopes=list(resource.scopes.values_list("name", flat=True)),
        )
    if Application.GRANT_ORGANIZATION_SWITCH_TYPE in grant_types:
        application_share(actor=None, application=app, mode=Application.SharedAccess.ALL)
    app.refresh_from_db()
    return Provisioner(app, secret)


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def request_client_credentials(
    base_url: str, client_id: str, secret: str, scopes: Sequence[str] | None
) -> requests.Response:
    """POST the tenant's token endpoint over the network, client authenticated with HTTP Basic
    (``scopes`` None: no scope parameter at all)."""
    form = {"grant_type": "client_credentials"}
    if scopes is not None:
        form["scope"] = " ".join(scopes)
    return requests.post(
        f"{base_url}/t/{TENANT}/oauth2/token",
        data=form,
        headers={"Authorization": basic_auth(client_id, secret)},
        timeout=TIMEOUT,
    )


def client_credentials_token(base_url: str, provisioner: Provisioner, scopes: Sequence[str]) -> str:
    response = request_client_credentials(base_url, provisioner.client_id, provisioner.secret, scopes)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"].lower() == "bearer"
    assert set(body.get("scope", "").split()) == set(scopes), body
    token: str = body["access_token"]
    return token


class Scim:
    """SCIM requests to ``/t/<tenant>/scim2`` of the live server with one bearer token."""

    def __init__(self, session: requests.Session, base_url: str, token: str, *, path: str = "scim2") -> None:
        self.session = session
        self.root = f"{base_url}/t/{TENANT}/{path}"
        self.token = token

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        **params: str,
    ) -> requests.Response:
        sent = {"Authorization": f"Bearer {self.token}", "Accept": SCIM_MEDIA}
        if body is not None:
            sent["Content-Type"] = SCIM_MEDIA
        sent.update(headers or {})
        return self.session.request(
            method,
            f"{self.root}{path}",
            json=body,
            params=params or None,
            headers=sent,
            timeout=TIMEOUT,
        )


def assert_scim_error(response: requests.Response, status: int) -> dict[str, Any]:
    """RFC 7644 §3.12: the error's schema, its status as a string, a detail."""
    assert response.status_code == status, (response.status_code, response.text[:800])
    assert response.headers["Content-Type"].startswith(SCIM_MEDIA), response.headers["Content-Type"]
    body: dict[str, Any] = response.json()
    assert body["schemas"] == [ERROR_SCHEMA], body
    assert body["status"] == str(status), body
    return body


def signed_in_client(client: Client, username: str, password: str, *, tenant: str = TENANT) -> bool:
    """Try the tenant's sign-in page with this user's password: True if it signed them in."""
    client.post(f"/t/{tenant}/login/", {"username": username, "password": password})
    return "_auth_user_id" in client.session
