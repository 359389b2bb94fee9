"""Pickup's WSGI application: pages, in-memory sessions, the two flows.

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
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import Any, Final, Literal
from urllib.parse import parse_qs, urlencode

from demo.pickup.oidc import ROOT, ActasError, Provider, TokenRejected, Tokens

COOKIE: Final = "pickup_session"
MAX_SESSIONS: Final = 1000
SESSION_IDLE: Final = 3600  # seconds
MAX_PENDING: Final = 4  # authorization requests in flight per session
PENDING_AGE: Final = 600  # seconds
MAX_FLASH: Final = 5
MAX_NAMES: Final = 16
MAX_BODY: Final = 64 * 1024
MAX_FIELD: Final = 16 * 1024
MAX_FIELDS: Final = 16
MAX_REASON: Final = 500

SIGN_IN_SCOPE: Final = "openid profile email internal_user_mgt_view"
ORG_SIGN_IN_SCOPE: Final = "openid profile email internal_org_user_mgt_view"
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


# --- sessions --------------------------------------------------------------------------------


@dataclass
class Pending:
    """An authorization request Pickup sent and has not had the answer to."""

    kind: Literal["signin", "impersonate"]
    nonce: str
    verifier: str  # PKCE; empty for impersonation
    org: str = ROOT  # whose endpoints it was sent to, and whose token endpoint gets the answer
    created: float = field(default_factory=time.monotonic)


@dataclass
class SignedIn:
    tokens: Tokens
    id_token: str  # the logout hint: the user's own, or under impersonation the impersonator's
    org: str = ROOT  # the organization whose endpoints issued the tokens (and refresh them)


@dataclass
class Session:
    sid: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    touched: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: OrderedDict[str, Pending] = field(default_factory=OrderedDict)
    signed_in: SignedIn | None = None
    names: OrderedDict[str, str] = field(default_factory=OrderedDict)  # sub → what Pickup calls them
    # The organizations the last "Impersonate a user" form offered: value (ROOT or an id) → name.
    choices: dict[str, str] = field(default_factory=dict)
    flash: list[str] = field(default_factory=list)

    def say(self, message: str) -> None:
        self.flash = [*self.flash, message][-MAX_FLASH:]

    def learn_name(self, claims: Mapping[str, Any]) -> None:
        label = person_label(claims)
        if label:
            self.names[str(claims["sub"])] = label
            self.names.move_to_end(str(claims["sub"]))
            while len(self.names) > MAX_NAMES:
                self.names.popitem(last=False)

    def start(
        self, kind: Literal["signin", "impersonate"], *, verifier: str = "", org: str = ROOT
    ) -> tuple[str, str]:
        """A new pending request; its (state, nonce)."""
        now = time.monotonic()
        for state in [s for s, p in self.pending.items() if now - p.created > PENDING_AGE]:
            del self.pending[state]
        while len(self.pending) >= MAX_PENDING:
            self.pending.popitem(last=False)
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.pending[state] = Pending(kind, nonce, verifier, org)
        return state, nonce

    def finish(self, state: str, kind: Literal["signin", "impersonate"]) -> Pending | None:
        """The pending request this ``state`` answers (once), if it is of ``kind`` and recent."""
        pending = self.pending.pop(state, None) if state else None
        if pending is None or pending.kind != kind or time.monotonic() - pending.created > PENDING_AGE:
            return None
        return pending


class SessionStore:
    """At most MAX_SESSIONS, each forgotten after SESSION_IDLE seconds without a request."""

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_create(self, sid: str) -> tuple[Session, bool]:
        now = time.monotonic()
        with self._lock:
            # Least recently used first: drop the idle ones from the front.
            while self._sessions and now - next(iter(self._sessions.values())).touched > SESSION_IDLE:
                self._sessions.popitem(last=False)
            session = self._sessions.get(sid) if sid else None
            created = session is None
            if session is None:
                if len(self._sessions) >= MAX_SESSIONS:
                    self._sessions.popitem(last=False)
                session = Session(secrets.token_urlsafe(32))
                self._sessions[session.sid] = session
            session.touched = now
            self._sessions.move_to_end(session.sid)
            return session, created


# --- requests and responses ------------------------------------------------------------------


class BadRequest(Exception):
    pass


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    cookie: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any]) -> Request:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        form: dict[str, str] = {}
        if method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                raise BadRequest("bad Content-Length") from None
            if not 0 <= length <= MAX_BODY:
                raise BadRequest("request body too large")
            form = _fields(environ["wsgi.input"].read(length).decode("utf-8", "replace"))
        cookie = ""
        try:
            jar = SimpleCookie(str(environ.get("HTTP_COOKIE", ""))[:MAX_FIELD])
        except CookieError:
            jar = SimpleCookie()
        if COOKIE in jar:
            cookie = jar[COOKIE].value[:64]
        return cls(
            method=method,
            path=str(environ.get("PATH_INFO", "/")),
            query=_fields(str(environ.get("QUERY_STRING", ""))),
            form=form,
            cookie=cookie,
        )


def _fields(encoded: str) -> dict[str, str]:
    """Form fields, first value of each; at most MAX_FIELDS of at most MAX_FIELD characters."""
    if len(encoded) > MAX_BODY:
        raise BadRequest("request too large")
    try:
        parsed = parse_qs(encoded, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise BadRequest("too many fields") from None
    fields = {name: values[0] for name, values in parsed.items()}
    if any(len(value) > MAX_FIELD or "\x00" in value for value in fields.values()):
        raise BadRequest("field too long")
    return fields


@dataclass
class Response:
    status: HTTPStatus
    body: str = ""
    location: str = ""
    script_nonce: str = ""


def redirect(location: str) -> Response:
    return Response(HTTPStatus.SEE_OTHER, location=location)


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
        session.choices = {}
        if signed is not None and not isinstance(signed.tokens.claims.get("act"), dict):
            session.choices = self._impersonation_choices(session, signed)
        flash, session.flash = session.flash, []
        if signed is None:
            return Response(HTTPStatus.OK, page("Pickup", signed_out_body(session.csrf), flash))
        return Response(
            HTTPStatus.OK, page("Pickup", signed_in_body(session, signed.tokens.claims, info), flash)
        )

    def _impersonation_choices(self, session: Session, signed: SignedIn) -> dict[str, str]:
        """Where the signed-in user may impersonate from Pickup: the organization they signed
        in to, then those below it where they are a member (actas's /me/organizations)."""
        claims = signed.tokens.claims
        choices = {signed.org: str(claims.get("org_name") or "this organization")}
        try:
            below = self.provider.organizations(signed.tokens.access_token)
        except ActasError as error:
            session.say(f"Could not list your other organizations: {error}")
            below = []
        for org in below:
            if org.id != str(claims.get("org_id", "")):
                choices.setdefault(org.id, org.name)
        return choices

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


# --- pages -----------------------------------------------------------------------------------

STYLE: Final = """
body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;color:#1d2733}
h1{margin:0}header p{margin:.2rem 0 1.5rem;color:#5b6775}section{margin:1.5rem 0}
.banner{background:#fff3cd;border:2px solid #d39e00;padding:.8rem 1rem;border-radius:6px;font-weight:600}
.flash{background:#e8f1fb;padding:.5rem 1rem;border-radius:6px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{color:#5b6775}dd{margin:0}
code{word-break:break-all}form.inline{display:inline}label{display:block;margin:.5rem 0}
input[type=text],select{width:100%;padding:.3rem;box-sizing:border-box}
button{margin:.3rem .3rem .3rem 0;padding:.4rem .9rem}
"""


def page(title: str, body: str, flash: Iterable[str] = ()) -> str:
    """A whole page; ``body`` is HTML already escaped, ``title`` and ``flash`` are text."""
    notes = "".join(f'<p class="flash" role="status">{escape(m)}</p>' for m in flash)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        "<header><h1>Pickup</h1><p>A demo application that signs in with actas.</p></header>"
        f"<main>{notes}{body}</main></body></html>"
    )


def _form(action: str, csrf: str, label: str, fields: str = "") -> str:
    """A POST form of Pickup's own; with ``fields`` (HTML) a block, else an inline button."""
    layout = "" if fields else ' class="inline"'
    return (
        f'<form{layout} method="post" action="{escape(action)}">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">{fields}'
        f'<button type="submit">{escape(label)}</button></form>'
    )


def impersonate_form(csrf: str, choices: Mapping[str, str] | None = None) -> str:
    """``choices``: the organizations to pick from (value → name); None: the root only."""
    where = ""
    if choices:
        options = "".join(
            f'<option value="{escape(v)}">{escape(name)}</option>' for v, name in choices.items()
        )
        where = f'<label>Organization<select name="org">{options}</select></label>'
    fields = (
        f"{where}<label>User id of the person to impersonate (<code>requested_subject</code>)"
        '<input type="text" name="requested_subject" required maxlength="36"></label>'
        f'<label>Reason<input type="text" name="reason" maxlength="{MAX_REASON}"></label>'
    )
    scope = (
        "You impersonate a user of the organization you choose: the one you signed in to, or one "
        "below it where you are a member (actas signs you in there if needed)."
        if choices
        else "This impersonates in the tenant's root organization; to impersonate in another "
        "organization, sign in there first (open Pickup from its My Account)."
    )
    return (
        "<section><h2>Impersonate a user</h2><p>For an administrator holding Pickup's impersonator role. "
        "actas asks you to sign in if needed, then to confirm on its own page. A user's id is on their "
        f"page in actas's Console (Users).</p><p>{escape(scope)}</p>"
        f"{_form('/impersonate', csrf, 'Impersonate', fields)}</section>"
    )


def signed_out_body(csrf: str) -> str:
    return (
        f"<section><h2>You are not signed in</h2>{_form('/signin', csrf, 'Sign in with actas')}</section>"
        + impersonate_form(csrf)
    )


def person_label(claims: Mapping[str, Any]) -> str:
    """``username (Full Name)`` from whichever of the two the claims carry."""
    username, name = str(claims.get("preferred_username", "")), str(claims.get("name", ""))
    if username and name:
        return f"{username} ({name})"
    return username or name


def signed_in_body(session: Session, claims: Mapping[str, Any], info: Mapping[str, Any]) -> str:
    act = claims.get("act")
    sub = str(claims.get("sub", ""))
    target = session.names.get(sub, sub)
    org_name = str(claims.get("org_name", ""))
    where = f" in {org_name}" if org_name else ""
    parts: list[str] = []
    if isinstance(act, dict):
        actor = str(act.get("sub", ""))
        known = session.names.get(actor)
        impersonator = f"{known} — user id {actor}" if known else f"user id {actor}"
        acting = f"Acting as {target}{where} for {impersonator}"
        parts.append(f'<p class="banner" role="status">{escape(acting)}</p>')
    expires = int(claims.get("exp", 0))
    rows = [
        ("User id (sub)", sub),
        ("Name", str(info.get("name", ""))),
        ("Username", str(info.get("preferred_username", ""))),
        ("Email", str(info.get("email", ""))),
        ("Organization", org_name),
        ("Organization id (org_id)", str(claims.get("org_id", ""))),
        ("Scopes", str(claims.get("scope", ""))),
        (
            "Access token expires",
            f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(expires))} "
            f"(in {max(0, expires - int(time.time()))} s)",
        ),
    ]
    if isinstance(act, dict):
        rows.append(("Impersonator (act)", str(act.get("sub", ""))))
        rows.append(("Impersonation id", str(claims.get("impersonation_id", ""))))
    listing = "".join(f"<dt>{escape(k)}</dt><dd><code>{escape(v)}</code></dd>" for k, v in rows if v)
    buttons = _form("/refresh", session.csrf, "Refresh token")
    if isinstance(act, dict):
        buttons += _form("/end", session.csrf, "End impersonation")
    buttons += _form("/signout", session.csrf, "Sign out")
    heading = "Who Pickup sees" if isinstance(act, dict) else f"Signed in as {target}{where}"
    parts.append(f"<section><h2>{escape(heading)}</h2><dl>{listing}</dl>{buttons}</section>")
    if not isinstance(act, dict):
        parts.append(impersonate_form(session.csrf, session.choices))
    return "".join(parts)


def relay_page(csrf: str, nonce: str) -> str:
    """The answer to an ``id_token subject_token`` request is in the URL fragment, which never
    reaches a server: this script posts it to Pickup, same origin, and drops it from the
    address bar."""
    script = (
        'const form = document.getElementById("relay");'
        "for (const [name, value] of new URLSearchParams(location.hash.slice(1))) {"
        ' const input = document.createElement("input");'
        ' input.type = "hidden"; input.name = name; input.value = value; form.append(input);'
        "}"
        'history.replaceState(null, "", location.pathname);'
        "form.submit();"
    )
    return page(
        "Pickup",
        "<p>Finishing impersonation…</p><noscript><p>This step needs JavaScript: it hands actas's answer "
        "from the address fragment to Pickup.</p></noscript>"
        f'<form id="relay" method="post" action="/callback">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}"></form>'
        f'<script nonce="{escape(nonce)}">{script}</script>',
    )
