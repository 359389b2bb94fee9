"""Console → Login & Registration → Organization settings → Impersonation: effective values
and where they come from, a child may tighten never loosen, inherit, audited, scopes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from identity.audit.models import AuditEvent
from identity.services.roles import role_assign, role_create
from organizations.models import OrganizationSettings
from organizations.selectors import org_effective_settings
from organizations.services import organization_settings_update
from tests.conftest import World, console_url, make_user, sign_in

PAGE = "login-registration/impersonation/"


def form(**overrides: Any) -> dict[str, Any]:
    data = {
        "impersonation_email_enabled": "inherit",
        "impersonation_reason_required": "inherit",
        "max_minutes_mode": "inherit",
        "impersonation_max_minutes": "",
    }
    data.update(overrides)
    return data


def own(org: Any) -> OrganizationSettings | None:
    return OrganizationSettings.objects.filter(organization=org).first()


def settings_events(org: Any) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(action="organization-settings-update", org_id=org.pk).order_by("seq")
    )


def test_page_shows_defaults_and_nav(admin_client: Client, world: World) -> None:
    response = admin_client.get(console_url(world.root, PAGE))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Impersonation" in body and "60 minutes" in body and "Default" in body
    assert "Login &amp; Registration" in body and 'aria-current="page">Login &amp; Registration' in body
    assert 'name="csrfmiddlewaretoken"' in body


def test_root_sets_and_the_change_is_audited(admin_client: Client, world: World) -> None:
    response = admin_client.post(
        console_url(world.root, PAGE),
        form(
            impersonation_email_enabled="off",
            impersonation_reason_required="optional",
            max_minutes_mode="set",
            impersonation_max_minutes="30",
        ),
    )
    assert response.status_code == 302 and response["Location"] == console_url(world.root, PAGE)
    effective = org_effective_settings(world.root)
    assert (effective.impersonation_email_enabled, effective.impersonation_reason_required) == (False, False)
    assert effective.impersonation_max_minutes == 30
    (event,) = settings_events(world.root)
    assert event.actor_id == world.admin.pk
    assert event.data == {
        "impersonation_email_enabled": False,
        "impersonation_reason_required": False,
        "impersonation_max_minutes": 30,
    }
    body = admin_client.get(console_url(world.root, PAGE)).content.decode()
    assert "30 minutes" in body and "Set by this organization" in body


def test_child_may_tighten(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    response = client.post(
        console_url(world.eu, PAGE),
        form(
            impersonation_reason_required="required", max_minutes_mode="set", impersonation_max_minutes="20"
        ),
    )
    assert response.status_code == 302
    assert org_effective_settings(world.eu).impersonation_max_minutes == 20
    assert org_effective_settings(world.sales).impersonation_max_minutes == 20
    assert len(settings_events(world.eu)) == 1
    body = client.get(console_url(world.sales, PAGE)).content.decode()
    assert "20 minutes" in body and "Inherited from Acme EU" in body
    assert "Inherit from Acme EU (20 minutes)" in body


def test_child_may_not_loosen_the_time_limit(client: Client, world: World) -> None:
    organization_settings_update(actor=None, org=world.root, impersonation_max_minutes=45)
    sign_in(client, world.eu_admin)
    response = client.post(
        console_url(world.eu, PAGE), form(max_minutes_mode="set", impersonation_max_minutes="90")
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "never lengthen it" in body and "45 minutes" in body
    assert 'class="form-errors"' in body and 'id="id_impersonation_max_minutes_error"' in body
    assert own(world.eu) is None or own(world.eu).impersonation_max_minutes is None  # type: ignore[union-attr]
    assert not settings_events(world.eu)
    assert org_effective_settings(world.eu).impersonation_max_minutes == 45


def test_child_may_not_drop_a_required_reason(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    response = client.post(console_url(world.eu, PAGE), form(impersonation_reason_required="optional"))
    assert response.status_code == 400
    assert "cannot drop it" in response.content.decode()
    assert org_effective_settings(world.eu).impersonation_reason_required is True
    assert not settings_events(world.eu)


def test_child_may_switch_email_either_way(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    assert (
        client.post(console_url(world.eu, PAGE), form(impersonation_email_enabled="off")).status_code == 302
    )
    assert org_effective_settings(world.eu).impersonation_email_enabled is False
    assert org_effective_settings(world.root).impersonation_email_enabled is True


def test_inherit_clears_the_orgs_own_value(client: Client, world: World) -> None:
    organization_settings_update(
        actor=None, org=world.eu, impersonation_max_minutes=15, impersonation_email_enabled=False
    )
    sign_in(client, world.eu_admin)
    page = client.get(console_url(world.eu, PAGE)).content.decode()
    assert re.search(r'value="set"[^>]*checked', page) and re.search(r'value="off"[^>]*checked', page)
    response = client.post(console_url(world.eu, PAGE), form())
    assert response.status_code == 302
    row = own(world.eu)
    assert (
        row is not None and row.impersonation_max_minutes is None and row.impersonation_email_enabled is None
    )
    assert org_effective_settings(world.eu).impersonation_max_minutes == 60
    assert settings_events(world.eu)[-1].data == {
        "impersonation_email_enabled": None,
        "impersonation_max_minutes": None,
    }


def test_nothing_changed_writes_nothing(admin_client: Client, world: World) -> None:
    response = admin_client.post(console_url(world.root, PAGE), form())
    assert response.status_code == 302
    assert not settings_events(world.root) and own(world.root) is None


def test_own_value_looser_than_inherited_is_flagged(client: Client, world: World) -> None:
    organization_settings_update(actor=None, org=world.eu, impersonation_max_minutes=50)
    organization_settings_update(actor=None, org=world.root, impersonation_max_minutes=30)
    sign_in(client, world.eu_admin)
    body = client.get(console_url(world.eu, PAGE)).content.decode()
    assert "30 minutes" in body and "Inherited from Acme" in body and "has no effect" in body
    # saving another setting leaves the (ineffective) own value alone, so it is not refused
    assert (
        client.post(
            console_url(world.eu, PAGE),
            form(impersonation_email_enabled="on", max_minutes_mode="set", impersonation_max_minutes="50"),
        ).status_code
        == 302
    )


@pytest.mark.parametrize(
    "data",
    [
        form(max_minutes_mode="set", impersonation_max_minutes=""),
        form(max_minutes_mode="set", impersonation_max_minutes="abc"),
        form(max_minutes_mode="set", impersonation_max_minutes="0"),
        form(max_minutes_mode="set", impersonation_max_minutes="1441"),
        form(max_minutes_mode="set", impersonation_max_minutes="9" * 40),
        form(max_minutes_mode="set", impersonation_max_minutes="1\x00"),
        form(impersonation_email_enabled="maybe"),
        form(impersonation_reason_required="\x00"),
        {},
    ],
)
def test_bad_input_is_a_form_error(admin_client: Client, world: World, data: dict[str, Any]) -> None:
    response = admin_client.post(console_url(world.root, PAGE), data)
    assert response.status_code == 400
    assert 'class="form-errors"' in response.content.decode()
    assert not settings_events(world.root)


def test_403_without_the_scopes(client: Client, world: World) -> None:
    sign_in(client, world.target)
    assert client.get(console_url(world.root, PAGE)).status_code == 403
    assert (
        client.post(console_url(world.root, PAGE), form(impersonation_email_enabled="off")).status_code == 403
    )


def test_child_admin_cannot_change_the_parent(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    assert client.get(console_url(world.root, PAGE)).status_code == 403
    assert (
        client.post(console_url(world.us, PAGE), form(impersonation_email_enabled="off")).status_code == 403
    )
    assert own(world.us) is None


def test_view_scope_alone_may_look_not_change(client: Client, world: World) -> None:
    role = role_create(
        actor=None,
        org=world.root,
        name="Config viewers",
        audience_application=world.system.console,
        permissions=["internal_config_mgt_view"],
    )
    viewer = make_user(world.root, "viewer")
    role_assign(actor=None, role=role, org=world.root, user=viewer)
    sign_in(client, viewer)
    page = client.get(console_url(world.root, PAGE))
    assert page.status_code == 200 and "not change them" in page.content.decode()
    assert (
        client.post(console_url(world.root, PAGE), form(impersonation_email_enabled="off")).status_code == 403
    )
    assert own(world.root) is None


def test_post_needs_csrf(admin_client: Client, world: World) -> None:
    admin_client.handler.enforce_csrf_checks = True
    assert (
        admin_client.post(console_url(world.root, PAGE), form(impersonation_email_enabled="off")).status_code
        == 403
    )
    assert own(world.root) is None
