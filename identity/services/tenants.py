"""Tenant bootstrap: the root organization and the system objects every tenant has.

``tenant_ensure_system_objects`` is idempotent (it creates what is missing and touches
nothing else), so ``seed_demo`` and upgrades can call it again safely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from identity.audit.services import audit_record
from identity.models import (
    IMPERSONATE_SCOPE,
    ORG_IMPERSONATE_SCOPE,
    APIResource,
    Application,
    LoginFlow,
    Role,
    Scope,
    User,
)
from identity.services.applications import application_authorize_api, application_create
from identity.services.roles import role_assign, role_create
from identity.services.users import user_create
from organizations.models import Organization
from organizations.selectors import tenant_get
from organizations.services import tenant_root_create

# (identifier, name, type, [(scope, display name, read-only)])
SYSTEM_RESOURCES: list[tuple[str, str, str, list[tuple[str, str, bool]]]] = [
    (
        "system:impersonation",
        "User Impersonation",
        APIResource.Type.TENANT,
        [
            (IMPERSONATE_SCOPE, "Impersonate another user", False),
        ],
    ),
    (
        "org:impersonation",
        "Organization User Impersonation",
        APIResource.Type.ORGANIZATION,
        [
            (ORG_IMPERSONATE_SCOPE, "Impersonate another user of an organization", False),
        ],
    ),
    (
        "system:users",
        "User Management",
        APIResource.Type.TENANT,
        [
            ("internal_user_mgt_view", "View users", True),
            ("internal_user_mgt_list", "List users", True),
            ("internal_user_mgt_create", "Create users", False),
            ("internal_user_mgt_update", "Update users", False),
            ("internal_user_mgt_delete", "Delete users", False),
        ],
    ),
    (
        "org:users",
        "Organization User Management",
        APIResource.Type.ORGANIZATION,
        [
            ("internal_org_user_mgt_view", "View organization users", True),
            ("internal_org_user_mgt_list", "List organization users", True),
            ("internal_org_user_mgt_update", "Update organization users", False),
        ],
    ),
    (
        "system:configs",
        "Configuration Management",
        APIResource.Type.TENANT,
        [
            ("internal_config_mgt_view", "View configuration", True),
            ("internal_config_mgt_update", "Update configuration", False),
        ],
    ),
    (
        "system:console",
        "Console Management",
        APIResource.Type.TENANT,
        [
            ("internal_org_mgt_view", "View organizations", True),
            ("internal_org_mgt_create", "Create organizations", False),
            ("internal_org_mgt_update", "Update organizations", False),
            ("internal_role_mgt_view", "View roles", True),
            ("internal_role_mgt_create", "Create roles", False),
            ("internal_role_mgt_update", "Update and assign roles", False),
            ("internal_application_mgt_view", "View applications", True),
            ("internal_application_mgt_update", "Manage applications", False),
            ("internal_audit_view", "View audit logs", True),
        ],
    ),
    (
        "system:login",
        "Login",
        APIResource.Type.TENANT,
        [
            ("internal_login", "Sign in", True),
        ],
    ),
]

CONSOLE_RESOURCES = ("system:users", "org:users", "system:configs", "system:console")
MYACCOUNT_RESOURCES = ("system:impersonation", "org:impersonation")
ADMINISTRATOR_ROLE = "Administrator"
IMPERSONATOR_ROLE = "Impersonator"


@dataclass(frozen=True)
class TenantSystem:
    tenant: Organization
    console: Application
    myaccount: Application
    administrator: Role
    impersonator: Role


def _ensure_resources(tenant: Organization) -> dict[str, APIResource]:
    resources: dict[str, APIResource] = {}
    for identifier, name, kind, scopes in SYSTEM_RESOURCES:
        resource, _ = APIResource.objects.get_or_create(
            tenant=tenant,
            identifier=identifier,
            defaults={"name": name, "type": kind, "is_system": True},
        )
        for scope_name, display, read_only in scopes:
            Scope.objects.get_or_create(
                tenant=tenant,
                name=scope_name,
                defaults={"resource": resource, "display_name": display, "read_only": read_only},
            )
        resources[identifier] = resource
    return resources


def _ensure_app(
    *,
    tenant: Organization,
    key: str,
    name: str,
    resources: dict[str, APIResource],
    resource_ids: tuple[str, ...],
    path: str,
    grant_types: list[str],
    **options: Any,
) -> Application:
    app = Application.objects.filter(organization=tenant, system_key=key).first()
    if app is None:
        base = f"{settings.BASE_URL}/t/{tenant.handle}/{path}"
        app, _ = application_create(
            actor=None,
            org=tenant,
            name=name,
            client_type=Application.CLIENT_PUBLIC,
            grant_types=grant_types,
            redirect_uris=[f"{base}/callback"],
            post_logout_redirect_uris=[f"{base}/"],
            client_id=f"{tenant.handle}-{key}",
            system_key=key,
            skip_login_consent=True,
            skip_logout_consent=True,
            **options,
        )
        for identifier in resource_ids:
            resource = resources[identifier]
            application_authorize_api(
                actor=None,
                application=app,
                resource=resource,
                scopes=list(resource.scopes.values_list("name", flat=True)),
            )
        LoginFlow.objects.get_or_create(
            application=app, organization=tenant, defaults={"steps": [["BasicAuthenticator"]]}
        )
    return app


def _ensure_role(*, tenant: Organization, app: Application, name: str, scopes: list[str]) -> Role:
    role = Role.objects.filter(organization=tenant, audience_application=app, name=name).first()
    if role is None:
        role = role_create(
            actor=None,
            org=tenant,
            name=name,
            audience_application=app,
            permissions=scopes,
            is_system=True,
        )
    return role


@transaction.atomic
def tenant_ensure_system_objects(*, tenant: Organization) -> TenantSystem:
    """Create whatever of the tenant's system objects is missing."""
    resources = _ensure_resources(tenant)
    console = _ensure_app(
        tenant=tenant,
        key=Application.SystemKey.CONSOLE,
        name="Console",
        resources=resources,
        resource_ids=CONSOLE_RESOURCES,
        path="console",
        grant_types=[
            Application.GRANT_AUTHORIZATION_CODE_TYPE,
            Application.GRANT_REFRESH_TOKEN_TYPE,
            Application.GRANT_ORGANIZATION_SWITCH_TYPE,
        ],
        shared_access=Application.SharedAccess.ALL,
        description="The administration console of this tenant.",
    )
    myaccount = _ensure_app(
        tenant=tenant,
        key=Application.SystemKey.MYACCOUNT,
        name="My Account",
        resources=resources,
        resource_ids=MYACCOUNT_RESOURCES,
        path="myaccount",
        grant_types=[
            Application.GRANT_AUTHORIZATION_CODE_TYPE,
            Application.GRANT_REFRESH_TOKEN_TYPE,
            Application.GRANT_TOKEN_EXCHANGE_TYPE,
        ],
        subject_token_enabled=True,
        description="The self-service portal where users manage their own account.",
    )
    console_scopes = sorted(
        Scope.objects.filter(resource__identifier__in=CONSOLE_RESOURCES, tenant=tenant).values_list(
            "name", flat=True
        )
    )
    administrator = _ensure_role(tenant=tenant, app=console, name=ADMINISTRATOR_ROLE, scopes=console_scopes)
    impersonator = _ensure_role(
        tenant=tenant,
        app=myaccount,
        name=IMPERSONATOR_ROLE,
        scopes=[IMPERSONATE_SCOPE, ORG_IMPERSONATE_SCOPE],
    )
    return TenantSystem(tenant, console, myaccount, administrator, impersonator)


@transaction.atomic
def tenant_bootstrap(
    *,
    actor: User | None,
    handle: str,
    name: str,
    admin_username: str,
    admin_password: str,
    admin_email: str = "",
) -> tuple[TenantSystem, User]:
    """Create a tenant: its root organization, system applications, resources, roles, and a
    first administrator who holds the Administrator and Impersonator roles."""
    if tenant_get(handle=handle.strip().lower()) is not None:
        raise ValidationError({"handle": ["A tenant with this handle already exists."]})
    tenant = tenant_root_create(actor=actor, name=name, handle=handle)
    system = tenant_ensure_system_objects(tenant=tenant)
    admin = user_create(
        actor=actor,
        org=tenant,
        username=admin_username,
        password=admin_password,
        email=admin_email,
    )
    role_assign(actor=actor, role=system.administrator, org=tenant, user=admin)
    role_assign(actor=actor, role=system.impersonator, org=tenant, user=admin)
    audit_record(
        org=tenant,
        action="tenant-bootstrap",
        actor=actor,
        subject=admin,
        target_type="organization",
        target_id=tenant.pk,
        data={"administrator": admin.username},
    )
    return system, admin
