"""The request validator's audit of what it mints under an impersonation (issue 13 item 5b):
every sign-in of a browser bound to an impersonation and every refresh of an impersonated
token writes one event naming the impersonator, in the transaction of the mint."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken, RefreshToken

from identity.audit.models import AuditEvent
from impersonation.models import ImpersonationSession
from tests.conftest import World
from tests.identity.oauth_helpers import App, authorize_url, basic, exchange, get_code, make_app, pkce_pair
from tests.impersonation.helpers import exchange_tokens, get_subject_token, impersonation_app, query

SIGN_IN = "impersonation-sign-in"
REFRESH = "impersonation-token-refresh"


@pytest.fixture
def pickup(world: World) -> App:
    return impersonation_app(world)


def _refresh(client: Client, app: App, refresh_token: str) -> Any:
    return client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        HTTP_AUTHORIZATION=basic(app.client_id, app.secret),
    )


def _sign_in_to(client: Client, app: App) -> dict[str, Any]:
    """The browser (already signed in) signs in to ``app`` and the app redeems its code."""
    verifier, challenge = pkce_pair()
    response = client.get(
        authorize_url(app.client_id, challenge=challenge, scope="openid internal_user_mgt_view")
    )
    assert response.status_code == 302, response.content[:300]
    body = exchange(client, app, query(response["Location"])["code"], verifier)
    assert body.status_code == 200, body.content
    return dict(body.json())


def test_a_sign_in_to_another_application_while_impersonating_names_the_impersonator_once(
    client: Client, world: World, pickup: App
) -> None:
    orders = impersonation_app(world, client_id="orders")
    exchange_tokens(client, pickup, get_subject_token(client, world, pickup))
    session = ImpersonationSession.objects.get()

    _sign_in_to(client, orders)

    event = AuditEvent.objects.get(action=SIGN_IN)  # the code's redemption adds none
    assert event.impersonator_id == world.impersonator.pk and event.actor_id == world.impersonator.pk
    assert event.subject_id == world.target.pk
    assert event.client_id == "orders" and event.outcome == AuditEvent.Outcome.SUCCESS
    assert event.target_type == "impersonation" and event.target_id == str(session.pk)
    assert set(event.scopes.split()) == {"openid", "internal_user_mgt_view"}
    # A second sign-in is a second event.
    _sign_in_to(client, pickup)
    sign_ins = AuditEvent.objects.filter(action=SIGN_IN).order_by("seq")
    assert list(sign_ins.values_list("client_id", flat=True)) == ["orders", "pickup"]


def test_an_ordinary_sign_in_writes_no_impersonation_event(client: Client, world: World) -> None:
    app = make_app(world)
    code, verifier = get_code(client, world, app)
    assert exchange(client, app, code, verifier).status_code == 200
    assert not AuditEvent.objects.filter(action=SIGN_IN).exists()


def test_every_impersonated_refresh_names_the_impersonator(client: Client, world: World, pickup: App) -> None:
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    session = ImpersonationSession.objects.get()
    for _ in range(2):
        refreshed = _refresh(client, pickup, body["refresh_token"])
        assert refreshed.status_code == 200, refreshed.content
        body = refreshed.json()
    events = list(AuditEvent.objects.filter(action=REFRESH).order_by("seq"))
    assert len(events) == 2
    for event in events:
        assert event.impersonator_id == world.impersonator.pk and event.actor_id == world.impersonator.pk
        assert event.subject_id == world.target.pk and event.client_id == "pickup"
        assert event.target_type == "impersonation" and event.target_id == str(session.pk)
        assert event.scopes == body["scope"]
    # A refused refresh (the impersonation has ended) mints nothing and records no refresh.
    client.post("/t/acme/impersonation/end")
    assert _refresh(client, pickup, body["refresh_token"]).status_code == 400
    assert AuditEvent.objects.filter(action=REFRESH).count() == 2


def test_an_ordinary_refresh_writes_no_impersonation_event(client: Client, world: World) -> None:
    app = make_app(world)
    code, verifier = get_code(client, world, app)
    body = exchange(client, app, code, verifier).json()
    assert _refresh(client, app, body["refresh_token"]).status_code == 200
    assert not AuditEvent.objects.filter(action=REFRESH).exists()


def test_the_refresh_and_its_audit_event_commit_together(
    client: Client, world: World, pickup: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    tokens_before = AccessToken.objects.count()

    def broken(**_: Any) -> None:
        raise RuntimeError("the audit trail is unavailable")

    monkeypatch.setattr("identity.oauth.validator_codes.audit_record", broken)
    with pytest.raises(RuntimeError):
        _refresh(client, pickup, body["refresh_token"])
    monkeypatch.undo()
    # Nothing was minted and the refresh token was not used up: it still works, once.
    assert AccessToken.objects.count() == tokens_before
    assert RefreshToken.objects.filter(revoked__isnull=True, user=world.target).count() == 1
    assert _refresh(client, pickup, body["refresh_token"]).status_code == 200
    assert AuditEvent.objects.filter(action=REFRESH).count() == 1
