"""``/metrics`` (Prometheus) and ``/readyz`` (readiness), both outside any tenant."""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder

from config.observability.collectors import AuditVerificationCollector, OutboxCollector
from config.observability.readiness import readiness


def scrape_registry() -> CollectorRegistry:
    """What a scrape reports: every worker's counters under gunicorn's multiprocess mode
    (``PROMETHEUS_MULTIPROC_DIR``), else this process's; and the gauges read now."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    registry.register(OutboxCollector())
    registry.register(AuditVerificationCollector())
    return registry


def _authorized(request: HttpRequest) -> bool:
    token = settings.ACTAS_METRICS_TOKEN
    if not token:
        return True
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and constant_time_compare(presented.strip(), token)


@login_not_required
@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """404 unless ``ACTAS_METRICS`` is on; with ``ACTAS_METRICS_TOKEN`` set, 401 without it as
    a Bearer token."""
    if not settings.ACTAS_METRICS:
        raise Http404("Metrics are off.")
    if not _authorized(request):
        response = HttpResponse("Unauthorized.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(scrape_registry()), content_type=content_type)


@login_not_required
@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when the database, the Redis broker and cache (where configured) and the signing
    keys all answer; 503 naming the failing ones otherwise."""
    found = readiness()
    body: dict[str, object] = {"status": "ok" if found.ready else "unavailable", "checks": found.checks}
    if not found.ready:
        body["failing"] = found.failing
    return JsonResponse(body, status=200 if found.ready else 503)
