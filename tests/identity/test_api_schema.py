"""The APIs against their own OpenAPI schema (``/api/schema/``), with schemathesis (issue 7
item 5): every operation, positive and negative (schema-violating) generated requests, through
the real WSGI application, authenticated with a real access token — the admin's (every
management scope) for the root APIs, the target's switched token (Acme EU) for ``/o/…``.

Checks on every answer: no 5xx; the status code, the content type and the body are the ones
the schema documents for that operation.

Generated cases per run: 12 examples × 2 generation modes × 17 operations = 408 (with the
token garbled or missing in a sixth of them, for the 401s).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import World
from tests.identity.oauth_helpers import App
from tests.identity.test_api import ALL_SCOPES, CONFIG_SCOPES, ORG_SCOPES, _switch, _token, mgmt  # noqa: F401

OPERATIONS = [
    ("GET", "/t/{tenant}/api/server/v1/configs/impersonation"),
    ("PATCH", "/t/{tenant}/api/server/v1/configs/impersonation"),
    ("GET", "/t/{tenant}/api/users/v1/me/organizations"),
    ("GET", "/t/{tenant}/o/api/server/v1/configs/impersonation"),
    ("PATCH", "/t/{tenant}/o/api/server/v1/configs/impersonation"),
    ("GET", "/t/{tenant}/o/scim2/Me"),
    ("PATCH", "/t/{tenant}/o/scim2/Me"),
    ("GET", "/t/{tenant}/o/scim2/ResourceTypes"),
    ("GET", "/t/{tenant}/o/scim2/ResourceTypes/{resource_id}"),
    ("GET", "/t/{tenant}/o/scim2/Schemas"),
    ("GET", "/t/{tenant}/o/scim2/Schemas/{resource_id}"),
    ("GET", "/t/{tenant}/o/scim2/ServiceProviderConfig"),
    ("GET", "/t/{tenant}/o/scim2/Users"),
    ("POST", "/t/{tenant}/o/scim2/Users/.search"),
    ("GET", "/t/{tenant}/o/scim2/Users/{user_id}"),
    ("PATCH", "/t/{tenant}/o/scim2/Users/{user_id}"),
    ("GET", "/t/{tenant}/scim2/Me"),
    ("PATCH", "/t/{tenant}/scim2/Me"),
    ("GET", "/t/{tenant}/scim2/ResourceTypes"),
    ("GET", "/t/{tenant}/scim2/ResourceTypes/{resource_id}"),
    ("GET", "/t/{tenant}/scim2/Schemas"),
    ("GET", "/t/{tenant}/scim2/Schemas/{resource_id}"),
    ("GET", "/t/{tenant}/scim2/ServiceProviderConfig"),
    ("GET", "/t/{tenant}/scim2/Users"),
    ("POST", "/t/{tenant}/scim2/Users"),
    ("POST", "/t/{tenant}/scim2/Users/.search"),
    ("GET", "/t/{tenant}/scim2/Users/{user_id}"),
    ("PUT", "/t/{tenant}/scim2/Users/{user_id}"),
    ("PATCH", "/t/{tenant}/scim2/Users/{user_id}"),
    ("DELETE", "/t/{tenant}/scim2/Users/{user_id}"),
]
SLUG = re.compile(r"[-a-zA-Z0-9_]+")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class _Application:
    """Django's WSGI handler with the request signals the test client also mutes: closing
    "old" connections at the end of a request would close the test's transaction."""

    def __init__(self) -> None:
        self.handler = WSGIHandler()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        # Muted again on every call: a Django test client request made meanwhile (to mint the
        # tokens) reconnects them when it finishes.
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        return self.handler(environ, start_response)


@pytest.fixture(scope="module")
def wsgi_app() -> Iterator[_Application]:
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield _Application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def schema(wsgi_app: _Application) -> Any:
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)


@pytest.fixture
def errors() -> Iterator[list[BaseException]]:
    """Exceptions the views raised (the WSGI handler turns them into a 500 page)."""
    from django.core.signals import got_request_exception

    caught: list[BaseException] = []

    def record(sender: Any, request: Any = None, **kwargs: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if exc is not None:
            caught.append(exc)

    got_request_exception.connect(record)
    yield caught
    got_request_exception.disconnect(record)


@pytest.fixture
def tokens(world: World, mgmt: App) -> dict[str, str]:  # noqa: F811
    admin = _token(world, mgmt, world.admin, ALL_SCOPES)
    target = _token(world, mgmt, world.target, ORG_SCOPES + CONFIG_SCOPES)
    return {"root": admin, "child": _switch(mgmt, target, world.eu, ORG_SCOPES + CONFIG_SCOPES)}


def test_every_operation_of_the_schema_is_fuzzed(schema: Any) -> None:
    served = sorted((result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations())
    assert served == sorted(OPERATIONS)


@pytest.mark.parametrize(
    "mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"]
)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_its_schema(
    schema: Any,
    wsgi_app: _Application,
    errors: list[BaseException],
    world: World,
    tokens: dict[str, str],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    operation = schema[path][method]
    child = path.startswith("/t/{tenant}/o/")
    token = tokens["child" if child else "root"]
    members = (
        [world.target, world.eu_user] if child else [world.target, world.impersonator, world.other_org_user]
    )

    @settings(
        max_examples=12,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
        ],
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode), label="case")
        params = dict(case.path_parameters or {})
        # A value the URL patterns do not route never reaches the API (the site's HTML 404).
        if data.draw(st.integers(0, 9), label="tenant") > 0 or not SLUG.fullmatch(str(params["tenant"])):
            params["tenant"] = "acme"
        if "user_id" in params:
            unroutable = str(params["user_id"]) in ("", ".", "..") or "/" in str(params["user_id"])
            if unroutable or data.draw(st.booleans(), label="real user"):
                params["user_id"] = str(data.draw(st.sampled_from(members), label="user").pk)
        case.path_parameters = params
        credential = data.draw(st.sampled_from(["token"] * 5 + ["garbled", "none"]), label="credential")
        headers = dict(case.headers or {})
        headers.pop("Authorization", None)
        if credential == "token":
            headers["Authorization"] = f"Bearer {token}"
        elif credential == "garbled":
            headers["Authorization"] = f"Bearer {token[:-8]}AAAAAAAA"
        case.headers = headers
        errors.clear()
        response = case.call(app=wsgi_app)
        assert not errors, f"{case.method} {case.formatted_path}: {errors[0]!r}"
        case.validate_response(response, checks=CHECKS)

    run()
