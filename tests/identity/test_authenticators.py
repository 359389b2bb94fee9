"""The failure budget behind sign-in, and the client address it is keyed on."""

from __future__ import annotations

import threading
from typing import Any

from django.test import Client, override_settings

from identity.authenticators import FailureBudget
from identity.context import client_ip
from identity.models import AuditEvent
from tests.conftest import PASSWORD, World


def test_budget_holds_under_a_concurrent_burst() -> None:
    budget_limit = 5
    results: list[int] = []
    barrier = threading.Barrier(20)

    def attempt() -> None:
        barrier.wait()
        results.append(FailureBudget("user", "burst-target", budget_limit).reserve())

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, 21))
    assert sum(1 for n in results if n <= budget_limit) == budget_limit


def test_success_gives_its_unit_back(world: World) -> None:
    def attempt(password: str) -> Any:
        return Client().post("/t/acme/login/", {"username": "target", "password": password})  # a new browser

    with override_settings(ACTAS_LOGIN_MAX_FAILURES_PER_USER=2):
        for _ in range(5):  # successes never use up the budget
            assert attempt(PASSWORD).status_code == 302
        attempt("wrong-one-1")
        attempt("wrong-one-2")
        response = attempt(PASSWORD)
    assert b"Too many failed sign-in attempts" in response.content


@override_settings(ACTAS_LOGIN_MAX_FAILURES_PER_USER=2)
def test_a_flood_is_audited_once(client: Client, world: World) -> None:
    for _ in range(10):
        client.post("/t/acme/login/", {"username": "target", "password": "wrong-wrong"})
    assert AuditEvent.objects.filter(action="login-failure").count() == 2
    assert AuditEvent.objects.filter(action="login-throttled").count() == 1


def test_overlong_username_is_a_failure_not_an_error(client: Client, world: World) -> None:
    response = client.post("/t/acme/login/", {"username": "u" * 150, "password": "x"})
    assert response.status_code == 400
    assert AuditEvent.objects.filter(action="login-failure").exists()
    response = client.post("/t/acme/login/", {"username": "u" * 5000, "password": "x"})
    assert response.status_code == 400


def test_client_ip_trusts_only_configured_proxies() -> None:
    meta = {"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7"}
    assert client_ip(meta, trusted_proxies=0) == "10.0.0.9"
    assert client_ip(meta, trusted_proxies=1) == "203.0.113.7"
    assert client_ip(meta, trusted_proxies=2) == "6.6.6.6"
    assert client_ip(meta, trusted_proxies=3) == "10.0.0.9"  # fewer hops than proxies: the socket
    assert client_ip({"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "junk"}, trusted_proxies=1) is None
