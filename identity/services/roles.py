"""Role services: create with an audience, change permissions, assign and unassign."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from identity.audit.services import audit_record
from identity.hooks import impersonations_revalidate
from identity.models import (
    IMPERSONATION_SCOPES,
    Application,
    Role,
    RoleAssignment,
    Scope,
    User,
    UserAssociation,
)
from identity.selectors.applications import application_authorized_scopes, application_available_in
from identity.selectors.roles import role_is_shared_into
from organizations.models import Organization


def _resolve_scopes(
    *, org: Organization, audience_application: Application | None, names: Iterable[str]
) -> list[Scope]:
    wanted = sorted(set(names))
    if audience_application is not None:
        pool = application_authorized_scopes(audience_application)
    else:
        pool = Scope.objects.filter(tenant_id=org.tenant_id)
    if audience_application is None and IMPERSONATION_SCOPES & set(wanted):
        raise ValidationError({"permissions": ["Impersonation can only be granted by an application role."]})
    found = list(pool.filter(name__in=wanted))
    missing = sorted(set(wanted) - {s.name for s in found})
    if missing:
        where = f"authorized for {audience_application.name}" if audience_application else "in this tenant"
        raise ValidationError({"permissions": [f"Not a permission {where}: {', '.join(missing)}."]})
    return found


@transaction.atomic
def role_create(
    *,
    actor: User | None,
    org: Organization,
    name: str,
    audience_application: Application | None,
    permissions: Iterable[str] = (),
    is_system: bool = False,
) -> Role:
    """Create a role owned by ``org`` whose audience is ``org`` itself or one application
    owned by or shared with ``org``."""
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["Enter a name."]
    if audience_application is not None and not application_available_in(
        application=audience_application, org=org
    ):
        errors["audience_application"] = [
            "The audience application must be owned by or shared with this organization."
        ]
    if errors:
        raise ValidationError(errors)
    audience = Role.Audience.APPLICATION if audience_application else Role.Audience.ORGANIZATION
    taken = ValidationError({"name": ["A role with this name already exists for this audience."]})
    if Role.objects.filter(
        organization=org, name__iexact=name, audience=audience, audience_application=audience_application
    ).exists():
        raise taken
    scopes = _resolve_scopes(org=org, audience_application=audience_application, names=permissions)
    try:
        with transaction.atomic():
            role = Role.objects.create(
                organization=org,
                name=name,
                audience=audience,
                audience_application=audience_application,
                is_system=is_system,
            )
    except IntegrityError as exc:  # a concurrent create with the same name
        raise taken from exc
    role.permissions.set(scopes)
    audit_record(
        org=org,
        action="role-create",
        actor=actor,
        target_type="role",
        target_id=role.pk,
        data={
            "name": role.name,
            "audience": audience,
            "audience_application": audience_application.client_id if audience_application else None,
            "permissions": sorted(s.name for s in scopes),
        },
    )
    return role


def role_is_editable_in(*, role: Role, org: Organization) -> bool:
    return not role.is_system and role.organization_id == org.pk


@transaction.atomic
def role_set_permissions(
    *, actor: User | None, role: Role, org: Organization, permissions: Iterable[str]
) -> Role:
    if not role_is_editable_in(role=role, org=org):
        raise ValidationError("System roles and shared roles cannot be edited.")
    scopes = _resolve_scopes(org=org, audience_application=role.audience_application, names=permissions)
    before = sorted(role.permissions.values_list("name", flat=True))
    role.permissions.set(scopes)
    # Whoever holds the role may now dominate less, or be dominated less.
    impersonations_revalidate(actor=actor, tenant_id=org.tenant_id or org.pk, everyone=True)
    audit_record(
        org=org,
        action="role-update",
        actor=actor,
        target_type="role",
        target_id=role.pk,
        data={"from": before, "to": sorted(s.name for s in scopes)},
    )
    return role


def _principal(*, user: User, org: Organization) -> dict[str, object]:
    if user.organization_id == org.pk:
        return {"user": user}
    association = UserAssociation.objects.filter(user=user, organization=org).first()
    if association is None:
        raise ValidationError({"user": ["This user is not a member of this organization."]})
    return {"association": association}


def _check_role_visible(*, role: Role, org: Organization) -> None:
    if role.organization_id != org.pk and not role_is_shared_into(role=role, org=org):
        raise ValidationError("This role is not available in this organization.")


@transaction.atomic
def role_assign(*, actor: User | None, role: Role, org: Organization, user: User) -> RoleAssignment:
    """Assign ``role`` to ``user`` in ``org`` (to their shared profile when shared in)."""
    _check_role_visible(role=role, org=org)
    principal = _principal(user=user, org=org)
    already = ValidationError({"user": ["This user already has this role."]})
    if RoleAssignment.objects.filter(role=role, **principal).exists():
        raise already
    try:
        with transaction.atomic():
            assignment = RoleAssignment.objects.create(role=role, **principal)
    except IntegrityError as exc:  # a double-submitted form
        raise already from exc
    # A target promoted beyond their impersonator is no longer theirs to act as.
    impersonations_revalidate(actor=actor, tenant_id=org.tenant_id or org.pk, user_ids=(user.pk,))
    audit_record(
        org=org,
        action="role-assign",
        actor=actor,
        subject=user,
        target_type="role",
        target_id=role.pk,
        data={"role": role.name, "via_association": "association" in principal},
    )
    return assignment


@transaction.atomic
def role_unassign(*, actor: User | None, role: Role, org: Organization, user: User) -> None:
    _check_role_visible(role=role, org=org)
    principal = _principal(user=user, org=org)
    deleted, _ = RoleAssignment.objects.filter(role=role, **principal).delete()
    if not deleted:
        raise ValidationError({"user": ["This user does not have this role."]})
    # An impersonator who loses the role that let them impersonate stops at once.
    impersonations_revalidate(actor=actor, tenant_id=org.tenant_id or org.pk, user_ids=(user.pk,))
    audit_record(
        org=org,
        action="role-unassign",
        actor=actor,
        subject=user,
        target_type="role",
        target_id=role.pk,
        data={"role": role.name},
    )
