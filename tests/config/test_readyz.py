"""/readyz: 200 naming each check when the database, the Redis broker (where configured) and the
signing keys answer; 503 naming the failing one otherwise, within a couple of seconds.

The deployed cases start gunicorn (DEBUG off, config/wsgi.py) on a free port with a database or
a broker that does not answer: nothing listening, or a listener that never replies."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from django.test import Client

from config.observability import readiness
from tests.deployed import deployed_env, free_port, serving


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def _redis_broker() -> str:
    """The test run's Redis broker, when it has one."""
    url = os.environ.get("CELERY_BROKER_URL", "")
    return url if url.startswith("redis://") else ""


def _ready(base: str) -> tuple[int, dict[str, Any], float]:
    start = time.monotonic()
    response = requests.get(f"{base}/readyz", timeout=30)
    return response.status_code, response.json(), time.monotonic() - start


# --- in process ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_ready_names_each_check(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok" and body["checks"]["signing_keys"] == "ok"
    assert body["checks"]["broker"] == ("ok" if _redis_broker() else "not configured")
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_missing_signing_keys_make_it_unready(client: Client, settings: Any) -> None:
    # Outside the embedded default, with no key set configured (identity.oauth.checks: actas.E101).
    settings.DEBUG, settings.EMBEDDED, settings.ACTAS_SIGNING_KEYS_DIR = False, False, ""
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["signing_keys"]
    assert response.json()["checks"]["database"] == "ok"


def test_a_check_that_does_not_answer_is_a_timeout_not_a_hang() -> None:
    start = time.monotonic()

    def stuck() -> str:
        time.sleep(5)
        return readiness.OK

    found = readiness.readiness({"quick": lambda: readiness.OK, "stuck": stuck}, deadline=0.5)
    assert time.monotonic() - start < 2
    assert found.checks == {"quick": "ok", "stuck": "timeout"}
    assert not found.ready and found.failing == ["stuck"]


def test_an_embedded_broker_is_not_configured_and_not_a_failure(settings: Any) -> None:
    settings.CELERY_BROKER_URL, settings.REDIS_URL = "memory://", ""
    assert readiness.check_broker() == readiness.check_cache() == readiness.NOT_CONFIGURED


# --- deployed: gunicorn, DEBUG off ---------------------------------------------------------------------


def _postgres_up() -> str:
    """The test run's PostgreSQL server (its maintenance database), when it has one."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return ""
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def test_deployed_ready_when_everything_answers(keyed: Path, tmp_path: Path) -> None:
    extra = {"CELERY_BROKER_URL": _redis_broker()} if _redis_broker() else {}
    if _postgres_up():
        extra["DATABASE_URL"] = _postgres_up()
    with serving(deployed_env(keyed, **extra), tmp_path / "gunicorn.log") as base:
        status, body, _ = _ready(base)
    assert status == 200, body
    assert body["checks"]["database"] == "ok" and body["checks"]["signing_keys"] == "ok"
    assert body["checks"]["broker"] == ("ok" if _redis_broker() else "not configured")


@pytest.mark.parametrize("down", ["nothing listens", "never answers"])
def test_deployed_unready_when_postgresql_is_down(keyed: Path, tmp_path: Path, down: str) -> None:
    with silent_listener() as silent:
        port = free_port() if down == "nothing listens" else silent
        env = deployed_env(keyed, DATABASE_URL=f"postgres://actas@127.0.0.1:{port}/actas")
        with serving(env, tmp_path / "gunicorn.log") as base:
            status, body, took = _ready(base)
    assert status == 503, body
    assert body["failing"] == ["database"], body
    assert body["checks"]["database"] in ("failed", "timeout")
    assert body["checks"]["signing_keys"] == "ok"
    assert took < 4, took


@pytest.mark.parametrize("down", ["nothing listens", "never answers"])
def test_deployed_unready_when_redis_is_down(keyed: Path, tmp_path: Path, down: str) -> None:
    with silent_listener() as silent:
        port = free_port() if down == "nothing listens" else silent
        env = deployed_env(keyed, CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0")
        with serving(env, tmp_path / "gunicorn.log") as base:
            status, body, took = _ready(base)
    assert status == 503, body
    # The cache is the broker's Redis here (no REDIS_URL): one check names it.
    assert body["failing"] == ["broker"], body
    assert body["checks"]["database"] == "ok" and body["checks"]["cache"] == "not configured"
    assert took < 4, took


def test_deployed_checks_and_metrics_are_not_redirected_to_https(keyed: Path, tmp_path: Path) -> None:
    env = deployed_env(
        keyed, BASE_URL="https://127.0.0.1", ACTAS_METRICS="1", ACTAS_METRICS_TOKEN="scrape-token-1"
    )
    with serving(env, tmp_path / "gunicorn.log") as base:
        page = requests.get(f"{base}/t/acme/login/", allow_redirects=False, timeout=10)
        ready = requests.get(f"{base}/readyz", allow_redirects=False, timeout=10)
        scraped = requests.get(
            f"{base}/metrics",
            headers={"Authorization": "Bearer scrape-token-1"},
            allow_redirects=False,
            timeout=10,
        )
        anonymous = requests.get(f"{base}/metrics", allow_redirects=False, timeout=10)
    # BASE_URL on https: plain HTTP is redirected, except the probes and the scrape.
    assert page.status_code == 301 and page.headers["Location"].startswith("https://")
    assert ready.status_code == 200, ready.text
    assert scraped.status_code == 200 and "actas_http_request_duration_seconds" in scraped.text
    assert anonymous.status_code == 401
