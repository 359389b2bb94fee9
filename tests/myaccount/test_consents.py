"""My Account → Applications lists the consents the user gave and revokes them
(myaccount/consents.py): revoking signs the application out and makes it ask again."""

from __future__ import annotations

from typing import Any

from django.test import Client

from identity.audit.models import AuditEvent
from identity.models import OAuthAuthorization, OAuthConsent
from tests.conftest import World, sign_in
from tests.identity.oauth_helpers import App, authorize_url, exchange, make_app, pkce_pair, query_of
from tests.impersonation.helpers import impersonation_app
from tests.myaccount.helpers import ROOT, open_myaccount, start_impersonation


def _allow(client: Client, app: App) -> tuple[str, str]:
    """The user allows ``app`` on the consent screen. Returns (code, verifier)."""
    verifier, challenge = pkce_pair()
    page = client.get(authorize_url(app.client_id, challenge=challenge, scope="openid profile"))
    assert page.status_code == 200, page.content[:300]
    allowed = client.post(
        "/t/acme/oauth2/authorize/consent", {"pending": page.context["pending"], "decision": "allow"}
    )
    return query_of(allowed["Location"])["code"], verifier


def _text(response: Any) -> str:
    return response.content.decode()


def test_the_user_sees_and_revokes_a_consent(client: Client, world: World) -> None:
    askfirst = make_app(world, client_id="askfirst", skip_login_consent=False)
    sign_in(client, world.target)
    code, verifier = _allow(client, askfirst)
    assert exchange(client, askfirst, code, verifier).status_code == 200
    page, _ = open_myaccount(client, f"{ROOT}applications/")
    text = _text(page)
    assert "Applications you have allowed" in text and "App askfirst" in text and "openid, profile" in text
    consent = OAuthConsent.objects.get(user=world.target)
    revoke = f"{ROOT}applications/consents/{consent.pk}/revoke"
    assert f'action="{revoke}"' in text
    assert client.get(revoke).status_code == 405  # a change is a POST (with CSRF)

    done = client.post(revoke)
    assert done.status_code == 303
    assert not OAuthConsent.objects.exists()
    # The application lost its tokens and must ask again.
    assert OAuthAuthorization.objects.get(application=askfirst.app).revoked_at is not None
    event = AuditEvent.objects.get(action="consent-revoke")
    assert event.actor_id == world.target.pk and event.target_id == "askfirst"
    _verifier, challenge = pkce_pair()
    asked = client.get(authorize_url("askfirst", challenge=challenge, scope="openid profile"))
    assert asked.status_code == 200 and b"Allow App askfirst?" in asked.content
    after, _ = open_myaccount(client, f"{ROOT}applications/")
    assert "You have not allowed any application" in _text(after)


def test_nobody_else_revokes_a_users_consent(client: Client, world: World) -> None:
    askfirst = make_app(world, client_id="askfirst", skip_login_consent=False)
    owner = Client()
    sign_in(owner, world.target)
    _allow(owner, askfirst)
    consent = OAuthConsent.objects.get()
    # Another user of the tenant: not theirs, so not found.
    sign_in(client, world.admin)
    open_myaccount(client, f"{ROOT}applications/")
    assert client.post(f"{ROOT}applications/consents/{consent.pk}/revoke").status_code == 404
    # An impersonator of the user cannot revoke it either: only the user decides.
    support = Client()
    start_impersonation(support, world, impersonation_app(world, discoverable=True))
    open_myaccount(support)
    refused = support.post(f"{ROOT}applications/consents/{consent.pk}/revoke")
    assert refused.status_code == 403
    assert OAuthConsent.objects.filter(pk=consent.pk).exists()
