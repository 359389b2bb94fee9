"""My Account as an OIDC client of actas: the in-process token call, the state it keeps, and
the per-request checks that make it show nothing once its token or sign-in is gone."""

from __future__ import annotations

from django.test import Client

from identity.models import OAuthAuthorization
from identity.services.oauth import oauth_authorization_revoke
from myaccount import client as myaccount_client
from tests.conftest import World, sign_in
from tests.myaccount.helpers import ROOT, follow, open_myaccount


def test_the_token_call_is_in_process_and_answers_like_the_endpoint(world: World) -> None:
    status, body = myaccount_client.token_request(
        tenant=world.root,
        org=world.root,
        data={
            "grant_type": "authorization_code",
            "code": "no-such-code",
            "redirect_uri": myaccount_client.callback_uri(world.root),
            "client_id": "acme-myaccount",
            "code_verifier": "v" * 50,
        },
    )
    assert status == 400 and body["error"] == "invalid_grant"
    status, body = myaccount_client.token_request(
        tenant=world.root, org=world.eu, data={"grant_type": "authorization_code", "code": "a\x00b"}
    )
    assert status == 400 and body["error"] == "invalid_request"


def test_callback_uri_is_the_registered_one(world: World) -> None:
    uri = myaccount_client.callback_uri(world.root)
    assert uri == "http://127.0.0.1:8000/t/acme/myaccount/callback"
    assert uri in world.system.myaccount.redirect_uris.split()


def test_pending_sign_ins_are_bounded(client: Client, world: World) -> None:
    for _ in range(myaccount_client.MAX_PENDING + 3):
        assert client.get(ROOT).status_code == 302
    pending = [k for k in client.session.keys() if k.startswith(myaccount_client.PENDING_PREFIX)]
    assert len(pending) == myaccount_client.MAX_PENDING


def test_a_pending_sign_in_is_used_once(client: Client, world: World) -> None:
    sign_in(client, world.target)
    start = client.get(ROOT)
    authorize = client.get(start["Location"])
    callback = authorize["Location"]
    page, _ = follow(client, authorize)
    assert page.status_code == 200
    replay = client.get(callback.replace("http://127.0.0.1:8000", ""))
    assert replay.status_code == 400


def test_a_revoked_token_shows_nothing_and_signs_in_again(client: Client, world: World) -> None:
    sign_in(client, world.target)
    open_myaccount(client)
    first = OAuthAuthorization.objects.get(application__client_id="acme-myaccount")
    oauth_authorization_revoke(actor=None, authorization=first, reason="test")
    again = client.get(ROOT)
    assert again.status_code == 302 and again["Location"].startswith("/t/acme/oauth2/authorize")
    assert f"actas.myaccount:{world.root.pk}" not in client.session
    page, _ = follow(client, again)
    assert page.status_code == 200 and "Signed in as Target" in page.content.decode()
    assert OAuthAuthorization.objects.filter(application__client_id="acme-myaccount").count() == 2


def test_state_copied_into_another_browser_is_worthless(client: Client, world: World) -> None:
    sign_in(client, world.target)
    open_myaccount(client)
    stolen = client.session[f"actas.myaccount:{world.root.pk}"]
    other = sign_in(Client(), world.admin)
    session = other.session
    session[f"actas.myaccount:{world.root.pk}"] = stolen
    session.save()
    response = other.get(ROOT)
    # Another SSO session: the stolen token is not this browser's, so it signs in afresh.
    assert response.status_code == 302 and response["Location"].startswith("/t/acme/oauth2/authorize")
    page, _ = follow(other, response)
    assert "Signed in as admin (admin)" in page.content.decode()
    assert "Target" not in page.content.decode()


def test_each_organization_has_its_own_namespace(client: Client, world: World) -> None:
    from tests.myaccount.helpers import org_base, share_myaccount

    share_myaccount(world)
    sign_in(client, world.target)
    open_myaccount(client)
    # The target is shared into Acme EU, but this SSO session is the root's: the EU My Account
    # signs in there separately (with its own state), never reusing the root's token.
    response = client.get(org_base(world.eu))
    assert response.status_code == 302
    assert response["Location"].startswith(f"/t/acme/o/{world.eu.pk}/oauth2/authorize")
    assert f"actas.myaccount:{world.eu.pk}" not in client.session


def test_state_is_bound_to_the_sso_session_it_was_minted_in(client: Client, world: World) -> None:
    sign_in(client, world.target)
    open_myaccount(client)
    copied = client.session[f"actas.myaccount:{world.root.pk}"]
    other = sign_in(Client(), world.target)  # the same person, another browser and SSO session
    session = other.session
    session[f"actas.myaccount:{world.root.pk}"] = copied
    session.save()
    response = other.get(ROOT)
    assert response.status_code == 302 and response["Location"].startswith("/t/acme/oauth2/authorize")
