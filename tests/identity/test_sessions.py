"""The SSO session's lifecycle and max_age."""

from __future__ import annotations

import datetime as dt

import time_machine
from django.test import Client, override_settings
from django.utils import timezone

from identity.audit.models import AuditEvent
from identity.services.sessions import (
    sso_session_end,
    sso_session_get_live,
    sso_session_is_fresh,
    sso_session_start,
)
from tests.conftest import World


def test_start_end_and_lookup(world: World) -> None:
    session = sso_session_start(user=world.admin, org=world.root, amr=["pwd"], ip="127.0.0.1")
    assert len(session.sid) >= 43 and session.tenant == world.root
    assert sso_session_get_live(sid=session.sid) == session
    assert sso_session_get_live(sid="") is None and sso_session_get_live(sid="unknown") is None
    sso_session_end(actor=world.admin, session=session, reason="signed-out")
    assert sso_session_get_live(sid=session.sid) is None
    sso_session_end(actor=world.admin, session=session, reason="again")  # idempotent
    assert AuditEvent.objects.filter(action="logout", target_id=str(session.pk)).count() == 1


@override_settings(ACTAS_SSO_SESSION_MAX_AGE=60)
def test_expires(world: World) -> None:
    session = sso_session_start(user=world.admin, org=world.root, amr=["pwd"])
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=61)):
        assert sso_session_get_live(sid=session.sid) is None


def test_max_age(world: World) -> None:
    session = sso_session_start(user=world.admin, org=world.root, amr=["pwd"])
    assert sso_session_is_fresh(session, max_age=None)
    assert not sso_session_is_fresh(session, max_age=0)
    assert sso_session_is_fresh(session, max_age=300)
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=301)):
        assert not sso_session_is_fresh(session, max_age=300)
        assert sso_session_is_fresh(session, max_age=900)


def test_signing_out_of_the_console_revokes_the_sessions_app_tokens(client: Client, world: World) -> None:
    from oauth2_provider.models import AccessToken

    from tests.identity.oauth_helpers import exchange, get_code, make_app

    app = make_app(world)
    code, verifier = get_code(client, world, app)
    assert exchange(client, app, code, verifier).status_code == 200
    assert AccessToken.objects.filter(user=world.target).exists()
    client.post("/t/acme/logout/")
    assert not AccessToken.objects.filter(user=world.target).exists()
