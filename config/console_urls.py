"""The Console URL namespace, mounted twice: ``/t/<t>/console/`` and ``/t/<t>/o/<org>/console/``.

Each domain app owns its pages; this list only gathers them.
"""

from django.urls import path

from identity import console as identity_console
from organizations import console as organizations_console

urlpatterns = [
    path("", identity_console.home, name="home"),
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
    path("users/", identity_console.user_list, name="users"),
    path("users/create/", identity_console.user_create_view, name="user-create"),
    path("users/<uuid:user_id>/", identity_console.user_detail, name="user-detail"),
    path("settings/", identity_console.console_settings, name="settings"),
    path("settings/administrators/add/", identity_console.console_admin_add, name="settings-admin-add"),
    path(
        "settings/administrators/remove/", identity_console.console_admin_remove, name="settings-admin-remove"
    ),
    path("settings/login-flow/", identity_console.console_login_flow, name="settings-login-flow"),
    path("roles/", identity_console.role_list, name="roles"),
    path("roles/create/", identity_console.role_create_view, name="role-create"),
    path("roles/<uuid:role_id>/", identity_console.role_detail, name="role-detail"),
    path("roles/<uuid:role_id>/permissions/", identity_console.role_permissions, name="role-permissions"),
    path("roles/<uuid:role_id>/assign/", identity_console.role_assign_view, name="role-assign"),
    path("roles/<uuid:role_id>/unassign/", identity_console.role_unassign_view, name="role-unassign"),
]
