"""Real-service fixtures: PostgreSQL / Redis checks and a live Celery worker.

Registered from ``tests/conftest.py`` with ``pytest_plugins = ["tests.service_fixtures"]``.

* With ``REQUIRE_SERVICES=1`` (set by ``.ci/run``) the session refuses to start unless
  ``DATABASE_URL`` is a reachable PostgreSQL and ``CELERY_BROKER_URL`` (and ``REDIS_URL``, when
  set) a reachable Redis: a missing service fails the run instead of skipping tests.
* ``redis_broker`` (session): the broker URL; skips (or, under ``REQUIRE_SERVICES=1``, fails)
  when Redis is not configured or not reachable.
* ``celery_worker_live`` (function): a real Celery worker, in a thread of this process, consuming
  from the real Redis broker, so a test can ``task.delay(...).get(timeout=...)``.
"""

from __future__ import annotations

import os
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from celery import Celery
    from celery.worker import WorkController

POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql", "postgis"}
REDIS_SCHEMES = {"redis", "rediss"}
CONNECT_TIMEOUT = 3  # seconds; a service that takes longer to answer counts as unreachable
RESULT_DB = 2  # Redis database for task results of the live worker (0 broker, 1 cache)


def require_services() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes", "on"}


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _scheme(url: str) -> str:
    return urllib.parse.urlsplit(url).scheme.lower()


def postgres_problem(url: str) -> str | None:
    """Why ``url`` is not a reachable PostgreSQL server, or None when it is."""
    if not url:
        return "DATABASE_URL is not set (expected e.g. postgres://postgres@127.0.0.1:5432/test)"
    scheme = _scheme(url)
    if scheme not in POSTGRES_SCHEMES:
        return f"DATABASE_URL is not a PostgreSQL URL: {_redacted(url)}"
    import psycopg

    conninfo = "postgresql" + url[len(scheme) :]
    try:
        psycopg.connect(conninfo, connect_timeout=CONNECT_TIMEOUT).close()
        return None
    except psycopg.Error as exc:
        first_error = exc
    try:
        # The named database may not exist yet; the test database is created through the
        # "postgres" maintenance database, so reaching that is enough.
        psycopg.connect(conninfo, dbname="postgres", connect_timeout=CONNECT_TIMEOUT).close()
        return None
    except psycopg.Error:
        pass
    message = " ".join(str(first_error).split())
    return f"PostgreSQL at {_redacted(url)} is unreachable: {message}"


def redis_problem(url: str, name: str) -> str | None:
    """Why ``url`` (from the environment variable ``name``) is not a reachable Redis, or None."""
    if not url:
        return f"{name} is not set (expected e.g. redis://127.0.0.1:6379/0)"
    if _scheme(url) not in REDIS_SCHEMES:
        return f"{name} is not a Redis URL: {_redacted(url)}"
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 0),  # one attempt: answer "unreachable" fast
    )
    try:
        client.ping()
        return None
    except (redis.RedisError, OSError) as exc:
        return f"Redis at {_redacted(url)} ({name}) is unreachable: {exc}"
    finally:
        client.close()


def service_problems() -> list[str]:
    problems = [postgres_problem(os.environ.get("DATABASE_URL", ""))]
    problems.append(redis_problem(os.environ.get("CELERY_BROKER_URL", ""), "CELERY_BROKER_URL"))
    if os.environ.get("REDIS_URL"):
        problems.append(redis_problem(os.environ["REDIS_URL"], "REDIS_URL"))
    return [p for p in problems if p]


# Warnings that third-party code raises unavoidably while the live worker runs. pytest turns
# warnings into errors (filterwarnings = error); in the worker thread such an error would make
# the task fail. Each filter names the message and the module that triggers it.
WARNING_FILTERS = [
    # Celery 5.7.0's Redis result backend stores results with setex(), which redis-py 8.1
    # deprecates in favour of set(ex=...).
    r"ignore:Call to deprecated setex\.:DeprecationWarning:celery\.backends\.redis",
]


def pytest_configure(config: pytest.Config) -> None:
    for line in WARNING_FILTERS:
        config.addinivalue_line("filterwarnings", line)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not require_services() or hasattr(session.config, "workerinput"):
        return  # (xdist workers: the controller has already checked)
    problems = service_problems()
    if problems:
        pytest.exit(
            "REQUIRE_SERVICES=1 but a required service is missing, so the run fails:\n  - "
            + "\n  - ".join(problems),
            returncode=1,
        )


def pytest_report_header(config: pytest.Config) -> str:
    database = os.environ.get("DATABASE_URL")
    broker = os.environ.get("CELERY_BROKER_URL")
    return (
        f"actas services: database={_redacted(database) if database else 'embedded SQLite'}, "
        f"broker={_redacted(broker) if broker else 'none (eager tasks)'}, "
        f"REQUIRE_SERVICES={'1' if require_services() else '0'}"
    )


@pytest.fixture(scope="session")
def redis_broker() -> str:
    """The Celery broker URL (``CELERY_BROKER_URL``), checked to answer a PING.

    Skips the test when Redis is not configured or not reachable; fails it instead under
    ``REQUIRE_SERVICES=1``.
    """
    url = os.environ.get("CELERY_BROKER_URL", "")
    problem = redis_problem(url, "CELERY_BROKER_URL")
    if problem:
        if require_services():
            pytest.fail(f"REQUIRE_SERVICES=1: {problem}", pytrace=False)
        pytest.skip(f"needs Redis: {problem}")
    return url


def result_backend_url(broker_url: str) -> str:
    """Redis database ``RESULT_DB`` on the broker's server (same scheme, host and credentials)."""
    parts = urllib.parse.urlsplit(broker_url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{RESULT_DB}"))


def _current_backend(app: Celery) -> Any:
    # Celery caches the result backend per app (thread-safe backends) or per thread.
    return app._backend_cache or getattr(app._local, "backend", None)


def _forget_backend(app: Celery) -> None:
    """Make the app build its result backend afresh from ``app.conf``."""
    backend = _current_backend(app)
    if backend is not None:
        consumer = getattr(backend, "result_consumer", None)  # Redis backend's pub/sub
        if consumer is not None and hasattr(consumer, "stop"):
            consumer.stop()
            # Results still pending (a test that timed out) would otherwise try to unsubscribe
            # on the closed connection when garbage-collected, possibly at interpreter exit.
            subscribed = getattr(consumer, "subscribed_to", None)
            if subscribed is not None:
                subscribed.clear()
        client = backend.__dict__.get("client")  # a cached redis client, if one was made
        if client is not None:
            client.connection_pool.disconnect()
    app._backend_cache = None
    if hasattr(app._local, "backend"):
        del app._local.backend


def _close_worker_db_connections(test_thread: int) -> Any:
    """A ``task_postrun`` receiver closing the database connections of the worker's thread.

    Celery's Django fix-up closes them after each task too, except an in-memory SQLite
    connection (the embedded test database), which Django never closes because that would
    drop the database; left to the garbage collector it raises ResourceWarning (an error here).
    The shared-cache test database lives on through the test thread's own connection.
    """

    def close(sender: Any = None, **kwargs: Any) -> None:
        if threading.get_ident() == test_thread or getattr(sender.request, "is_eager", False):
            return  # an eager task in the test's thread: its connection is the test's
        from django.db import connections
        from django.db.backends.base.base import BaseDatabaseWrapper

        for conn in connections.all(initialized_only=True):
            if conn.vendor == "sqlite" and conn.is_in_memory_db():  # type: ignore[attr-defined]
                BaseDatabaseWrapper.close(conn)
            else:
                conn.close()

    return close


def _delete_queue(app: Celery, name: str) -> None:
    """Drop the worker's private queue, its leftover messages and its binding on the broker."""
    queue = app.amqp.queues[name]
    with app.connection_for_write() as conn:
        bound = queue(conn.default_channel)
        bound.declare()  # registers the binding on this channel, so delete() also removes it
        bound.delete()


@pytest.fixture
def celery_worker_live(
    redis_broker: str, transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WorkController]:
    """A real Celery worker of ``config.celery.app`` on the real Redis broker, for one test.

    Tasks sent during the test (``task.delay(...)``) go over Redis to the worker, which runs
    them in its own thread; results come back through Redis (database ``RESULT_DB`` on the
    broker's server), so ``task.delay(...).get(timeout=10)`` works.

    **Mark such tests** ``@pytest.mark.django_db(transaction=True)``: the worker thread has its
    own database connection and sees only committed rows, and an ordinary ``django_db`` test
    never commits (this fixture requests ``transactional_db`` so the test is transactional
    either way). The worker's connection is closed after every task (Celery's Django fix-up),
    so nothing holds the test database open at teardown.

    The worker consumes a private queue (made the default queue while the test runs), so
    parallel runs (pytest-xdist, another checkout on the same Redis) and messages left over
    from earlier runs cannot reach it. ``task_always_eager`` is off during the test; the app's
    configuration and result backend are restored afterwards.
    """
    from celery import signals
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    queue = f"actas-test-{uuid.uuid4().hex[:12]}"
    overrides = {
        "task_always_eager": False,
        "result_backend": result_backend_url(redis_broker),
        # One backend object shared by the test and the worker thread (a redis client is
        # thread-safe), so teardown can close its connections.
        "result_backend_thread_safe": True,
        "task_default_queue": queue,
    }
    # (result_backend_thread_safe has no default entry: .get() gives None, which reads as off.)
    saved = {key: app.conf.get(key) for key in overrides}
    # start_worker() calls app.log.setup(), which would replace the root logger's handlers
    # (pytest's log capture, Django's LOGGING), set warning filters and capture warnings
    # process-wide. Keep the test process's logging and warnings as they are.
    monkeypatch.setattr(app.log, "setup", lambda *args, **kwargs: False)

    close_db = _close_worker_db_connections(threading.get_ident())
    signals.task_postrun.connect(close_db, weak=False)

    _forget_backend(app)
    app.conf.update(overrides)
    try:
        with start_worker(
            app,
            pool="solo",
            concurrency=1,
            perform_ping_check=False,
            queues=[queue],
            shutdown_timeout=30,
        ) as worker:
            yield worker
    finally:
        signals.task_postrun.disconnect(close_db)
        _forget_backend(app)
        try:
            _delete_queue(app, queue)
        finally:
            app.conf.update(saved)


class SmtpSink:
    """Messages received by the in-process SMTP server, as ``email.message.Message`` objects."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        import email

        with self._lock:
            self.messages.append(email.message_from_bytes(envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Any]:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        with self._lock:
            return list(self.messages)


@pytest.fixture
def smtp_sink(settings: Any) -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on a free loopback port; Django's default mailer points at
    it for the test."""
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 5},
        }
    }
    try:
        yield sink
    finally:
        controller.stop()
