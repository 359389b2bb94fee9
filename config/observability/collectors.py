"""Gauges read at scrape time, never per request: the email outbox's backlog (one statement)
and the last scheduled audit chain verification (from the shared cache)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from identity.audit.tasks import audit_last_verification_result
from identity.notifications.selectors import outbox_backlog

log = logging.getLogger(__name__)


class OutboxCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        try:
            backlog = outbox_backlog()
        except Exception:  # the database being down must not break the rest of the scrape
            log.warning("metrics: cannot read the outbox", exc_info=True)
            return
        messages = GaugeMetricFamily(
            "actas_outbox_messages", "Emails in the outbox not sent, by status.", labels=["status"]
        )
        messages.add_metric(["pending"], backlog.pending)
        messages.add_metric(["failed"], backlog.failed)
        yield messages
        age = 0.0
        if backlog.oldest_pending is not None:
            age = max((timezone.now() - backlog.oldest_pending).total_seconds(), 0.0)
        yield GaugeMetricFamily(
            "actas_outbox_oldest_pending_age_seconds",
            "Age of the oldest email waiting to be sent (0 when none waits).",
            value=age,
        )


class AuditVerificationCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        try:
            last = audit_last_verification_result()
        except Exception:  # the cache being down must not break the rest of the scrape
            log.warning("metrics: cannot read the last audit verification", exc_info=True)
            return
        if last is None:
            return  # not verified since the cache was last emptied
        ok = GaugeMetricFamily(
            "actas_audit_last_verification_ok",
            "1 when the last scheduled verification found the tenant's audit chain intact, else 0.",
            labels=["tenant"],
        )
        at = GaugeMetricFamily(
            "actas_audit_last_verification_timestamp_seconds",
            "When the last scheduled audit chain verification ran (Unix time).",
        )
        for tenant, intact in sorted(last.get("tenants", {}).items()):
            ok.add_metric([str(tenant)], 1.0 if intact else 0.0)
        at.add_metric([], float(last.get("at", 0.0)))
        yield ok
        yield at
