"""Real-service fixtures: PostgreSQL / Redis checks and a live Celery worker.

Registered from ``tests/conftest.py`` with ``pytest_plugins = ["tests.service_fixtures"]``.

* With ``REQUIRE_SERVICES=1`` (set by ``.ci/run``) the session refuses to start unless
  ``DATABASE_URL`` is a reachable PostgreSQL and ``CELERY_BROKER_URL`` (and ``REDIS_URL``, when
  set) a reachable Redis: a missing service fails the run instead of skipping tests.
* ``redis_broker`` (session): the broker URL; skips (or, under ``REQUIRE_SERVICES=1``, fails)
  when Redis is not configured or not reachable.
* ``celery_worker_live`` (function): a real Celery worker, in a thread of this process, consuming
  from the real Redis broker, so a test can ``task.delay(...).get(timeout=...)``.
* ``live_celery(broker_url, monkeypatch, private_broker=...)``: the same set-up as a context
  manager, with the worker and a real celery beat (in-memory schedule, in a thread) started
  on demand, e.g. once a stopped broker is back.
* ``private_redis`` (function): a throwaway ``redis-server`` on a free loopback port that a
  test may stop and start again (a broker outage) without touching the shared Redis.
* ``smtp_sink`` (function): an aiosmtpd server on a free loopback port, the default mailer for
  the test; it can refuse (451) or hold messages on demand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


class LiveCelery:
    """``config.celery.app`` pointed at one Redis broker, with a private default queue.

    Made by :func:`live_celery`; start a real worker (:meth:`worker`) and a real celery beat
    (:meth:`beat`) on it when the test is ready for them, e.g. after the broker came back.
    """

    def __init__(self, app: Celery, broker_url: str, queue: str) -> None:
        self.app = app
        self.broker_url = broker_url
        self.queue = queue

    @contextmanager
    def worker(self) -> Iterator[WorkController]:
        """A real worker (solo pool, in a thread of this process) consuming the private queue."""
        from celery.contrib.testing.worker import start_worker

        with start_worker(
            self.app,
            pool="solo",
            concurrency=1,
            perform_ping_check=False,
            queues=[self.queue],
            shutdown_timeout=30,
        ) as worker:
            yield worker

    @contextmanager
    def beat(self, schedule: dict[str, dict[str, Any]]) -> Iterator[Any]:
        """The real celery beat scheduler (``celery.beat.Service``, in-memory schedule, no
        file) in a thread, running ``schedule`` (``beat_schedule`` entries) instead of the
        app's. It ticks at least once a second; it is stopped and joined on exit."""
        from celery.beat import EmbeddedService

        saved = self.app.conf.beat_schedule
        self.app.conf.beat_schedule = schedule
        beat = EmbeddedService(self.app, thread=True, scheduler_cls="celery.beat:Scheduler")
        try:
            beat.start()
            yield beat
        finally:
            try:
                if beat.is_alive():
                    beat.stop()  # waits until its scheduler closed its broker connection
                beat.join(timeout=10)
            finally:
                self.app.conf.beat_schedule = saved


def _broker_address(url: str) -> tuple[str | None, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port


def _connection_address(app: Celery, *, write: bool) -> tuple[str | None, int | None]:
    conn = app.connection_for_write() if write else app.connection_for_read()
    try:
        return conn.hostname, conn.port
    finally:
        conn.release()


def _drop_broker_pools(app: Celery, *, close_for: str | None = None) -> None:
    """Make the app build its broker connection and producer pools afresh from ``app.conf``.

    With ``close_for`` (a private broker that is going away) the current pools are closed and
    removed from kombu's process-wide pool registry, but only if they are that broker's: the
    pools of the shared broker stay registered for its next user."""
    from kombu import pools

    amqp = app.__dict__.get("amqp")
    connection_pool = app._pool
    producer_pool = getattr(amqp, "_producer_pool", None)
    app._pool = None
    if amqp is not None:
        amqp._producer_pool = None
    if close_for is None:
        return
    address = _broker_address(close_for)
    for pool, conn in (
        (producer_pool, getattr(getattr(producer_pool, "connections", None), "connection", None)),
        (connection_pool, getattr(connection_pool, "connection", None)),
    ):
        if pool is None or conn is None or (conn.hostname, conn.port) != address:
            continue
        pool.force_close_all()
        for group in pools._groups:
            for key, value in list(group.items()):
                if value is pool:
                    dict.__delitem__(group, key)  # (the key is hashed already)


@contextmanager
def live_celery(
    broker_url: str, monkeypatch: pytest.MonkeyPatch, *, private_broker: bool = False
) -> Iterator[LiveCelery]:
    """Point ``config.celery.app`` at ``broker_url`` with a private default queue, tasks not
    eager and results in database ``RESULT_DB`` of the broker's server; restore it on exit.

    ``private_broker``: the broker is a throwaway server of this test (:func:`private_redis`),
    possibly stopped at teardown, so its queue is not deleted and its pools are closed.
    """
    from celery import signals

    from config.celery import app

    queue = f"actas-test-{uuid.uuid4().hex[:12]}"
    overrides: dict[str, Any] = {
        "task_always_eager": False,
        "result_backend": result_backend_url(broker_url),
        # One backend object shared by the test and the worker thread (a redis client is
        # thread-safe), so teardown can close its connections.
        "result_backend_thread_safe": True,
        "task_default_queue": queue,
    }
    if private_broker:
        # (The CELERY_BROKER_URL environment variable outranks conf.broker_url in Celery; the
        # read and write URLs, when set in conf, outrank both.)
        overrides.update(broker_url=broker_url, broker_read_url=broker_url, broker_write_url=broker_url)
    # (result_backend_thread_safe has no default entry: .get() gives None, which reads as off.)
    saved = {key: app.conf.get(key) for key in overrides}
    # start_worker() calls app.log.setup(), which would replace the root logger's handlers
    # (pytest's log capture, Django's LOGGING), set warning filters and capture warnings
    # process-wide. Keep the test process's logging and warnings as they are.
    monkeypatch.setattr(app.log, "setup", lambda *args, **kwargs: False)

    close_db = _close_worker_db_connections(threading.get_ident())
    signals.task_postrun.connect(close_db, weak=False)

    _forget_backend(app)
    if private_broker:
        _drop_broker_pools(app)
    app.conf.update(overrides)
    try:
        if private_broker:
            for write in (True, False):  # never let a test that stops its broker reach the shared one
                address = _connection_address(app, write=write)
                if address != _broker_address(broker_url):
                    raise RuntimeError(f"the app still talks to {address}, not to {_redacted(broker_url)}")
        yield LiveCelery(app, broker_url, queue)
    finally:
        signals.task_postrun.disconnect(close_db)
        _forget_backend(app)
        try:
            if not private_broker:
                _delete_queue(app, queue)
        finally:
            if private_broker:
                _drop_broker_pools(app, close_for=broker_url)
            app.conf.update(saved)


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
    with live_celery(redis_broker, monkeypatch) as live, live.worker() as worker:
        yield worker


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` of one test on a free loopback port, no persistence; it can be
    stopped and started again on the same port (a broker outage)."""

    def __init__(self, binary: str, port: int, directory: str) -> None:
        self.binary = binary
        self.port = port
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers a PING."""
        import time

        assert not self.running, "already running"
        self.process = subprocess.Popen(  # noqa: S603 (a fixed argument list)
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                self.directory,
                "--loglevel",
                "warning",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        problem = redis_problem(self.url(), "private redis-server")
        while problem is not None:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer: {problem}")
            time.sleep(0.05)
            problem = redis_problem(self.url(), "private redis-server")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and reap it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def private_redis(redis_broker: str, tmp_path: Any) -> Iterator[PrivateRedis]:
    """A throwaway ``redis-server`` (Debian's binary) on a free loopback port, running when the
    test starts and stopped at teardown whatever happened. For tests that stop the broker: the
    machine's shared Redis (``CELERY_BROKER_URL``) is never touched. Needs Redis like every
    ``services`` test: skips without it, fails under ``REQUIRE_SERVICES=1``, also when the
    ``redis-server`` binary is missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        if require_services():
            pytest.fail("REQUIRE_SERVICES=1: the redis-server binary is not installed", pytrace=False)
        pytest.skip("needs the redis-server binary")
    server = PrivateRedis(binary, _free_port(), str(tmp_path))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class SmtpSink:
    """Messages received by the in-process SMTP server, as ``email.message.Message`` objects.

    ``messages`` holds the accepted ones, ``attempts`` every message handed over (accepted or
    refused). A test can make the server misbehave:

    * ``refuse_next = n``: answer the next ``n`` messages with ``451`` (a temporary failure:
      the sender keeps the message and tries again later);
    * ``hold = threading.Event()``: keep each message waiting, before answering, until the
      test sets the event (``held`` is set once one is waiting), so a sender stays inside its
      SMTP conversation as long as the test needs.
    """

    REFUSAL = "451 4.3.0 Temporary local problem, try again later"

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.attempts: list[Any] = []
        self.refuse_next = 0
        self.hold: threading.Event | None = None
        self.held = threading.Event()
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        import asyncio
        import email

        message = email.message_from_bytes(envelope.original_content or envelope.content)
        with self._lock:
            self.attempts.append(message)
            if self.refuse_next > 0:
                self.refuse_next -= 1
                return self.REFUSAL
            hold = self.hold
        if hold is not None:
            self.held.set()
            # Wait off the event loop, which keeps serving other connections meanwhile.
            await asyncio.to_thread(hold.wait, 30)
        with self._lock:
            self.messages.append(message)
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
        if sink.hold is not None:
            sink.hold.set()  # release a sender the test left waiting
        controller.stop()
