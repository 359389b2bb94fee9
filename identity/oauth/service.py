"""The token endpoint as a service: the token view is HTTP around it, and My Account obtains
its tokens through it (never by calling a view).

:func:`token_context` reads the tenant and the client the request names in one statement
(plus the organization of a child organization's endpoint); :func:`token_request` runs the
grant in one transaction with that context (:mod:`identity.oauth.context`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode

from django.db import transaction
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

from identity import metrics
from identity.models import Application
from identity.oauth import rows
from identity.oauth.context import TokenContext
from identity.oauth.params import params_malformed
from organizations.models import Organization
from organizations.selectors import org_get_in_tenant, org_is_usable

MAX_CLIENT_ID = 255


@dataclass(frozen=True)
class TokenAnswer:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> dict[str, Any]:
        try:
            found = json.loads(self.body or "{}")
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}


@functools.cache
def server() -> Any:
    """The oauthlib server DOT's settings name, built once per process (it keeps no
    per-request state: that is on the request and its context)."""
    return oauth2_settings.OAUTH2_SERVER_CLASS(
        oauth2_settings.OAUTH2_VALIDATOR_CLASS(), **oauth2_settings.server_kwargs
    )


@functools.cache
def _tenant_and_client_sql() -> str:
    org, app = Organization._meta.db_table, Application._meta.db_table
    # client_id is unique: at most one application, kept only when its owner is of this tenant.
    return (
        f"SELECT {rows.columns(Organization, 't')}, {rows.columns(Application, 'a')}, "  # noqa: S608 (model metadata)
        f"{rows.columns(Organization, 'o')} FROM {org} t "
        f"LEFT JOIN {app} a ON a.client_id = %s "
        f"LEFT JOIN {org} o ON o.id = a.organization_id AND o.tenant_id = t.id "
        "WHERE t.handle = %s AND t.parent_id IS NULL"
    )


def presented_client_id(headers: Mapping[str, str], params: Mapping[str, str]) -> str:
    """The client id a token request names (HTTP Basic first, as DOT authenticates), or ""."""
    header = headers.get("Authorization") or headers.get("HTTP_AUTHORIZATION") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return ""
        client_id, sep, _secret = decoded.partition(":")
        return unquote_plus(client_id) if sep else ""
    found = params.get("client_id", "")
    return found if isinstance(found, str) else ""


def token_context(
    *, tenant_handle: str, org_id: uuid.UUID | str | None, client_id: str
) -> TokenContext | None:
    """Where a token request was sent and the client it names: one statement at a tenant's
    endpoint (two more at a child organization's). None when the tenant or the organization is
    unknown or not usable (the client is then unknown too)."""
    if not isinstance(client_id, str) or "\x00" in client_id:
        client_id = ""
    found = rows.fetch(_tenant_and_client_sql(), [client_id[:MAX_CLIENT_ID], str(tenant_handle)])
    if not found:
        return None
    row = found[0]
    tenant = rows.instance(Organization, row, 0)
    if tenant is None or not org_is_usable(tenant):
        return None
    app_start = rows.width(Organization)
    client = rows.instance(Application, row, app_start)
    owner = rows.instance(Organization, row, app_start + rows.width(Application))
    if client is not None:
        if owner is None:
            client = None  # another tenant's
        else:
            client.organization = owner if owner.pk != tenant.pk else tenant
    org = tenant
    if org_id is not None:
        child = org_get_in_tenant(tenant=tenant, org_id=org_id)
        if child is None or not org_is_usable(child):
            return None
        org = child
    return TokenContext(tenant=tenant, org=org, client=client)


def token_request(
    *,
    tenant_handle: str,
    org_id: uuid.UUID | str | None,
    uri: str,
    params: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
) -> TokenAnswer:
    """Run one token request: the grant, all or nothing, in one transaction."""
    flat = dict(params)
    if params_malformed_pairs(params):
        return _error(errors.InvalidRequestError(description="The request is malformed."))
    if not flat.get("grant_type"):
        # oauthlib would fall back to the authorization code grant and ask for a code.
        return _error(errors.InvalidRequestError(description="Missing grant_type parameter."))
    context = token_context(
        tenant_handle=tenant_handle, org_id=org_id, client_id=presented_client_id(headers, flat)
    )
    # All or nothing: a request that fails half-way leaves no token behind.
    with transaction.atomic():
        try:
            answer_headers, body, status = server().token_response(
                context, uri, "POST", urlencode(list(params)), dict(headers)
            )
        except errors.OAuth2Error as error:
            return _error(error)
    if status == 200:
        # Counted once committed (at once here, unless a caller's transaction is still open).
        grant_type = flat["grant_type"]
        transaction.on_commit(lambda: metrics.token_issued(grant_type))
    return TokenAnswer(status=status, headers=dict(answer_headers), body=body or "")


def params_malformed_pairs(params: Sequence[tuple[str, str]]) -> bool:
    lists: dict[str, list[str]] = {}
    for key, value in params:
        lists.setdefault(key, []).append(value)
    return params_malformed(_Lists(lists))


class _Lists:
    def __init__(self, lists: dict[str, list[str]]) -> None:
        self._lists = lists

    def lists(self) -> Any:
        return self._lists.items()


def _error(error: errors.OAuth2Error) -> TokenAnswer:
    return TokenAnswer(status=error.status_code, headers=dict(error.headers), body=error.json)
