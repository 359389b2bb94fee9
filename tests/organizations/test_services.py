"""Tree primitives: creation rules and the tighten-never-loosen settings."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from identity.audit.models import AuditEvent
from organizations.models import Organization, OrganizationSettings
from organizations.selectors import org_effective_settings
from organizations.services import (
    org_insert,
    org_set_status,
    organization_create,
    organization_settings_update,
)
from tests.conftest import World


def test_root_gets_itself_as_tenant(db: None) -> None:
    root = org_insert(parent=None, name="Globex", handle="globex")
    assert root.tenant_id == root.pk
    assert root.is_root


def test_child_inherits_tenant_and_sits_below_parent(world: World) -> None:
    assert world.sales.tenant_id == world.root.pk
    assert world.sales.parent_id == world.eu.pk
    assert world.sales.level == 2


@pytest.mark.parametrize(
    ("name", "handle", "field"),
    [("", "fine", "name"), ("Fine", "Not Valid!", "handle"), ("Fine", "acme-eu", "handle")],
)
def test_bad_input_is_refused_and_nothing_written(world: World, name: str, handle: str, field: str) -> None:
    before = Organization.objects.count()
    with pytest.raises(ValidationError) as exc:
        organization_create(actor=world.admin, parent=world.root, name=name, handle=handle)
    assert field in exc.value.message_dict
    assert Organization.objects.count() == before


def test_same_handle_allowed_in_another_tenant(world: World) -> None:
    other = org_insert(parent=None, name="Globex", handle="globex")
    child = org_insert(parent=other, name="EU", handle="acme-eu")
    assert child.tenant_id == other.pk


def test_duplicate_tenant_handle_refused(world: World) -> None:
    with pytest.raises(ValidationError) as exc:
        org_insert(parent=None, name="Acme again", handle="acme")
    assert "handle" in exc.value.message_dict


def test_disabled_parent_refuses_children(world: World) -> None:
    org_set_status(org=world.us, status=Organization.Status.DISABLED)
    with pytest.raises(ValidationError) as exc:
        org_insert(parent=world.us, name="US West", handle="acme-us-west")
    assert "parent" in exc.value.message_dict


def test_root_cannot_be_disabled(world: World) -> None:
    with pytest.raises(ValidationError):
        org_set_status(org=world.root, status=Organization.Status.DISABLED)


def test_create_is_audited_in_the_same_transaction(world: World) -> None:
    org = organization_create(actor=world.admin, parent=world.eu, name="EU North", handle="acme-eu-north")
    event = AuditEvent.objects.filter(action="organization-create").latest("seq")
    assert event.target_id == str(org.pk)
    assert event.actor_id == world.admin.pk
    assert event.org_id == org.pk


def test_settings_defaults(world: World) -> None:
    effective = org_effective_settings(world.sales)
    assert effective.impersonation_email_enabled is True
    assert effective.impersonation_reason_required is True
    assert effective.impersonation_max_minutes == 60


def test_child_may_tighten_never_loosen(world: World) -> None:
    organization_settings_update(actor=world.admin, org=world.eu, impersonation_max_minutes=30)
    assert org_effective_settings(world.sales).impersonation_max_minutes == 30
    with pytest.raises(ValidationError) as exc:
        organization_settings_update(actor=world.admin, org=world.sales, impersonation_max_minutes=45)
    assert "impersonation_max_minutes" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        organization_settings_update(actor=world.admin, org=world.eu, impersonation_reason_required=False)
    assert "impersonation_reason_required" in exc.value.message_dict
    organization_settings_update(actor=world.admin, org=world.sales, impersonation_max_minutes=10)
    assert org_effective_settings(world.sales).impersonation_max_minutes == 10
    assert org_effective_settings(world.eu).impersonation_max_minutes == 30


def test_root_may_loosen_its_own_defaults_and_children_tighten_again(world: World) -> None:
    organization_settings_update(
        actor=world.admin, org=world.root, impersonation_reason_required=False, impersonation_max_minutes=120
    )
    assert org_effective_settings(world.eu).impersonation_reason_required is False
    assert org_effective_settings(world.eu).impersonation_max_minutes == 120
    organization_settings_update(actor=world.admin, org=world.eu, impersonation_reason_required=True)
    assert org_effective_settings(world.sales).impersonation_reason_required is True
    assert org_effective_settings(world.us).impersonation_reason_required is False


def test_email_toggle_is_inherited_unless_set(world: World) -> None:
    organization_settings_update(actor=world.admin, org=world.root, impersonation_email_enabled=False)
    assert org_effective_settings(world.sales).impersonation_email_enabled is False
    organization_settings_update(actor=world.admin, org=world.eu, impersonation_email_enabled=True)
    assert org_effective_settings(world.sales).impersonation_email_enabled is True
    assert org_effective_settings(world.us).impersonation_email_enabled is False
    organization_settings_update(actor=world.admin, org=world.eu, impersonation_email_enabled=None)
    assert org_effective_settings(world.sales).impersonation_email_enabled is False


def test_refused_setting_writes_nothing(world: World) -> None:
    organization_settings_update(actor=world.admin, org=world.eu, impersonation_max_minutes=30)
    with pytest.raises(ValidationError):
        organization_settings_update(actor=world.admin, org=world.sales, impersonation_max_minutes=0)
    assert not OrganizationSettings.objects.filter(
        organization=world.sales, impersonation_max_minutes__isnull=False
    ).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers on PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_tenant_creation_keeps_trees_apart() -> None:
    import threading

    from django.db import connections

    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def create(n: int) -> None:
        try:
            barrier.wait()
            org_insert(parent=None, name=f"Tenant {n}", handle=f"tenant-{n}")
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    tree_ids = list(Organization.objects.filter(parent__isnull=True).values_list("tree_id", flat=True))
    assert len(tree_ids) == 6 and len(set(tree_ids)) == 6
