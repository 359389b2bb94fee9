"""actas's Prometheus metrics, defined once so every layer can count.

It imports only prometheus_client and the standard library (the bottom layer of identity, with
``context``). Every label takes values from a bounded set: a value outside it is counted as
``other``, so no label can grow with users, tenants or what a client sends. The scrape (``/metrics``)
and the gauges read at scrape time are in ``config.observability``.

Under gunicorn with several workers, prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, see config/gunicorn.conf.py) adds up every worker's values.
"""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client import Counter, Histogram

OTHER = "other"

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# The grant types actas's token endpoint serves, as labels (the token exchange's URN shortened).
GRANT_TYPES = {
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
    "client_credentials": "client_credentials",
    "urn:ietf:params:oauth:grant-type:token-exchange": "token-exchange",
    "organization_switch": "organization_switch",
}

REQUEST_DURATION = Histogram(
    "actas_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL route (the pattern, never the path), method and status class.",
    ["route", "method", "status"],
)
TOKENS_ISSUED = Counter(
    "actas_tokens_issued",
    "Tokens issued by the token endpoint (committed), by grant type.",
    ["grant_type"],
)
IMPERSONATIONS_STARTED = Counter(
    "actas_impersonations_started",
    "Impersonations started (committed), by channel.",
    ["channel"],
)
IMPERSONATIONS_ENDED = Counter(
    "actas_impersonations_ended",
    "Impersonations ended (committed), by end reason.",
    ["reason"],
)
IMPERSONATIONS_REFUSED = Counter(
    "actas_impersonations_refused",
    "Impersonation attempts the policy refused (audited), by refusal code.",
    ["reason"],
)


def bounded(value: str, allowed: Collection[str]) -> str:
    return value if value in allowed else OTHER


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else OTHER


def request_observed(*, route: str, method: str, status: int, seconds: float) -> None:
    REQUEST_DURATION.labels(
        route=route or "unmatched", method=bounded(method, HTTP_METHODS), status=status_class(status)
    ).observe(seconds)


def token_issued(grant_type: str) -> None:
    TOKENS_ISSUED.labels(grant_type=GRANT_TYPES.get(grant_type, OTHER)).inc()


def impersonation_started(channel: str, channels: Collection[str]) -> None:
    IMPERSONATIONS_STARTED.labels(channel=bounded(channel, channels)).inc()


def impersonation_ended(reason: str, reasons: Collection[str]) -> None:
    IMPERSONATIONS_ENDED.labels(reason=bounded(reason, reasons)).inc()


def impersonation_refused(code: str, codes: Collection[str]) -> None:
    IMPERSONATIONS_REFUSED.labels(reason=bounded(code, codes)).inc()
