"""Off-the-shelf OpenID Connect relying-party libraries, unmodified and set up only as their
documentation says, sign a user in to a live actas:

- mozilla-django-oidc, and its ``SessionRefresh`` middleware's silent renewal (``prompt=none``),
  with and without a consent screen the first time;
- django-allauth's ``openid_connect`` provider (PKCE on);
- requests-oauthlib's ``OAuth2Session`` (code flow with PKCE; PyJWT checks the ID token).

Each relying party is a Django project of its own under tests/rp_projects/ (two Django projects
cannot share a process), run in a subprocess with gunicorn on a free port; actas is
pytest-django's live server in this process. The user's browser is a ``requests.Session``
following redirects by hand across both sites and submitting the forms it is shown (actas's
sign-in and consent pages, allauth's confirmation page); every hop is recorded, so a test can
say which requests reached actas and what came back.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from oauth2_provider.models import IDToken

from identity.models import Application, OAuthAuthorization, OAuthConsent, SSOSession
from identity.services.applications import application_create
from identity.services.sessions import sso_session_end
from tests.conftest import PASSWORD, World

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
RP_PROJECTS = ROOT / "tests" / "rp_projects"
GUNICORN = Path(sys.executable).with_name("gunicorn")
SECRET = "rp-library-secret-for-tests-0123456789"
HTTP_TIMEOUT = 30
# mozilla-django-oidc's OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS in its project here: how long after a
# sign-in the SessionRefresh middleware renews it silently.
RENEW_SECONDS = 2
# The library each project needs (the import name) and the pin it was written against.
LIBRARIES = {
    "mozilla_rp": ("mozilla_django_oidc", "mozilla-django-oidc==5.0.2"),
    "allauth_rp": ("allauth", "django-allauth==65.22.1"),
    "oauthlib_rp": ("requests_oauthlib", "requests-oauthlib==2.0.0"),
}


# --- the user's browser ------------------------------------------------------------------------


@dataclass
class Hop:
    method: str
    url: str
    status: int
    location: str

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.url).query).items()}

    @property
    def location_query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.location).query).items()}

    def __str__(self) -> str:
        return f"{self.method} {self.url} -> {self.status}" + (f" {self.location}" if self.location else "")


@dataclass
class Page:
    url: str
    status_code: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    """The POST forms of a page and the values their inputs carry (buttons are the caller's)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form" and found.get("method", "get").lower() == "post":
            self._open = Form(found.get("action", ""))
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and found.get("name"):
            if found.get("type", "text").lower() not in ("submit", "button", "image", "checkbox", "radio"):
                self._open.fields.setdefault(found["name"], found.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


class Browser:
    """One cookie jar for every site; redirects followed by hand, each hop recorded."""

    def __init__(self) -> None:
        self.http = requests.Session()
        self.hops: list[Hop] = []

    def open(self, url: str, *, data: dict[str, str] | None = None) -> Page:
        """GET ``url`` (POST ``data`` to it) and follow the redirects to the page at the end."""
        method = "GET" if data is None else "POST"
        for _ in range(25):
            response = self.http.request(method, url, data=data, allow_redirects=False, timeout=HTTP_TIMEOUT)
            location = response.headers.get("Location", "")
            self.hops.append(Hop(method, url, response.status_code, location))
            if response.status_code not in (301, 302, 303, 307, 308):
                # A copy: a failed test's traceback would keep the response, and with it the
                # socket, open (and so a live server thread and its database connection).
                return Page(url, response.status_code, response.text)
            url = urljoin(url, location)
            if response.status_code in (301, 302, 303):
                method, data = "GET", None
        raise AssertionError("Too many redirects:\n" + self.trail())

    def submit(self, page: Page, values: dict[str, str], *, form_with: str) -> Page:
        """Submit the page's POST form that has an input named ``form_with``, as a person would:
        its hidden values, what they typed (``values``) and the button they pressed."""
        parser = _Forms()
        parser.feed(page.text)
        forms = [f for f in parser.forms if form_with in f.fields]
        assert forms, f"No form with {form_with!r} on {page.url} ({page.status_code}):\n{page.text[:2000]}"
        form = forms[0]
        return self.open(urljoin(page.url, form.action or page.url), data={**form.fields, **values})

    def trail(self) -> str:
        return "\n".join(str(hop) for hop in self.hops)

    def close(self) -> None:
        # Let go of the keep-alive connections, so the live server's threads release their
        # database connections before the test database is dropped.
        self.http.close()


# --- actas and the relying parties ---------------------------------------------------------------


@dataclass
class Actas:
    url: str

    @property
    def tenant(self) -> str:
        return f"{self.url}/t/acme"

    @property
    def issuer(self) -> str:
        return f"{self.tenant}/oauth2/token"

    def authorize_requests(self, browser: Browser) -> list[Hop]:
        return [hop for hop in browser.hops if hop.url.startswith(f"{self.tenant}/oauth2/authorize?")]

    def sign_in_pages(self, browser: Browser) -> list[Hop]:
        return [hop for hop in browser.hops if hop.url.startswith(f"{self.tenant}/login/")]


@dataclass
class RelyingParty:
    name: str
    url: str
    client_id: str
    log: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @contextmanager
    def log_on_failure(self) -> Iterator[None]:
        """Shows the relying party's own log (gunicorn's, the library's) when the test fails."""
        try:
            yield
        except BaseException:
            print(
                f"----- log of the relying party {self.name} ({self.url}) -----\n{self.log_text()[-30000:]}"
            )
            raise

    def callbacks(self, browser: Browser, path: str) -> list[Hop]:
        return [hop for hop in browser.hops if hop.url.startswith(f"{self.url}{path}?")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextmanager
def served_rp(
    project: str, tmp: Path, actas: Actas, *, client_id: str, **extra: str
) -> Iterator[RelyingParty]:
    """The relying party ``project`` (tests/rp_projects/<project>) migrated into an SQLite file
    of its own and served by gunicorn on a free port, as the client ``client_id`` of actas."""
    module, pin = LIBRARIES[project]
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{project} needs {pin} (pip install {pin})")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": f"{project}.settings",
        "PYTHONPATH": str(RP_PROJECTS),
        "RP_OP_URL": actas.tenant,
        "RP_CLIENT_ID": client_id,
        "RP_CLIENT_SECRET": SECRET,
        "RP_DATABASE": str(tmp / f"{project}.sqlite3"),
        **extra,
    }
    migrated = subprocess.run(  # noqa: S603 (our own test project)
        [sys.executable, "-m", "django", "migrate", "--noinput"],
        cwd=RP_PROJECTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    port = _free_port()
    log = tmp / f"{project}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 (the project's gunicorn, our own test project)
            [
                str(GUNICORN),
                f"{project}.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--timeout",
                "120",
                "--graceful-timeout",
                "5",
                "--access-logfile",
                "-",
                # No control socket (gunicorn's default is one fixed path per user, shared by
                # every gunicorn running at the same time).
                "--no-control-socket",
            ],
            cwd=RP_PROJECTS,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    rp = RelyingParty(project, f"http://127.0.0.1:{port}", client_id, log, process)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"{project} exited ({process.returncode}):\n{rp.log_text()}"
            try:
                if requests.get(f"{rp.url}/healthz", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"{project} did not come up:\n{rp.log_text()}"
            time.sleep(0.2)
        yield rp
    finally:
        _stop(process)


def register(
    world: World, rp: RelyingParty, *, callback: str, skip_login_consent: bool = True
) -> Application:
    """The relying party as a confidential client of actas's tenant, through actas's service."""
    app, secret = application_create(
        actor=None,
        org=world.root,
        name=f"RP {rp.name}",
        client_id=rp.client_id,
        client_secret=SECRET,
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=[f"{rp.url}{callback}"],
        skip_login_consent=skip_login_consent,
    )
    assert secret == SECRET
    assert app.pkce_required, "actas requires PKCE by default: every one of these clients must send it"
    return app


@pytest.fixture
def actas(live_server: Any, settings: Any, world: World) -> Actas:
    # The issuer of actas's tokens and metadata is BASE_URL's (as in test_oauth_interop.py).
    settings.BASE_URL = live_server.url
    return Actas(str(live_server.url))


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


@pytest.fixture
def mozilla_rp(tmp_path: Path, actas: Actas) -> Iterator[RelyingParty]:
    with served_rp(
        "mozilla_rp", tmp_path, actas, client_id="mozilla-rp", RP_RENEW_SECONDS=str(RENEW_SECONDS)
    ) as rp:
        yield rp


@pytest.fixture
def allauth_rp(tmp_path: Path, actas: Actas) -> Iterator[RelyingParty]:
    with served_rp("allauth_rp", tmp_path, actas, client_id="allauth-rp") as rp:
        yield rp


@pytest.fixture
def oauthlib_rp(tmp_path: Path, actas: Actas) -> Iterator[RelyingParty]:
    with served_rp("oauthlib_rp", tmp_path, actas, client_id="oauthlib-rp") as rp:
        yield rp


# --- checks shared by the tests --------------------------------------------------------------------


def sign_in_at_actas(browser: Browser, page: Page, actas: Actas) -> Page:
    """On actas's sign-in page, the user signs in as ``target``."""
    assert page.status_code == 200 and page.url.startswith(f"{actas.tenant}/login/"), browser.trail()
    return browser.submit(page, {"username": "target", "password": PASSWORD}, form_with="password")


def signed_in(page: Page, browser: Browser, world: World) -> dict[str, Any]:
    """The relying party's private page answers, for ``target``: what it shows."""
    assert page.status_code == 200, (
        f"{page.status_code} at {page.url}:\n{page.text[:2000]}\n{browser.trail()}"
    )
    me: dict[str, Any] = page.json()
    assert me["email"] == world.target.email == "target@example.test", me
    return me


def assert_code_flow_with_pkce(hop: Hop, rp: RelyingParty) -> None:
    query = hop.query
    assert query["response_type"] == "code" and query["client_id"] == rp.client_id, hop
    assert query["code_challenge_method"] == "S256" and query["code_challenge"], hop
    assert "openid" in query["scope"].split(), hop


def assert_actas_recorded(
    world: World,
    app: Application,
    rp: RelyingParty,
    browser: Browser,
    callback: str,
    me: dict[str, Any],
    actas: Actas,
) -> None:
    """Every code actas sent back is one OAuthAuthorization of the app for ``target``, exchanged
    once; the ID token the relying party accepted is one actas issued to it."""
    codes = [hop for hop in rp.callbacks(browser, callback) if "code" in hop.query]
    assert codes, browser.trail()
    for hop in codes:
        assert "error" not in hop.query and hop.query.get("iss") == actas.issuer, hop
    authorizations = OAuthAuthorization.objects.filter(application=app)
    assert authorizations.count() == len(codes), browser.trail()
    assert set(authorizations.values_list("user_id", flat=True)) == {world.target.pk}
    assert not authorizations.filter(code_used_at__isnull=True).exists(), "a code was never exchanged"
    claims = me["id_token"]
    assert claims["iss"] == actas.issuer and claims["sub"] == str(world.target.pk), claims
    assert claims["aud"] == rp.client_id, claims
    assert IDToken.objects.filter(jti=claims["jti"], application=app, user=world.target).exists(), claims


def renew_silently(
    browser: Browser, rp: RelyingParty, actas: Actas, world: World, before: dict[str, Any]
) -> dict[str, Any]:
    """Once the ID token's renewal time has passed, the next visit to the private page goes
    through actas's /authorize with ``prompt=none`` and comes back with a code: the user stays
    signed in, shown neither the sign-in page nor a consent screen."""
    time.sleep(RENEW_SECONDS + 0.5)
    browser.hops.clear()
    page = browser.open(f"{rp.url}/private/")
    after = signed_in(page, browser, world)
    first = browser.hops[0]
    assert first.status == 302 and first.location.startswith(f"{actas.tenant}/oauth2/authorize?"), (
        "SessionRefresh did not renew the sign-in:\n" + browser.trail()
    )
    silent = actas.authorize_requests(browser)
    assert silent, browser.trail()
    for hop in silent:
        assert_code_flow_with_pkce(hop, rp)
        assert hop.query["prompt"] == "none", hop
        assert hop.status == 302 and hop.location.startswith(f"{rp.url}/oidc/callback/?"), hop
        answer = hop.location_query
        assert "code" in answer and "error" not in answer, f"actas answered {answer} to a silent renewal"
    assert not actas.sign_in_pages(browser), browser.trail()
    assert all("/oauth2/authorize/consent" not in hop.url for hop in browser.hops), browser.trail()
    assert all(hop.status in (200, 302) for hop in browser.hops), browser.trail()
    assert after["id_token"]["jti"] != before["id_token"]["jti"], "the ID token was not renewed"
    return after


# --- the tests -----------------------------------------------------------------------------------


def test_mozilla_django_oidc_signs_in_and_renews_silently(
    world: World, actas: Actas, mozilla_rp: RelyingParty, browser: Browser
) -> None:
    rp = mozilla_rp
    app = register(world, rp, callback="/oidc/callback/")
    with rp.log_on_failure():
        page = browser.open(f"{rp.url}/private/")
        page = sign_in_at_actas(browser, page, actas)
        me = signed_in(page, browser, world)
        assert_code_flow_with_pkce(actas.authorize_requests(browser)[0], rp)
        assert_actas_recorded(world, app, rp, browser, "/oidc/callback/", me, actas)
        hops = list(browser.hops)

        renewed = renew_silently(browser, rp, actas, world, me)
        browser.hops[:0] = hops
        assert_actas_recorded(world, app, rp, browser, "/oidc/callback/", renewed, actas)
        assert OAuthAuthorization.objects.filter(application=app).count() >= 2

        # The user's actas session ends (signed out elsewhere): the next renewal is answered
        # login_required, and mozilla-django-oidc signs them out of the site too.
        (session,) = SSOSession.objects.filter(user=world.target, ended_at__isnull=True)
        sso_session_end(actor=world.target, session=session, reason="signed-out")
        time.sleep(RENEW_SECONDS + 0.5)
        browser.hops.clear()
        page = browser.open(f"{rp.url}/private/")
        assert page.status_code == 403 and page.url == f"{rp.url}/signin-failed/", browser.trail()
        (silent,) = actas.authorize_requests(browser)
        assert silent.query["prompt"] == "none" and silent.location.startswith(f"{rp.url}/oidc/callback/?")
        assert silent.location_query["error"] == "login_required", silent
        page = browser.open(f"{rp.url}/private/")
        assert page.url.startswith(f"{actas.tenant}/login/"), browser.trail()


def test_mozilla_django_oidc_consent_once_then_silent_renewal(
    world: World, actas: Actas, mozilla_rp: RelyingParty, browser: Browser
) -> None:
    rp = mozilla_rp
    app = register(world, rp, callback="/oidc/callback/", skip_login_consent=False)
    with rp.log_on_failure():
        page = browser.open(f"{rp.url}/private/")
        page = sign_in_at_actas(browser, page, actas)
        # actas's consent screen, shown once; the user allows.
        assert page.status_code == 200 and 'name="pending"' in page.text, browser.trail()
        assert not OAuthConsent.objects.filter(application=app).exists()
        page = browser.submit(page, {"decision": "allow"}, form_with="pending")
        me = signed_in(page, browser, world)
        assert OAuthConsent.objects.filter(application=app, user=world.target).exists()
        hops = list(browser.hops)

        # Remembered: the silent renewal is not answered consent_required.
        renewed = renew_silently(browser, rp, actas, world, me)
        browser.hops[:0] = hops
        assert_actas_recorded(world, app, rp, browser, "/oidc/callback/", renewed, actas)


def test_django_allauth_openid_connect_signs_in(
    world: World, actas: Actas, allauth_rp: RelyingParty, browser: Browser
) -> None:
    rp = allauth_rp
    callback = "/accounts/oidc/actas/login/callback/"
    app = register(world, rp, callback=callback)
    with rp.log_on_failure():
        # allauth asks before it leaves the site (SOCIALACCOUNT_LOGIN_ON_GET is off): a POST form.
        page = browser.open(f"{rp.url}/accounts/oidc/actas/login/?next=/private/")
        assert page.status_code == 200, browser.trail()
        page = browser.submit(page, {}, form_with="csrfmiddlewaretoken")
        page = sign_in_at_actas(browser, page, actas)
        me = signed_in(page, browser, world)
        assert_code_flow_with_pkce(actas.authorize_requests(browser)[0], rp)
        assert_actas_recorded(world, app, rp, browser, callback, me, actas)
        assert me["uid"] == str(world.target.pk)
        assert me["username"] == "target"  # from preferred_username (profile scope)
        assert me["userinfo"]["sub"] == str(world.target.pk)


def test_requests_oauthlib_signs_in(
    world: World, actas: Actas, oauthlib_rp: RelyingParty, browser: Browser
) -> None:
    rp = oauthlib_rp
    app = register(world, rp, callback="/callback/")
    with rp.log_on_failure():
        page = browser.open(f"{rp.url}/private/")
        page = sign_in_at_actas(browser, page, actas)
        me = signed_in(page, browser, world)
        authorize = actas.authorize_requests(browser)[0]
        assert_code_flow_with_pkce(authorize, rp)
        assert authorize.query["nonce"]
        assert_actas_recorded(world, app, rp, browser, "/callback/", me, actas)
        assert me["username"] == f"actas-{world.target.pk}"
