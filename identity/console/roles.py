"""Console pages owned by identity: Roles (list, create, permissions, assignments)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from identity.access import (
    access_console_role,
    access_console_user,
    access_grant,
)
from identity.console.picker import assign_from_form, picker_results, role_picker
from identity.console.shell import Console, console_page
from identity.forms import (
    RoleAssignForm,
    RoleCreateForm,
    RolePermissionsForm,
    RoleUnassignForm,
    apply_service_errors,
)
from identity.models import Role, Scope
from identity.selectors.applications import application_authorized_scopes, applications_available_in
from identity.selectors.roles import role_assignments_in_org, roles_in_org
from identity.services.roles import (
    role_create,
    role_is_editable_in,
    role_set_permissions,
    role_unassign,
)

# --- Roles --------------------------------------------------------------------------------


def _role_kind(role: Role, console: Console) -> str:
    """system (built in), shared (from the owner of a shared application) or own."""
    if role.is_system:
        return "system"
    return "shared" if role.organization_id != console.org.pk else "own"


def _role_rows(console: Console) -> list[dict[str, Role | str]]:
    return [{"role": role, "kind": _role_kind(role, console)} for role in roles_in_org(console.org)]


@console_page(scope="internal_role_mgt_view")
def role_list(request: HttpRequest, console: Console) -> HttpResponse:
    return render(
        request, "identity/console/role_list.html", {"console": console, "rows": _role_rows(console)}
    )


def _scope_pool(console: Console) -> list[Scope]:
    return list(Scope.objects.filter(tenant=console.tenant).select_related("resource").order_by("name"))


def _role_scope_pool(console: Console, role: Role) -> list[Scope]:
    """The permissions a role may hold: its application's authorized scopes, or any scope of
    the tenant for an organization role."""
    if role.audience_application:
        return list(application_authorized_scopes(role.audience_application))
    return _scope_pool(console)


@console_page(scope="internal_role_mgt_create")
@require_http_methods(["GET", "POST"])
def role_create_view(request: HttpRequest, console: Console) -> HttpResponse:
    form = RoleCreateForm(
        request.POST or None, applications=applications_available_in(console.org), scopes=_scope_pool(console)
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        permissions = [s.name for s in data["permissions"]]
        try:
            access_grant(user=console.user, org=console.org, path=console.path, permissions=permissions)
            role = role_create(
                actor=console.user,
                org=console.org,
                name=data["name"],
                audience_application=data["audience_application"],
                permissions=permissions,
            )
        except PermissionDenied as exc:
            form.add_error("permissions", str(exc))
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Role {role.name} created.")
            return HttpResponseRedirect(console.url("role-detail", role.pk))
    status = 400 if request.method == "POST" else 200
    return render(
        request, "identity/console/role_create.html", {"console": console, "form": form}, status=status
    )


def _role_page(
    request: HttpRequest,
    console: Console,
    role: Role,
    *,
    status: int = 200,
    assign_form: RoleAssignForm | None = None,
    permissions_form: RolePermissionsForm | None = None,
) -> HttpResponse:
    editable = role_is_editable_in(role=role, org=console.org)
    pool = _role_scope_pool(console, role)
    current = sorted(role.permissions.values_list("name", flat=True))
    if permissions_form is None and editable:
        permissions_form = RolePermissionsForm(scopes=pool, initial={"permissions": current})
    return render(
        request,
        "identity/console/role_detail.html",
        {
            "console": console,
            "role": role,
            "editable": editable,
            "kind": _role_kind(role, console),
            "permissions": current,
            "assignments": role_assignments_in_org(role=role, org=console.org),
            "picker": role_picker(console, role, errors=assign_form),
            "permissions_form": permissions_form,
        },
        status=status,
    )


@console_page(scope="internal_role_mgt_view")
def role_detail(request: HttpRequest, console: Console, role_id: str) -> HttpResponse:
    role = access_console_role(org=console.org, role_id=role_id)
    return _role_page(request, console, role)


@console_page(scope="internal_role_mgt_update")
@require_POST
def role_permissions(request: HttpRequest, console: Console, role_id: str) -> HttpResponse:
    role = access_console_role(org=console.org, role_id=role_id)
    pool = _role_scope_pool(console, role)
    form = RolePermissionsForm(request.POST, scopes=pool)
    if form.is_valid():
        permissions = [s.name for s in form.cleaned_data["permissions"]]
        try:
            access_grant(user=console.user, org=console.org, path=console.path, permissions=permissions)
            role_set_permissions(actor=console.user, role=role, org=console.org, permissions=permissions)
        except PermissionDenied as exc:
            form.add_error("permissions", str(exc))
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Permissions updated.")
            return HttpResponseRedirect(console.url("role-detail", role.pk))
    return _role_page(request, console, role, status=400, permissions_form=form)


@console_page(scope="internal_role_mgt_update")
@require_http_methods(["GET", "POST"])
def role_assign_view(request: HttpRequest, console: Console, role_id: str) -> HttpResponse:
    """GET: the user picker's results (the fragment htmx asks for as you type, or a page of
    its own without JavaScript). POST: assign the role to the person clicked."""
    role = access_console_role(org=console.org, role_id=role_id)
    if request.method == "GET":
        return picker_results(
            request,
            console,
            role_picker(console, role, request=request),
            heading=f"Assign {role.name}",
            nav="roles",
            back=(console.url("role-detail", role.pk), role.name),
        )
    form = RoleAssignForm(request.POST)
    member = assign_from_form(console, role, form)
    if member is not None:
        messages.success(request, f"{role.name} assigned to {member.username}.")
        return HttpResponseRedirect(console.url("role-detail", role.pk))
    return _role_page(request, console, role, status=400, assign_form=form)


@console_page(scope="internal_role_mgt_update")
@require_POST
def role_unassign_view(request: HttpRequest, console: Console, role_id: str) -> HttpResponse:
    role = access_console_role(org=console.org, role_id=role_id)
    form = RoleUnassignForm(request.POST)
    if form.is_valid():
        member = access_console_user(org=console.org, user_id=form.cleaned_data["user_id"])
        try:
            role_unassign(actor=console.user, role=role, org=console.org, user=member)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"{role.name} removed from {member.username}.")
        return HttpResponseRedirect(console.url("role-detail", role.pk))
    messages.error(request, "Choose a user to remove.")
    return HttpResponseRedirect(console.url("role-detail", role.pk))
