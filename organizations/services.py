"""Writes to the organization tree.

The tree primitives (``org_insert``, ``org_set_status``, ``org_settings_write``) validate and
write, always inside the caller's transaction, and record nothing. The audited services
(``organization_create``, ``tenant_root_create``, ``organization_set_status``,
``organization_settings_update``) wrap them: each writes its audit record in the same
transaction. Everyone else calls the audited services; the primitives are for them (and
tests). This module imports identity's models, audit trail and OAuth hooks (identity's
modules import ``organizations.models`` and ``organizations.selectors``, and of this module
only the audited services, so no module imports back into itself).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from identity.audit.services import audit_chain_head_create, audit_record
from identity.hooks import impersonations_revalidate
from identity.models import User
from organizations.models import NAME_MAX_LENGTH, Organization, OrganizationSettings, handle_validator
from organizations.selectors import org_effective_settings

# Any constant works; it names the lock that serialises the creation of tenant roots.
_ROOT_INSERT_LOCK = 0x61637461  # "acta"


def _lock_for_insert(parent: Organization | None) -> None:
    """Serialise tree writes: mptt renumbers lft/rght inside a tenant on insert, and gives a
    new root ``max(tree_id) + 1``, so two concurrent writers could corrupt the tree."""
    if parent is not None:
        Organization.objects.select_for_update().filter(pk=parent.tenant_id).first()
    elif connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ROOT_INSERT_LOCK])
    # SQLite (the embedded default) runs one writing transaction at a time anyway.


@transaction.atomic
def org_insert(*, parent: Organization | None, name: str, handle: str) -> Organization:
    """Create an organization under ``parent`` (a tenant root when ``parent`` is None)."""
    name = (name or "").strip()
    handle = (handle or "").strip().lower()
    errors: dict[str, list[str]] = {}
    if not name:
        errors.setdefault("name", []).append("Enter a name.")
    elif len(name) > NAME_MAX_LENGTH:
        errors.setdefault("name", []).append(f"Use at most {NAME_MAX_LENGTH} characters.")
    try:
        handle_validator(handle)
    except ValidationError as exc:
        errors.setdefault("handle", []).extend(exc.messages)
    if parent is not None and parent.status != Organization.Status.ACTIVE:
        errors.setdefault("parent", []).append("The parent organization is disabled.")
    if errors:
        raise ValidationError(errors)

    _lock_for_insert(parent)
    if parent is None:
        taken = ValidationError({"handle": ["A tenant with this handle already exists."]})
        if Organization.objects.filter(parent__isnull=True, handle=handle).exists():
            raise taken
    else:
        taken = ValidationError(
            {"handle": ["An organization with this handle already exists in this tenant."]}
        )
        if Organization.objects.filter(tenant_id=parent.tenant_id, handle=handle).exists():
            raise taken
        parent.refresh_from_db()
    try:
        with transaction.atomic():
            org = Organization(name=name, handle=handle, parent=parent, tenant_id=parent and parent.tenant_id)
            org.save()
            if parent is None:
                org.tenant = org
                org.save(update_fields=["tenant"])
    except IntegrityError as exc:
        raise taken from exc
    return org


@transaction.atomic
def org_set_status(*, org: Organization, status: str) -> Organization:
    if status not in Organization.Status.values:
        raise ValidationError({"status": ["Unknown status."]})
    if org.parent_id is None and status != Organization.Status.ACTIVE:
        raise ValidationError({"status": ["A tenant's root organization cannot be disabled here."]})
    org.status = status
    org.save(update_fields=["status"])
    return org


_UNSET = object()


@transaction.atomic
def org_settings_write(
    *,
    org: Organization,
    impersonation_email_enabled: bool | None | object = _UNSET,
    impersonation_reason_required: bool | None | object = _UNSET,
    impersonation_max_minutes: int | None | object = _UNSET,
) -> OrganizationSettings:
    """Set (or, with None, clear to *inherit*) this organization's own settings.

    A child organization may tighten what it inherits (require a reason, shorten the
    maximum length) but never loosen it; such a value is refused with a field error.
    """
    row, _ = OrganizationSettings.objects.select_for_update().get_or_create(organization=org)
    errors: dict[str, list[str]] = {}
    inherited = org_effective_settings(org, include_self=False) if org.parent_id else None
    if impersonation_email_enabled is not _UNSET:
        row.impersonation_email_enabled = impersonation_email_enabled  # type: ignore[assignment]
    if impersonation_reason_required is not _UNSET:
        if (
            inherited is not None
            and impersonation_reason_required is False
            and inherited.impersonation_reason_required
        ):
            errors["impersonation_reason_required"] = [
                "A parent organization requires a reason; a child organization cannot drop it."
            ]
        row.impersonation_reason_required = impersonation_reason_required  # type: ignore[assignment]
    if impersonation_max_minutes is not _UNSET:
        value = impersonation_max_minutes
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 24 * 60:
                errors["impersonation_max_minutes"] = ["Enter a whole number of minutes, 1 to 1440."]
            elif inherited is not None and value > inherited.impersonation_max_minutes:
                errors["impersonation_max_minutes"] = [
                    "A child organization may shorten the maximum length it inherits "
                    f"({inherited.impersonation_max_minutes} minutes), never lengthen it."
                ]
        row.impersonation_max_minutes = value  # type: ignore[assignment]
    if errors:
        raise ValidationError(errors)
    row.save()
    return row


# --- audited services --------------------------------------------------------------------


@transaction.atomic
def organization_create(*, actor: User | None, parent: Organization, name: str, handle: str) -> Organization:
    """Create a child organization under ``parent``."""
    org = org_insert(parent=parent, name=name, handle=handle)
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
    org = org_insert(parent=None, name=name, handle=handle)
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
    org_set_status(org=org, status=status)
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
    row = org_settings_write(org=org, **values)
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
