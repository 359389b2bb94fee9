"""Management commands: seed_demo (idempotent), bootstrap_tenant."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import models

from identity.audit.models import AuditEvent
from identity.audit.services import audit_verify_chain
from identity.models import (
    APIResource,
    Application,
    Role,
    RoleAssignment,
    Scope,
    User,
    UserAssociation,
)
from identity.selectors.permissions import user_scopes_for_application
from organizations.models import Organization

MODELS: list[type[models.Model]] = [
    Organization,
    User,
    UserAssociation,
    APIResource,
    Scope,
    Application,
    Role,
    RoleAssignment,
    AuditEvent,
]


def _snapshot() -> dict[str, int]:
    return {m.__name__: m._default_manager.count() for m in MODELS}


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_matches_the_design() -> None:
    out = io.StringIO()
    call_command("seed_demo", "--password", "demo-password-1", stdout=out)
    assert "[1/9] tenant acme: created" in out.getvalue()
    first = _snapshot()
    out2 = io.StringIO()
    call_command("seed_demo", "--password", "demo-password-1", stdout=out2)
    assert _snapshot() == first
    assert "already there" in out2.getvalue()

    acme = Organization.objects.get(handle="acme", parent=None)
    eu = Organization.objects.get(handle="acme-eu")
    assert Organization.objects.get(handle="acme-eu-sales").parent == eu
    assert Organization.objects.get(handle="acme-us").parent == acme
    assert set(User.objects.filter(organization=acme).values_list("username", flat=True)) == {
        "admin",
        "alice",
        "bob",
    }
    assert set(User.objects.filter(organization=eu).values_list("username", flat=True)) == {
        "erin",
        "eu-admin",
    }
    alice = User.objects.get(username="alice")
    assert UserAssociation.objects.filter(user=alice, organization=eu).exists()
    assert User.objects.get(username="admin").check_password("demo-password-1")

    pickup = Application.objects.get(client_id="pickup")
    assert pickup.client_type == "confidential" and pickup.subject_token_enabled and pickup.discoverable
    assert pickup.shared_access == "all" and pickup.skip_login_consent and pickup.skip_logout_consent
    assert pickup.access_url == "http://127.0.0.1:8765/"
    assert set(pickup.grant_types) == {
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
        "organization_switch",
    }
    from django.contrib.auth.hashers import check_password

    assert check_password("pickup-secret", pickup.client_secret)
    admin = User.objects.get(username="admin")
    eu_admin = User.objects.get(username="eu-admin")
    impersonate = {"internal_user_impersonate", "internal_org_user_impersonate"}
    assert impersonate <= user_scopes_for_application(user=admin, application=pickup, org=acme)
    assert impersonate <= user_scopes_for_application(user=eu_admin, application=pickup, org=eu)
    myaccount = Application.objects.get(organization=acme, system_key="myaccount")
    assert myaccount.shared_access == "all"
    assert user_scopes_for_application(user=eu_admin, application=myaccount, org=eu) == impersonate
    console = Application.objects.get(organization=acme, system_key="console")
    assert "internal_user_mgt_list" in user_scopes_for_application(user=eu_admin, application=console, org=eu)
    assert user_scopes_for_application(user=alice, application=console, org=acme) == frozenset()
    assert audit_verify_chain(tenant=acme).ok


@pytest.mark.django_db
def test_bootstrap_tenant_command() -> None:
    out = io.StringIO()
    call_command(
        "bootstrap_tenant", "globex", "--name", "Globex", "--admin-password", "a-long-password-9", stdout=out
    )
    assert "Tenant globex created" in out.getvalue()
    assert User.objects.get(username="admin", organization__handle="globex").check_password(
        "a-long-password-9"
    )
    with pytest.raises(CommandError):
        call_command("bootstrap_tenant", "globex", "--name", "Again", "--admin-password", "a-long-password-9")
    with pytest.raises(CommandError):
        call_command("bootstrap_tenant", "initech", "--name", "Initech", "--admin-password", "short")
    assert not Organization.objects.filter(handle="initech").exists()


@pytest.mark.django_db
def test_seed_demo_prints_the_addresses_of_base_url(settings: Any) -> None:
    settings.BASE_URL = "https://id.example.org"
    out = io.StringIO()
    call_command("seed_demo", "--password", "demo-password-1", stdout=out)
    eu = Organization.objects.get(handle="acme-eu")
    text = out.getvalue()
    assert "Console: https://id.example.org/t/acme/console/" in text
    assert f"https://id.example.org/t/acme/o/{eu.pk}/console/" in text
    assert "127.0.0.1:8000" not in text


@pytest.mark.django_db
def test_seed_demo_serves_pickup_where_it_is_told() -> None:
    """``--pickup-url``: Pickup's access URL, redirect and post-logout URIs; a later run with
    another address moves them there (and only them), a run with the same one changes nothing."""
    call_command("seed_demo", "--pickup-url", "http://127.0.0.1:9001", stdout=io.StringIO())
    pickup = Application.objects.get(client_id="pickup")
    assert pickup.access_url == "http://127.0.0.1:9001/"
    assert pickup.redirect_uris.split() == ["http://127.0.0.1:9001/callback"]
    assert pickup.post_logout_redirect_uris.split() == ["http://127.0.0.1:9001/"]

    out = io.StringIO()
    call_command("seed_demo", "--pickup-url", "https://pickup.example/", stdout=out)
    assert "Pickup application: moved to https://pickup.example/" in out.getvalue()
    pickup.refresh_from_db()
    assert pickup.access_url == "https://pickup.example/"
    assert pickup.redirect_uris.split() == ["https://pickup.example/callback"]
    assert pickup.subject_token_enabled and pickup.discoverable and pickup.name == "Pickup"

    again = io.StringIO()
    call_command("seed_demo", "--pickup-url", "https://pickup.example", stdout=again)
    assert "Pickup application: already there" in again.getvalue()
