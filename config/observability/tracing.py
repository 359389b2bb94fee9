"""OpenTelemetry tracing of requests, off unless ``ACTAS_OTEL=1``.

Called by config/wsgi.py and config/asgi.py before Django builds its middleware chain (the
Django instrumentation adds a middleware of its own). The exporter follows the standard
variables: ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console`` or ``none``; by default ``otlp``
when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, else
``console``), the OTLP/HTTP exporter's own ``OTEL_EXPORTER_OTLP_*``, and ``OTEL_SERVICE_NAME``
(default ``actas``) and ``OTEL_RESOURCE_ATTRIBUTES`` for the resource.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter


def exporter_name() -> str:
    chosen = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if chosen:
        return chosen
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    return "otlp" if endpoint else "console"


def span_exporter(name: str) -> SpanExporter | None:
    if name == "none":
        return None
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: actas supports otlp, console or none.")


def setup_tracing(provider: TracerProvider | None = None) -> bool:
    """Instrument Django when ``ACTAS_OTEL`` is on; ``provider``: one of the caller's (tests),
    else one built from the environment and made the global one. Returns whether it did."""
    if not settings.ACTAS_OTEL:
        return False
    from opentelemetry import trace
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    if provider is None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # OTEL_SERVICE_NAME, when set, names the service (attributes given here would win).
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "actas"}
        provider = TracerProvider(resource=Resource.create(attributes))
        exporter = span_exporter(exporter_name())
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument(tracer_provider=provider, request_hook=_without_query)
    return True


def _without_query(span: Any, request: Any) -> None:
    """Spans keep the URL without its query string, which can carry tokens (``id_token_hint``
    at logout) and codes, as the access log does."""
    attributes = getattr(span, "attributes", None) or {}
    for name in ("http.url", "url.full"):
        url = attributes.get(name)
        if isinstance(url, str) and "?" in url:
            span.set_attribute(name, url.split("?", 1)[0])
    if attributes.get("url.query"):
        span.set_attribute("url.query", "")
