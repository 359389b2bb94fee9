#!/usr/bin/env python3
"""Token-endpoint benchmark: actas vs stock django-oauth-toolkit vs the signing floor. Cases:
client_credentials, authorization_code (single-use codes), token_exchange (single-use subject
tokens, against the floor's verify-2-sign-1), refresh_token_act (rotated refresh tokens of
impersonations, against stock DOT's refresh grant of its authorization-code client),
organization_switch (impersonated access tokens) and authorization_code_sso (authorize -> code ->
token round trips over signed-in sessions, a Python client); then a 60 s soak of the token
exchange at half its measured maximum (a paced Python client; errors and the workers' RSS).
Impersonation pairs are minted by bench/mint_pairs.py inside actas's Django.

Run by hand (not by CI):  .venv/bin/python bench/run.py [--duration 10] [--rounds 3] [--quick]
See bench/README.md. Everything runs on 127.0.0.1; every server this script starts is stopped
by its own PID on exit (also on error, Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import http.client
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LUA = BENCH / "wrk" / "bench.lua"
PY = Path(sys.executable)
GUNICORN = PY.parent / "gunicorn"
HOST = "127.0.0.1"
PG = {"host": HOST, "port": 5432, "user": "postgres"}
NEVER_TOUCH = {"test", "test_test", "postgres", "template0", "template1"}
REDIRECT_URI = "http://127.0.0.1:8765/callback"
PKCE_VERIFIER = "bench-" + "v" * 60
PKCE_CHALLENGE = (
    base64.urlsafe_b64encode(hashlib.sha256(PKCE_VERIFIER.encode()).digest()).rstrip(b"=").decode()
)
ACTAS_SECRET_KEY = "actas-bench-secret-key-" + "x" * 40
# Environment that would switch actas to other real services; the benchmark runs without them
# (Celery eager, per-process cache) unless --actas-env puts them back.
ACTAS_ENV_DROP = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "REDIS_URL", "EMAIL_HOST", "EMAIL_URL")
CASES = (
    "client_credentials",
    "authorization_code",
    "token_exchange",
    "refresh_token_act",
    "organization_switch",
    "authorization_code_sso",
)
DEFAULT_CASES = ",".join(CASES)
TX_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
TT_JWT = "urn:ietf:params:oauth:token-type:jwt"
TT_ID = "urn:ietf:params:oauth:token-type:id_token"
TT_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
# The floor each case's "vs floor" ratio is taken against (same connection count, same run).
FLOOR_OF = {
    "client_credentials": "client_credentials",
    "authorization_code": "client_credentials",
    "token_exchange": "token_exchange",
    "refresh_token_act": "client_credentials",
    "organization_switch": "client_credentials",
}
FLOOR_NAME = {"client_credentials": "sign", "token_exchange": "v2s1"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class BenchError(Exception):
    pass


# --- HTTP client for setup, probes and minting codes (loopback only) --------------------------


@dataclass
class Resp:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def text(self, limit: int = 300) -> str:
        """The body for an error message: an HTML page's <title>, else its first characters."""
        text = self.body.decode("utf-8", "replace")
        title = re.search(r"<title>(.*?)</title>", text, re.S | re.I)
        if title and text.lstrip()[:1] == "<":
            return f"HTML page {title.group(1).strip()!r}"
        return " ".join(text[:limit].split())


def request(
    method: str, url: str, body: str | None = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> Resp:
    parts = urlsplit(url)
    if parts.hostname != HOST:
        raise BenchError(f"refusing a non-loopback URL: {url}")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        conn.request(method, target, body=body, headers=hdrs)
        r = conn.getresponse()
        return Resp(r.status, r.headers, r.read())
    finally:
        conn.close()


class Jar:
    """Just enough of a cookie jar for one host."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def update(self, resp: Resp) -> None:
        for header in resp.headers.get_all("Set-Cookie") or []:
            parsed = SimpleCookie()
            parsed.load(header)
            for name, morsel in parsed.items():
                if morsel.value == "" or morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}


class FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"), "inputs": []})
        elif tag == "input" and self.forms:
            self.forms[-1]["inputs"].append(
                (a.get("name", ""), a.get("type", "text").lower(), a.get("value", ""))
            )


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass
class CodeFlow:
    """A browser-like authorization-code flow against one server."""

    name: str
    authorize_url: str
    token_url: str
    client_id: str
    client_secret: str
    username: str
    password: str
    jars: list[Jar] = field(default_factory=list)

    def authorize_query(self) -> str:
        return (
            self.authorize_url
            + "?"
            + urlencode(
                {
                    "response_type": "code",
                    "client_id": self.client_id,
                    "redirect_uri": REDIRECT_URI,
                    "scope": "openid",
                    "state": "x",
                    "code_challenge": PKCE_CHALLENGE,
                    "code_challenge_method": "S256",
                }
            )
        )

    def token_body(self, code: str) -> str:
        return urlencode(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": PKCE_VERIFIER,
            }
        )

    def auth_header(self) -> str:
        return basic(self.client_id, self.client_secret)

    def sign_in(self) -> Jar:
        """Start at the authorize endpoint, follow redirects, fill in the sign-in form once and
        stop at the redirect to the client. Returns the signed-in cookie jar."""
        jar, url, method, body, submitted = Jar(), self.authorize_query(), "GET", None, False
        trail = []
        for _ in range(12):
            r = request(method, url, body, jar.header())
            jar.update(r)
            trail.append(f"{method} {urlsplit(url).path} -> {r.status}")
            if r.status in (301, 302, 303, 307, 308):
                location = urljoin(url, r.headers.get("Location", ""))
                if location.startswith(REDIRECT_URI):
                    query = parse_qs(urlsplit(location).query)
                    if "code" not in query:
                        raise BenchError(
                            f"{self.name}: authorize redirected without a code: {location[:300]}"
                        )
                    return jar
                url, method, body = location, "GET", None
                continue
            if r.status == 200 and not submitted and b'type="password"' in r.body:
                parser = FormParser()
                parser.feed(r.body.decode("utf-8", "replace"))
                form = next(f for f in parser.forms if any(t == "password" for _, t, _ in f["inputs"]))
                fields: dict[str, str] = {}
                for name, kind, value in form["inputs"]:
                    if not name:
                        continue
                    if kind == "password":
                        fields[name] = self.password
                    elif name == "username":
                        fields[name] = self.username
                    elif kind in ("hidden", "text", "email"):
                        fields[name] = value
                url, method, body, submitted = (
                    urljoin(url, form["action"] or url),
                    "POST",
                    urlencode(fields),
                    True,
                )
                continue
            raise BenchError(
                f"{self.name}: sign-in stopped at HTTP {r.status} ({' / '.join(trail)}): {r.text()}"
            )
        raise BenchError(f"{self.name}: too many redirects signing in ({' / '.join(trail)})")

    def mint_one(self, jar: Jar) -> str:
        r = request("GET", self.authorize_query(), headers=jar.header())
        location = r.headers.get("Location", "")
        if r.status != 302 or not location.startswith(REDIRECT_URI):
            raise BenchError(f"{self.name}: authorize answered HTTP {r.status} {location[:200]} {r.text()}")
        codes = parse_qs(urlsplit(location).query).get("code")
        if not codes:
            raise BenchError(f"{self.name}: authorize redirected without a code: {location[:200]}")
        return codes[0]

    def mint(self, n: int, budget: float = 25.0) -> tuple[list[str], float]:
        """n fresh codes, minted over len(jars) parallel signed-in sessions, in minting order;
        fewer if minting takes longer than ``budget`` seconds (codes live 60 s: on a loaded
        machine minting slows down, and codes minted a minute before the cell would expire)."""
        out: list[list[str]] = [[] for _ in self.jars]
        errors: list[BaseException] = []
        t0 = time.perf_counter()

        def work(k: int) -> None:
            try:
                for _ in range(n // len(self.jars) + (1 if k < n % len(self.jars) else 0)):
                    if time.perf_counter() - t0 > budget:
                        return
                    out[k].append(self.mint_one(self.jars[k]))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(len(self.jars))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise BenchError(str(errors[0]))
        # Interleave so that the oldest codes are redeemed first.
        codes = [c for group in zip(*out, strict=False) for c in group]
        shortest = min(len(group) for group in out)
        codes += [c for group in out for c in group[shortest:]]
        return codes, time.perf_counter() - t0


@dataclass
class StockRefresh:
    """Stock DOT's rotated refresh tokens (its authorization-code client, codes redeemed once):
    the baseline of refresh_token_act. The same pool interface as :class:`Impersonation`'s."""

    flow: CodeFlow
    refresh_pool: list[str] = field(default_factory=list)

    def refresh_body(self, refresh_token: str) -> str:
        return urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def top_up(self, want: int) -> float:
        t0 = time.perf_counter()
        need = want - len(self.refresh_pool)
        if need > 0:
            codes, _ = self.flow.mint(need)
            for code in codes:
                r = request(
                    "POST",
                    self.flow.token_url,
                    self.flow.token_body(code),
                    {"Authorization": self.flow.auth_header()},
                )
                if r.status != 200:
                    raise BenchError(f"stock DOT: code exchange answered HTTP {r.status}: {r.text()}")
                data = json.loads(r.body)
                if not data.get("refresh_token"):
                    raise BenchError(f"stock DOT: no refresh token: {r.text()}")
                self.refresh_pool.append(str(data["refresh_token"]))
        return time.perf_counter() - t0


def walk(name: str, url: str, jar: Jar, username: str, password: str) -> tuple[Resp, str]:
    """GET ``url`` like a browser: follow redirects, fill in a sign-in form once, and stop at
    the first page that is not a sign-in form or at a redirect to the client (REDIRECT_URI).
    Returns that response and its URL."""
    method, body, submitted, trail = "GET", None, False, []
    for _ in range(12):
        r = request(method, url, body, jar.header())
        jar.update(r)
        trail.append(f"{method} {urlsplit(url).path} -> {r.status}")
        if r.status in (301, 302, 303, 307, 308):
            location = urljoin(url, r.headers.get("Location", ""))
            if location.startswith(REDIRECT_URI):
                return r, url
            url, method, body = location, "GET", None
            continue
        if r.status == 200 and not submitted and b'type="password"' in r.body:
            form = next(f for f in parse_forms(r) if any(t == "password" for _, t, _ in f["inputs"]))
            fields: dict[str, str] = {}
            for fname, kind, value in form["inputs"]:
                if kind == "password":
                    fields[fname] = password
                elif fname == "username":
                    fields[fname] = username
                elif fname and kind in ("hidden", "text", "email"):
                    fields[fname] = value
            url, method, body, submitted = (
                urljoin(url, form["action"] or url),
                "POST",
                urlencode(fields),
                True,
            )
            continue
        if r.status == 200 and submitted:
            return r, url
        raise BenchError(f"{name}: stopped at HTTP {r.status} ({' / '.join(trail)}): {r.text()}")
    raise BenchError(f"{name}: too many redirects ({' / '.join(trail)})")


def parse_forms(r: Resp) -> list[dict[str, Any]]:
    parser = FormParser()
    parser.feed(r.body.decode("utf-8", "replace"))
    return parser.forms


def in_threads(n: int, threads: int, work: Any) -> tuple[list[Any], float]:
    """Call work() n times over ``threads`` threads; the results in completion order, seconds."""
    out: list[Any] = []
    errors: list[BaseException] = []
    left = [n]
    lock = threading.Lock()
    t0 = time.perf_counter()

    def loop() -> None:
        while not errors:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            try:
                item = work()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return
            with lock:
                out.append(item)

    ts = [threading.Thread(target=loop, daemon=True) for _ in range(max(1, min(threads, n)))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise BenchError(str(errors[0]))
    return out, time.perf_counter() - t0


MINTERS: list[PairMinter] = []  # stopped by main() on the way out, like the servers


class PairMinter:
    """``bench/mint_pairs.py`` in serve mode, in ``procs`` processes inside actas's Django
    (``manage.py shell``): pairs minted through actas's own services (a fresh SSO session, the
    policy chain, the subject token, an ID token with ``sid``), a few ms each instead of a
    browser sign-in (one PBKDF2 hash). Django starts once; each call mints right before a cell."""

    def __init__(self, env: dict[str, str], logfile: Path, procs: int) -> None:
        self.env = dict(env, BENCH_PAIRS_SERVE="1")
        self.logfile = logfile
        self.procs: list[subprocess.Popen[str]] = []
        self.n = max(1, procs)

    def start(self) -> None:
        shell = "import runpy; runpy.run_path('bench/mint_pairs.py', run_name='__main__')"
        fh = self.logfile.open("a")
        for _ in range(self.n):
            p = subprocess.Popen(
                [str(PY), "manage.py", "shell", "-v", "0", "-c", shell],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=fh,
                text=True,
                bufsize=1,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            self.procs.append(p)
        MINTERS.append(self)
        for p in self.procs:
            self._read_until(p, "READY")

    def _read_until(self, p: subprocess.Popen[str], word: str) -> list[str]:
        assert p.stdout is not None
        out = []
        for line in p.stdout:
            line = line.rstrip("\n")
            if line.startswith("PAIR "):
                out.append(line[5:])
            elif line.startswith(word):
                return out
            elif line.startswith("ERROR "):
                raise BenchError(f"bench/mint_pairs.py: {line[6:]}")
        raise BenchError(f"bench/mint_pairs.py exited (code {p.poll()}); see {self.logfile}")

    def mint(self, n: int) -> tuple[list[tuple[str, str]], float]:
        """n pairs over the processes in parallel, interleaved (oldest first)."""
        t0 = time.perf_counter()
        shares = [n // self.n + (1 if k < n % self.n else 0) for k in range(self.n)]
        results: list[list[str]] = [[] for _ in self.procs]
        errors: list[BaseException] = []

        def one(k: int) -> None:
            try:
                p = self.procs[k]
                assert p.stdin is not None
                p.stdin.write(f"{shares[k]}\n")
                p.stdin.flush()
                results[k] = self._read_until(p, "DONE")
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        ts = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(self.n) if shares[k]]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            raise BenchError(str(errors[0]))
        lines = [x for group in zip(*results, strict=False) for x in group]
        shortest = min(len(r) for r in results)
        lines += [x for r in results for x in r[shortest:]]
        pairs = []
        for line in lines:
            s_tok, _, id_tok = line.partition("\t")
            pairs.append((s_tok, id_tok))
        return pairs, time.perf_counter() - t0

    def stop(self) -> None:
        procs, self.procs = self.procs, []
        for p in procs:
            if p.poll() is None:
                try:
                    assert p.stdin is not None
                    p.stdin.write("QUIT\n")
                    p.stdin.close()
                    p.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    p.kill()
                    p.wait(timeout=5)


@dataclass
class Impersonation:
    """actas's impersonation flow through its real endpoints, as Pickup and `admin`.

    A pair (subject token, ID token) needs its own signed-in browser session: the exchange binds
    the SSO session to that impersonation. Minting a pair: authorize (not signed in) -> sign-in
    page -> POST username/password (one PBKDF2 hash) -> authorize -> confirmation page -> POST
    decision=impersonate -> 302 with subject_token and id_token in the fragment."""

    base: str  # http://127.0.0.1:port/t/acme
    subject_id: str  # alice
    switch_org: str  # Acme EU
    threads: int
    client_id: str = "pickup"
    client_secret: str = "pickup-secret"
    username: str = "admin"
    password: str = "actas-demo-1"
    refresh_pool: list[str] = field(default_factory=list)  # unused refresh tokens, oldest first
    minted: int = 0
    mint_seconds: float = 0.0
    minter: PairMinter | None = None  # cheap pairs (bench/mint_pairs.py); None: the browser path
    equivalence: dict[str, Any] = field(default_factory=dict)  # the probe: cheap vs browser pair

    @property
    def token_url(self) -> str:
        return f"{self.base}/oauth2/token"

    def auth_header(self) -> str:
        return basic(self.client_id, self.client_secret)

    def authorize_url(self) -> str:
        return f"{self.base}/oauth2/authorize?" + urlencode(
            {
                "response_type": "id_token subject_token",
                "client_id": self.client_id,
                "redirect_uri": REDIRECT_URI,
                "scope": "openid internal_user_impersonate",
                "requested_subject": self.subject_id,
                "nonce": "n",
                "state": "s",
            }
        ).replace("+", "%20")

    def mint_pair(self) -> tuple[str, str]:
        """One pair through the real endpoints (sign-in and confirmation page): the probe that
        the cheap pairs are equivalent, and the fallback with --browser-pairs."""
        jar = Jar()
        page, url = walk("actas impersonation", self.authorize_url(), jar, self.username, self.password)
        forms = [f for f in parse_forms(page) if any(n == "pending" for n, _, _ in f["inputs"])]
        if page.status != 200 or not forms:
            raise BenchError(f"authorize: no confirmation page (HTTP {page.status}): {page.text()}")
        fields = {n: v for n, kind, v in forms[0]["inputs"] if n and kind == "hidden"}
        fields.update(decision="impersonate", reason="bench")
        r = request("POST", urljoin(url, forms[0]["action"] or url), urlencode(fields), jar.header())
        location = r.headers.get("Location", "")
        answer = {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}
        if r.status != 302 or "subject_token" not in answer or "id_token" not in answer:
            raise BenchError(f"confirmation answered HTTP {r.status} {location[:200]} {r.text()}")
        return answer["subject_token"], answer["id_token"]

    def mint_pairs(self, n: int) -> tuple[list[tuple[str, str]], float]:
        if self.minter is not None:
            pairs, secs = self.minter.mint(n)
        else:
            pairs, secs = in_threads(n, self.threads, self.mint_pair)
        self.minted += len(pairs)
        self.mint_seconds += secs
        return pairs, secs

    def exchange_body(self, pair: tuple[str, str]) -> str:
        return urlencode(
            {
                "grant_type": TX_GRANT,
                "subject_token": pair[0],
                "subject_token_type": TT_JWT,
                "actor_token": pair[1],
                "actor_token_type": TT_ID,
                "requested_token_type": TT_ACCESS,
            }
        )

    def refresh_body(self, refresh_token: str) -> str:
        return urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def switch_body(self, access_token: str) -> str:
        return urlencode(
            {
                "grant_type": "organization_switch",
                "token": access_token,
                "switching_organization": self.switch_org,
            }
        )

    def post(self, body: str) -> dict[str, Any]:
        r = request("POST", self.token_url, body, {"Authorization": self.auth_header()})
        if r.status != 200:
            raise BenchError(f"HTTP {r.status} from {urlsplit(self.token_url).path}: {r.text()}")
        data = json.loads(r.body)
        if "access_token" not in data:
            raise BenchError(f"HTTP 200 without access_token: {r.text()}")
        return data

    def top_up(self, want: int) -> float:
        """Make sure the refresh pool holds at least ``want`` tokens: mint pairs and exchange them
        (outside any measured cell). Returns the seconds it took."""
        need = want - len(self.refresh_pool)
        if need <= 0:
            return 0.0
        t0 = time.perf_counter()
        pairs, _ = self.mint_pairs(need)
        it = iter(pairs)
        lock = threading.Lock()

        def one() -> str:
            with lock:
                pair = next(it)
            return str(self.post(self.exchange_body(pair))["refresh_token"])

        tokens, _ = in_threads(need, self.threads, one)
        self.refresh_pool.extend(tokens)
        return time.perf_counter() - t0

    def access_tokens(self, n: int) -> list[str]:
        """n fresh impersonated access tokens: refresh n pool tokens (their successors go back)."""
        self.top_up(n)
        taken, self.refresh_pool = self.refresh_pool[:n], self.refresh_pool[n:]
        out = []
        for rt in taken:
            data = self.post(self.refresh_body(rt))
            self.refresh_pool.append(data["refresh_token"])
            out.append(data["access_token"])
        return out


# --- PostgreSQL, setup commands, servers ------------------------------------------------------


def floor_exchange_form(key: Any) -> str:
    """The body of the floor's verify-2-sign-1: two RS256 tokens of the kit's 15-claim shape,
    signed with ``key`` (the floor's)."""
    import jwt

    def floor_token(sub: str) -> str:
        now = int(time.time())
        c15 = {
            "iss": "https://idp.example.org/t/acme/oauth2/token",
            "sub": sub,
            "aud": ["Wsoqnf3IQ1iDsZjKaQb7LZ1FKFsa", "https://api.example.org"],
            "azp": "Wsoqnf3IQ1iDsZjKaQb7LZ1FKFsa",
            "client_id": "Wsoqnf3IQ1iDsZjKaQb7LZ1FKFsa",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "jti": f"bench-{sub}",
            "scope": "openid profile email internal_user_mgt_view internal_org_user_mgt_list",
            "aut": "APPLICATION_USER",
            "org_id": "10084a8d-113f-4211-a0d5-efe36b082211",
            "org_name": "acme",
            "username": f"{sub}@example.org",
            "act": {"sub": "0d4b2a1c-6e5f-4a3b-8c7d-9e8f7a6b5c4d"},
        }
        return jwt.encode(c15, key, algorithm="RS256", headers={"kid": "k1"})

    return urlencode(
        {
            "grant_type": TX_GRANT,
            "subject_token": floor_token("user-1"),
            "subject_token_type": TT_ACCESS,
            "actor_token": floor_token("admin-1"),
            "actor_token_type": TT_ACCESS,
        }
    )


def recreate_databases(names: list[str]) -> None:
    import psycopg

    for name in names:
        if name in NEVER_TOUCH or not name.endswith("_bench"):
            raise BenchError(f"refusing to recreate database {name!r} (benchmark databases end in _bench)")
    with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **PG) as conn:  # type: ignore[arg-type]
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')


def run_cmd(cmd: list[str], env: dict[str, str], cwd: Path, logfile: Path, timeout: float = 300) -> None:
    with logfile.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        p = subprocess.run(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
    if p.returncode:
        tail = "\n".join(logfile.read_text().splitlines()[-15:])
        raise BenchError(f"{' '.join(cmd[1:3])} failed (exit {p.returncode}); see {logfile}:\n{tail}")


def _die_with_parent() -> None:
    """In the child before exec: ask for SIGTERM when the parent dies (Linux prctl)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@dataclass
class Server:
    name: str
    port: int
    app: str
    chdir: Path
    env: dict[str, str]
    health: str
    logfile: Path
    db: str = ""  # its PostgreSQL database, to count the CPU of its backends
    proc: subprocess.Popen[bytes] | None = None
    error: str = ""

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, workers: int) -> None:
        cmd = [
            str(GUNICORN),
            self.app,
            "--chdir",
            str(self.chdir),
            "-b",
            f"{HOST}:{self.port}",
            "-w",
            str(workers),
            "-k",
            "sync",
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "--no-control-socket",
            "--log-level",
            "warning",
        ]
        fh = self.logfile.open("a")
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        # Own session: a Ctrl-C in the terminal reaches only this script, which stops the server;
        # and the kernel sends it SIGTERM should this script die without cleaning up (SIGKILL).
        self.proc = subprocess.Popen(
            cmd,
            env=self.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def wait_ready(self, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise BenchError(f"{self.name}: gunicorn exited; see {self.logfile}")
            try:
                if request("GET", self.base + self.health, timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise BenchError(f"{self.name}: not ready after {timeout:.0f} s; see {self.logfile}")

    def log_size(self) -> int:
        try:
            return self.logfile.stat().st_size
        except OSError:
            return 0

    def last_exception(self, since: int = 0) -> str:
        """The last traceback written to the server's log after byte ``since``, in one line:
        the exception and the innermost frame of the project's own code."""
        try:
            with self.logfile.open("rb") as fh:
                fh.seek(since)
                lines = fh.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
        if not starts:
            return ""
        block = lines[starts[-1] :]
        frame = ""
        for line in block:
            m = re.match(r'\s+File "(.+?)", line (\d+), in (.+)', line)
            if m and "site-packages" not in m.group(1) and m.group(1).startswith(str(ROOT)):
                frame = f"{Path(m.group(1)).relative_to(ROOT)}:{m.group(2)} in {m.group(3)}"
        exc = next((line for line in block[1:] if line and not line[0].isspace()), "")
        return f"{exc[:300]}" + (f" (at {frame})" if frame else "")

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex((HOST, port)) != 0


# --- CPU accounting (from /proc: robust to a noisy machine, unlike req/s) ---------------------

TICK = os.sysconf("SC_CLK_TCK")


def proc_table() -> dict[int, tuple[int, float, str]]:
    """pid -> (ppid, CPU seconds so far, command line) of every readable process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2 :].split()  # state ppid ... utime(11) stime(12)
        out[int(d)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK, cmd)
    return out


def system_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / TICK, sum(fields[:8]) / TICK


def cpu_split(
    server: Server, table: dict[int, tuple[int, float, str]]
) -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds of the server's gunicorn processes and of its database's backends."""
    master = server.proc.pid if server.proc else -1
    app = {p: cpu for p, (pp, cpu, _) in table.items() if p == master or pp == master}
    db = {}
    if server.db:
        db = {
            p: cpu
            for p, (_, cpu, cmd) in table.items()
            if cmd.startswith("postgres: ") and f" {server.db} " in cmd + " "
        }
    return app, db


def delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# --- wrk ----------------------------------------------------------------------------------------


@dataclass
class Cell:
    case: str  # one of CASES
    server: str
    label: str
    conns: int
    method: str
    url: str
    auth: str = "-"
    body: str = ""  # fixed body (repeat mode)
    flow: CodeFlow | None = None  # single-use codes (once mode); the round trips of the SSO case
    imp: Impersonation | None = None  # token_exchange, refresh_token_act, organization_switch
    stock_refresh: StockRefresh | None = None  # refresh_token_act against stock DOT
    jars: list[Jar] = field(default_factory=list)  # authorization_code_sso: signed-in sessions
    runs: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ok"  # ok | failed | skipped
    error: str = ""
    rate_estimate: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.case}/{self.server}/c{self.conns}"


class Meter:
    """CPU of the server's processes, its database backends, the load client and the rest of the
    machine over one cell (from /proc and getrusage)."""

    def __init__(self, server: Server, who: int) -> None:
        self.server, self.who = server, who  # resource.RUSAGE_CHILDREN (wrk) or RUSAGE_SELF

    def __enter__(self) -> Meter:
        self.app0, self.db0 = cpu_split(self.server, proc_table())
        self.sys0 = system_busy()
        self.ru0, self.t0 = resource.getrusage(self.who), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ru1, self.t1 = resource.getrusage(self.who), time.perf_counter()
        self.sys1 = system_busy()
        self.app1, self.db1 = cpu_split(self.server, proc_table())

    def fields(self, requests: int, client_key: str) -> dict[str, float]:
        cpu = self.ru1.ru_utime + self.ru1.ru_stime - self.ru0.ru_utime - self.ru0.ru_stime
        wall = self.t1 - self.t0
        app_cpu, db_cpu = delta(self.app0, self.app1), delta(self.db0, self.db1)
        r = {
            client_key: round(cpu / wall, 3),
            "app_cpu_cores": round(app_cpu / wall, 3),
            "db_cpu_cores": round(db_cpu / wall, 3),
            "other_cpu_cores": round(
                max(0.0, (self.sys1[0] - self.sys0[0]) - app_cpu - db_cpu - cpu) / wall, 3
            ),
        }
        if requests:
            r["app_cpu_ms_per_req"] = round(app_cpu * 1000 / requests, 3)
            r["db_cpu_ms_per_req"] = round(db_cpu * 1000 / requests, 3)
        return r


def write_bodies(path: Path, bodies: list[str]) -> str:
    path.write_text("\n".join(bodies) + "\n")
    return str(path)


def run_wrk(
    cell: Cell, server: Server, duration: float, workdir: Path, max_codes: int, max_pairs: int
) -> dict[str, Any]:
    if cell.case == "authorization_code_sso":
        return run_roundtrips(cell, server, duration)
    extra: dict[str, Any] = {}
    since = server.log_size()
    stem = workdir / f"bodies-{cell.case}-{cell.server}-{cell.conns}"
    newfile, queue = "", []
    imp = cell.imp
    if cell.flow is not None:
        want = math.ceil(max(cell.rate_estimate, 50) * duration * 1.5) + 2 * cell.conns
        n = min(want, max_codes)
        codes, mint_s = cell.flow.mint(n)
        args = [write_bodies(stem, [cell.flow.token_body(c) for c in codes]), "once"]
        extra = {"codes": len(codes), "mint_s": round(mint_s, 2)}
        if len(codes) < n:
            extra["codes_cut"] = n - len(codes)  # minting ran out of its time budget
    elif imp is not None and cell.case == "token_exchange":
        # Minted right before the cell (subject tokens live subject_token_expiry, 180 s).
        want = math.ceil(max(cell.rate_estimate, 20) * duration * 1.5) + 2 * cell.conns
        n = min(want, max_pairs)
        pairs, mint_s = imp.mint_pairs(n)
        args = [write_bodies(stem, [imp.exchange_body(x) for x in pairs]), "once"]
        extra = {"pairs": n, "mint_s": round(mint_s, 2)}
    elif cell.case == "refresh_token_act" and (imp is not None or cell.stock_refresh is not None):
        pool: Any = imp if imp is not None else cell.stock_refresh
        topup = pool.top_up(2 * cell.conns + 4)
        queue, pool.refresh_pool = [pool.refresh_body(t) for t in pool.refresh_pool], []
        newfile = str(stem) + ".new"
        args = [write_bodies(stem, queue), "chain", newfile]
        extra = {"pool": len(queue), "topup_s": round(topup, 2)}
    elif imp is not None and cell.case == "organization_switch":
        # Fresh access tokens (refreshed from the pool), each tried once; a refused one is
        # counted (access_tokens_refused) and left out rather than failing the whole cell.
        tokens, refused = [], []
        for t in imp.access_tokens(8):
            r = request("POST", cell.url, imp.switch_body(t), {"Authorization": cell.auth})
            (tokens if r.status == 200 else refused).append(t)
        if not tokens:
            raise BenchError(f"organization_switch refused all 8 fresh access tokens: {r.text()}")
        args = [write_bodies(stem, [imp.switch_body(t) for t in tokens]), "cycle"]
        extra = {"access_tokens": len(tokens), "access_tokens_refused": len(refused)}
    else:
        args = [write_bodies(stem, [cell.body]) if cell.body else "-", "repeat"]
    cmd = ["wrk", "-t1", f"-c{cell.conns}", f"-d{duration:g}s", "--timeout", "10s", "-s", str(LUA), cell.url]
    cmd += ["--", cell.method, args[0], cell.auth, *args[1:]]
    with Meter(server, resource.RUSAGE_CHILDREN) as meter:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    r = parse_bench(p.stdout)
    refresh_owner: Any = imp if imp is not None else cell.stock_refresh
    if newfile and refresh_owner is not None:
        # Keep the refresh tokens that were issued and not yet sent (each is used only once).
        try:
            new = [line for line in Path(newfile).read_text().splitlines() if line]
        except OSError:
            new = []
        rest = (queue + new)[int(r.get("used", len(queue) + len(new))) :]
        refresh_owner.refresh_pool = [parse_qs(b)["refresh_token"][0] for b in rest]
        extra["left"] = len(rest)
    if not r:
        raise BenchError(f"wrk gave no result (exit {p.returncode}): {p.stdout[-500:]} {p.stderr[-500:]}")
    secs = r["duration_us"] / 1e6
    if r.get("exhausted") and r.get("active_us"):
        # Count-bounded and stopped early: wrk's duration is still the full -d.
        secs = r["active_us"] / 1e6
    r.update(extra)
    r["rps"] = round(r["ok"] / secs, 1) if secs else 0.0
    r["rps_all"] = round(r["requests"] / secs, 1) if secs else 0.0
    r["seconds"] = round(secs, 2)
    # Per answered request; the fillers of a count-bounded run (bench.lua) are not counted.
    r.update(meter.fields(r["ok"] + r["bad"], "wrk_cpu_cores"))
    for p_ in ("p50", "p90", "p99", "max"):
        r[f"{p_}_ms"] = round(r.pop(f"{p_}_us") / 1000, 2)
    r["mean_ms"] = round(r.pop("mean_us") / 1000, 2)
    r["errors"] = r["bad"] + r["connect"] + r["read"] + r["write"] + r["timeout"]
    exc = server.last_exception(since)
    if exc:
        r["server_exception"] = exc
    return r


def run_roundtrips(cell: Cell, server: Server, duration: float) -> dict[str, Any]:
    """authorization_code_sso: ``conns`` threads, each with its own signed-in session, loop
    GET authorize -> 302 with a code -> POST token -> 200 until ``duration`` is over. One round
    trip = both requests; latency is the whole round trip. Python's http.client, loopback."""
    flow = cell.flow
    assert flow is not None
    since = server.log_size()
    lock = threading.Lock()
    lat: list[float] = []
    counts = {"ok": 0, "bad": 0, "exc": 0}
    first_bad = [""]
    start = time.perf_counter()
    deadline = start + duration

    def work(jar: Jar) -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            status, msg = 0, ""
            try:
                r = request("GET", flow.authorize_query(), headers=jar.header(), timeout=10)
                location = r.headers.get("Location", "")
                code = parse_qs(urlsplit(location).query).get("code") if r.status == 302 else None
                if not code or not location.startswith(REDIRECT_URI):
                    status, msg = r.status, f"authorize: {location[:200]} {r.text()}"
                else:
                    r = request(
                        "POST",
                        flow.token_url,
                        flow.token_body(code[0]),
                        {"Authorization": flow.auth_header()},
                        10,
                    )
                    status, msg = r.status, f"token: {r.text()}"
            except OSError as e:
                msg = f"{type(e).__name__}: {e}"
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                lat.append(ms)
                if status == 200:
                    counts["ok"] += 1
                else:
                    counts["bad" if status else "exc"] += 1
                    if not first_bad[0]:
                        first_bad[0] = f"{status} {msg}"[:400]

    threads = [threading.Thread(target=work, args=(j,), daemon=True) for j in cell.jars[: cell.conns]]
    with Meter(server, resource.RUSAGE_SELF) as meter:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    secs = meter.t1 - meter.t0
    lat.sort()

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else 0.0

    n = len(lat)
    r: dict[str, Any] = {
        "requests": n,
        "ok": counts["ok"],
        "bad": counts["bad"],
        "exceptions": counts["exc"],
        "duration_us": round(secs * 1e6),
        "rps": round(counts["ok"] / secs, 1) if secs else 0.0,
        "rps_all": round(n / secs, 1) if secs else 0.0,
        "seconds": round(secs, 2),
        "p50_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1], 2) if lat else 0.0,
        "mean_ms": round(statistics.fmean(lat), 2) if lat else 0.0,
        "errors": counts["bad"] + counts["exc"],
        "unit": "round trip (authorize + token)",
    }
    r.update(meter.fields(n, "client_cpu_cores"))
    if first_bad[0]:
        r["first_bad"] = first_bad[0]
    exc = server.last_exception(since)
    if exc:
        r["server_exception"] = exc
    return r


def worker_rss(master: int) -> dict[int, int]:
    """VmRSS in kB of each child of the gunicorn master (its workers)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) != master:
                continue
            for line in Path(f"/proc/{d}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[int(d)] = int(line.split()[1])
        except (OSError, ValueError):
            continue
    return out


def run_soak(
    imp: Impersonation, server: Server, url: str, rate: float, seconds: float, expiry: int, threads: int = 64
) -> dict[str, Any]:
    """A paced load: request i is sent at start + i / rate (by whichever of ``threads`` client
    threads is free), each a fresh pair, for ``seconds``; the RSS of every gunicorn worker is
    sampled every second. Pass: zero errors (non-200 or connection errors) and no worker's RSS
    grows by more than 10 % from 10 s in to the end."""
    n = max(1, int(rate * seconds))
    pairs, mint_s = imp.mint_pairs(n)
    if mint_s + seconds > 0.9 * expiry:
        log(f"soak: minting took {mint_s:.0f} s; the last subject tokens may outlive their {expiry} s")
    bodies = [imp.exchange_body(x) for x in pairs]
    headers = {"Authorization": imp.auth_header()}
    master = server.proc.pid if server.proc else -1
    since = server.log_size()
    lock = threading.Lock()
    nxt = [0]
    lat: list[float] = []
    late: list[float] = []
    statuses: dict[str, int] = {}
    first_bad = [""]
    samples: list[tuple[float, dict[int, int]]] = []
    done = threading.Event()
    start = time.perf_counter() + 0.2

    def sampler() -> None:
        while True:
            samples.append((time.perf_counter() - start, worker_rss(master)))
            if done.wait(1.0):
                samples.append((time.perf_counter() - start, worker_rss(master)))
                return

    def loop() -> None:
        while True:
            with lock:
                i = nxt[0]
                if i >= n:
                    return
                nxt[0] += 1
            due = start + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            t0 = time.perf_counter()
            status, msg = 0, ""
            try:
                r = request("POST", url, bodies[i], headers, timeout=10)
                status, msg = r.status, r.text()
            except OSError as e:
                msg = f"{type(e).__name__}: {e}"
            t1 = time.perf_counter()
            with lock:
                lat.append((t1 - t0) * 1000)
                late.append(max(0.0, t0 - due) * 1000)
                key = str(status) if status else "connection error"
                statuses[key] = statuses.get(key, 0) + 1
                if status != 200 and not first_bad[0]:
                    first_bad[0] = f"{key} {msg}"[:400]

    log(f"soak: {n} fresh pairs minted in {mint_s:.1f} s; {rate:.1f} req/s for {seconds:g} s")
    samp = threading.Thread(target=sampler, daemon=True)
    ts = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    with Meter(server, resource.RUSAGE_SELF) as meter:
        samp.start()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        done.set()
        samp.join()
    wall = meter.t1 - start
    lat.sort()

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else 0.0

    workers = []
    pids = sorted({pid for _, m in samples for pid in m})
    for pid in pids:
        series = [(t, m[pid]) for t, m in samples if pid in m]
        base = next((kb for t, kb in series if t >= 10), None)
        if base is None or not series:
            continue
        end = series[-1][1]
        workers.append(
            {
                "pid": pid,
                "rss_first_kb": series[0][1],
                "rss_10s_kb": base,
                "rss_end_kb": end,
                "rss_max_kb": max(kb for _, kb in series),
                "growth": round((end - base) / base, 4),
                "samples": len(series),
            }
        )
    restarted = len(pids) > len(samples[0][1]) if samples else False
    ok = statuses.get("200", 0)
    errors = len(lat) - ok
    growth = max((w["growth"] for w in workers), default=0.0)
    r: dict[str, Any] = {
        "rate": round(rate, 1),
        "seconds": round(wall, 1),
        "pairs": n,
        "mint_s": round(mint_s, 1),
        "requests": len(lat),
        "ok": ok,
        "errors": errors,
        "statuses": statuses,
        "achieved_rps": round(len(lat) / wall, 1) if wall else 0.0,
        "p50_ms": pct(0.5),
        "p90_ms": pct(0.9),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1], 2) if lat else 0.0,
        "max_late_ms": round(max(late, default=0.0), 1),
        "late_over_100ms": sum(1 for x in late if x > 100),
        "workers": workers,
        "workers_replaced": restarted,
        "max_growth": growth,
        "rss_series_kb": [[round(t, 1), [m.get(p, 0) for p in pids]] for t, m in samples],
        "target": "0 errors, worker RSS growth <= 10 % (10 s -> end)",
        "pass": errors == 0 and growth <= 0.10 and not restarted and len(workers) > 0,
    }
    r.update(meter.fields(len(lat), "client_cpu_cores"))
    if first_bad[0]:
        r["first_bad"] = first_bad[0]
    exc = server.last_exception(since)
    if exc:
        r["server_exception"] = exc
    return r


def parse_bench(out: str) -> dict[str, Any]:
    r: dict[str, Any] = {}
    for line in out.splitlines():
        if line.startswith("BENCH "):
            for kv in line.split()[1:]:
                k, v = kv.split("=")
                r[k] = float(v) if "." in v else int(v)
        elif line.startswith("BENCH_FIRST_BAD"):
            r["first_bad"] = line[len("BENCH_FIRST_BAD") :].strip()[:400]
    return r


# --- the benchmark --------------------------------------------------------------------------------


def probe_cell(cell: Cell, server: Server) -> None:
    """One request through the same path as the load; mark the cell failed with the reason."""
    since = server.log_size()
    imp = cell.imp
    try:
        if cell.case == "authorization_code_sso" and cell.flow is not None:
            if len(cell.jars) < cell.conns:
                raise BenchError(f"{len(cell.jars)} signed-in sessions for {cell.conns} connections")
            code = cell.flow.mint_one(cell.jars[0])
            body: str | None = cell.flow.token_body(code)
        elif cell.flow is not None:
            code = cell.flow.mint_one(cell.flow.jars[0])
            body = cell.flow.token_body(code)
        elif imp is not None and cell.case == "token_exchange":
            if imp.minter is not None and not imp.equivalence:
                imp.equivalence = pair_equivalence(imp, cell.url)
                if not imp.equivalence["same"]:
                    diff = imp.equivalence["differences"]
                    raise BenchError(f"cheap pairs differ from the browser's: {diff}")
            body = imp.exchange_body(imp.mint_pairs(1)[0][0])
        elif imp is not None and cell.case == "refresh_token_act":
            imp.top_up(1)
            body = imp.refresh_body(imp.refresh_pool.pop(0))
        elif imp is not None and cell.case == "organization_switch":
            body = imp.switch_body(imp.access_tokens(1)[0])
        elif cell.stock_refresh is not None:
            cell.stock_refresh.top_up(1)
            body = cell.stock_refresh.refresh_body(cell.stock_refresh.refresh_pool.pop(0))
        else:
            body = cell.body or None
        headers = {"Authorization": cell.auth} if cell.auth != "-" else {}
        t0 = time.perf_counter()
        r = request(cell.method, cell.url, body, headers)
        ms = (time.perf_counter() - t0) * 1000
        if r.status != 200:
            raise BenchError(f"HTTP {r.status} from {urlsplit(cell.url).path} ({ms:.0f} ms): {r.text()}")
        data = json.loads(r.body)
        if "access_token" not in data:
            raise BenchError(f"HTTP 200 without access_token: {r.text()}")
        # A switched token's refresh token belongs to the child organization: in the pool of
        # root-organization tokens it would later be switched again and refused (a switch only
        # goes down the tree), which earlier runs reported as "access tokens refused".
        if imp is not None and data.get("refresh_token") and cell.case != "organization_switch":
            imp.refresh_pool.append(data["refresh_token"])
        if cell.stock_refresh is not None and data.get("refresh_token"):
            cell.stock_refresh.refresh_pool.append(data["refresh_token"])
        cell.error = ""
    except (BenchError, OSError, ValueError, StopIteration) as e:
        cell.status, cell.error = "failed", str(e)
        exc = server.last_exception(since)
        if exc:
            cell.error += f"; server log: {exc}"


# Claims that differ between any two issues (times, ids of the session, the token, the
# impersonation); the lifetimes (exp - iat) are compared instead of the times.
VOLATILE_CLAIMS = {"iat", "nbf", "exp", "auth_time", "jti", "sid", "isk", "impersonation_id", "at_hash"}


def _claims(token: str) -> dict[str, Any]:
    import jwt

    return dict(jwt.decode(token, options={"verify_signature": False}))


def _shape(claims: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in claims.items() if k not in VOLATILE_CLAIMS}
    if "exp" in claims and "iat" in claims:
        out["lifetime"] = claims["exp"] - claims["iat"]
    out["claim_names"] = sorted(claims)
    return out


def _nested_volatile(value: Any) -> Any:
    """act / may_act and friends: drop volatile ids inside nested claims too."""
    if isinstance(value, dict):
        return {k: _nested_volatile(v) for k, v in value.items() if k not in VOLATILE_CLAIMS}
    return value


def pair_equivalence(imp: Impersonation, token_url: str) -> dict[str, Any]:
    """Mint ONE pair through the real endpoints (browser sign-in, confirmation page) and one
    cheap pair (bench/mint_pairs.py), exchange both, and compare: the subject token's and the ID
    token's claims, the token response's fields and the access token's claims, all but the
    per-issue values (VOLATILE_CLAIMS; lifetimes compared instead)."""
    t0 = time.perf_counter()
    browser = imp.mint_pair()
    browser_s = time.perf_counter() - t0
    cheap = imp.mint_pairs(1)[0][0]
    shapes: dict[str, dict[str, Any]] = {}
    for name, pair in (("browser", browser), ("cheap", cheap)):
        r = request("POST", token_url, imp.exchange_body(pair), {"Authorization": imp.auth_header()})
        if r.status != 200:
            raise BenchError(f"exchanging the {name} pair: HTTP {r.status}: {r.text()}")
        data = json.loads(r.body)
        if data.get("refresh_token"):
            imp.refresh_pool.append(data["refresh_token"])
        response = {k: v for k, v in data.items() if k not in ("access_token", "refresh_token", "id_token")}
        response["fields"] = sorted(data)
        if isinstance(response.get("expires_in"), int):
            response["expires_in"] = round(response["expires_in"], -1)  # a second may pass
        shapes[name] = {
            "subject_token": _nested_volatile(_shape(_claims(pair[0]))),
            "id_token": _nested_volatile(_shape(_claims(pair[1]))),
            "response": response,
            "access_token": _nested_volatile(_shape(_claims(data["access_token"]))),
        }
        if data.get("id_token"):
            shapes[name]["response_id_token"] = _nested_volatile(_shape(_claims(data["id_token"])))
    differences = []
    for part, b in shapes["browser"].items():
        c = shapes["cheap"].get(part, {})
        for k in sorted(set(b) | set(c)):
            if b.get(k) != c.get(k):
                differences.append(f"{part}.{k}: browser {b.get(k)!r} cheap {c.get(k)!r}")
    return {
        "same": not differences,
        "differences": differences,
        "browser_pair_s": round(browser_s, 2),
        "compared": {part: sorted(v) for part, v in shapes["cheap"].items()},
        "response_fields": shapes["cheap"]["response"]["fields"],
    }


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def summarize(cells: list[Cell]) -> list[dict[str, Any]]:
    rows = []
    by_key = {c.key: c for c in cells}
    for c in cells:
        row: dict[str, Any] = {
            "case": c.case,
            "server": c.server,
            "label": c.label,
            "conns": c.conns,
            "url": c.url,
            "status": c.status,
            "error": c.error,
            "runs": c.runs,
        }
        if c.runs:
            row["rps"] = median([x["rps"] for x in c.runs])
            row["p50_ms"] = median([x["p50_ms"] for x in c.runs])
            row["p99_ms"] = median([x["p99_ms"] for x in c.runs])
            for k in (
                "wrk_cpu_cores",
                "client_cpu_cores",
                "app_cpu_cores",
                "db_cpu_cores",
                "other_cpu_cores",
                "app_cpu_ms_per_req",
                "db_cpu_ms_per_req",
            ):
                row[k] = median([x[k] for x in c.runs if x.get(k) is not None])
            row["errors"] = sum(x["errors"] for x in c.runs)
            row["requests"] = sum(x["requests"] for x in c.runs)
            row["ended_early"] = sum(1 for x in c.runs if x.get("exhausted"))
            mint = [x["codes"] / x["mint_s"] for x in c.runs if x.get("mint_s") and x.get("codes")]
            if mint:
                row["authorize_codes_per_s"] = median(mint)
            refused = sum(x.get("access_tokens_refused", 0) for x in c.runs)
            if refused:
                row["access_tokens_refused"] = refused
            pairs = [x["pairs"] / x["mint_s"] for x in c.runs if x.get("mint_s") and x.get("pairs")]
            if pairs:
                row["subject_tokens_per_s"] = median(pairs)
                row["pairs_per_run"] = [x["pairs"] for x in c.runs]
            for k in ("first_bad", "server_exception"):
                v = next((x[k] for x in c.runs if x.get(k)), "")
                if v:
                    row[k] = v
        rows.append(row)
    for row in rows:
        if row.get("rps") is None:
            continue
        ref_case = FLOOR_OF.get(row["case"])
        floor = by_key.get(f"{ref_case}/floor/c{row['conns']}") if ref_case else None
        if floor and floor.runs and row["server"] != "floor":
            row["vs_floor"] = round(row["rps"] / statistics.median([x["rps"] for x in floor.runs]), 3)
            floor_p50 = statistics.median([x["p50_ms"] for x in floor.runs])
            floor_p99 = statistics.median([x["p99_ms"] for x in floor.runs])
            if floor_p50 and row.get("p50_ms"):
                # Tail spread (p99 / p50), the cell's and its floor's in the same run.
                row["tail"] = round(row["p99_ms"] / row["p50_ms"], 2)
                row["floor_tail"] = round(floor_p99 / floor_p50, 2)
            row["floor"] = FLOOR_NAME[ref_case or ""]
            if ref_case == "client_credentials":
                row["vs_floor_sign"] = row["vs_floor"]
        stock = by_key.get(f"{row['case']}/stock/c{row['conns']}")
        if stock and stock.runs and row["server"] == "actas":
            s = statistics.median([x["rps"] for x in stock.runs])
            if s:
                row["vs_stock"] = round(row["rps"] / s, 3)
    return rows


# Issue 15's targets, per actas cell: (ratio key, minimum, of what) each; at TAIL_CONNS
# connections the p99/p50 spread may be at most TAIL_FACTOR x the floor's own in the same run.
TARGETS: dict[str, dict[str, Any]] = {
    "client_credentials": {"ratios": [("vs_stock", 1.5, "stock DOT"), ("vs_floor", 0.40, "/sign/RS256")]},
    "authorization_code": {"ratios": [("vs_stock", 1.5, "stock DOT")]},
    "authorization_code_sso": {"ratios": [("vs_stock", 1.5, "stock DOT")]},
    "refresh_token_act": {"ratios": [("vs_stock", 1.5, "stock DOT's refresh")]},
    "token_exchange": {"ratios": [("vs_floor", 0.25, "verify-2-sign-1")]},
    "organization_switch": {"ratios": [("vs_floor", 0.30, "/sign/RS256")]},
}
TAIL_CONNS = 2
TAIL_FACTOR = 1.5


def judge(rows: list[dict[str, Any]]) -> None:
    """Add ``target`` (the issue's goal for the cell, in words) and ``pass`` to actas's rows."""
    for row in rows:
        t = TARGETS.get(row["case"])
        if not t or row["server"] != "actas" or row.get("rps") is None:
            continue
        words, ok = [], True
        for key, minimum, of in t["ratios"]:
            value = row.get(key)
            words.append(f">= {minimum:g} x {of}" if key == "vs_stock" else f">= {minimum:.0%} of {of}")
            ok = ok and value is not None and value >= minimum
        if row["conns"] == TAIL_CONNS and row.get("floor_tail"):
            words.append(f"p99/p50 <= {TAIL_FACTOR:g} x floor's ({row['floor_tail']:.2f})")
            ok = ok and row["tail"] <= TAIL_FACTOR * row["floor_tail"]
        row["target"] = ", ".join(words)
        row["pass"] = bool(ok and not row.get("errors"))


def soak_table(soak: dict[str, Any]) -> str:
    if not soak:
        return ""
    if soak.get("error"):
        return f"Soak: **FAILED**: {soak['error']}"
    lines = [
        "| soak | rate req/s (asked) | achieved | s | requests | 200 | errors | p50 ms | p99 ms "
        "| max late ms | worker RSS MiB at 10 s -> end | max growth | target | pass |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    rss = ", ".join(
        f"{w['rss_10s_kb'] / 1024:.1f} -> {w['rss_end_kb'] / 1024:.1f}" for w in soak.get("workers", [])
    )
    lines.append(
        f"| token_exchange, a fresh pair each | {soak['rate']:.1f} | {soak['achieved_rps']:.1f} | "
        f"{soak['seconds']:.0f} | {soak['requests']} | {soak['ok']} | {soak['errors']} | "
        f"{soak['p50_ms']:.1f} | {soak['p99_ms']:.1f} | {soak['max_late_ms']:.0f} | {rss} | "
        f"{soak['max_growth']:+.1%} | {soak['target']} | {'PASS' if soak['pass'] else 'FAIL'} |"
    )
    if soak.get("first_bad"):
        lines.append(f"\nSoak, first error: {soak['first_bad']}")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| case | server | conns | req/s | p50 ms | p99 ms | vs floor | vs stock DOT "
        "| CPU ms/req app + db | errors | target | pass | note |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for r in rows:
        if r.get("rps") is None:
            lines.append(
                f"| {r['case']} | {r['label']} | {r['conns']} | - | - | - | - | - | - | - | - | - | "
                f"**{r['status'].upper()}**: {r['error'][:160]} |"
            )
            continue
        note = []
        if r.get("ended_early"):
            what = "pairs" if r["case"] == "token_exchange" else "codes"
            note.append(
                f"{what} ran out in {r['ended_early']} of {len(r['runs'])} runs (rate over the time run)"
            )
        if r.get("errors"):
            note.append(f"first error: {r.get('first_bad', '')[:100]}")
        if r.get("authorize_codes_per_s"):
            note.append(f"minted {r['authorize_codes_per_s']:.0f} codes/s")
        if r.get("subject_tokens_per_s"):
            note.append(
                f"{min(r['pairs_per_run'])}-{max(r['pairs_per_run'])} pairs per run, "
                f"minted {r['subject_tokens_per_s']:.0f}/s"
            )
        if r.get("access_tokens_refused"):
            note.append(
                f"{r['access_tokens_refused']} fresh access tokens refused before the runs (left out)"
            )
        if r["case"] == "authorization_code_sso":
            note.append("round trips/s; latency and CPU per round trip")
        if (r.get("other_cpu_cores") or 0) > 0.25:
            note.append(f"other processes used {r['other_cpu_cores']:.2f} cores")
        cpu = "-"
        if r.get("app_cpu_ms_per_req") is not None:
            cpu = f"{r['app_cpu_ms_per_req']:.2f} + {r['db_cpu_ms_per_req'] or 0:.2f}"

        def fmt(v: Any, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        vs_floor = "-" if r.get("vs_floor") is None else f"{r['vs_floor']:.2f} ({r['floor']})"
        lines.append(
            f"| {r['case']} | {r['label']} | {r['conns']} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {vs_floor} | {fmt(r.get('vs_stock'), '.2f')} | "
            f"{cpu} | {r['errors']} | {r.get('target', '-')} | "
            f"{'-' if 'pass' not in r else ('PASS' if r['pass'] else 'FAIL')} | {'; '.join(note)} |"
        )
    problems = []
    for r in rows:
        if r.get("rps") is None:
            problems.append(f"- {r['case']} / {r['label']} / c{r['conns']}: {r['status']}: {r['error']}")
        elif r.get("errors"):
            problems.append(
                f"- {r['case']} / {r['label']} / c{r['conns']}: {r['errors']} errors; first: "
                f"{r.get('first_bad', '')[:200]}; server log: {r.get('server_exception', '-')}"
            )
    if problems:
        lines += ["", "Problems:", *problems]
    return "\n".join(lines)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {"python": platform.python_version()}
    for pkg in ("Django", "django-oauth-toolkit", "oauthlib", "PyJWT", "cryptography", "gunicorn", "psycopg"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            out[pkg] = "?"
    try:
        out["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    except OSError:
        out["wrk"] = "?"
    return out


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git: dict[str, Any] = {}
    try:
        git["head"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        git["dirty"] = bool(
            subprocess.run(
                ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
        )
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "git": git}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10, help="seconds per cell and round (default 10)")
    ap.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; medians are reported (default 3)"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 3 s, 1 s warm-up")
    ap.add_argument("--conns", default="2,32", help="connection counts (default 2,32)")
    ap.add_argument("--cases", default=DEFAULT_CASES, help=f"comma-separated (default all: {DEFAULT_CASES})")
    ap.add_argument("--servers", default="actas,stock,floor", help="comma-separated (default all three)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="gunicorn sync workers (nproc)")
    ap.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per cell (default 2)")
    ap.add_argument("--max-codes", type=int, default=6000, help="cap on codes minted per cell (default 6000)")
    ap.add_argument("--mint-sessions", type=int, default=0, help="parallel sign-in sessions minting codes")
    ap.add_argument(
        "--max-pairs",
        type=int,
        default=20000,
        help="cap on subject tokens minted per token_exchange cell (default 20000)",
    )
    ap.add_argument(
        "--mint-procs", type=int, default=2, help="bench/mint_pairs.py processes minting pairs (default 2)"
    )
    ap.add_argument(
        "--browser-pairs",
        action="store_true",
        help="mint every pair through the browser sign-in (old path, ~0.3 s CPU each; use --max-pairs 100)",
    )
    ap.add_argument("--soak", dest="soak", action="store_true", default=True, help="run the soak (default)")
    ap.add_argument("--no-soak", dest="soak", action="store_false", help="skip the soak")
    ap.add_argument(
        "--soak-rate",
        type=float,
        default=0,
        help="soak request rate (default: half the median token_exchange req/s at the most connections)",
    )
    ap.add_argument("--soak-seconds", type=float, default=60, help="soak length (default 60)")
    ap.add_argument("--port-base", type=int, default=18001, help="actas on it, stock DOT +1, floor +2")
    ap.add_argument("--actas-env", action="append", default=[], metavar="K=V", help="extra env for actas")
    ap.add_argument(
        "--db-prefix",
        default="",
        help="prefix of the two databases the bench recreates (default none: actas_bench, stock_dot_bench)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=BENCH / "results" / "latest.json",
        help="JSON report (bench/results/latest.json)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, keys, bodies)")
    a = ap.parse_args()
    if a.quick:
        a.duration, a.rounds, a.warmup = 3, 1, 1
    a.conns = [int(x) for x in a.conns.split(",") if x]
    a.cases = [x.strip() for x in a.cases.split(",") if x.strip()]
    a.servers = [x.strip() for x in a.servers.split(",") if x.strip()]
    a.mint_sessions = a.mint_sessions or 2 * a.workers
    bad = (set(a.cases) - set(CASES)) | (set(a.servers) - {"actas", "stock", "floor"})
    if bad:
        ap.error(f"unknown: {', '.join(sorted(bad))}")
    if a.duration <= 0 or a.duration > 120 or a.rounds < 1 or a.rounds > 10:
        ap.error("--duration must be in (0, 120] and --rounds in [1, 10]")
    return a


def main() -> int:
    a = parse_args()
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed. Install it with:  apt-get install -y wrk", file=sys.stderr)
        return 2
    if not GUNICORN.exists():
        print(f"bench: {GUNICORN} is missing; run with the project's venv (.venv/bin/python bench/run.py)")
        return 2
    for i in range(3):
        if not port_free(a.port_base + i):
            print(f"bench: port {a.port_base + i} is in use; pick another --port-base", file=sys.stderr)
            return 2

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="actas-bench-"))
    logs = workdir / "logs"
    logs.mkdir()
    servers: dict[str, Server] = {}
    try:
        return run(a, workdir, logs, servers, started)
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); stopping servers")
        return 130
    except BenchError as e:
        log(f"FAILED: {e}")
        return 1
    finally:
        for m in MINTERS:
            m.stop()
        for s in servers.values():
            s.stop()
        if a.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run(a: argparse.Namespace, workdir: Path, logs: Path, servers: dict[str, Server], started: float) -> int:
    log(
        f"nproc={os.cpu_count()} workers={a.workers} duration={a.duration:g}s "
        f"rounds={a.rounds} conns={a.conns}"
    )
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key_pem = workdir / "rsa.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    base_env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    base_env["PYTHONDONTWRITEBYTECODE"] = "1"
    actas_db, stock_db = f"{a.db_prefix}actas_bench", f"{a.db_prefix}stock_dot_bench"
    dbs = [n for s, n in (("actas", actas_db), ("stock", stock_db)) if s in a.servers]
    try:
        recreate_databases(dbs)
    except BenchError:
        raise
    except Exception as e:  # noqa: BLE001 - psycopg.OperationalError and friends
        raise BenchError(f"PostgreSQL at {HOST}:5432 (user postgres): {e}") from e
    log(f"recreated databases {', '.join(dbs)}")

    creds: dict[str, Any] = {}
    actas_env: dict[str, str] = {}
    p = a.port_base
    if "actas" in a.servers:
        env = {k: v for k, v in base_env.items() if k not in ACTAS_ENV_DROP}
        env.update(
            DATABASE_URL=f"postgres://postgres@{HOST}:5432/{actas_db}",
            # A real broker, as in production: the impersonation email is queued (a Redis
            # publish), not rendered and sent inside the token request as in the eager
            # newcomer mode. No worker runs during the bench; bench/email_throughput.py
            # measures the email path. Redis db 13 is the bench's own.
            CELERY_BROKER_URL=f"redis://{HOST}:6379/13",
            SECRET_KEY=ACTAS_SECRET_KEY,
            DEBUG="0",
            # Rate limits (token, introspect, sign-in) off: the load comes from one address.
            ACTAS_RATE_LIMITS_ENABLED="0",
            ACTAS_SIGNING_KEYS_DIR=str(workdir / "actas-keys"),
            BASE_URL=f"http://{HOST}:{p}",
            ALLOWED_HOSTS=f"{HOST},localhost",
            LOG_LEVEL="WARNING",
            BENCH_OUT=str(workdir / "actas-creds.json"),
        )
        for kv in a.actas_env:
            k, _, v = kv.partition("=")
            env[k] = v
        actas_env = env
        srv = Server(
            "actas", p, "config.wsgi:application", ROOT, env, "/healthz", logs / "actas.log", actas_db
        )
        servers["actas"] = srv
        manage = [str(PY), "manage.py"]
        try:
            t0 = time.perf_counter()
            # The signing keys first: every process (migrate included) checks for them.
            run_cmd([*manage, "rotate_signing_key", "--publish-old-for", "3660"], env, ROOT, srv.logfile)
            run_cmd([*manage, "migrate", "-v", "0"], env, ROOT, srv.logfile)
            run_cmd([*manage, "seed_demo"], env, ROOT, srv.logfile)
            shell = "import runpy; runpy.run_path('bench/actas_setup.py', run_name='__main__')"
            run_cmd([*manage, "shell", "-v", "0", "-c", shell], env, ROOT, srv.logfile)
            creds["actas"] = json.loads((workdir / "actas-creds.json").read_text())
            log(f"actas: migrated and seeded in {time.perf_counter() - t0:.0f} s")
        except (BenchError, subprocess.TimeoutExpired) as e:
            srv.error = f"setup failed: {e}"
            log(f"actas: {srv.error}")
    if "stock" in a.servers:
        env = dict(base_env)
        env.update(STOCK_DOT_DATABASE=stock_db, STOCK_DOT_OIDC_KEY=str(key_pem))
        d = BENCH / "stock_dot"
        srv = Server(
            "stock",
            p + 1,
            "stock_dot.wsgi:application",
            d,
            env,
            "/healthz",
            logs / "stock.log",
            stock_db,
        )
        servers["stock"] = srv
        run_cmd([str(PY), "manage.py", "migrate", "-v", "0"], env, d, srv.logfile)
        out = workdir / "stock-creds.json"
        run_cmd(
            [str(PY), "manage.py", "bench_setup", "--redirect-uri", REDIRECT_URI, "--out", str(out)],
            env,
            d,
            srv.logfile,
        )
        creds["stock"] = json.loads(out.read_text())
        log("stock DOT: migrated, apps created")
    if "floor" in a.servers:
        env = dict(base_env, BENCH_FLOOR_KEY=str(key_pem))
        servers["floor"] = Server(
            "floor", p + 2, "floor:application", BENCH / "floor", env, "/healthz", logs / "floor.log"
        )

    for s in servers.values():
        if not s.error:
            s.start(a.workers)
    for s in servers.values():
        if not s.error:
            try:
                s.wait_ready()
                log(f"{s.name}: serving on {s.base} ({a.workers} sync workers)")
            except BenchError as e:
                s.error = str(e)
                s.stop()
                log(f"{s.name}: {e}")

    # --- cells ---
    cells: list[Cell] = []
    flows: dict[str, CodeFlow] = {}
    need_sign_floor = {"client_credentials", "refresh_token_act", "organization_switch"} & set(a.cases)
    code_cases = {"authorization_code", "authorization_code_sso"} & set(a.cases)
    imp_cases = {"token_exchange", "refresh_token_act", "organization_switch"} & set(a.cases)
    if code_cases and "actas" in servers:
        flows["actas"] = CodeFlow(
            "actas",
            f"http://{HOST}:{p}/t/acme/oauth2/authorize",
            f"http://{HOST}:{p}/t/acme/oauth2/token",
            "pickup",
            "pickup-secret",
            "admin",
            "actas-demo-1",
        )
    if (code_cases or "refresh_token_act" in a.cases) and "stock" in servers:
        c, u = creds["stock"]["ac"], creds["stock"]["user"]
        flows["stock"] = CodeFlow(
            "stock",
            f"http://{HOST}:{p + 1}/o/authorize/",
            f"http://{HOST}:{p + 1}/o/token/",
            c["client_id"],
            c["client_secret"],
            u["username"],
            u["password"],
        )
    imp: Impersonation | None = None
    if imp_cases and "actas" in servers:
        ac = creds.get("actas", {})
        imp = Impersonation(
            f"http://{HOST}:{p}/t/acme", ac.get("alice_id", "?"), ac.get("eu_id", "?"), a.mint_sessions
        )
        if not a.browser_pairs and not servers["actas"].error:
            minter = PairMinter(actas_env, logs / "mint_pairs.log", a.mint_procs)
            try:
                t0 = time.perf_counter()
                minter.start()
                _, secs = minter.mint(2 * a.mint_procs)  # first-call costs out of the way
                imp.minter = minter
                log(
                    f"actas: bench/mint_pairs.py x{a.mint_procs} ready in {time.perf_counter() - t0:.1f} s "
                    f"({2 * a.mint_procs} pairs in {secs:.2f} s)"
                )
            except (BenchError, OSError) as e:
                minter.stop()
                log(f"actas: bench/mint_pairs.py failed, minting through the browser instead: {e}")
    sso_jars: dict[str, list[Jar]] = {}
    stock_refresh: StockRefresh | None = None
    actas_token = f"http://{HOST}:{p}/t/acme/oauth2/token"
    floor_exchange_body = ""
    if "token_exchange" in a.cases and "floor" in servers:
        floor_exchange_body = floor_exchange_form(key)
    for conns in a.conns:
        if "client_credentials" in a.cases:
            if "actas" in servers:
                c = creds.get("actas", {"client_id": "bench-cc", "client_secret": "?"})
                cells.append(
                    Cell(
                        "client_credentials",
                        "actas",
                        "actas /t/acme/oauth2/token",
                        conns,
                        "POST",
                        actas_token,
                        basic(c["client_id"], c["client_secret"]),
                        "grant_type=client_credentials",
                    )
                )
            if "stock" in servers:
                c = creds["stock"]["cc"]
                cells.append(
                    Cell(
                        "client_credentials",
                        "stock",
                        "stock DOT /o/token/",
                        conns,
                        "POST",
                        f"http://{HOST}:{p + 1}/o/token/",
                        basic(c["client_id"], c["client_secret"]),
                        "grant_type=client_credentials&scope=read",
                    )
                )
        if need_sign_floor and "floor" in servers:
            cells.append(
                Cell(
                    "client_credentials",
                    "floor",
                    "floor /sign/RS256",
                    conns,
                    "GET",
                    f"http://{HOST}:{p + 2}/sign/RS256",
                )
            )
        if "authorization_code" in a.cases:
            for name, label in (("actas", "actas /t/acme/oauth2/token"), ("stock", "stock DOT /o/token/")):
                if name in flows:
                    f = flows[name]
                    cells.append(
                        Cell(
                            "authorization_code",
                            name,
                            label,
                            conns,
                            "POST",
                            f.token_url,
                            f.auth_header(),
                            flow=f,
                        )
                    )
        if "token_exchange" in a.cases:
            if imp is not None:
                cells.append(
                    Cell(
                        "token_exchange",
                        "actas",
                        "actas /t/acme/oauth2/token",
                        conns,
                        "POST",
                        actas_token,
                        imp.auth_header(),
                        imp=imp,
                    )
                )
            if "floor" in servers:
                cells.append(
                    Cell(
                        "token_exchange",
                        "floor",
                        "floor /verify-2-sign-1",
                        conns,
                        "POST",
                        f"http://{HOST}:{p + 2}/verify-2-sign-1",
                        body=floor_exchange_body,
                    )
                )
        for case in ("refresh_token_act", "organization_switch"):
            if case in a.cases and imp is not None:
                label = "actas /t/acme/oauth2/token"
                cells.append(
                    Cell(case, "actas", label, conns, "POST", actas_token, imp.auth_header(), imp=imp)
                )
        if "refresh_token_act" in a.cases and "stock" in flows:
            stock_refresh = stock_refresh or StockRefresh(flows["stock"])
            cells.append(
                Cell(
                    "refresh_token_act",
                    "stock",
                    "stock DOT /o/token/ (refresh_token)",
                    conns,
                    "POST",
                    flows["stock"].token_url,
                    flows["stock"].auth_header(),
                    stock_refresh=stock_refresh,
                )
            )
        if "authorization_code_sso" in a.cases:
            for name, label in (
                ("actas", "actas authorize + token"),
                ("stock", "stock DOT authorize + token"),
            ):
                if name in flows:
                    f = flows[name]
                    sso_jars.setdefault(name, [])
                    cells.append(
                        Cell(
                            "authorization_code_sso",
                            name,
                            label,
                            conns,
                            "POST",
                            f.token_url,
                            f.auth_header(),
                            flow=f,
                            jars=sso_jars[name],
                        )
                    )

    # Sign in: once per minting session for the authorization-code cells, once per connection
    # for the SSO round trips (a password hash each).
    for name, f in flows.items():
        if servers[name].error:
            continue
        want = a.mint_sessions if {"authorization_code", "refresh_token_act"} & set(a.cases) else 0
        n_sso = max(a.conns) if name in sso_jars else 0
        try:
            t0 = time.perf_counter()
            jars, _ = in_threads(want + n_sso, a.mint_sessions, f.sign_in)
            f.jars = jars[:want]
            if name in sso_jars:
                sso_jars[name].extend(jars[want:])
            log(f"{name}: {len(jars)} signed-in sessions in {time.perf_counter() - t0:.1f} s")
        except (BenchError, OSError) as e:
            for cell in cells:
                if cell.flow is f:
                    cell.status, cell.error = "failed", f"sign-in/authorize: {e}"
            log(f"{name}: sign-in for the authorization-code cases failed: {e}")
    if (
        imp is not None
        and not servers["actas"].error
        and {"refresh_token_act", "organization_switch"} & imp_cases
    ):
        try:
            secs = imp.top_up(2 * max(a.conns) + 8)
            log(f"actas: {len(imp.refresh_pool)} impersonations exchanged for refresh tokens in {secs:.1f} s")
        except (BenchError, OSError, ValueError) as e:
            for cell in cells:
                if cell.imp is imp and cell.case != "token_exchange":
                    cell.status, cell.error = "failed", f"minting impersonations: {e}"
            log(f"actas: minting impersonations failed: {e}")

    if stock_refresh is not None and not servers["stock"].error and stock_refresh.flow.jars:
        try:
            secs = stock_refresh.top_up(2 * max(a.conns) + 8)
            log(f"stock DOT: {len(stock_refresh.refresh_pool)} refresh tokens minted in {secs:.1f} s")
        except (BenchError, OSError, ValueError) as e:
            for cell in cells:
                if cell.stock_refresh is stock_refresh:
                    cell.status, cell.error = "failed", f"minting refresh tokens: {e}"
            log(f"stock DOT: minting refresh tokens failed: {e}")

    for cell in cells:
        if servers[cell.server].error:
            cell.status, cell.error = "failed", servers[cell.server].error
        elif cell.status == "ok":
            probe_cell(cell, servers[cell.server])
        if cell.status != "ok":
            log(f"{cell.key}: {cell.status.upper()}: {cell.error}")

    live = [c for c in cells if c.status == "ok"]
    log(f"warm-up: {len(live)} cells x {a.warmup:g} s")
    for cell in live:
        try:
            if cell.flow is not None or cell.imp is not None or cell.stock_refresh is not None:
                cell.rate_estimate = 200 / a.warmup  # sized for the warm-up only
            r = run_wrk(
                cell,
                servers[cell.server],
                a.warmup,
                workdir,
                max_codes=min(a.max_codes, 1000),
                max_pairs=min(a.max_pairs, 2000),
            )
            cell.rate_estimate = max(r["rps"], 1.0)
        except (BenchError, subprocess.TimeoutExpired) as e:
            cell.status, cell.error = "failed", f"warm-up: {e}"
            log(f"{cell.key}: FAILED in warm-up: {e}")
    live = [c for c in cells if c.status == "ok"]

    # Interleaved rounds: every (case, conns, server) cell once per round.
    for rnd in range(1, a.rounds + 1):
        for cell in live:
            if cell.status != "ok":
                continue
            try:
                r = run_wrk(cell, servers[cell.server], a.duration, workdir, a.max_codes, a.max_pairs)
            except (BenchError, subprocess.TimeoutExpired, OSError, ValueError) as e:
                cell.status, cell.error = "failed", f"round {rnd}: {e}"
                log(f"{cell.key}: FAILED: {e}")
                continue
            cell.runs.append(r)
            if cell.flow is not None or cell.imp is not None or cell.stock_refresh is not None:
                cell.rate_estimate = r["rps"]
            minted = f" (minted {r['codes']} codes in {r['mint_s']:.1f} s)" if "codes" in r else ""
            if "pairs" in r:
                minted = f" (minted {r['pairs']} subject tokens in {r['mint_s']:.1f} s)"
            if "pool" in r:
                minted = f" (refresh pool {r['pool']} -> {r['left']})"
            if r.get("access_tokens_refused"):
                minted = f" ({r['access_tokens_refused']} of 8 fresh access tokens refused, left out)"
            err = f" errors={r['errors']} first={r.get('first_bad', '')[:80]!r}" if r["errors"] else ""
            if r.get("server_exception"):
                err += f" server log: {r['server_exception'][:160]}"
            log(
                f"round {rnd} {cell.key:40s} {r['rps']:8.1f} req/s p50 {r['p50_ms']:6.1f} ms "
                f"p99 {r['p99_ms']:6.1f} ms in {r['seconds']:.1f} s{minted}{err}"
            )

    rows = summarize(cells)
    judge(rows)
    soak: dict[str, Any] = {}
    tx = next(
        (c for c in cells if c.case == "token_exchange" and c.server == "actas" and c.conns == max(a.conns)),
        None,
    )
    if a.soak and imp is not None and tx is not None:
        rate = a.soak_rate
        if not rate and tx.runs:
            rate = 0.5 * statistics.median([x["rps"] for x in tx.runs])
        if rate and tx.status == "ok":
            try:
                soak = run_soak(
                    imp,
                    servers["actas"],
                    tx.url,
                    rate,
                    a.soak_seconds,
                    int(creds.get("actas", {}).get("subject_token_expiry", 180)),
                )
                soak["rate_from"] = (
                    "--soak-rate" if a.soak_rate else f"0.5 x median token_exchange req/s at {tx.conns} conns"
                )
                log(
                    f"soak: {soak['requests']} requests at {soak['achieved_rps']:.1f} req/s, "
                    f"{soak['errors']} errors, p50 {soak['p50_ms']:.1f} ms p99 {soak['p99_ms']:.1f} ms, "
                    f"worker RSS growth {soak['max_growth']:+.1%}: {'PASS' if soak['pass'] else 'FAIL'}"
                )
            except (BenchError, OSError, ValueError) as e:
                soak = {"error": str(e), "pass": False}
                log(f"soak: FAILED: {e}")
        else:
            why = f"no token_exchange rate to take half of ({tx.status}: {tx.error})"
            soak = {"error": why, "pass": False}
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "settings": {
            "duration_s": a.duration,
            "rounds": a.rounds,
            "warmup_s": a.warmup,
            "conns": a.conns,
            "gunicorn": f"sync, {a.workers} workers",
            "max_codes": a.max_codes,
            "max_pairs": a.max_pairs,
            "pairs": "browser sign-in"
            if imp is None or imp.minter is None
            else (f"bench/mint_pairs.py x{a.mint_procs} (actas's services, no browser)"),
            "metric": "req/s counts 2xx responses only; latencies are wrk's over all responses",
        },
        "elapsed_s": round(time.monotonic() - started),
        # The machine is shared: 1-, 5- and 15-minute load averages when the report was written.
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "cells": rows,
        "pair_equivalence": imp.equivalence if imp is not None else {},
        "soak": soak,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1) + "\n")
    print()
    print(f"{report['date']}  nproc={report['machine']['nproc']}  {report['machine']['cpu']}")
    print(f"gunicorn sync x{a.workers}, wrk -t1, {a.rounds} rounds x {a.duration:g} s, medians")
    print(table(rows))
    if soak:
        print()
        print(soak_table(soak))
    if imp is not None and imp.equivalence:
        eq = imp.equivalence
        print(
            "\nPairs: bench/mint_pairs.py; one browser-minted pair exchanged alongside one cheap pair: "
            + ("same claims and response shape" if eq["same"] else f"DIFFER: {eq['differences']}")
        )
    print(f"\nwrote {a.out} ({report['elapsed_s']} s in all)")
    return 1 if any(c.status != "ok" for c in cells) or (soak and soak.get("error")) else 0


if __name__ == "__main__":
    sys.exit(main())
