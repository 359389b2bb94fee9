"""OpenTelemetry tracing behind ACTAS_OTEL: a request produces a span; off, nothing is
instrumented; the exporter follows the standard OTEL_* variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from config.observability import tracing
from tests.conftest import World
from tests.deployed import ROOT


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield provider, exporter
    finally:
        if DjangoInstrumentor().is_instrumented_by_opentelemetry:
            DjangoInstrumentor().uninstrument()


@pytest.mark.django_db
def test_with_the_setting_on_a_request_produces_a_span(
    world: World, settings: Any, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    settings.ACTAS_OTEL = True

    assert tracing.setup_tracing(provider)
    assert Client().get("/t/acme/login/?next=/secret-code-abc").status_code == 200

    (span,) = exporter.get_finished_spans()
    assert span.name == "GET t/<slug:tenant>/login/"
    assert span.attributes is not None
    assert span.attributes["http.route"] == "t/<slug:tenant>/login/"
    assert span.attributes["http.status_code"] == 200
    # No query strings in spans (they can carry codes and tokens).
    assert span.attributes["http.url"] == "http://testserver/t/acme/login/"
    assert "secret-code-abc" not in repr(dict(span.attributes))


def test_off_by_default_nothing_is_instrumented(
    settings: Any, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    settings.ACTAS_OTEL = False

    assert not tracing.setup_tracing(provider)
    Client().get("/healthz")

    assert not DjangoInstrumentor().is_instrumented_by_opentelemetry
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "console"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "console"},
            "console",
        ),
        ({"OTEL_TRACES_EXPORTER": "none"}, "none"),
    ],
)
def test_the_exporter_follows_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.exporter_name() == expected


def test_the_otlp_exporter_sends_to_the_configured_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    exporter = tracing.span_exporter("otlp")
    assert exporter is not None
    try:
        assert exporter._endpoint == "http://127.0.0.1:4318/v1/traces"  # type: ignore[attr-defined]
    finally:
        exporter.shutdown()
    assert tracing.span_exporter("none") is None
    with pytest.raises(ValueError, match="zipkin"):
        tracing.span_exporter("zipkin")


def test_the_wsgi_application_traces_when_asked() -> None:
    # config/wsgi.py instruments before Django builds its middleware; the console exporter
    # prints each span as JSON when the process ends.
    code = (
        "import config.wsgi\n"
        "from django.test import Client\n"
        "assert Client().get('/healthz').status_code == 200\n"
    )
    done = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "1",
            "ACTAS_OTEL": "1",
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_SERVICE_NAME": "actas-test",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    span = json.loads(done.stdout)
    assert span["name"] == "GET healthz"
    assert span["resource"]["attributes"]["service.name"] == "actas-test"
