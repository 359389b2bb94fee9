"""Pickup's WSGI application: the two flows (its pages: ``pages``; sessions: ``sessions``;
requests and responses: ``web``; limits: ``limits``).

Sign in: ``POST /signin`` → actas ``/authorize`` (code, PKCE S256, state, nonce) →
``GET /callback?code=…`` → code redeemed with HTTP Basic, ID token verified.

Launch: ``GET /?orgId=<organization id>`` is how an organization's My Account opens Pickup (its
access URL with the organization added). Like an OpenID Connect login initiated by a third party,
Pickup answers with the same sign-in, at that organization's endpoints
(``/t/<tenant>/o/<org>/oauth2/authorize`` and ``…/token``): a browser whose actas sign-in
impersonates someone there comes back with the target's tokens, with ``act``. The request is
bound to this browser by state, nonce and PKCE as any other.

Impersonate: ``POST /impersonate`` → actas ``/authorize`` of the chosen organization with
``response_type=id_token subject_token`` and ``requested_subject`` → actas's own confirmation
page → ``GET /callback#…``.
The answer is in the URL fragment, which browsers never send to a server, so that page runs a
few lines of script posting the fragment back to ``POST /callback``; Pickup then exchanges the
subject token and the impersonator's ID token (RFC 8693) for the target's access token.

Sessions live in memory, keyed by a random HttpOnly SameSite=Lax cookie; every form of
Pickup's own carries the session's CSRF token; everything shown is HTML-escaped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import urlencode

from demo.pickup.limits import COOKIE, MAX_REASON
from demo.pickup.oidc import ROOT, ActasError, Provider, TokenRejected
from demo.pickup.pages import (
    page,
    relay_page,
    signed_in_body,
    signed_out_body,
)
from demo.pickup.sessions import Session, SessionStore, SignedIn
from demo.pickup.web import BadRequest, Request, Response, redirect

SIGN_IN_SCOPE: Final = "openid profile email internal_user_mgt_view"
ORG_SIGN_IN_SCOPE: Final = "openid profile email internal_org_user_mgt_view"
# What Pickup asks for when it switches its token into an organization below.
ORG_SWITCH_SCOPE: Final = "openid profile email internal_org_user_mgt_view"
# profile and email let Pickup name the target through userinfo. Below the root, impersonating
# takes the Organization User Impersonation scope.
IMPERSONATE_SCOPE: Final = "openid profile email internal_user_impersonate internal_user_mgt_view"
ORG_IMPERSONATE_SCOPE: Final = "openid profile email internal_org_user_impersonate internal_org_user_mgt_view"
LAUNCH_PARAM: Final = "orgId"  # the organization an application is launched for
FRAGMENT_FIELDS: Final = ("state", "subject_token", "id_token", "error")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass(frozen=True)
class Config:
    """Read from the environment by ``from_env``; ``public_url`` is where browsers reach Pickup
    (its ``/callback`` and ``/`` must be registered at actas)."""

    actas_url: str = "http://127.0.0.1:8000"
    tenant: str = "acme"
    client_id: str = "pickup"
    client_secret: str = "pickup-secret"  # noqa: S105 (the demo tenant's seeded secret)
    host: str = "127.0.0.1"
    port: int = 8765
    public_url: str = "http://127.0.0.1:8765"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        host = env.get("PICKUP_HOST", cls.host)
        port = int(env.get("PICKUP_PORT", str(cls.port)))
        return cls(
            actas_url=env.get("ACTAS_URL", cls.actas_url).rstrip("/"),
            tenant=env.get("PICKUP_TENANT", cls.tenant),
            client_id=env.get("PICKUP_CLIENT_ID", cls.client_id),
            client_secret=env.get("PICKUP_CLIENT_SECRET", cls.client_secret),
            host=host,
            port=port,
            public_url=env.get("PICKUP_URL", f"http://{host}:{port}").rstrip("/"),
        )

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return f"{self.public_url}/"


# --- the application -------------------------------------------------------------------------


class Pickup:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.provider = Provider(
            actas_url=config.actas_url,
            tenant=config.tenant,
            client_id=config.client_id,
            client_secret=config.client_secret,
        )
        self.sessions = SessionStore()
        self.routes: dict[tuple[str, str], Callable[[Request, Session], Response]] = {
            ("GET", "/"): self.home,
            ("POST", "/signin"): self.sign_in,
            ("POST", "/impersonate"): self.impersonate,
            ("GET", "/callback"): self.callback,
            ("POST", "/callback"): self.fragment_callback,
            ("POST", "/refresh"): self.refresh,
            ("POST", "/switch"): self.switch,
            ("POST", "/end"): self.end_impersonation,
            ("POST", "/signout"): self.sign_out,
        }

    def __call__(self, environ: Mapping[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            request = Request.from_environ(environ)
        except BadRequest as error:
            return _send(start_response, Response(HTTPStatus.BAD_REQUEST, page("Bad request", str(error))))
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            known = any(path == request.path for _method, path in self.routes)
            status = HTTPStatus.METHOD_NOT_ALLOWED if known else HTTPStatus.NOT_FOUND
            return _send(start_response, Response(status, page(status.phrase, "")))
        session, created = self.sessions.get_or_create(request.cookie)
        cookies: list[tuple[str, str]] = []
        if created:
            secure = "; Secure" if self.config.public_url.startswith("https://") else ""
            cookies.append(("Set-Cookie", f"{COOKIE}={session.sid}; Path=/; HttpOnly; SameSite=Lax{secure}"))
        with session.lock:
            if request.method == "POST" and not hmac.compare_digest(
                request.form.get("csrf_token", "").encode(), session.csrf.encode()
            ):
                response = Response(
                    HTTPStatus.FORBIDDEN, page("Forbidden", "This form has expired: go back and reload.")
                )
            else:
                response = handler(request, session)
        return _send(start_response, response, cookies)

    # --- signed out: the two ways in --------------------------------------------------------

    def sign_in(self, request: Request, session: Session) -> Response:
        return self._sign_in(session, org=ROOT)

    def launch(self, org_id: str, session: Session) -> Response:
        """``GET /?orgId=<id>``: opened from an organization's My Account: sign in there.
        Always a new sign-in (actas's session may be someone else's by now, e.g. bound to an
        impersonation); with single sign-on it asks nothing."""
        try:
            org = str(uuid.UUID(org_id))
        except ValueError:
            session.say("The link that opened Pickup names no organization it can sign in to.")
            return redirect("/")
        return self._sign_in(session, org=org)

    def _sign_in(self, session: Session, *, org: str) -> Response:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        state, nonce = session.start("signin", verifier=verifier, org=org)
        return self._authorize(
            {
                "response_type": "code",
                "scope": SIGN_IN_SCOPE if org == ROOT else ORG_SIGN_IN_SCOPE,
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge.decode(),
                "code_challenge_method": "S256",
            },
            org=org,
        )

    def impersonate(self, request: Request, session: Session) -> Response:
        subject = request.form.get("requested_subject", "").strip()
        reason = " ".join(request.form.get("reason", "").split())
        try:
            uuid.UUID(subject)
        except ValueError:
            session.say("Enter the user id (a UUID) of the user to impersonate.")
            return redirect("/")
        if len(reason) > MAX_REASON:
            session.say(f"Give a reason of at most {MAX_REASON} characters.")
            return redirect("/")
        # Only an organization the form offered (signed out, it offers none: the root).
        org = request.form.get("org", ROOT)
        if org != ROOT and org not in session.choices:
            session.say("Choose the organization from the list.")
            return redirect("/")
        state, nonce = session.start("impersonate", org=org)
        return self._authorize(
            {
                "response_type": "id_token subject_token",
                "scope": IMPERSONATE_SCOPE if org == ROOT else ORG_IMPERSONATE_SCOPE,
                "requested_subject": subject,
                "impersonation_reason": reason,
                "state": state,
                "nonce": nonce,
            },
            org=org,
        )

    def _authorize(self, params: dict[str, str], *, org: str) -> Response:
        try:
            endpoint = self.provider.authorization_endpoint(org)
        except ActasError as error:
            return Response(HTTPStatus.BAD_GATEWAY, page("actas is not available", str(error)))
        query = urlencode(
            {"client_id": self.config.client_id, "redirect_uri": self.config.redirect_uri, **params}
        )
        return redirect(f"{endpoint}?{query}")

    # --- the answers ------------------------------------------------------------------------

    def callback(self, request: Request, session: Session) -> Response:
        """The code response, in the query; or, with an empty query, the page relaying the
        fragment of an ``id_token subject_token`` response."""
        if not request.query:
            nonce = secrets.token_urlsafe(16)
            return Response(HTTPStatus.OK, relay_page(session.csrf, nonce), script_nonce=nonce)
        pending = session.finish(request.query.get("state", ""), "signin")
        if pending is None:
            session.say("That sign-in answer matches no sign-in Pickup started (or it is too old).")
        elif "error" in request.query:
            session.say(f"actas answered: {request.query['error']}")
        else:
            try:
                signed = self.provider.redeem_code(
                    code=request.query.get("code", ""),
                    redirect_uri=self.config.redirect_uri,
                    verifier=pending.verifier,
                    nonce=pending.nonce,
                    org=pending.org,
                )
            except ActasError as error:
                session.say(f"Sign-in failed: {error}")
            else:
                session.learn_name(signed.id_claims)
                session.signed_in = SignedIn(signed.tokens, signed.id_token, pending.org)
        return redirect("/")

    def fragment_callback(self, request: Request, session: Session) -> Response:
        answer = {name: request.form.get(name, "") for name in FRAGMENT_FIELDS}
        pending = session.finish(answer["state"], "impersonate")
        if pending is None:
            session.say("That answer matches no impersonation Pickup started (or it is too old).")
        elif answer["error"]:
            session.say(f"actas answered: {answer['error']}")
        else:
            try:
                impersonator = self.provider.verify(answer["id_token"], typ="jwt", nonce=pending.nonce)
                tokens = self.provider.exchange(
                    subject_token=answer["subject_token"], actor_token=answer["id_token"], org=pending.org
                )
            except ActasError as error:
                session.say(f"Impersonation failed: {error}")
            else:
                act = tokens.claims.get("act")
                if isinstance(act, dict) and act.get("sub") == impersonator["sub"]:
                    session.signed_in = SignedIn(tokens, answer["id_token"], pending.org)
                else:
                    session.say("Impersonation failed: the token's act is not the one who signed in.")
        return redirect("/")

    # --- signed in --------------------------------------------------------------------------

    def home(self, request: Request, session: Session) -> Response:
        if LAUNCH_PARAM in request.query:
            return self.launch(request.query[LAUNCH_PARAM], session)
        signed = session.signed_in
        info: dict[str, Any] = {}
        if signed is not None:
            try:
                info = self.provider.userinfo(signed.tokens.access_token)
            except TokenRejected:
                session.signed_in = signed = None
                session.say("actas no longer accepts Pickup's access token (userinfo: HTTP 401): signed out.")
            except ActasError as error:
                session.say(f"Could not ask actas who this is: {error}")
            else:
                session.learn_name(info)
        session.choices, session.switches = {}, {}
        if signed is not None:
            below = self._organizations_below(session, signed)
            if signed.org == ROOT:
                session.switches = below
            if not isinstance(signed.tokens.claims.get("act"), dict):
                name = str(signed.tokens.claims.get("org_name") or "this organization")
                session.choices = {signed.org: name, **below}
        flash, session.flash = session.flash, []
        if signed is None:
            return Response(HTTPStatus.OK, page("Pickup", signed_out_body(session.csrf), flash))
        return Response(
            HTTPStatus.OK, page("Pickup", signed_in_body(session, signed.tokens.claims, info), flash)
        )

    def _organizations_below(self, session: Session, signed: SignedIn) -> dict[str, str]:
        """The organizations below the signed-in one where the user is a member (actas's
        /me/organizations): where they may impersonate from Pickup, and where Pickup can
        switch its token to."""
        here = str(signed.tokens.claims.get("org_id", ""))
        try:
            below = self.provider.organizations(signed.tokens.access_token)
        except ActasError as error:
            session.say(f"Could not list your other organizations: {error}")
            return {}
        return {org.id: org.name for org in below if org.id != here}

    def switch(self, request: Request, session: Session) -> Response:
        signed = session.signed_in
        org = request.form.get("org", "")
        if signed is None or org not in session.switches:
            session.say("Choose the organization from the list.")
            return redirect("/")
        try:
            tokens = self.provider.switch(signed.tokens.access_token, org=org, scope=ORG_SWITCH_SCOPE)
        except ActasError as error:
            session.say(f"Switching organization failed: {error}")
        else:
            session.signed_in = SignedIn(tokens, signed.id_token, org)
            session.say(f"Switched to {session.switches[org]} (organization_switch).")
        return redirect("/")

    def refresh(self, request: Request, session: Session) -> Response:
        signed = session.signed_in
        if signed is not None:
            try:
                tokens = self.provider.refresh(signed.tokens.refresh_token, signed.org)
            except ActasError as error:
                session.signed_in = None
                session.say(f"Refresh failed, signed out: {error}")
            else:
                session.signed_in = SignedIn(tokens, signed.id_token, signed.org)
                act = tokens.claims.get("act")
                kept = f"; act kept (impersonator {act['sub']})" if isinstance(act, dict) else ""
                session.say(f"Refreshed: a new access token{kept}.")
        return redirect("/")

    def end_impersonation(self, request: Request, session: Session) -> Response:
        signed = session.signed_in
        if signed is not None:
            try:
                ended = self.provider.end_impersonation(signed.tokens.access_token)
            except ActasError as error:
                session.say(f"End impersonation failed: {error}")
            else:
                session.say(
                    f"actas ended impersonation {ended.get('impersonation_id', '')}; "
                    "the tokens Pickup holds are revoked."
                )
        return redirect("/")

    def sign_out(self, request: Request, session: Session) -> Response:
        """RP-initiated logout: forget the tokens, then let actas end its session."""
        signed, session.signed_in = session.signed_in, None
        if signed is None:
            return redirect("/")
        try:
            endpoint = self.provider.metadata().end_session_endpoint
        except ActasError as error:
            session.say(f"Signed out of Pickup; actas is not reachable: {error}")
            return redirect("/")
        query = urlencode(
            {
                "id_token_hint": signed.id_token,
                "post_logout_redirect_uri": self.config.post_logout_redirect_uri,
            }
        )
        return redirect(f"{endpoint}?{query}")


def _send(
    start_response: StartResponse, response: Response, cookies: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    body = response.body.encode()
    script = f" 'nonce-{response.script_nonce}'" if response.script_nonce else " 'none'"
    headers = [
        *cookies,
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        (
            "Content-Security-Policy",
            f"default-src 'none'; style-src 'unsafe-inline'; script-src{script}; "
            "base-uri 'none'; frame-ancestors 'none'",
        ),
    ]
    if response.location:
        headers.append(("Location", response.location))
    start_response(f"{response.status.value} {response.status.phrase}", headers)
    return [body]
