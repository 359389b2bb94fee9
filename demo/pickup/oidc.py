"""Pickup's side of the protocol with actas: discovery, token verification against the JWKS,
the token endpoint (authorization code, RFC 8693 token exchange, refresh), userinfo, the
organizations the user may switch to and End impersonation. Every call has a timeout and every
answer a size limit.

A child organization signs in at its own endpoints, ``/t/<tenant>/o/<org id>/oauth2/authorize``
and ``…/token``; its tokens have the tenant's issuer and carry ``org_id`` / ``org_name``. Pickup
names an organization by its id, and the tenant's root organization by ``ROOT`` ("")."""

from __future__ import annotations

import hmac
import json
import threading
from dataclasses import dataclass, fields
from typing import Any, Final
from urllib.parse import quote

import jwt
import requests

ALGORITHMS: Final = ["RS256", "ES256"]
TIMEOUT: Final = 10
MAX_ANSWER: Final = 64 * 1024
LEEWAY: Final = 30  # seconds of clock skew tolerated
MAX_ORGANIZATIONS: Final = 50  # of /me/organizations, more are not offered
ROOT: Final = ""  # the tenant's root organization, whose endpoints discovery names

TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 (a URN)
JWT_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 (a URN)
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 (a URN)


class ActasError(Exception):
    """actas could not be reached, refused a request, or answered something unusable."""


class TokenRejected(ActasError):
    """actas no longer accepts the access token (HTTP 401)."""


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    end_session_endpoint: str


@dataclass(frozen=True)
class Tokens:
    """A token response whose access token has been verified."""

    access_token: str
    refresh_token: str
    claims: dict[str, Any]


@dataclass(frozen=True)
class Organization:
    id: str
    name: str


@dataclass(frozen=True)
class SignIn:
    """The authorization code's tokens and its verified ID token."""

    tokens: Tokens
    id_token: str
    id_claims: dict[str, Any]


class Provider:
    """actas's tenant as an OpenID provider, for one confidential client."""

    def __init__(self, *, actas_url: str, tenant: str, client_id: str, client_secret: str) -> None:
        self.actas_url = actas_url.rstrip("/")
        self.tenant = tenant
        self.client_id = client_id
        # RFC 6749 §2.3.1: form-encode both before HTTP Basic.
        self._auth = requests.auth.HTTPBasicAuth(quote(client_id, safe=""), quote(client_secret, safe=""))
        self._lock = threading.Lock()
        self._metadata: Metadata | None = None
        self._jwks: jwt.PyJWKClient | None = None

    # --- discovery and verification ---------------------------------------------------------

    def metadata(self) -> Metadata:
        """The discovery document, fetched on first use (actas may start after Pickup)."""
        with self._lock:
            if self._metadata is None:
                url = f"{self.actas_url}/t/{self.tenant}/.well-known/openid-configuration"
                status, document = _call("GET", url)
                if status != 200:
                    raise ActasError(f"discovery answered HTTP {status}")
                try:
                    self._metadata = Metadata(**{f.name: str(document[f.name]) for f in fields(Metadata)})
                except KeyError as missing:
                    raise ActasError(f"discovery lacks {missing}") from None
                self._jwks = jwt.PyJWKClient(self._metadata.jwks_uri, lifespan=300, timeout=TIMEOUT)
            return self._metadata

    def verify(self, token: str, *, typ: str, nonce: str | None = None) -> dict[str, Any]:
        """The claims of a JWT of this tenant for this client: signature by a key of the JWKS
        with a pinned algorithm, ``typ``, ``iss``, ``aud``, ``exp`` (and ``nonce`` if given)."""
        issuer = self.metadata().issuer
        assert self._jwks is not None
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            decoded = jwt.decode_complete(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.client_id,
                issuer=issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise ActasError(f"token not valid: {error}") from error
        if str(decoded["header"].get("typ", "")).lower() != typ.lower():
            raise ActasError("token not valid: unexpected typ")
        claims: dict[str, Any] = decoded["payload"]
        if nonce is not None and not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise ActasError("token not valid: nonce mismatch")
        return claims

    def authorization_endpoint(self, org: str = ROOT) -> str:
        return self._endpoint(self.metadata().authorization_endpoint, org)

    def token_endpoint(self, org: str = ROOT) -> str:
        return self._endpoint(self.metadata().token_endpoint, org)

    def _endpoint(self, root: str, org: str) -> str:
        """The root organization's endpoint as discovery names it, or the same endpoint of the
        child organization ``org``: ``<base>/t/<tenant>/oauth2/x`` → ``…/t/<tenant>/o/<org>/oauth2/x``."""
        if org == ROOT:
            return root
        base, found, rest = root.rpartition("/oauth2/")
        if not found:
            raise ActasError(f"discovery names an unexpected endpoint: {root}")
        return f"{base}/o/{quote(org, safe='')}/oauth2/{rest}"

    # --- the token endpoint -----------------------------------------------------------------

    def redeem_code(
        self, *, code: str, redirect_uri: str, verifier: str, nonce: str, org: str = ROOT
    ) -> SignIn:
        """The code at the token endpoint of the organization that issued it."""
        tokens, answer = self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
            org,
        )
        id_token = str(answer.get("id_token", ""))
        return SignIn(tokens, id_token, self.verify(id_token, typ="jwt", nonce=nonce))

    def exchange(self, *, subject_token: str, actor_token: str, org: str = ROOT) -> Tokens:
        """RFC 8693: the subject token and the impersonator's ID token for an access token
        for the target, with ``act``, at the organization that issued the subject token."""
        tokens, _answer = self._token(
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": subject_token,
                "subject_token_type": JWT_TYPE,
                "actor_token": actor_token,
                "actor_token_type": ID_TOKEN_TYPE,
                "requested_token_type": ACCESS_TOKEN_TYPE,
            },
            org,
        )
        return tokens

    def switch(self, access_token: str, *, org: str, scope: str) -> Tokens:
        """The ``organization_switch`` grant, at the root's token endpoint: a token in ``org``
        for the same user (and, under impersonation, the same ``act``)."""
        form = {
            "grant_type": "organization_switch",
            "token": access_token,
            "switching_organization": org,
            "scope": scope,
        }
        tokens, _answer = self._token(form, ROOT)
        return tokens

    def refresh(self, refresh_token: str, org: str = ROOT) -> Tokens:
        tokens, _answer = self._token({"grant_type": "refresh_token", "refresh_token": refresh_token}, org)
        return tokens

    def _token(self, form: dict[str, str], org: str) -> tuple[Tokens, dict[str, Any]]:
        status, answer = _call("POST", self.token_endpoint(org), data=form, auth=self._auth)
        if status != 200:
            raise ActasError(f"the token endpoint answered {answer.get('error') or f'HTTP {status}'}")
        access_token = str(answer.get("access_token", ""))
        tokens = Tokens(
            access_token=access_token,
            refresh_token=str(answer.get("refresh_token", "")),
            claims=self.verify(access_token, typ="at+jwt"),
        )
        return tokens, answer

    # --- APIs called with the access token --------------------------------------------------

    def userinfo(self, access_token: str) -> dict[str, Any]:
        status, answer = _call("GET", self.metadata().userinfo_endpoint, bearer=access_token)
        if status == 401:
            raise TokenRejected("userinfo answered HTTP 401")
        if status != 200:
            raise ActasError(f"userinfo answered HTTP {status}")
        return answer

    def organizations(self, access_token: str) -> list[Organization]:
        """The organizations below the token's where its user is a member (and Pickup is
        shared): where the user may also sign in, and impersonate if allowed there."""
        url = f"{self.actas_url}/t/{self.tenant}/api/users/v1/me/organizations"
        status, answer = _call("GET", url, bearer=access_token)
        if status == 401:
            raise TokenRejected("the organizations API answered HTTP 401")
        rows = answer.get("organizations")
        if status != 200 or not isinstance(rows, list):
            raise ActasError(f"the organizations API answered HTTP {status}")
        return [
            Organization(id=str(row["id"]), name=str(row.get("name") or row["id"]))
            for row in rows[:MAX_ORGANIZATIONS]
            if isinstance(row, dict) and isinstance(row.get("id"), str)
        ]

    def end_impersonation(self, access_token: str) -> dict[str, Any]:
        url = f"{self.actas_url}/t/{self.tenant}/api/impersonation/v1/end"
        status, answer = _call("POST", url, bearer=access_token)
        if status == 401:
            raise TokenRejected("End impersonation answered HTTP 401")
        if status != 200:
            raise ActasError(f"End impersonation answered HTTP {status}")
        return answer


def _call(
    method: str,
    url: str,
    *,
    data: dict[str, str] | None = None,
    auth: requests.auth.AuthBase | None = None,
    bearer: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """One request to actas; the status and the JSON object it answered (at most MAX_ANSWER)."""
    headers = {"Accept": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    try:
        with requests.request(
            method,
            url,
            data=data,
            auth=auth,
            headers=headers,
            timeout=TIMEOUT,
            allow_redirects=False,
            stream=True,
        ) as response:
            body = response.raw.read(MAX_ANSWER + 1, decode_content=True)
            status = response.status_code
    except requests.RequestException as error:
        raise ActasError(f"actas is not reachable ({type(error).__name__})") from error
    if len(body) > MAX_ANSWER:
        raise ActasError(f"actas answered more than {MAX_ANSWER} bytes")
    try:
        answer = json.loads(body) if body else {}
    except ValueError:
        raise ActasError(f"actas answered HTTP {status} without JSON") from None
    if not isinstance(answer, dict):
        raise ActasError(f"actas answered HTTP {status} with unexpected JSON")
    return status, answer
