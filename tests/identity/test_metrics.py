"""Tokens issued per grant type (identity.metrics, counted by identity.oauth.service): only
issuance that committed, one label per grant type actas serves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from identity import metrics
from tests.conftest import World
from tests.identity.oauth_helpers import App, basic, exchange, get_code, make_app

pytestmark = pytest.mark.django_db


def issued(grant_type: str) -> float:
    return REGISTRY.get_sample_value("actas_tokens_issued_total", {"grant_type": grant_type}) or 0.0


@pytest.fixture
def app(world: World) -> App:
    return make_app(world)


def _client_credentials(client: Client, app: App, secret: str | None = None) -> Any:
    return client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic(app.client_id, secret or app.secret),
    )


def test_client_credentials_counts_once_committed(
    client: Client, app: App, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    before = issued("client_credentials")
    with django_capture_on_commit_callbacks(execute=False) as pending:
        assert _client_credentials(client, app).status_code == 200
    # The test's transaction is still open: nothing is counted until it commits.
    assert issued("client_credentials") == before
    for callback in pending:
        callback()
    assert issued("client_credentials") == before + 1


def test_a_refused_request_counts_nothing(
    client: Client, app: App, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    before = issued("client_credentials")
    with django_capture_on_commit_callbacks(execute=True):
        assert _client_credentials(client, app, secret="wrong-secret").status_code == 401
        refused = client.post(
            "/t/acme/oauth2/token",
            {"grant_type": "refresh_token", "refresh_token": "no-such-token"},
            HTTP_AUTHORIZATION=basic(app.client_id, app.secret),
        )
        assert refused.status_code == 400
    assert issued("client_credentials") == before


def test_authorization_code_and_refresh_count_under_their_own_grant_type(
    client: Client, world: World, app: App, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    code_before, refresh_before = issued("authorization_code"), issued("refresh_token")
    code, verifier = get_code(client, world, app)
    with django_capture_on_commit_callbacks(execute=True):
        body = exchange(client, app, code, verifier).json()
        refreshed = client.post(
            "/t/acme/oauth2/token",
            {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
            HTTP_AUTHORIZATION=basic(app.client_id, app.secret),
        )
    assert refreshed.status_code == 200
    assert issued("authorization_code") == code_before + 1
    assert issued("refresh_token") == refresh_before + 1


def test_grant_type_labels_are_bounded() -> None:
    before = issued("other")
    metrics.token_issued("urn:example:made-up-grant")
    assert issued("other") == before + 1
    assert (
        REGISTRY.get_sample_value("actas_tokens_issued_total", {"grant_type": "urn:example:made-up-grant"})
        is None
    )
    assert metrics.GRANT_TYPES["urn:ietf:params:oauth:grant-type:token-exchange"] == "token-exchange"
