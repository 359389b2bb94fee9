"""Logs as JSON lines (LOG_FORMAT=json) carrying the request id, tenant and organization, one
access line per request (logger actas.request), and Celery workers logging the same way."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from pythonjsonlogger.json import JsonFormatter

from config.observability.logs import ACCESS_LOGGER, RequestFilter
from tests.conftest import World
from tests.deployed import ROOT


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """actas.request at INFO through a handler set up as settings.LOGGING's JSON one."""
    logging_settings: dict[str, Any] = settings.LOGGING
    options = {k: v for k, v in logging_settings["formatters"]["json"].items() if k != "()"}
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RequestFilter())
    handler.setFormatter(JsonFormatter(**options))
    logger = logging.getLogger(ACCESS_LOGGER)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


@pytest.mark.django_db
def test_an_access_line_names_the_request_tenant_and_organization(
    client: Client, world: World, access_lines: io.StringIO
) -> None:
    response = client.get(
        f"/t/acme/o/{world.eu.pk}/login/?next=/secret-code-abc", headers={"X-Request-ID": "req-0123456789"}
    )
    assert response.status_code == 200 and response["X-Request-ID"] == "req-0123456789"
    client.get("/healthz")

    line, outside = _lines(access_lines)
    assert line["request_id"] == "req-0123456789"
    assert line["tenant"] == "acme" and line["org"] == str(world.eu.pk)
    assert line["method"] == "GET" and line["status"] == 200
    assert line["path"] == f"/t/acme/o/{world.eu.pk}/login/"
    assert line["route"] == "/t/<slug:tenant>/o/<uuid:org>/login/"
    assert line["logger"] == ACCESS_LOGGER and line["level"] == "INFO" and "time" in line
    assert line["duration_ms"] >= 0
    assert "secret-code-abc" not in access_lines.getvalue()  # no query strings
    # Another request: its own id, no tenant.
    assert outside["request_id"] not in ("", "req-0123456789") and outside["tenant"] == outside["org"] == ""


def test_records_outside_a_request_have_empty_fields() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello", None, None)
    assert RequestFilter().filter(record)
    assert (record.request_id, record.tenant, record.org) == ("", "", "")  # type: ignore[attr-defined]


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_log_format_json_writes_one_json_object_per_line() -> None:
    done = _python(
        "import django, logging; django.setup(); logging.getLogger('actas.x').warning('hello %s', 'there')",
        LOG_FORMAT="json",
    )
    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(text) for text in done.stderr.splitlines() if text.strip()]
    assert line["message"] == "hello there" and line["level"] == "WARNING" and line["logger"] == "actas.x"
    assert line["request_id"] == "" and line["tenant"] == "" and "time" in line


def test_text_stays_the_default() -> None:
    done = _python("import django, logging; django.setup(); logging.getLogger('actas.x').warning('hello')")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "hello"


def test_access_log_switch_logs_requests_whatever_log_level() -> None:
    done = _python(
        "import django; django.setup(); from django.test import Client; Client().get('/healthz')",
        LOG_FORMAT="json",
        ACTAS_ACCESS_LOG="1",
        LOG_LEVEL="WARNING",
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(text) for text in done.stderr.splitlines() if text.strip()]
    assert [(line["logger"], line["path"], line["status"]) for line in lines] == [
        (ACCESS_LOGGER, "/healthz", 200)
    ]
    assert len(lines[0]["request_id"]) == 32


def test_a_celery_worker_logs_json_lines_too() -> None:
    # What `celery worker` does at start (its logging set-up), then a task's logger.
    done = _python(
        "import django; django.setup()\n"
        "from config.celery import app\n"
        "app.log.setup(loglevel='INFO')\n"
        "from celery.utils.log import get_task_logger\n"
        "get_task_logger('identity.tasks').warning('from a task')\n",
        LOG_FORMAT="json",
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(text) for text in done.stderr.splitlines() if text.strip().startswith("{")]
    assert any(line["message"] == "from a task" and line["level"] == "WARNING" for line in lines), done.stderr
