"""Is this process ready to serve: the database answers, the Redis broker (and cache) answer,
the signing keys load. Each check runs in a thread of its own and the whole lot is given
:data:`DEADLINE` seconds, so a probe never hangs on a service that does not answer."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import connections

from identity.oauth.checks import check_signing_keys

log = logging.getLogger(__name__)

DEADLINE = 2.0  # seconds for all checks together
REDIS_TIMEOUT = 1.0
# libpq's minimum: a connection attempt to a silent server gives up after this.
DB_CONNECT_TIMEOUT = 2

OK = "ok"
NOT_CONFIGURED = "not configured"
FAILED = "failed"
TIMEOUT = "timeout"


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(state in (OK, NOT_CONFIGURED) for state in self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [name for name, state in self.checks.items() if state not in (OK, NOT_CONFIGURED)]


def check_database() -> str:
    """``SELECT 1`` on a connection of its own (never the request's, which may be mid-use or
    pooled), opened with a connect timeout and closed at once."""
    wrapper = connections.create_connection("default")
    params = dict(wrapper.settings_dict)
    if wrapper.vendor == "postgresql":
        params["OPTIONS"] = {**params.get("OPTIONS", {}), "connect_timeout": DB_CONNECT_TIMEOUT}
    wrapper.settings_dict = params
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        wrapper.close()
        if wrapper.connection is not None:  # SQLite keeps an in-memory database (tests) open
            wrapper.connection.close()
    return OK


def _ping(url: str) -> str:
    client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()
    return OK


def broker_url() -> str:
    url = str(settings.CELERY_BROKER_URL or "")
    return url if url.startswith(("redis://", "rediss://")) else ""


def check_broker() -> str:
    """The Celery broker when it is Redis; the embedded mode (tasks in-process) has none."""
    url = broker_url()
    return _ping(url) if url else NOT_CONFIGURED


def check_cache() -> str:
    """The Redis cache (sign-in failure budgets) when it is not the broker's Redis URL."""
    url = str(getattr(settings, "REDIS_URL", "") or "")
    return _ping(url) if url and url != broker_url() else NOT_CONFIGURED


def check_keys() -> str:
    """identity.oauth.checks' start-up check of the signing key set, run again."""
    errors = check_signing_keys()
    if errors:
        log.warning("readiness: signing keys: %s", "; ".join(f"{e.id}: {e.msg}" for e in errors))
        return FAILED
    return OK


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "broker": check_broker,
    "cache": check_cache,
    "signing_keys": check_keys,
}


def readiness(checks: dict[str, Callable[[], str]] | None = None, *, deadline: float = DEADLINE) -> Readiness:
    """Run every check at once; one not done within ``deadline`` seconds reports ``timeout``
    (its daemon thread is left to end on its own timeout)."""
    results: dict[str, str] = {}

    def run(name: str, check: Callable[[], str]) -> None:
        try:
            results[name] = check()
        except Exception as error:  # a failing service, whatever its client raises
            log.warning("readiness: %s failed: %s", name, error.__class__.__name__, exc_info=True)
            results[name] = FAILED

    threads = {
        name: threading.Thread(target=run, args=(name, check), name=f"readyz-{name}", daemon=True)
        for name, check in (checks or CHECKS).items()
    }
    start = time.monotonic()
    for thread in threads.values():
        thread.start()
    for thread in threads.values():
        thread.join(timeout=max(0.0, start + deadline - time.monotonic()))
    return Readiness(checks={name: results.get(name, TIMEOUT) for name in threads})
