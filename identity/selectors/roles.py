"""Reads: roles, where they apply and who holds them."""

from __future__ import annotations

from django.db.models import F, Q, QuerySet

from identity.models import (
    Role,
    RoleAssignment,
    User,
)
from identity.selectors.applications import application_available_in, applications_available_in
from organizations.models import Organization

# --- roles --------------------------------------------------------------------------------


def tenant_system_role(*, tenant: Organization, name: str) -> Role:
    """One of the tenant's system roles (Administrator, Impersonator)."""
    return Role.objects.select_related("audience_application").get(
        organization=tenant, name=name, is_system=True
    )


def roles_in_org(org: Organization) -> list[Role]:
    """Roles an administrator of ``org`` sees: its own, and the shared roles — the roles that
    the owner of an application shared with ``org`` created for it (the system roles of the
    Console and My Account among them). A role another organization made for a shared
    application stays that organization's own."""
    available = [a.pk for a in applications_available_in(org) if a.organization_id != org.pk]
    qs = Role.objects.filter(
        Q(organization=org)
        | Q(audience_application__in=available, organization=F("audience_application__organization"))
    ).select_related("audience_application", "organization")
    return list(qs.order_by("name", "audience_application__name"))


def role_is_shared_into(*, role: Role, org: Organization) -> bool:
    """A role owned by another organization that appears in ``org`` as a shared role: it was
    made by the owner of its application, and that application is shared with ``org``."""
    if role.organization_id == org.pk:
        return False
    app = role.audience_application
    return (
        app is not None
        and role.organization_id == app.organization_id
        and application_available_in(application=app, org=org)
    )


def role_assignments_in_org(*, role: Role, org: Organization) -> QuerySet[RoleAssignment]:
    return (
        RoleAssignment.objects.filter(role=role)
        .filter(Q(user__organization=org) | Q(association__organization=org))
        .select_related("user", "association__user")
        .order_by("assigned_at")
    )


def user_roles_in_org(*, user: User, org: Organization) -> list[Role]:
    """The roles assigned to ``user`` in ``org``: directly where the user is resident, through
    the user's association where shared in. Which of the two is known from the user, so the
    query filters one indexed column (an OR of both joined every user of the database)."""
    if user.organization_id == org.pk:
        assignments = RoleAssignment.objects.filter(user=user)
    else:
        assignments = RoleAssignment.objects.filter(association__user=user, association__organization=org)
    return list(
        Role.objects.filter(assignments__in=assignments)
        .select_related("audience_application")
        .distinct()
        .order_by("name")
    )
