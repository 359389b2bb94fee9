"""Reads: the applications available in an organization, their login flows, API authorizations
and roles, and the tenant's API resources."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet

from identity.models import (
    APIResource,
    Application,
    ApplicationAPIAuthorization,
    ApplicationShare,
    LoginFlow,
    Role,
    Scope,
)
from organizations.models import Organization
from organizations.selectors import (
    org_ancestors,
    org_is_descendant,
)

# --- applications and sharing -------------------------------------------------------------


def application_available_in(*, application: Application, org: Organization) -> bool:
    """Owned by ``org``, or shared with it (all descendants, or selected)."""
    if application.organization_id == org.pk:
        return True
    owner = application.organization
    if not org_is_descendant(org, of=owner):
        return False
    if application.system_key == Application.SystemKey.CONSOLE:
        return True  # the Console serves every organization of its tenant
    if application.shared_access == Application.SharedAccess.ALL:
        return True
    if application.shared_access == Application.SharedAccess.SELECTED:
        return ApplicationShare.objects.filter(application=application, organization=org).exists()
    return False


def applications_available_in(org: Organization) -> list[Application]:
    """Applications owned by ``org`` or shared with it. Two queries."""
    ancestors = org_ancestors(org, include_self=False)
    ancestor_ids = [a.pk for a in ancestors]
    selected = ApplicationShare.objects.filter(application=OuterRef("pk"), organization=org)
    qs = Application.objects.filter(
        Q(organization=org)
        | Q(organization__in=ancestor_ids)
        & (
            Q(shared_access=Application.SharedAccess.ALL)
            | Q(system_key=Application.SystemKey.CONSOLE)
            | Q(shared_access=Application.SharedAccess.SELECTED) & Q(Exists(selected))
        )
    ).select_related("organization")
    return list(qs.order_by("name"))


def application_of_tenant(*, tenant: Organization, client_id: str) -> Application | None:
    """The application with this client id, if one of ``tenant``'s organizations owns it (one
    statement, with its owner)."""
    if not isinstance(client_id, str) or not client_id or "\x00" in client_id:
        return None
    # client_id is unique: no ordering needed to take the one row.
    found = list(
        Application.objects.select_related("organization").filter(
            client_id=client_id[:255], organization__tenant_id=tenant.pk
        )[:1]
    )
    return found[0] if found else None


def tenant_system_application(*, tenant: Organization, key: str) -> Application | None:
    return Application.objects.filter(organization=tenant, system_key=key).first()


def application_authorized_scopes(application: Application) -> QuerySet[Scope]:
    auths = ApplicationAPIAuthorization.objects.filter(application=application)
    return Scope.objects.filter(pk__in=auths.values("scopes"))


def login_flow_steps(*, application: Application, org: Organization) -> list[list[str]]:
    """The flow for (application, org): the org's own, else the owner's, else one basic step."""
    rows = {
        f.organization_id: f.steps
        for f in LoginFlow.objects.filter(
            application=application, organization__in=[org.pk, application.organization_id]
        )
    }
    steps = rows.get(org.pk) or rows.get(application.organization_id)
    return steps or [["BasicAuthenticator"]]


def login_flow_is_own(*, application: Application, org: Organization) -> bool:
    return LoginFlow.objects.filter(application=application, organization=org).exists()


# --- Console: applications and API resources ----------------------------------------------


def application_api_authorizations(application: Application) -> list[ApplicationAPIAuthorization]:
    """The application's API authorizations with their resources and scopes. Two queries."""
    return list(
        ApplicationAPIAuthorization.objects.filter(application=application)
        .select_related("resource")
        .prefetch_related("scopes")
        .order_by("resource__name")
    )


def application_roles_in_org(*, application: Application, org: Organization) -> list[Role]:
    """Roles whose audience is ``application`` that ``org`` sees: the owner's (shared roles,
    where the application is shared) and ``org``'s own."""
    qs = Role.objects.filter(audience=Role.Audience.APPLICATION, audience_application=application).filter(
        Q(organization=org) | Q(organization_id=application.organization_id)
    )
    return list(qs.select_related("organization").prefetch_related("permissions").order_by("name"))


def tenant_api_resources(tenant: Organization) -> list[APIResource]:
    """Every API resource of the tenant (system first, then by name) with its scopes."""
    return list(
        APIResource.objects.filter(tenant=tenant).prefetch_related("scopes").order_by("-is_system", "name")
    )
