"""Observability: Prometheus metrics at /metrics, readiness at /readyz, JSON logs with the
request's id, tenant and organization, and OpenTelemetry tracing behind ``ACTAS_OTEL``
(README, Deploy → Observability). The counters themselves are in ``identity.metrics``."""
