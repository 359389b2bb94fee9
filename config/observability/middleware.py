"""Per request: its latency in the metrics, its tenant and organization in the logs, and one
access-log line (``actas.request`` at INFO)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from config.observability import logs
from identity import metrics

access_log = logging.getLogger(logs.ACCESS_LOGGER)


class ObservabilityMiddleware:
    """After ``RequestContextMiddleware``, so the access line carries the request id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        with logs.scoped():
            response = self.get_response(request)
            elapsed = time.perf_counter() - start
            match = request.resolver_match
            # The URL pattern, never the path: one series per route, whatever the tenant or id.
            route = f"/{match.route}" if match is not None else ""
            method = request.method or ""
            metrics.request_observed(route=route, method=method, status=response.status_code, seconds=elapsed)
            if access_log.isEnabledFor(logging.INFO):
                # The path without its query string, which can carry codes and tokens.
                access_log.info(
                    "%s %s %s",
                    method,
                    request.path,
                    response.status_code,
                    extra={
                        "method": method,
                        "path": request.path,
                        "route": route,
                        "status": response.status_code,
                        "duration_ms": round(elapsed * 1000, 1),
                    },
                )
        return response

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: dict[str, Any]
    ) -> None:
        logs.route_resolved(tenant=view_kwargs.get("tenant"), org=view_kwargs.get("org"))
