"""/metrics: off unless ACTAS_METRICS, a Bearer token when ACTAS_METRICS_TOKEN is set, request
latency per URL route (never per path), the outbox and the audit verification read at scrape
time, and under gunicorn's multiprocess mode the whole server's numbers from any worker."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from config.observability import collectors
from identity.audit.tasks import audit_verify_all
from identity.notifications.models import OutboxMessage
from tests.conftest import World
from tests.deployed import deployed_env, serving
from tests.identity.audit_helpers import tamper_with_first_event

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def metrics_on(settings: Any) -> Any:
    settings.ACTAS_METRICS = True
    settings.ACTAS_METRICS_TOKEN = ""
    return settings


def scrape(client: Client, **headers: str) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


def test_off_by_default(client: Client, settings: Any) -> None:
    settings.ACTAS_METRICS = False
    assert client.get("/metrics").status_code == 404


def test_a_token_is_asked_for_when_set(client: Client, metrics_on: Any) -> None:
    metrics_on.ACTAS_METRICS_TOKEN = "scrape-token-0123456789"
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic scrape-token-0123456789"},
    ):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused["WWW-Authenticate"].startswith("Bearer")
        assert b"actas_" not in refused.content
    assert scrape(client, Authorization="Bearer scrape-token-0123456789")


@pytest.mark.django_db
def test_latency_is_per_route_never_per_path(client: Client, world: World, metrics_on: Any) -> None:
    route = {"route": "/t/<slug:tenant>/login/", "method": "GET", "status": "2xx"}
    before = sample(scrape(client), "actas_http_request_duration_seconds_count", **route) or 0
    assert client.get("/t/acme/login/").status_code == 200
    assert client.get(f"/t/acme/o/{world.eu.pk}/login/").status_code == 200
    assert client.get("/no/such/page-9f3e").status_code == 404
    response = client.get("/metrics")
    samples = parse(response.content.decode())

    assert sample(samples, "actas_http_request_duration_seconds_count", **route) == before + 1
    org_route = {"route": "/t/<slug:tenant>/o/<uuid:org>/login/", "method": "GET", "status": "2xx"}
    assert (sample(samples, "actas_http_request_duration_seconds_count", **org_route) or 0) >= 1
    unmatched = {"route": "unmatched", "method": "GET", "status": "4xx"}
    assert (sample(samples, "actas_http_request_duration_seconds_count", **unmatched) or 0) >= 1
    text = response.content.decode()
    assert str(world.eu.pk) not in text and "page-9f3e" not in text and 'tenant="' not in text


def test_an_unknown_method_is_one_label(client: Client, metrics_on: Any) -> None:
    client.generic("BREW", "/healthz")
    samples = scrape(client)
    methods = {dict(labels).get("method") for name, labels in samples if name.startswith("actas_http_")}
    assert "BREW" not in methods and "other" in methods


def _message(world: World, status: str, *, age_minutes: int) -> None:
    message = OutboxMessage.objects.create(
        tenant=world.root,
        kind="test",
        template="test",
        to_email="someone@example.test",
        status=status,
        next_attempt_at=timezone.now(),
    )
    OutboxMessage.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=age_minutes)
    )


@pytest.mark.django_db
def test_the_outbox_backlog_is_read_at_scrape_time_in_one_statement(
    client: Client, world: World, metrics_on: Any, django_assert_num_queries: Callable[..., Any]
) -> None:
    OutboxMessage.objects.all().delete()
    empty = scrape(client)
    assert sample(empty, "actas_outbox_messages", status="pending") == 0
    assert sample(empty, "actas_outbox_oldest_pending_age_seconds") == 0
    _message(world, "pending", age_minutes=10)
    _message(world, "pending", age_minutes=1)
    _message(world, "failed", age_minutes=30)
    _message(world, "sent", age_minutes=60)

    with django_assert_num_queries(1):
        samples = scrape(client)

    assert sample(samples, "actas_outbox_messages", status="pending") == 2
    assert sample(samples, "actas_outbox_messages", status="failed") == 1
    age = sample(samples, "actas_outbox_oldest_pending_age_seconds")
    assert age is not None and 600 <= age < 700


@pytest.mark.django_db
def test_requests_do_not_read_the_outbox(
    client: Client, world: World, metrics_on: Any, django_assert_num_queries: Callable[..., Any]
) -> None:
    with django_assert_num_queries(0):
        assert client.get("/healthz").status_code == 200


@pytest.mark.django_db(transaction=True)  # tampering disables PostgreSQL's trigger, which needs a commit
def test_the_last_audit_verification_is_reported_per_tenant(
    client: Client, world: World, metrics_on: Any
) -> None:
    assert sample(scrape(client), "actas_audit_last_verification_ok", tenant="acme") is None  # never ran
    started = timezone.now().timestamp()

    audit_verify_all()

    samples = scrape(client)
    assert sample(samples, "actas_audit_last_verification_ok", tenant="acme") == 1
    at = sample(samples, "actas_audit_last_verification_timestamp_seconds")
    assert at is not None and started - 1 <= at <= timezone.now().timestamp() + 1

    tamper_with_first_event("acme")
    audit_verify_all()
    assert sample(scrape(client), "actas_audit_last_verification_ok", tenant="acme") == 0


@pytest.mark.django_db
def test_a_collector_that_fails_leaves_the_rest_of_the_scrape(
    client: Client, world: World, metrics_on: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down() -> None:
        raise ConnectionError("redis down")

    monkeypatch.setattr(collectors, "audit_last_verification_result", down)
    samples = scrape(client)
    assert sample(samples, "actas_outbox_messages", status="pending") is not None


# --- gunicorn with two workers, multiprocess mode ---------------------------------------------------


def _healthz_count(base: str) -> float:
    text = requests.get(f"{base}/metrics", timeout=10).text
    found = sample(
        parse(text), "actas_http_request_duration_seconds_count", route="/healthz", method="GET", status="2xx"
    )
    return found or 0.0


def test_every_worker_reports_the_whole_servers_numbers(keyed: Path, tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"left by a gunicorn that ran before")
    env = deployed_env(keyed, ACTAS_METRICS="1", PROMETHEUS_MULTIPROC_DIR=str(directory))
    with serving(env, tmp_path / "gunicorn.log", workers=2, conf=True) as base:
        # gunicorn.conf.py's on_starting emptied the directory before the workers started.
        assert not (directory / "counter_999999.db").exists()
        before = _healthz_count(base)
        sent = 0

        def pids() -> set[str]:
            return {m.group(1) for p in directory.iterdir() if (m := re.search(r"_(\d+)\.db$", p.name))}

        with ThreadPoolExecutor(4) as pool:
            # Until both workers have answered some (each writes files of its own pid).
            while sent < 400 and (sent < 40 or len(pids()) < 2):
                codes = list(
                    pool.map(lambda _: requests.get(f"{base}/healthz", timeout=10).status_code, range(20))
                )
                assert codes == [200] * 20
                sent += 20
        assert len(pids()) >= 2, pids()
        # Whichever worker answers the scrape, it counts every worker's requests.
        counts = {_healthz_count(base) for _ in range(8)}
    assert counts == {before + sent}, (counts, before, sent)
