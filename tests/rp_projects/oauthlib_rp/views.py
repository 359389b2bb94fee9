"""Sign-in with requests-oauthlib: /login/ sends the browser to the provider's authorization
endpoint, /callback/ trades the code for tokens (``OAuth2Session.fetch_token``), checks the ID
token (PyJWT), reads userinfo with the access token and signs the user in to this site."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from oauthlib.oauth2 import OAuth2Error, WebApplicationClient
from requests_oauthlib import OAuth2Session

TIMEOUT = 15
log = logging.getLogger(__name__)


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def _provider() -> dict[str, Any]:
    """The provider's metadata (OpenID Connect Discovery 1.0)."""
    response = requests.get(f"{settings.OIDC_ISSUER}/.well-known/openid-configuration", timeout=TIMEOUT)
    response.raise_for_status()
    metadata: dict[str, Any] = response.json()
    return metadata


def _callback_uri(request: HttpRequest) -> str:
    return request.build_absolute_uri(reverse("callback"))


def login(request: HttpRequest) -> HttpResponse:
    provider = _provider()
    client = WebApplicationClient(settings.OIDC_CLIENT_ID)
    # PKCE (RFC 7636) with oauthlib's helpers. OAuth2Session(pkce="S256") keeps the verifier on
    # the session object, which is gone when the browser comes back: a web site keeps it in its
    # own session and passes both halves as the documented extra parameters.
    verifier = client.create_code_verifier(64)
    challenge = client.create_code_challenge(verifier, "S256")
    nonce = secrets.token_urlsafe(24)
    oauth = OAuth2Session(client=client, scope=settings.OIDC_SCOPES, redirect_uri=_callback_uri(request))
    url, state = oauth.authorization_url(
        provider["authorization_endpoint"],
        code_challenge=challenge,
        code_challenge_method="S256",
        nonce=nonce,
    )
    next_url = request.GET.get("next") or "/private/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/private/"
    request.session["oauth"] = {"state": state, "verifier": verifier, "nonce": nonce, "next": next_url}
    return HttpResponseRedirect(url)


def _verified_id_token(provider: dict[str, Any], id_token: str, *, nonce: str) -> dict[str, Any]:
    """The ID token's claims once its signature (the provider's published keys), issuer,
    audience, expiry and nonce check out (OpenID Connect Core §3.1.3.7)."""
    signing_key = jwt.PyJWKClient(provider["jwks_uri"], timeout=TIMEOUT).get_signing_key_from_jwt(id_token)
    claims: dict[str, Any] = jwt.decode(
        id_token,
        signing_key.key,
        algorithms=provider["id_token_signing_alg_values_supported"],
        audience=settings.OIDC_CLIENT_ID,
        issuer=provider["issuer"],
        options={"require": ["iss", "sub", "aud", "exp", "iat"]},
    )
    if claims.get("nonce") != nonce:
        raise jwt.InvalidTokenError("The ID token's nonce is not the one this sign-in sent.")
    return claims


def callback(request: HttpRequest) -> HttpResponse:
    pending = request.session.pop("oauth", None)
    if not isinstance(pending, dict):
        return HttpResponse("No sign-in in progress", status=400, content_type="text/plain")
    if "error" in request.GET:
        return HttpResponse(f"Sign-in failed: {request.GET['error']}", status=403, content_type="text/plain")
    provider = _provider()
    try:
        with OAuth2Session(
            settings.OIDC_CLIENT_ID, state=pending["state"], redirect_uri=_callback_uri(request)
        ) as oauth:
            token = oauth.fetch_token(
                provider["token_endpoint"],
                authorization_response=request.build_absolute_uri(),
                client_secret=settings.OIDC_CLIENT_SECRET,
                code_verifier=pending["verifier"],
                timeout=TIMEOUT,
            )
            claims = _verified_id_token(provider, token["id_token"], nonce=pending["nonce"])
            answer = oauth.get(provider["userinfo_endpoint"], timeout=TIMEOUT)
            answer.raise_for_status()
            userinfo = answer.json()
    except (OAuth2Error, jwt.PyJWTError, requests.RequestException, KeyError) as error:
        log.exception("sign-in failed")
        return HttpResponse(f"Sign-in failed: {error!r}", status=403, content_type="text/plain")
    if userinfo.get("sub") != claims["sub"]:  # OpenID Connect Core §5.3.2
        return HttpResponse("Sign-in failed: userinfo is someone else's", status=403)
    user, _ = get_user_model().objects.update_or_create(
        username=f"actas-{claims['sub']}", defaults={"email": userinfo.get("email", "")}
    )
    auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session["id_token"] = {k: claims.get(k) for k in ("iss", "sub", "aud", "jti")}
    return HttpResponseRedirect(pending["next"])


@login_required
def private(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "username": request.user.get_username(),
            "email": request.user.email,
            "id_token": request.session.get("id_token", {}),
        }
    )
