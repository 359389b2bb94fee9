"""My Account as an OpenID Connect client of actas itself (authorization code + PKCE).

My Account holds no sign-in of its own. An unauthenticated visit sends the browser to the
organization's ``/oauth2/authorize`` with the tenant's My Account client
(``<tenant>-myaccount``, public, PKCE S256); the callback redeems the code at the token
endpoint **in-process**, through the token service (``identity.oauth.service``) that the
token view is HTTP around: the code exchange runs exactly the checks an HTTP call would
(malformed input, the validator, one transaction) and works alike under the test client and
a real server.

Everything My Account knows lives in its own namespace of the browser session
(``actas.myaccount:<org id>``): the access token, and the SSO session and impersonation it was
minted for. The identity shown is the access token's ``sub`` (and ``act`` when impersonated),
never ``request.user``: an impersonator stays signed in as themself. Each request re-checks,
cheaply, that the token is still live (signature, expiry, not revoked, user still active),
that the browser's SSO session is the one it was minted in, and that the session is still
bound to the same impersonation (or to none). Ending an impersonation, signing out, or the
time cap passing therefore shows nothing more of anyone: the next request starts over.

One callback URL serves every organization: the registered
``{BASE_URL}/t/<tenant>/myaccount/callback``. Which organization a sign-in was for is kept
with its ``state`` in the session (never read from the URL), and the code is redeemed at that
organization's token endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from identity.hooks import session_impersonation
from identity.models import Application, SSOSession, User
from identity.oauth import claims as oauth_claims
from identity.oauth import service as oauth_service
from identity.oauth import tokens
from identity.oauth.bearer import live_access_token
from organizations.models import Organization
from organizations.selectors import org_get_in_tenant

NAMESPACE = "actas.myaccount:"
PENDING_PREFIX = "actas.myaccount.pending:"
MAX_PENDING = 5
PENDING_MAX_AGE = 600
SCOPES = "openid profile email"
MAX_PARAM = 2048


class SignInFailed(Exception):
    """The callback cannot complete this sign-in; ``message`` is shown."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Identity:
    """Who My Account is showing, from its live access token."""

    user: User  # the token's subject
    impersonator: User | None
    impersonation_id: uuid.UUID | None
    claims: dict[str, Any]
    sso_session: SSOSession

    @property
    def impersonated(self) -> bool:
        return self.impersonator is not None


def callback_uri(tenant: Organization) -> str:
    """The redirect URI registered for the tenant's My Account client (tenant bootstrap)."""
    return f"{settings.BASE_URL}{reverse('myaccount:callback', kwargs={'tenant': tenant.handle})}"


def _is_root(tenant: Organization, org: Organization) -> bool:
    return org.pk == tenant.pk


def _endpoint(name: str, tenant: Organization, org: Organization) -> str:
    if _is_root(tenant, org):
        return reverse(f"oauth2-{name}", kwargs={"tenant": tenant.handle})
    return reverse(f"org-oauth2-{name}", kwargs={"tenant": tenant.handle, "org": org.pk})


def _key(org: Organization) -> str:
    return f"{NAMESPACE}{org.pk}"


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# --- starting a sign-in ------------------------------------------------------------------------


def sign_in_url(
    request: HttpRequest, *, tenant: Organization, org: Organization, app: Application, next_url: str
) -> str:
    """Remember a new sign-in (state, nonce, PKCE verifier, where to return) and give the
    authorization endpoint URL to send the browser to."""
    now = timezone.now().timestamp()
    waiting = sorted(
        (k for k in request.session.keys() if k.startswith(PENDING_PREFIX)),
        key=lambda k: _created(request.session.get(k)),
    )
    for stale in waiting[: max(0, len(waiting) - MAX_PENDING + 1)]:  # the oldest go
        request.session.pop(stale, None)
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(24)
    verifier = secrets.token_urlsafe(48)
    request.session[PENDING_PREFIX + state] = {
        "org": str(org.pk),
        "nonce": nonce,
        "verifier": verifier,
        "next": next_url,
        "created": now,
    }
    params = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": callback_uri(tenant),
        "scope": SCOPES,
        "state": state,
        "nonce": nonce,
        "code_challenge": _challenge(verifier),
        "code_challenge_method": "S256",
    }
    return f"{_endpoint('authorize', tenant, org)}?{urlencode(params)}"


def _created(value: object) -> float:
    if isinstance(value, dict):
        try:
            return float(value.get("created", 0))
        except (TypeError, ValueError):
            return 0.0
    return 0.0


# --- the callback ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Completed:
    org_id: str
    next_url: str


def _clean_param(value: str | None) -> str:
    if value is None or "\x00" in value or len(value) > MAX_PARAM:
        raise SignInFailed("The sign-in response is malformed.")
    return value


def finish_sign_in(request: HttpRequest, *, tenant: Organization, app: Application) -> Completed:
    """Handle the authorization response: match ``state``, redeem the code (in-process),
    verify the ID token (issuer, audience, nonce, SSO session) and the access token, and keep
    the access token in the organization's namespace."""
    state = _clean_param(request.GET.get("state", ""))
    pending = request.session.pop(PENDING_PREFIX + state, None) if state else None
    if not isinstance(pending, dict):
        raise SignInFailed("This sign-in has expired or was not started here. Open My Account again.")
    if timezone.now().timestamp() - _created(pending) > PENDING_MAX_AGE:
        raise SignInFailed("This sign-in took too long. Open My Account again.")
    error = _clean_param(request.GET.get("error", ""))
    if error:
        if error == "access_denied":
            raise SignInFailed("The sign-in was refused.")
        raise SignInFailed("The sign-in could not be completed. Open My Account again.")
    code = _clean_param(request.GET.get("code", ""))
    if not code:
        raise SignInFailed("The sign-in response is malformed.")
    org_id = str(pending.get("org", ""))
    org = tenant if org_id == str(tenant.pk) else org_get_in_tenant(tenant=tenant, org_id=org_id)
    if org is None:
        raise SignInFailed("This organization no longer exists.")
    status, body = token_request(
        tenant=tenant,
        org=org,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback_uri(tenant),
            "client_id": app.client_id,
            "code_verifier": str(pending.get("verifier", "")),
        },
    )
    if (
        status != 200
        or not isinstance(body.get("access_token"), str)
        or not isinstance(body.get("id_token"), str)
    ):
        raise SignInFailed("The sign-in could not be completed. Open My Account again.")
    issuer = oauth_claims.issuer_for(tenant)
    try:
        id_claims = tokens.verify(
            body["id_token"],
            typ=oauth_claims.ID_TOKEN_TYP,
            issuer=issuer,
            audience=app.client_id,
            required=("exp", "iat", "iss", "sub", "aud", "nonce"),
        )
        access_claims = tokens.verify(
            body["access_token"],
            typ=oauth_claims.ACCESS_TOKEN_TYP,
            issuer=issuer,
            audience=app.client_id,
            required=("exp", "iat", "iss", "sub", "aud", "client_id", "jti"),
        )
    except tokens.TokenError as exc:
        raise SignInFailed("The sign-in could not be completed. Open My Account again.") from exc
    sso: SSOSession | None = getattr(request, "sso_session", None) or None
    if (
        id_claims.get("nonce") != pending.get("nonce")
        or id_claims.get("sub") != access_claims.get("sub")
        or access_claims.get("client_id") != app.client_id
        or access_claims.get("org_id") != str(org.pk)
        or sso is None
        or id_claims.get("sid") != sso.sid
    ):
        raise SignInFailed("The sign-in could not be completed. Open My Account again.")
    request.session[_key(org)] = {
        "access_token": body["access_token"],
        "sid": sso.sid,
        "impersonation_id": str(access_claims.get("impersonation_id") or ""),
    }
    return Completed(org_id=str(org.pk), next_url=str(pending.get("next", "")))


def token_request(
    *, tenant: Organization, org: Organization, data: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """POST ``data`` to the organization's token endpoint, in-process: through the token
    service, exactly as a client's HTTP call to the token view reaches it."""
    answer = oauth_service.token_request(
        tenant_handle=tenant.handle,
        org_id=None if _is_root(tenant, org) else org.pk,
        uri=_endpoint("token", tenant, org),
        params=list(data.items()),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    return answer.status, answer.json()


# --- every request -----------------------------------------------------------------------------


def forget(request: HttpRequest, *, org: Organization) -> None:
    request.session.pop(_key(org), None)


def current_identity(
    request: HttpRequest, *, tenant: Organization, org: Organization, app: Application
) -> Identity | None:
    """The identity of My Account's live access token for ``org``, or None (and the stored
    state is dropped) when there is none or it no longer holds."""
    stored = request.session.get(_key(org))
    if not isinstance(stored, dict):
        return None
    identity = _check(request, stored, tenant=tenant, org=org, app=app)
    if identity is None:
        forget(request, org=org)
    return identity


def _check(
    request: HttpRequest, stored: dict[str, Any], *, tenant: Organization, org: Organization, app: Application
) -> Identity | None:
    raw = stored.get("access_token")
    if not isinstance(raw, str):
        return None
    sso: SSOSession | None = getattr(request, "sso_session", None) or None
    # The browser's SSO session must be the one the token was minted in: a sign-out, an End
    # impersonation or the time cap ends it, and with it everything My Account shows.
    if sso is None or sso.sid != stored.get("sid") or sso.tenant_id != tenant.pk:
        return None
    found = live_access_token(tenant, raw)
    if found is None:
        return None
    claims, token = found
    subject = token.user
    if (
        not isinstance(subject, User)
        or claims.get("client_id") != app.client_id
        or claims.get("aud") != app.client_id
        or claims.get("org_id") != str(org.pk)
        or claims.get("sub") != str(subject.pk)
    ):
        return None
    binding = session_impersonation(session=sso)
    act = claims.get("act")
    if binding is None:
        # Not impersonating: the token is the signed-in user's own.
        if act is not None or stored.get("impersonation_id") or subject.pk != sso.user_id:
            return None
        return Identity(
            user=subject, impersonator=None, impersonation_id=None, claims=claims, sso_session=sso
        )
    # Impersonating: the token must have been minted under this very impersonation (a token of
    # the impersonator's own, from before it started, shows nothing).
    if (
        binding.impersonator is None
        or binding.impersonation_id is None
        or not isinstance(act, dict)
        or act.get("sub") != str(binding.impersonator.pk)
        or claims.get("impersonation_id") != str(binding.impersonation_id)
        or stored.get("impersonation_id") != str(binding.impersonation_id)
        or binding.user.pk != subject.pk
    ):
        return None
    return Identity(
        user=subject,
        impersonator=binding.impersonator,
        impersonation_id=binding.impersonation_id,
        claims=claims,
        sso_session=sso,
    )
