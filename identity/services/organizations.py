"""Audited organization services (the tree primitives live in ``organizations.services``)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from identity.models import User
from identity.oauth.hooks import impersonations_revalidate
from identity.services.audit import audit_chain_head_create, audit_record
from organizations import services as tree
from organizations.models import Organization, OrganizationSettings


@transaction.atomic
def organization_create(*, actor: User | None, parent: Organization, name: str, handle: str) -> Organization:
    """Create a child organization under ``parent``."""
    org = tree.org_insert(parent=parent, name=name, handle=handle)
    audit_record(
        org=org,
        action="organization-create",
        actor=actor,
        target_type="organization",
        target_id=org.pk,
        data={"name": org.name, "handle": org.handle, "parent": str(parent.pk)},
    )
    return org


@transaction.atomic
def tenant_root_create(*, actor: User | None, name: str, handle: str) -> Organization:
    """Create a tenant's root organization and its audit chain."""
    org = tree.org_insert(parent=None, name=name, handle=handle)
    audit_chain_head_create(tenant=org)
    audit_record(
        org=org,
        action="tenant-create",
        actor=actor,
        target_type="organization",
        target_id=org.pk,
        data={"name": org.name, "handle": org.handle},
    )
    return org


@transaction.atomic
def organization_set_status(*, actor: User | None, org: Organization, status: str) -> Organization:
    before = org.status
    tree.org_set_status(org=org, status=status)
    if status != Organization.Status.ACTIVE:
        # Impersonations in it and below it end now; the other tokens of those organizations
        # stop at the next use (identity.oauth.bearer checks the organization is usable).
        impersonations_revalidate(actor=actor, tenant_id=org.tenant_id or org.pk, org=org)
    audit_record(
        org=org,
        action="organization-status-change",
        actor=actor,
        target_type="organization",
        target_id=org.pk,
        data={"from": before, "to": status},
    )
    return org


@transaction.atomic
def organization_settings_update(
    *, actor: User | None, org: Organization, impersonator: User | None = None, **values: Any
) -> OrganizationSettings:
    """Set this organization's own settings; ``None`` clears a value back to *inherit*.
    ``impersonator``: who is acting as ``actor`` (an impersonated API call)."""
    row = tree.org_settings_write(org=org, **values)
    audit_record(
        org=org,
        action="organization-settings-update",
        actor=actor,
        impersonator=impersonator,
        target_type="organization",
        target_id=org.pk,
        data={k: v for k, v in values.items()},
    )
    return row
