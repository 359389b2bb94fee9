"""Impersonation services under concurrency, and the changes that end a live impersonation
where they happen (issue 13)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client

from identity.models import AuditEvent
from identity.services.sessions import sso_session_start
from impersonation import policy
from impersonation.models import ImpersonationSession, SubjectToken
from impersonation.services import impersonation_begin
from tests.conftest import World, sign_in
from tests.identity.oauth_helpers import App
from tests.impersonation.helpers import (
    Artifacts,
    exchange_tokens,
    get_subject_token,
    impersonation_app,
    subject_authorize_url,
)

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks and deadlocks are PostgreSQL's"
)


@pytest.fixture
def pickup(world: World) -> App:
    return impersonation_app(world)


class _Collect(logging.Handler):
    """Every log record of every thread (pytest's caplog is per test, but threads log too)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _exchange_at_once(app: App, pairs: list[Artifacts]) -> list[Any]:
    """Exchange every pair from its own thread (own client, own database connection), all
    released at the same moment."""
    barrier = threading.Barrier(len(pairs))
    answers: list[Any] = [None] * len(pairs)

    def run(i: int) -> None:
        try:
            client = Client(raise_request_exception=False)
            barrier.wait()
            answers[i] = exchange_tokens(client, app, pairs[i])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(pairs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "an exchange stalled"
    return answers


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_subject_tokens_of_one_sign_in_exchanged_at_once_start_exactly_one_impersonation(
    world: World, pickup: App
) -> None:
    """Several subject tokens of one sign-in, exchanged at the same moment, 50 times: one
    exchange wins, every other one gets the documented JSON error and an audited refusal —
    never a deadlock, a 500 or a second impersonation."""
    collect = _Collect()
    logging.getLogger().addHandler(collect)
    try:
        for round_ in range(50):
            browser = sign_in(Client(), world.impersonator)
            pairs = [get_subject_token(browser, world, pickup, signed_in=True) for _ in range(3)]
            refusals_before = AuditEvent.objects.filter(action="impersonation-refused").count()
            answers = _exchange_at_once(pickup, pairs)
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [200, 400, 400], (round_, [(a.status_code, a.content[:200]) for a in answers])
            for answer in answers:
                assert answer["Content-Type"].startswith("application/json")
                if answer.status_code == 400:
                    assert answer.json()["error"] == "invalid_request"
            live = ImpersonationSession.objects.filter(impersonator=world.impersonator, ended_at__isnull=True)
            assert live.count() == 1
            assert AuditEvent.objects.filter(action="impersonation-refused").count() == refusals_before + 2
            # The next round starts from a clean slate: end this one.
            assert browser.post("/t/acme/impersonation/end").status_code in (200, 302, 303)
            assert not live.exists()
    finally:
        logging.getLogger().removeHandler(collect)
    messages = [r.getMessage() for r in collect.records] + [
        str(r.exc_info[1]) for r in collect.records if r.exc_info and r.exc_info[1]
    ]
    assert not [m for m in messages if "deadlock" in m.lower()]
    assert not [r for r in collect.records if r.name == "django.request" and r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "invisible",
    [
        "\u200b",  # zero-width space
        "\u200b\u200b\u200b",
        "\ufeff\u2060",  # byte-order mark, word joiner
        "\u3164",  # Hangul filler
        "\u2800 \u2800",  # blank braille patterns
        "\u202e\u202c",  # bidirectional override and pop
        "\u0301",  # a combining accent on nothing
    ],
)
def test_a_reason_of_invisible_characters_is_no_reason(
    client: Client, world: World, pickup: App, invisible: str
) -> None:
    """Where a reason is required, it must show something: the confirmation page refuses a
    reason a reader of the audit trail or the email would see as blank."""
    sign_in(client, world.impersonator)
    page = client.get(subject_authorize_url("pickup", world.target))
    response = client.post(
        page.context["action"],
        {"pending": page.context["pending"], "decision": "impersonate", "reason": invisible},
    )
    assert response.status_code == 400
    assert "invisible characters alone" in response.content.decode()
    assert not SubjectToken.objects.exists()


def test_a_visible_reason_is_kept_without_its_invisible_characters(
    client: Client, world: World, pickup: App
) -> None:
    artifacts = get_subject_token(client, world, pickup, reason="\u202eTicket\u200b 42\u202c")
    assert exchange_tokens(Client(), pickup, artifacts).status_code == 200
    session = ImpersonationSession.objects.get(subject=world.target)
    assert session.reason == "Ticket 42"
    start = AuditEvent.objects.get(action="impersonation-start", target_id=str(session.pk))
    assert start.data["reason"] == "Ticket 42"


def test_the_service_refuses_an_invisible_reason_whoever_calls_it(world: World, pickup: App) -> None:
    """Not only the pages: the start itself refuses a blank reason where one is required."""
    session = sso_session_start(user=world.impersonator, org=world.root, amr=["pwd"])
    with pytest.raises(policy.Refused) as refused:
        impersonation_begin(
            actor=world.impersonator,
            subject_id=str(world.target.pk),
            org=world.root,
            application=pickup.app,
            sso_session=session,
            reason="\u200b \u200b",
            read_only=False,
            channel=ImpersonationSession.Channel.CONSOLE,
        )
    assert refused.value.code == "reason-required"
    assert not ImpersonationSession.objects.exists()
