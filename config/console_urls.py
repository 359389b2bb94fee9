"""The Console URL namespace, mounted twice: ``/t/<t>/console/`` and ``/t/<t>/o/<org>/console/``.

Each domain app owns its pages; this list only gathers them.
"""

from django.urls import path

from identity.console import api_resources as api_resources_console
from identity.console import application_tabs as app_tabs_console
from identity.console import applications as apps_console
from identity.console import branding as branding_console
from identity.console import logs as logs_console
from identity.console import roles as roles_console
from identity.console import settings as settings_console
from identity.console import users as users_console
from impersonation import console as impersonation_console
from organizations import console as organizations_console

urlpatterns = [
    path("", users_console.home, name="home"),
    path("organizations/", organizations_console.organization_tree, name="organizations"),
    path("organizations/create/", organizations_console.organization_create_view, name="organization-create"),
    path(
        "organizations/<uuid:node_id>/status/",
        organizations_console.organization_status_view,
        name="organization-status",
    ),
    path(
        "organizations/<uuid:node_id>/children/",
        organizations_console.organization_children,
        name="organization-children",
    ),
    path("users/", users_console.user_list, name="users"),
    path("users/create/", users_console.user_create_view, name="user-create"),
    path("users/<uuid:user_id>/", users_console.user_detail, name="user-detail"),
    path("users/<uuid:user_id>/sharing/", users_console.user_sharing, name="user-sharing"),
    path("users/<uuid:user_id>/sharing/remove/", users_console.user_unshare_view, name="user-unshare"),
    path("settings/", settings_console.console_settings, name="settings"),
    path("settings/administrators/add/", settings_console.console_admin_add, name="settings-admin-add"),
    path(
        "settings/administrators/remove/", settings_console.console_admin_remove, name="settings-admin-remove"
    ),
    path("settings/login-flow/", settings_console.console_login_flow, name="settings-login-flow"),
    path("roles/", roles_console.role_list, name="roles"),
    path("roles/create/", roles_console.role_create_view, name="role-create"),
    path("roles/<uuid:role_id>/", roles_console.role_detail, name="role-detail"),
    path("roles/<uuid:role_id>/permissions/", roles_console.role_permissions, name="role-permissions"),
    path("roles/<uuid:role_id>/assign/", roles_console.role_assign_view, name="role-assign"),
    path("roles/<uuid:role_id>/unassign/", roles_console.role_unassign_view, name="role-unassign"),
    path("applications/", apps_console.application_list, name="applications"),
    path("applications/create/", apps_console.application_create_view, name="application-create"),
    path("applications/<int:app_id>/", apps_console.application_detail, name="application-detail"),
    path(
        "applications/<int:app_id>/protocol/", apps_console.application_protocol, name="application-protocol"
    ),
    path(
        "applications/<int:app_id>/protocol/secret/",
        apps_console.application_secret,
        name="application-secret",
    ),
    path(
        "applications/<int:app_id>/api-authorization/",
        app_tabs_console.application_api_authorization,
        name="application-api-authorization",
    ),
    path(
        "applications/<int:app_id>/api-authorization/remove/",
        app_tabs_console.application_api_authorization_remove,
        name="application-api-authorization-remove",
    ),
    path("applications/<int:app_id>/roles/", app_tabs_console.application_roles, name="application-roles"),
    path(
        "applications/<int:app_id>/login-flow/",
        app_tabs_console.application_login_flow,
        name="application-login-flow",
    ),
    path(
        "applications/<int:app_id>/advanced/",
        app_tabs_console.application_advanced,
        name="application-advanced",
    ),
    path(
        "applications/<int:app_id>/shared-access/",
        app_tabs_console.application_shared_access,
        name="application-shared-access",
    ),
    path(
        "applications/<int:app_id>/delete/",
        app_tabs_console.application_delete_view,
        name="application-delete",
    ),
    path("api-resources/", api_resources_console.api_resource_list, name="api-resources"),
    path("api-resources/create/", api_resources_console.api_resource_create_view, name="api-resource-create"),
    path(
        "api-resources/<uuid:resource_id>/",
        api_resources_console.api_resource_detail,
        name="api-resource-detail",
    ),
    path(
        "api-resources/<uuid:resource_id>/scopes/add/",
        api_resources_console.api_resource_scope_add,
        name="api-resource-scope-add",
    ),
    path(
        "users/<uuid:user_id>/impersonate/", impersonation_console.impersonate_user, name="impersonate-user"
    ),
    path("impersonations/", impersonation_console.impersonation_list, name="impersonations"),
    path(
        "impersonations/<uuid:impersonation_id>/",
        impersonation_console.impersonation_detail,
        name="impersonation-detail",
    ),
    path(
        "impersonations/<uuid:impersonation_id>/end/",
        impersonation_console.impersonation_force_end,
        name="impersonation-end",
    ),
    path("logs/", logs_console.log_list, name="logs"),
    path("logs/<int:seq>/", logs_console.log_detail, name="logs-detail"),
    path("logs/verify/", logs_console.log_verify, name="logs-verify"),
    path("logs/export.csv", logs_console.log_export_csv, name="logs-export-csv"),
    path("logs/export.json", logs_console.log_export_json, name="logs-export-json"),
    path(
        "login-registration/impersonation/",
        organizations_console.impersonation_settings,
        name="impersonation-settings",
    ),
    path("branding/", branding_console.branding, name="branding"),
    path("email-templates/", branding_console.email_template_list, name="email-templates"),
    path(
        "email-templates/<str:kind>/<str:locale>/",
        branding_console.email_template_edit,
        name="email-template-edit",
    ),
    path(
        "email-templates/<str:kind>/<str:locale>/reset/",
        branding_console.email_template_reset_view,
        name="email-template-reset",
    ),
]
