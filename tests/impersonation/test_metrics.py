"""Impersonations started, ended and refused in the metrics, and what a scrape of /metrics
shows after a token exchange."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from impersonation import policy
from impersonation.models import ImpersonationSession
from impersonation.services import impersonation_end
from tests.conftest import World, sign_in
from tests.identity.oauth_helpers import App
from tests.impersonation.helpers import (
    exchange_tokens,
    fragment,
    get_subject_token,
    impersonation_app,
    subject_authorize_url,
)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def pickup(world: World) -> App:
    return impersonation_app(world)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client: Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content[:300]
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_a_scrape_after_a_token_exchange_shows_the_token_and_the_impersonation(
    client: Client,
    world: World,
    pickup: App,
    settings: Any,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    settings.ACTAS_METRICS = True
    scraper = Client()
    before = scrape(scraper)
    artifacts = get_subject_token(client, world, pickup)

    with django_capture_on_commit_callbacks(execute=True):
        assert exchange_tokens(client, pickup, artifacts).status_code == 200

    after = scrape(scraper)
    for name, labels in (
        ("actas_tokens_issued_total", {"grant_type": "token-exchange"}),
        ("actas_impersonations_started_total", {"channel": "token-exchange"}),
    ):
        assert sample(after, name, **labels) == sample(before, name, **labels) + 1, name
    route = {"route": "/t/<slug:tenant>/oauth2/token", "method": "POST", "status": "2xx"}
    assert sample(after, "actas_http_request_duration_seconds_count", **route) == (
        sample(before, "actas_http_request_duration_seconds_count", **route) + 1
    )


def test_a_refused_exchange_counts_a_refusal_and_no_start(
    client: Client, world: World, pickup: App, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    artifacts = get_subject_token(client, world, pickup)
    with django_capture_on_commit_callbacks(execute=True):
        assert exchange_tokens(client, pickup, artifacts).status_code == 200
    started = value("actas_impersonations_started_total", channel="token-exchange")
    unusable = value("actas_impersonations_refused_total", reason="subject-token-unusable")
    exchanged = value("actas_tokens_issued_total", grant_type="token-exchange")

    with django_capture_on_commit_callbacks(execute=True):
        assert exchange_tokens(client, pickup, artifacts).status_code == 400  # used up already

    assert value("actas_impersonations_refused_total", reason="subject-token-unusable") == unusable + 1
    assert value("actas_impersonations_started_total", channel="token-exchange") == started
    assert value("actas_tokens_issued_total", grant_type="token-exchange") == exchanged


def test_a_policy_refusal_is_counted_under_its_code(client: Client, world: World, pickup: App) -> None:
    sign_in(client, world.impersonator)
    before = value("actas_impersonations_refused_total", reason="self")
    response = client.get(
        subject_authorize_url("pickup", world.target, requested_subject=str(world.impersonator.pk))
    )
    assert response.status_code == 302 and fragment(response["Location"])["error"] == "access_denied"
    assert value("actas_impersonations_refused_total", reason="self") == before + 1


def test_an_end_counts_once_under_its_reason(
    client: Client, world: World, pickup: App, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).status_code == 200
    session = ImpersonationSession.objects.get()
    before = value("actas_impersonations_ended_total", reason="force-ended")

    with django_capture_on_commit_callbacks(execute=True):
        impersonation_end(
            actor=world.admin, session=session, reason=ImpersonationSession.EndReason.FORCE_ENDED
        )
        impersonation_end(
            actor=world.admin, session=session, reason=ImpersonationSession.EndReason.FORCE_ENDED
        )

    assert value("actas_impersonations_ended_total", reason="force-ended") == before + 1


def _raised_codes() -> set[str]:
    """Every code a ``Refused(...)`` / ``policy.Refused(...)`` is raised with."""
    codes: set[str] = set()
    for path in [*(ROOT / "impersonation").rglob("*.py"), *(ROOT / "identity").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name != "Refused":
                continue
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                codes.add(first.value)
            else:  # a code computed at run time could be anything: the label set would not hold
                codes.add(f"<not a literal in {path.name}>")
    return codes


def test_every_refusal_code_is_a_label_of_its_own() -> None:
    raised = _raised_codes()
    assert len(raised) > 10  # the scan finds the policy's refusals
    assert raised <= policy.REFUSAL_CODES, raised - policy.REFUSAL_CODES


def test_an_unknown_refusal_code_is_counted_as_other(world: World, pickup: App) -> None:
    from impersonation.services import impersonation_refused

    before = value("actas_impersonations_refused_total", reason="other")
    impersonation_refused(
        actor=world.impersonator,
        org=world.root,
        application=pickup.app,
        refusal=policy.Refused("a-code-nobody-raises"),
        stage="test",
    )
    assert value("actas_impersonations_refused_total", reason="other") == before + 1
    assert (
        REGISTRY.get_sample_value("actas_impersonations_refused_total", {"reason": "a-code-nobody-raises"})
        is None
    )
