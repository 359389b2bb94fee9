"""Authorization checks. Each returns the object it guards or raises (404 / 403).

Every authorization decision of the Console goes through one of these; views call them
before any service. Not found and not allowed are kept apart only where telling them apart
leaks nothing (an object outside the administrator's organization is simply not found).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from identity.hooks import session_impersonation
from identity.models import APIResource, Application, Role, User
from identity.selectors.applications import application_available_in, tenant_system_application
from identity.selectors.permissions import user_grantable_scope_names, user_scopes_along_path
from identity.selectors.roles import role_is_shared_into
from identity.selectors.users import org_members
from organizations.models import Organization
from organizations.selectors import org_get_in_tenant, org_is_descendant, org_tenant, tenant_get


def access_tenant(*, handle: str) -> Organization:
    tenant = tenant_get(handle=handle)
    if tenant is None or tenant.status != Organization.Status.ACTIVE:
        raise Http404("No such tenant.")
    return tenant


def access_org_in_tenant(*, tenant: Organization, org_id: uuid.UUID | str | None) -> Organization:
    if org_id is None:
        return tenant
    org = org_get_in_tenant(tenant=tenant, org_id=org_id)
    if org is None:
        raise Http404("No such organization.")
    return org


def access_console(
    *, user: User, org: Organization, scope: str | None, path: Sequence[Organization] | None = None
) -> frozenset[str]:
    """The Console scopes ``user`` holds in ``org`` (held in ``org`` or an ancestor of it).

    Raises PermissionDenied when the user holds none, or not ``scope`` when one is named.
    ``path`` (root first, ``org`` last) saves a query when the caller has it already.
    Administrators of an organization administer its descendants, never its siblings or
    ancestors.
    """
    if not getattr(user, "is_authenticated", False) or user.organization.tenant_id != org.tenant_id:
        raise PermissionDenied("You are not an administrator of this organization.")
    tenant = path[0] if path else org_tenant(org)
    console = tenant_system_application(tenant=tenant, key=Application.SystemKey.CONSOLE)
    if console is None:
        raise PermissionDenied("This tenant has no Console.")
    held = user_scopes_along_path(user=user, application=console, org=org, path=path)
    if not held:
        raise PermissionDenied("You are not an administrator of this organization.")
    if scope is not None and scope not in held:
        raise PermissionDenied("Your role does not allow this action.")
    return held


def access_grant(
    *,
    user: User,
    org: Organization,
    permissions: Iterable[str],
    path: Sequence[Organization] | None = None,
) -> None:
    """No privilege escalation: a user hands out (in a role they create, edit or assign) only
    permissions they hold themselves in ``org`` or an ancestor of it."""
    missing = sorted(set(permissions) - user_grantable_scope_names(user=user, org=org, path=path))
    if missing:
        raise PermissionDenied(
            "You can only grant permissions you hold yourself. You do not hold: " + ", ".join(missing) + "."
        )


def access_console_child_org(*, org: Organization, org_id: uuid.UUID | str) -> Organization:
    """An organization in the subtree of ``org`` (itself included)."""
    child = org_get_in_tenant(tenant=org_tenant(org), org_id=org_id)
    if child is None or not org_is_descendant(child, of=org, include_self=True):
        raise Http404("No such organization.")
    return child


def _uuid_or_404(value: uuid.UUID | str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise Http404(f"No such {what}.") from exc


def access_console_user(*, org: Organization, user_id: uuid.UUID | str) -> User:
    """A member (resident or shared) of ``org``."""
    pk = _uuid_or_404(user_id, "user")
    user = org_members(org).select_related("organization").filter(pk=pk).first()
    if user is None:
        raise Http404("No such user.")
    return user


def access_console_role(*, org: Organization, role_id: uuid.UUID | str) -> Role:
    """A role owned by ``org`` or shared into it."""
    pk = _uuid_or_404(role_id, "role")
    role = (
        Role.objects.select_related("audience_application__organization", "organization")
        .filter(pk=pk)
        .first()
    )
    if role is None or (role.organization_id != org.pk and not role_is_shared_into(role=role, org=org)):
        raise Http404("No such role.")
    return role


def access_console_application(*, org: Organization, application_id: int | str) -> Application:
    """An application owned by or shared with ``org``."""
    try:
        pk = int(application_id)
    except (TypeError, ValueError) as exc:
        raise Http404("No such application.") from exc
    app = Application.objects.select_related("organization").filter(pk=pk).first()
    if app is None or not application_available_in(application=app, org=org):
        raise Http404("No such application.")
    return app


def access_application_owned(*, org: Organization, application: Application) -> Application:
    """``application`` when ``org`` owns it: only the owner edits an application's settings,
    API authorizations, roles and sharing (an organization it is shared with sees them)."""
    if application.organization_id != org.pk:
        raise PermissionDenied(
            f"Only {application.organization.name}, which owns this application, can change this."
        )
    return application


def access_application_business(*, org: Organization, application: Application) -> Application:
    """An application owned by ``org`` that is not a system one (Console, My Account)."""
    access_application_owned(org=org, application=application)
    if application.system_key:
        raise PermissionDenied("System applications cannot be changed this way.")
    return application


def access_application_sharing(*, org: Organization, application: Application) -> Application:
    """The owner may change how an application is shared, except the Console's, which serves
    every organization of its tenant whatever its sharing says."""
    access_application_owned(org=org, application=application)
    if application.system_key == Application.SystemKey.CONSOLE:
        raise PermissionDenied("The Console is always available in every organization of the tenant.")
    return application


def access_console_api_resource(*, tenant: Organization, resource_id: uuid.UUID | str) -> APIResource:
    """An API resource of ``tenant``."""
    pk = _uuid_or_404(resource_id, "API resource")
    resource = APIResource.objects.filter(pk=pk, tenant=tenant).first()
    if resource is None:
        raise Http404("No such API resource.")
    return resource


def access_api_resource_editable(*, org: Organization, resource: APIResource | None = None) -> None:
    """API resources belong to the tenant: only its root organization's Console creates or
    changes them, and never a system one."""
    if org.parent_id is not None:
        raise PermissionDenied("API resources are managed in the Console of the tenant's root organization.")
    if resource is not None and resource.is_system:
        raise PermissionDenied("System API resources cannot be changed.")


def access_not_impersonating(*, request: HttpRequest) -> None:
    """Sensitive actions (creating applications or client secrets, consents, a user's
    password, email or MFA) are refused while the browser is impersonating someone."""
    if session_impersonation(session=getattr(request, "sso_session", None) or None) is not None:
        raise PermissionDenied(
            "This is not allowed while you are impersonating someone. End the impersonation first."
        )


def access_user_sharing(*, org: Organization, user: User) -> User:
    """``user`` when their sharing is managed in ``org``'s Console: only the Console of the
    organization a user is resident in shares them with (and unshares them from) the
    organizations below it."""
    if user.organization_id != org.pk:
        raise PermissionDenied(
            f"{user.username} is resident in {user.organization.name}: "
            "their sharing is managed in that organization's Console."
        )
    return user


def access_share_organization(*, org: Organization, org_id: uuid.UUID | str) -> Organization:
    """An organization strictly below ``org`` (the administrator's Console) to share a user
    with or unshare them from; any other organization is refused."""
    pk = _uuid_or_404(org_id, "organization")
    target = org_get_in_tenant(tenant=org_tenant(org), org_id=pk)
    if target is None or not org_is_descendant(target, of=org):
        raise PermissionDenied(f"You can only share people with organizations below {org.name}.")
    return target
