"""An independent SCIM 2.0 checker (scim2-tester, with scim2-client over httpx2) against a live
actas: discovery (ServiceProviderConfig, ResourceTypes, Schemas), then create, read, query,
replace, PATCH and delete of every resource type the server publishes, with a provisioning
application's client-credentials token.

Each run prints scim2-tester's summary (a line per check, and the failed HTTP exchanges) into
the test output. A check that does not apply to what actas serves is SKIPPED by the tester
itself, from what the server publishes; the test filters nothing away."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import pytest
from django.test import Client as DjangoClient
from httpx2 import Client, Response
from pydantic import BaseModel
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server

from identity.models import Application
from identity.services.roles import role_assign, role_create
from tests.conftest import World
from tests.identity.oauth_helpers import REDIRECT, App, basic, exchange, get_code
from tests.identity.scim_helpers import (
    ORG_USER_SCOPES,
    TENANT,
    USER_SCOPES,
    Provisioner,
    client_credentials_token,
    provisioning_app,
)

pytestmark = pytest.mark.django_db(transaction=True)

# A MUST the server breaks, or a security risk: the run fails on either.
FAILING = (Status.ERROR, Status.CRITICAL)
# Shown with their data in the summary (a SHOULD the server departs from is reported, not failed).
DETAILED = (Status.ERROR, Status.CRITICAL, Status.DEVIATION)
MAX_SHOWN = 500


@pytest.fixture
def scim_base(live_server: Any, settings: Any, world: World) -> str:
    """The live server's address; tokens' issuer and SCIM ``meta.location`` are BASE_URL's."""
    settings.BASE_URL = live_server.url
    return str(live_server.url)


# --- the HTTP exchanges the checker makes ---------------------------------------------------


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    request_body: str
    response_body: str


@dataclass
class ExchangeLog:
    """Every exchange that came back 4xx/5xx, for the summary: what was sent, what came back."""

    failed: list[Exchange] = field(default_factory=list)
    total: int = 0

    def __call__(self, response: Response) -> None:
        response.read()
        self.total += 1
        if response.status_code < 400:
            return
        request = response.request
        self.failed.append(
            Exchange(
                method=request.method,
                path=request.url.raw_path.decode(errors="replace"),
                status=response.status_code,
                request_body=_clip(request.content.decode(errors="replace")),
                response_body=_clip(response.text),
            )
        )


_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _clip(text: str, limit: int = MAX_SHOWN) -> str:
    text = " ".join(text.split())
    if text[:15].lower().startswith(("<!doctype html", "<html")):
        title = _TITLE.search(text)
        return f"<an HTML page: {title.group(1).strip() if title else 'untitled'}>"
    return text if len(text) <= limit else text[:limit] + " …"


_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")


def _failed_exchanges(log: ExchangeLog) -> list[str]:
    """The failed exchanges, one per (method, path with ids as {id}, status), in order; a 405
    (the discovery endpoints refusing writes, as the checker wants) is left out."""
    seen: set[tuple[str, str, int]] = set()
    lines = []
    for ex in log.failed:
        key = (ex.method, _ID.sub("{id}", ex.path.split("?")[0]), ex.status)
        if ex.status == 405 or key in seen:
            continue
        seen.add(key)
        lines.append(f"  {ex.method} {ex.path} -> {ex.status}")
        if ex.request_body:
            lines.append(f"      sent:     {ex.request_body}")
        lines.append(f"      answered: {ex.response_body}")
    return lines


@contextmanager
def scim_client(base_url: str, token: str, log: ExchangeLog) -> Iterator[SyncSCIMClient]:
    """scim2-client over httpx2, knowing nothing of the server: check_server discovers it."""
    with Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        event_hooks={"response": [log]},
        timeout=30,
    ) as http:
        yield SyncSCIMClient(http)


# --- the summary ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        try:
            return value.model_dump(exclude_none=True, mode="json")
        except Exception:  # noqa: BLE001 (a summary never fails the test by itself)
            return repr(value)
    if isinstance(value, Response):
        return f"HTTP {value.status_code} {value.request.method} {value.request.url}: {_clip(value.text)}"
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return value


def _data_text(data: Any) -> str:
    plain = _plain(data)
    text = plain if isinstance(plain, str) else json.dumps(plain, default=repr, ensure_ascii=False)
    return _clip(text)


def summary(label: str, results: list[CheckResult], log: ExchangeLog) -> str:
    counts = Counter(r.status.name for r in results)
    lines = [
        "",
        f"=== scim2-tester {version('scim2-tester')} (scim2-client {version('scim2-client')}) — {label}",
        f"    {len(results)} checks, {log.total} HTTP exchanges: "
        + ", ".join(f"{name} {counts[name]}" for name in (s.name for s in Status) if counts[name]),
    ]
    for r in results:
        where = f"[{r.resource_type}] " if r.resource_type else ""
        reason = _clip((r.reason or "").replace("\n", " "), 300)
        lines.append(f"  {r.status.name:<10} {where}{r.title}: {reason}")
        if r.status in DETAILED and r.data is not None:
            lines.append(f"             data: {_data_text(r.data)}")
    failed = _failed_exchanges(log)
    if failed:
        lines.append("  --- failed HTTP exchanges (4xx/5xx other than 405), first of each kind:")
        lines.extend(failed)
        lines.append(
            "  (scim2-tester's cleanup after each check deletes every resource it created so far"
            " again: a DELETE → 404 of one already deleted is expected)"
        )
    lines.append("=== end of scim2-tester summary")
    return "\n".join(lines)


def run_checker(
    capsys: pytest.CaptureFixture[str], label: str, base_url: str, token: str, **options: Any
) -> list[CheckResult]:
    log = ExchangeLog()
    with scim_client(base_url, token, log) as client:
        results = check_server(client, **options)
    text = summary(label, results, log)
    with capsys.disabled():
        print(text)
    return results


def assert_no_failures(results: list[CheckResult]) -> None:
    failing = [r for r in results if r.status in FAILING]
    lines = [
        f"{r.status.name} {r.resource_type or ''} {r.title}: {_clip(r.reason or '', 200)}" for r in failing
    ]
    assert not failing, f"{len(failing)} scim2-tester checks failed (summary above):\n" + "\n".join(lines)


def succeeded(results: list[CheckResult], title: str, resource_type: str | None = None) -> bool:
    return any(
        r.title == title
        and r.status == Status.SUCCESS
        and (resource_type is None or r.resource_type == resource_type)
        for r in results
    )


# --- the runs -------------------------------------------------------------------------------


def test_scim2_tester_passes_against_the_tenant_user_api(
    scim_base: str, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every check of the tenant's SCIM API, with a client-credentials token of a provisioning
    application authorized for the user-management API (system:users)."""
    provisioner = provisioning_app(world)
    token = client_credentials_token(scim_base, provisioner, USER_SCOPES)
    base_url = f"{scim_base}/t/{TENANT}/scim2"

    results = run_checker(capsys, f"{base_url} (client credentials)", base_url, token)

    assert_no_failures(results)
    # Discovery described the server, and the User resource went through its whole life.
    for title in ("service_provider_config_endpoint", "query_all_resource_types", "query_all_schemas"):
        assert succeeded(results, title), f"{title} did not succeed (summary above)"
    lifecycle = (
        "object_creation",
        "object_query",
        "object_query_without_id",
        "object_replacement",
        "object_deletion",
    )
    for title in lifecycle:
        assert succeeded(results, title, "User"), f"{title} did not succeed for User (summary above)"


def _switched_token(world: World, provisioner: Provisioner) -> str:
    """A user's token for the child organization Acme EU (organization_switch), the only kind
    of token /o/scim2 serves: ``target`` (shared into Acme EU) holds the application's
    organization-user role there."""
    manager = role_create(
        actor=None,
        org=world.root,
        name="provisioner org manager",
        audience_application=provisioner.app,
        permissions=list(ORG_USER_SCOPES),
    )
    role_assign(actor=None, role=manager, org=world.eu, user=world.target)
    app = App(provisioner.app, provisioner.secret)
    browser = DjangoClient()
    code, verifier = get_code(browser, world, app, user=world.target, scope="openid")
    response = exchange(browser, app, code, verifier)
    assert response.status_code == 200, response.content
    switched = DjangoClient().post(
        f"/t/{TENANT}/oauth2/token",
        {
            "grant_type": "organization_switch",
            "token": response.json()["access_token"],
            "switching_organization": str(world.eu.pk),
            "scope": "openid " + " ".join(ORG_USER_SCOPES),
        },
        HTTP_AUTHORIZATION=basic(app.client_id, app.secret),
    )
    assert switched.status_code == 200, switched.content
    body = switched.json()
    assert set(ORG_USER_SCOPES) <= set(body["scope"].split()), body
    token: str = body["access_token"]
    return token


def test_scim2_tester_discovery_passes_against_the_organization_user_api(
    scim_base: str, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """/t/<tenant>/o/scim2 (a child organization's users: list, get and PATCH only, so no
    create/replace/delete lifecycle to run): its discovery endpoints pass every check."""
    provisioner = provisioning_app(
        world,
        resources=("system:users", "org:users"),
        grant_types=(
            Application.GRANT_AUTHORIZATION_CODE_TYPE,
            Application.GRANT_CLIENT_CREDENTIALS_TYPE,
            Application.GRANT_ORGANIZATION_SWITCH_TYPE,
        ),
        redirect_uris=(REDIRECT,),
        skip_login_consent=True,
    )
    token = _switched_token(world, provisioner)
    base_url = f"{scim_base}/t/{TENANT}/o/scim2"

    results = run_checker(
        capsys,
        f"{base_url} (organization_switch token, discovery)",
        base_url,
        token,
        include_tags={"discovery"},
    )

    assert_no_failures(results)
    for title in ("service_provider_config_endpoint", "query_all_resource_types", "query_all_schemas"):
        assert succeeded(results, title), f"{title} did not succeed (summary above)"
