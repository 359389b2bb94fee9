"""The failure budget behind sign-in, and the client address it is keyed on."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.test import Client, override_settings

from identity.audit.models import AuditEvent
from identity.authenticators import AccountGate, FailureBudget, account_delay
from identity.context import client_ip
from identity.models import User
from tests.conftest import PASSWORD, World, make_user
from tests.service_fixtures import redis_problem, require_services


def test_budget_holds_under_a_concurrent_burst(budget_cache: BudgetCache) -> None:
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


# --- Budgets per account and address, and the account-wide delay --------------------------
#
# Personas: bob (Acme), another bob (Acme US, a different person with the same username),
# a stranger guessing bob's password from one address, and a botnet of a few addresses.
# Every test runs on local memory and, as a `services` test, on the real Redis cache.

LOGIN = "/t/acme/login/"
BOBS_HOME = "198.51.100.7"
STRANGER = "203.0.113.66"
BOTNET = ["192.0.2.10", "192.0.2.11", "192.0.2.12"]
THROTTLED_TEXT = b"Too many failed sign-in attempts. Wait a few minutes"
WRONG_TEXT = b"The username or password is incorrect."


@dataclass
class BudgetCache:
    backend: str
    redis_location: str = ""
    key_prefix: str = ""


@pytest.fixture(params=["locmem", pytest.param("redis", marks=pytest.mark.services)])
def budget_cache(request: pytest.FixtureRequest, settings: Any) -> Iterator[BudgetCache]:
    """The cache the budgets count in: local memory, or the real Redis of ``REDIS_URL`` (or the
    Redis broker) under a key prefix of this test alone, removed afterwards."""
    if request.param == "locmem":
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": f"signin-{uuid.uuid4().hex}",
            }
        }
        yield BudgetCache("locmem")
        return
    location = settings.REDIS_URL
    problem = redis_problem(location, "REDIS_URL")
    if problem:
        if require_services():
            pytest.fail(f"REQUIRE_SERVICES=1: {problem}", pytrace=False)
        pytest.skip(f"needs Redis: {problem}")
    prefix = f"actas-test-signin-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "KEY_PREFIX": prefix,
        }
    }
    yield BudgetCache("redis", location, prefix)
    client = redis.Redis.from_url(location)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def bob(world: World) -> User:
    return make_user(world.root, "bob")


@pytest.fixture
def other_bob(world: World) -> User:
    return make_user(world.us, "bob")


def _sign_in(address: str, username: str, password: str, url: str = LOGIN) -> Any:
    """One attempt from ``address`` in a browser of its own."""
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password})


def _slowed(response: Any) -> int | None:
    """The seconds a refusal by the account-wide delay asks to wait, or None."""
    found = re.search(rb"Wait (\d+) seconds? and try again", response.content)
    return int(found.group(1)) if found else None


def test_a_stranger_cannot_lock_bob_out(budget_cache: BudgetCache, bob: User) -> None:
    for _ in range(5):
        assert WRONG_TEXT in _sign_in(STRANGER, "bob", "guess-guess").content
    # The stranger's address is spent for bob, even with the right password...
    refused = _sign_in(STRANGER, "bob", PASSWORD)
    assert refused.status_code == 400 and THROTTLED_TEXT in refused.content
    # ...bob, from an address that has not failed, signs in.
    assert _sign_in(BOBS_HOME, "bob", PASSWORD).status_code == 302
    assert AuditEvent.objects.filter(action="login-throttled", target_id="bob").count() == 1


def test_the_same_username_in_two_organizations_has_two_budgets(
    budget_cache: BudgetCache, world: World, bob: User, other_bob: User
) -> None:
    for _ in range(5):
        _sign_in(STRANGER, "bob", "guess-guess")
    assert THROTTLED_TEXT in _sign_in(STRANGER, "bob", PASSWORD).content
    # The other bob is another account: the same address has a budget for him.
    us_login = f"/t/acme/o/{world.us.pk}/login/"
    assert _sign_in(STRANGER, "bob", PASSWORD, us_login).status_code == 302


def test_an_address_that_fails_too_often_is_refused_for_every_account(
    budget_cache: BudgetCache, world: World, bob: User, settings: Any
) -> None:
    settings.ACTAS_LOGIN_MAX_FAILURES_PER_IP = 4
    for username in ("bob", "target", "nobody", "no-one"):
        assert WRONG_TEXT in _sign_in(STRANGER, username, "guess-guess").content
    assert THROTTLED_TEXT in _sign_in(STRANGER, "admin", PASSWORD).content
    assert _sign_in(BOBS_HOME, "admin", PASSWORD).status_code == 302


def test_distributed_guessing_is_slowed_down_not_refused_to_bob(
    budget_cache: BudgetCache, bob: User, settings: Any
) -> None:
    settings.ACTAS_LOGIN_ACCOUNT_DELAY_AFTER = 3
    settings.ACTAS_LOGIN_ACCOUNT_DELAY_MAX = 60
    for address in BOTNET:  # a first guess from each address: 3 failures, no delay yet
        assert WRONG_TEXT in _sign_in(address, "bob", "guess-guess").content
    # The 4th failure passes; the next guess from an address that has failed waits 1 s.
    assert WRONG_TEXT in _sign_in(BOTNET[0], "bob", "guess-again").content
    refused = _sign_in(BOTNET[1], "bob", "guess-again")
    assert refused.status_code == 400 and _slowed(refused) == 1
    # An address that failed waits, even with the right password...
    assert _slowed(_sign_in(BOTNET[2], "bob", PASSWORD)) == 1
    assert AuditEvent.objects.filter(action="login-failure", target_id="bob").count() == 4  # not checked
    # ...while bob, from an address that has not failed, is not held up.
    assert _sign_in(BOBS_HOME, "bob", PASSWORD).status_code == 302
    time.sleep(1.1)
    # The wait grows with each failure: 1 s, then 2 s.
    assert WRONG_TEXT in _sign_in(BOTNET[1], "bob", "guess-again").content
    assert _slowed(_sign_in(BOTNET[2], "bob", "guess-again")) == 2
    assert AuditEvent.objects.filter(action="login-slowed", target_id="bob").count() == 1


def test_unknown_usernames_meet_the_same_budgets_as_accounts(
    budget_cache: BudgetCache, bob: User, settings: Any
) -> None:
    """Whether an account exists shows neither in the answers nor in when they change."""
    settings.ACTAS_LOGIN_ACCOUNT_DELAY_AFTER = 6

    def story(username: str, first: str, second: str, third: str) -> list[tuple[int, str]]:
        # Six guesses from one address (the sixth is refused), then a guess from each of two
        # more addresses, then a second one from each (past the account-wide threshold).
        attempts = [first] * 6 + [second, third, second, third]
        return [_outcome(_sign_in(address, username, "guess-guess")) for address in attempts]

    known = story("bob", "192.0.2.1", "192.0.2.2", "192.0.2.3")
    unknown = story("nobody", "192.0.2.4", "192.0.2.5", "192.0.2.6")
    assert known == unknown
    assert known == [(400, "wrong")] * 5 + [(400, "throttled")] + [(400, "wrong")] * 3 + [(400, "wait 2")]


def _outcome(response: Any) -> tuple[int, str]:
    seconds = _slowed(response)
    if seconds is not None:
        return response.status_code, f"wait {seconds}"
    if THROTTLED_TEXT in response.content:
        return response.status_code, "throttled"
    if WRONG_TEXT in response.content:
        return response.status_code, "wrong"
    return response.status_code, "other"


def test_the_delay_doubles_from_the_threshold_up_to_the_cap(settings: Any) -> None:
    settings.ACTAS_LOGIN_ACCOUNT_DELAY_AFTER = 10
    settings.ACTAS_LOGIN_ACCOUNT_DELAY_MAX = 60
    assert [account_delay(n) for n in range(1, 19)] == [0] * 10 + [1, 2, 4, 8, 16, 32, 60, 60]
    assert account_delay(10_000) == 60


def test_of_a_burst_at_a_closed_account_one_attempt_passes(budget_cache: BudgetCache) -> None:
    results: list[int] = []
    barrier = threading.Barrier(20)

    def attempt() -> None:
        barrier.wait()
        results.append(AccountGate("user:burst-target").claim(30))

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20 and results.count(0) == 1
    assert all(1 <= seconds <= 30 for seconds in results if seconds)  # the others are told to wait


def test_addresses_of_one_ipv6_network_share_a_budget(budget_cache: BudgetCache, bob: User) -> None:
    for host in range(1, 6):  # a /64 holds 2^64 addresses: changing the last bits buys nothing
        _sign_in(f"2001:db8:1:2::{host}", "bob", "guess-guess")
    assert THROTTLED_TEXT in _sign_in("2001:db8:1:2::99", "bob", PASSWORD).content
    assert _sign_in("2001:db8:1:3::1", "bob", PASSWORD).status_code == 302


def test_a_unit_given_back_after_its_counter_expired_leaves_nothing(budget_cache: BudgetCache) -> None:
    budget = FailureBudget("account-address", "user:someone|192.0.2.1", 5)
    assert [budget.reserve(), budget.reserve()] == [1, 2]
    budget.release()
    assert cache.get(budget.key) == 1
    cache.delete(budget.key)  # the window ended before the unit came back
    budget.release()
    assert cache.get(budget.key) is None
    assert budget.reserve() == 1


@pytest.mark.services
@pytest.mark.parametrize("budget_cache", ["redis"], indirect=True)
def test_every_counter_in_redis_expires_within_the_window(
    budget_cache: BudgetCache, bob: User, settings: Any
) -> None:
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.1"):
        _sign_in(address, "bob", "guess-guess")
    assert _sign_in(BOBS_HOME, "bob", PASSWORD).status_code == 302  # gives its units back
    AccountGate(f"user:{bob.pk}").claim(30)
    client = redis.Redis.from_url(budget_cache.redis_location)
    try:
        keys = list(client.scan_iter(match=f"{budget_cache.key_prefix}:*"))
        ttls = {key.decode(): client.ttl(key) for key in keys}
    finally:
        client.close()
    # <prefix>:<version>:actas:signin:<kind>:<digest>
    kinds = {name.split(":")[4] for name in ttls}
    assert {"account-address", "address", "account", "gate"} <= kinds
    window = settings.ACTAS_LOGIN_FAILURE_WINDOW
    assert all(0 < ttl <= window for ttl in ttls.values()), ttls
