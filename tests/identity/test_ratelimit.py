"""Per-address request rate limits on the token and introspection endpoints and the sign-in
POST, and the client address behind a configured proxy."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from django.core.cache import caches
from django.test import Client, override_settings

from identity.audit.models import AuditEvent
from identity.ratelimit import Rate, hit, parse_rate
from tests.conftest import PASSWORD, World

LOGIN = "/t/acme/login/"


@pytest.fixture
def small_limits(settings: Any) -> None:
    settings.ACTAS_RATE_LIMITS = {"token": "3/60", "introspect": "2/60", "signin": "2/60"}


def _token(client: Client, url: str = "/t/acme/oauth2/token", **extra: Any) -> Any:
    return client.post(url, {"grant_type": "client_credentials", "client_id": "nobody"}, **extra)


def test_token_endpoint_answers_429_slow_down_past_the_limit(
    client: Client, world: World, small_limits: None
) -> None:
    assert [_token(client).status_code for _ in range(3)] == [401, 401, 401]
    refused = _token(client)
    assert refused.status_code == 429
    assert refused.json()["error"] == "slow_down" and "error_description" in refused.json()
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["Cache-Control"] == "no-store"
    # The child organization's token URL counts against the same address.
    assert _token(client, f"/t/acme/o/{world.eu.pk}/oauth2/token").status_code == 429
    # Another address has its own budget.
    assert _token(Client(REMOTE_ADDR="10.1.2.3")).status_code == 401


def test_introspection_is_limited_on_its_own(client: Client, world: World, small_limits: None) -> None:
    url = "/t/acme/oauth2/introspect"
    assert [client.post(url, {"token": "x"}).status_code for _ in range(2)] == [401, 401]
    refused = client.post(url, {"token": "x"})
    assert refused.status_code == 429 and refused.json()["error"] == "slow_down"
    assert int(refused["Retry-After"]) >= 1
    assert _token(client).status_code == 401  # the token budget is untouched


def test_signin_post_is_limited_with_a_page(client: Client, world: World, small_limits: None) -> None:
    for _ in range(2):
        assert client.post(LOGIN, {"username": "target", "password": "wrong"}).status_code == 400
    refused = client.post(LOGIN, {"username": "target", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert b"Too many sign-in attempts" in refused.content
    assert "text/html" in refused["Content-Type"]
    # The refused attempt never reached the authenticator: no session, no third failure.
    assert not AuditEvent.objects.filter(action="login-success").exists()
    assert AuditEvent.objects.filter(action="login-failure").count() == 2
    assert client.get(LOGIN).status_code == 200  # showing the page is not limited


def test_limits_can_be_switched_off(client: Client, world: World, small_limits: None, settings: Any) -> None:
    settings.ACTAS_RATE_LIMITS_ENABLED = False
    assert {_token(client).status_code for _ in range(10)} == {401}
    settings.ACTAS_RATE_LIMITS_ENABLED = True
    settings.ACTAS_RATE_LIMITS = {"token": "off"}
    assert {_token(client).status_code for _ in range(10)} == {401}


@override_settings(ACTAS_TRUSTED_PROXIES=1)
def test_behind_a_proxy_the_forwarded_address_is_limited(
    client: Client, world: World, small_limits: None
) -> None:
    for _ in range(3):
        _token(client, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert _token(client, HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 429
    assert _token(client, HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 401


def test_without_a_trusted_proxy_a_forged_header_does_not_escape(
    client: Client, world: World, small_limits: None
) -> None:
    for n in range(3):
        _token(client, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    assert _token(client, HTTP_X_FORWARDED_FOR="198.51.100.99").status_code == 429


def test_fixed_window_resets_and_retry_after_counts_down() -> None:
    rate = Rate(2, 60)
    start = 6000.0 * 60 + 15  # 15 s into a window
    assert hit("probe", rate, "192.0.2.1", now=start) == (True, 45)
    assert hit("probe", rate, "192.0.2.1", now=start + 1)[0]
    assert hit("probe", rate, "192.0.2.1", now=start + 30) == (False, 15)
    assert hit("probe", rate, "192.0.2.1", now=start + 45) == (True, 60)  # the next window


def test_an_ipv6_slash_64_shares_one_budget_and_ipv4_addresses_do_not() -> None:
    rate = Rate(2, 60)
    now = 7000.0 * 60
    assert hit("v6", rate, "2001:db8:1:2::1", now=now)[0]
    assert hit("v6", rate, "2001:db8:1:2:ffff::9", now=now)[0]
    # a third address of the same /64 is over the budget; the next /64 has its own
    assert hit("v6", rate, "2001:db8:1:2:aaaa::3", now=now) == (False, 60)
    assert hit("v6", rate, "2001:db8:1:3::1", now=now)[0]
    for host in range(1, 4):
        assert hit("v4", rate, f"198.51.100.{host}", now=now)[0]


def test_parse_rate() -> None:
    assert parse_rate("600/60") == Rate(600, 60)
    assert parse_rate("10") == Rate(10, 60)
    assert parse_rate("off") is None and parse_rate("") is None and parse_rate("0") is None
    with pytest.raises(ValueError):
        parse_rate("-1/60")
    with pytest.raises(ValueError):
        parse_rate("many")


# --- the client address recorded by the audit trail --------------------------------------------


def _signed_in_ip(world: World, **meta: Any) -> str | None:
    client = Client(REMOTE_ADDR="10.0.0.9")
    response = client.post(LOGIN, {"username": "target", "password": PASSWORD}, **meta)
    assert response.status_code == 302
    return AuditEvent.objects.filter(action="login-success").latest("seq").ip


@override_settings(ACTAS_TRUSTED_PROXIES=1)
def test_signin_audit_records_the_forwarded_address_behind_one_proxy(world: World) -> None:
    assert _signed_in_ip(world, HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7") == "203.0.113.7"


@override_settings(ACTAS_TRUSTED_PROXIES=0)
def test_signin_audit_ignores_forwarded_for_without_a_proxy(world: World) -> None:
    assert _signed_in_ip(world, HTTP_X_FORWARDED_FOR="203.0.113.7") == "10.0.0.9"


# --- Redis: one round trip; a cache outage does not take the endpoints down --------------------


def _redis_url() -> str:
    return os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(_redis_url(), socket_connect_timeout=0.5).ping())
    except Exception:
        return False


def _redis_cache(location: str) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "KEY_PREFIX": f"actas-test-rl-{os.getpid()}",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }


@pytest.mark.services
@pytest.mark.skipif(not _redis_up() and os.environ.get("REQUIRE_SERVICES") != "1", reason="needs Redis")
def test_redis_counter_is_one_round_trip_and_expires() -> None:
    with override_settings(CACHES=_redis_cache(_redis_url())):
        backend = caches["default"]
        address = f"192.0.2.{os.getpid() % 250}"
        now = time.time()
        results = [hit("probe", Rate(3, 60), address, now=now)[0] for _ in range(4)]
        assert results == [True, True, True, False]
        client = backend._cache.get_client()  # type: ignore[attr-defined]
        keys = client.keys(f"actas-test-rl-{os.getpid()}:*")
        assert len(keys) == 1 and 0 < client.ttl(keys[0]) <= 61
        client.delete(*keys)
        started = time.perf_counter()
        for _ in range(200):
            hit("probe", Rate(10_000, 60), address)
        per_request_ms = (time.perf_counter() - started) / 200 * 1000
        client.delete(*client.keys(f"actas-test-rl-{os.getpid()}:*"))
    assert per_request_ms < 2.0  # about 0.1 ms on an idle machine; generous for a loaded one


def test_an_unreachable_cache_lets_requests_through() -> None:
    with override_settings(CACHES=_redis_cache("redis://127.0.0.1:1/0")):
        assert hit("probe", Rate(1, 60), "192.0.2.1") == (True, 0)
        assert hit("probe", Rate(1, 60), "192.0.2.1") == (True, 0)
