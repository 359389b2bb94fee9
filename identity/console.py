"""Console pages owned by identity: overview, Users, Roles."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST

from identity.access import (
    access_console,
    access_console_role,
    access_console_user,
    access_grant,
    access_share_organization,
    access_user_sharing,
)
from identity.console_loginflow import LoginFlowBuilder, builder_post, builder_redirect, named_steps
from identity.console_shell import Console, console_page
from identity.forms import (
    RoleAssignForm,
    RoleCreateForm,
    RolePermissionsForm,
    RoleUnassignForm,
    UserCreateForm,
    UserPickerForm,
    UserShareForm,
    UserUnshareForm,
    apply_service_errors,
)
from identity.models import Application, Role, Scope, User
from identity.selectors import (
    UserPage,
    application_authorized_scopes,
    applications_available_in,
    login_flow_is_own,
    login_flow_steps,
    org_member_page,
    org_members,
    role_assignments_in_org,
    role_holder_ids,
    roles_in_org,
    tenant_system_application,
    tenant_system_role,
    user_holds_roles_in,
    user_memberships,
    user_roles_in_org,
    user_share_candidate_page,
    user_shared_orgs_below,
)
from identity.services.applications import login_flow_reset, login_flow_set
from identity.services.roles import (
    role_assign,
    role_create,
    role_is_editable_in,
    role_set_permissions,
    role_unassign,
)
from identity.services.tenants import ADMINISTRATOR_ROLE
from identity.services.users import normalise_username, user_create, user_share_with, user_unshare
from organizations.models import Organization
from organizations.selectors import org_effective_settings


@console_page(scope=None)
def home(request: HttpRequest, console: Console) -> HttpResponse:
    return render(
        request,
        "identity/console/home.html",
        {"console": console, "settings": org_effective_settings(console.org)},
    )


# --- Users --------------------------------------------------------------------------------


@console_page(scope="internal_user_mgt_list")
def user_list(request: HttpRequest, console: Console) -> HttpResponse:
    search = request.GET.get("q", "")[:100].replace("\x00", "")
    after = request.GET.get("after") or None
    # "subtree": also the users resident in the organizations below this one.
    subtree = request.GET.get("scope") == "subtree"
    page = org_member_page(
        org=console.org,
        search=search,
        after=after,
        size=settings.ACTAS_CONSOLE_PAGE_SIZE,
        subtree=subtree,
    )
    return render(
        request,
        "identity/console/user_list.html",
        {
            "console": console,
            "page": page,
            "q": search,
            "after": after,
            "subtree": subtree,
            # the search and scope the pager links keep
            "query": urlencode([(k, v) for k, v in (("q", search), ("scope", "subtree" * subtree)) if v]),
        },
    )


@console_page(scope="internal_user_mgt_create")
@require_http_methods(["GET", "POST"])
def user_create_view(request: HttpRequest, console: Console) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_create(actor=console.user, org=console.org, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"User {user.username} created.")
            return HttpResponseRedirect(console.url("user-detail", user.pk))
    status = 400 if request.method == "POST" else 200
    return render(
        request, "identity/console/user_create.html", {"console": console, "form": form}, status=status
    )


@console_page(scope="internal_user_mgt_view")
def user_detail(request: HttpRequest, console: Console, user_id: str) -> HttpResponse:
    member = access_console_user(org=console.org, user_id=user_id)
    return render(
        request,
        "identity/console/user_detail.html",
        {
            "console": console,
            "member": member,
            "is_shared": member.organization_id != console.org.pk,
            "memberships": user_memberships(member, within=console.org),
            "roles": user_roles_in_org(user=member, org=console.org),
            # Sharing is managed in the Console of the user's resident organization.
            "can_share": member.organization_id == console.org.pk
            and "internal_user_mgt_update" in console.scopes,
        },
    )


# --- Sharing a user with the organizations below their own ---------------------------------


def _sharing_page(
    request: HttpRequest, console: Console, member: User, form: UserShareForm, *, status: int = 200
) -> HttpResponse:
    picker = UserPickerForm(request.GET)
    search = picker.cleaned_data["q"] if picker.is_valid() else ""
    after = (picker.cleaned_data["after"] or None) if picker.is_valid() else None
    page = user_share_candidate_page(
        user=member, org=console.org, search=search, after=after, size=settings.ACTAS_CONSOLE_PAGE_SIZE
    )
    return render(
        request,
        "identity/console/user_sharing.html",
        {
            "console": console,
            "member": member,
            "shared": user_shared_orgs_below(user=member, org=console.org),
            "page": page,
            "form": form,
            "q": search,
            "after": after,
        },
        status=status,
    )


@console_page(scope="internal_user_mgt_update")
@require_http_methods(["GET", "POST"])
def user_sharing(request: HttpRequest, console: Console, user_id: str) -> HttpResponse:
    """Share a user with organizations below their own (and see where they are shared)."""
    member = access_user_sharing(org=console.org, user=access_console_user(org=console.org, user_id=user_id))
    form = UserShareForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        orgs = [
            access_share_organization(org=console.org, org_id=pk) for pk in form.cleaned_data["organizations"]
        ]
        try:
            created = user_share_with(actor=console.user, user=member, orgs=orgs)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            names = ", ".join(a.organization.name for a in created)
            if created:
                messages.success(request, f"{member.username} is now shared with {names}.")
            else:
                messages.info(request, f"{member.username} was already shared with those organizations.")
            return HttpResponseRedirect(console.url("user-detail", member.pk))
    return _sharing_page(request, console, member, form, status=400 if request.method == "POST" else 200)


@console_page(scope="internal_user_mgt_update")
@require_POST
def user_unshare_view(request: HttpRequest, console: Console, user_id: str) -> HttpResponse:
    """Stop sharing a user with one organization (their roles and sign-ins there end)."""
    member = access_user_sharing(org=console.org, user=access_console_user(org=console.org, user_id=user_id))
    form = UserUnshareForm(request.POST)
    back = console.url("user-detail", member.pk)
    if not form.is_valid():
        messages.error(request, "Choose the organization to stop sharing with.")
        return HttpResponseRedirect(back)
    if form.cleaned_data["back"] == "sharing":
        back = console.url("user-sharing", member.pk)
    target = access_share_organization(org=console.org, org_id=form.cleaned_data["organization"])
    if user_holds_roles_in(user=member, org=target) and not console.can("internal_role_mgt_update"):
        # Stopping the sharing removes their roles there: only for those who may remove roles.
        messages.error(
            request,
            f"{member.username} holds roles in {target.name}; stopping the sharing would remove them, "
            "which needs the permission to manage roles.",
        )
        return HttpResponseRedirect(back)
    try:
        user_unshare(actor=console.user, user=member, org=target)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{member.username} is no longer shared with {target.name}.")
    return HttpResponseRedirect(back)


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
            "picker": _role_picker(console, role, errors=assign_form),
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


# --- the user picker (Roles → assign, Console Settings → add administrator) ---------------


@dataclass
class Picker:
    """One user picker: a search over the organization's members (resident and shared in)
    whose results each carry a button that POSTs the person's id to ``action``."""

    id: str
    action: str
    title: str
    button: str  # the visible words of each result's button
    button_hidden: str  # words a screen reader hears between the button and the username
    held: str  # shown instead of the button for people who have the role already
    org: Organization
    can_search: bool
    q: str = ""
    page: UserPage | None = None
    holders: frozenset[object] = frozenset()
    errors: RoleAssignForm | None = None


def _picker_search(request: HttpRequest | None, console: Console, role: Role, picker: Picker) -> Picker:
    """Fill ``picker`` with the results of the request's search (``q``, ``after``)."""
    if request is None:
        return picker
    form = UserPickerForm(request.GET)
    valid = form.is_valid()
    picker.q = form.cleaned_data["q"] if valid else ""
    picker.page = org_member_page(
        org=console.org,
        search=picker.q,
        after=(form.cleaned_data["after"] or None) if valid else None,
        size=settings.ACTAS_CONSOLE_PAGE_SIZE,
    )
    picker.holders = role_holder_ids(role=role, org=console.org, user_ids=[u.pk for u in picker.page.users])
    return picker


def _role_picker(
    console: Console, role: Role, *, errors: RoleAssignForm | None = None, request: HttpRequest | None = None
) -> Picker:
    picker = Picker(
        id="assign",
        action=console.url("role-assign", role.pk),
        title="Assign to a user",
        button="Assign",
        button_hidden=f"{role.name} to",
        held="Has this role",
        org=console.org,
        can_search="internal_user_mgt_list" in console.scopes,
        errors=errors,
    )
    return _picker_search(request, console, role, picker)


def _admin_picker(
    console: Console, *, errors: RoleAssignForm | None = None, request: HttpRequest | None = None
) -> Picker:
    administrator = tenant_system_role(tenant=console.tenant, name=ADMINISTRATOR_ROLE)
    picker = Picker(
        id="add-admin",
        action=console.url("settings-admin-add"),
        title="Add an administrator",
        button="Add administrator",
        button_hidden="role to",
        held="Administrator already",
        org=console.org,
        can_search="internal_user_mgt_list" in console.scopes,
        errors=errors,
    )
    return _picker_search(request, console, administrator, picker)


def _picker_results(
    request: HttpRequest, console: Console, picker: Picker, *, heading: str, nav: str, back: tuple[str, str]
) -> HttpResponse:
    """The picker's results: the fragment for htmx, else a page of their own."""
    # Searching people is listing users: it needs that permission too.
    access_console(user=console.user, org=console.org, scope="internal_user_mgt_list", path=console.path)
    picker.title = ""  # the page's own heading names it
    context = {"console": console, "picker": picker, "heading": heading, "nav": nav, "back": back}
    if request.headers.get("HX-Request") == "true":
        response = render(request, "identity/console/_user_picker_results.html", context)
    else:
        response = render(request, "identity/console/user_picker.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _member_by_username(console: Console, form: RoleAssignForm) -> User | None:
    """The member an exact username names (the form posted before the user picker).

    A username is unique within its resident organization only: a resident wins; two users
    shared in from different organizations under one name are ambiguous and refused."""
    username = normalise_username(form.cleaned_data["username"])
    candidates = list(org_members(console.org).filter(username=username).select_related("organization"))
    residents = [u for u in candidates if u.organization_id == console.org.pk]
    member = residents[0] if residents else (candidates[0] if len(candidates) == 1 else None)
    if member is None:
        form.add_error(
            None,
            "Several members shared into this organization have this username; ask their "
            "organization's administrator."
            if candidates
            else "No member of this organization has this username.",
        )
    return member


def _assign_from_form(console: Console, role: Role, form: RoleAssignForm) -> User | None:
    """Assign ``role`` to the member chosen in the user picker (``user_id``; an exact
    ``username`` is accepted too); errors land on the form. The administrator must hold every
    permission of the role (no privilege escalation)."""
    if not form.is_valid():
        return None
    if form.cleaned_data["user_id"]:
        member: User | None = access_console_user(org=console.org, user_id=form.cleaned_data["user_id"])
    else:
        member = _member_by_username(console, form)
    if member is None:
        return None
    try:
        access_grant(
            user=console.user,
            org=console.org,
            path=console.path,
            permissions=role.permissions.values_list("name", flat=True),
        )
        role_assign(actor=console.user, role=role, org=console.org, user=member)
    except PermissionDenied as exc:
        form.add_error(None, str(exc))
        return None
    except ValidationError as exc:
        apply_service_errors(form, exc)
        return None
    return member


@console_page(scope="internal_role_mgt_update")
@require_http_methods(["GET", "POST"])
def role_assign_view(request: HttpRequest, console: Console, role_id: str) -> HttpResponse:
    """GET: the user picker's results (the fragment htmx asks for as you type, or a page of
    its own without JavaScript). POST: assign the role to the person clicked."""
    role = access_console_role(org=console.org, role_id=role_id)
    if request.method == "GET":
        return _picker_results(
            request,
            console,
            _role_picker(console, role, request=request),
            heading=f"Assign {role.name}",
            nav="roles",
            back=(console.url("role-detail", role.pk), role.name),
        )
    form = RoleAssignForm(request.POST)
    member = _assign_from_form(console, role, form)
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


# --- Console Settings ---------------------------------------------------------------------


def _console_application(console: Console) -> Application:
    app = tenant_system_application(tenant=console.tenant, key=Application.SystemKey.CONSOLE)
    assert app is not None  # every tenant has one (tenant bootstrap)
    return app


def _settings_page(
    request: HttpRequest,
    console: Console,
    *,
    status: int = 200,
    admin_form: RoleAssignForm | None = None,
    flow_builder: LoginFlowBuilder | None = None,
) -> HttpResponse:
    administrator = tenant_system_role(tenant=console.tenant, name=ADMINISTRATOR_ROLE)
    console_app = _console_application(console)
    steps = login_flow_steps(application=console_app, org=console.org)
    own_flow = login_flow_is_own(application=console_app, org=console.org)
    return render(
        request,
        "identity/console/settings.html",
        {
            "console": console,
            "administrator": administrator,
            "administrators": role_assignments_in_org(role=administrator, org=console.org),
            "admin_picker": _admin_picker(console, errors=admin_form),
            "steps": named_steps(steps),
            "own_flow": own_flow,
            "builder": flow_builder or _flow_builder(console, steps=steps, own_flow=own_flow),
        },
        status=status,
    )


@console_page(scope="internal_role_mgt_view")
def console_settings(request: HttpRequest, console: Console) -> HttpResponse:
    return _settings_page(request, console)


@console_page(scope="internal_role_mgt_update")
@require_http_methods(["GET", "POST"])
def console_admin_add(request: HttpRequest, console: Console) -> HttpResponse:
    """GET: the user picker's results; POST: make the person clicked an administrator."""
    if request.method == "GET":
        return _picker_results(
            request,
            console,
            _admin_picker(console, request=request),
            heading="Add an administrator",
            nav="settings",
            back=(console.url("settings"), "Console Settings"),
        )
    administrator = tenant_system_role(tenant=console.tenant, name=ADMINISTRATOR_ROLE)
    form = RoleAssignForm(request.POST)
    member = _assign_from_form(console, administrator, form)
    if member is not None:
        messages.success(request, f"{member.username} is now an administrator of {console.org.name}.")
        return HttpResponseRedirect(console.url("settings"))
    return _settings_page(request, console, status=400, admin_form=form)


@console_page(scope="internal_role_mgt_update")
@require_POST
def console_admin_remove(request: HttpRequest, console: Console) -> HttpResponse:
    administrator = tenant_system_role(tenant=console.tenant, name=ADMINISTRATOR_ROLE)
    form = RoleUnassignForm(request.POST)
    if form.is_valid():
        member = access_console_user(org=console.org, user_id=form.cleaned_data["user_id"])
        if member.pk == console.user.pk:
            messages.error(request, "You cannot remove yourself; ask another administrator.")
        else:
            try:
                role_unassign(actor=console.user, role=administrator, org=console.org, user=member)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                messages.success(request, f"{member.username} is no longer an administrator here.")
    return HttpResponseRedirect(console.url("settings"))


def _flow_builder(console: Console, *, steps: list[list[str]], own_flow: bool) -> LoginFlowBuilder:
    """The login-flow builder of this organization's Console flow, showing the saved flow."""
    return LoginFlowBuilder(
        steps=steps,
        saved=steps,
        action_url=console.url("settings-login-flow"),
        page_url=console.url("settings"),
        reset_label=f"Use {console.tenant.name}'s flow" if own_flow and not console.is_root else "",
    )


@console_page(scope="internal_application_mgt_update")
@require_POST
def console_login_flow(request: HttpRequest, console: Console) -> HttpResponse:
    """The builder's buttons: change the draft, save it, or return to the parent's flow."""
    console_app = _console_application(console)
    if request.POST.get("reset"):
        try:
            login_flow_reset(actor=console.user, application=console_app, org=console.org)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "This organization now uses its parent's Console login flow.")
        return builder_redirect(request, console.url("settings"))
    steps = login_flow_steps(application=console_app, org=console.org)
    own_flow = login_flow_is_own(application=console_app, org=console.org)
    return builder_post(
        request,
        _flow_builder(console, steps=steps, own_flow=own_flow),
        save=lambda draft: login_flow_set(
            actor=console.user, application=console_app, org=console.org, steps=draft
        ),
        done_url=console.url("settings"),
        done_message="Console login flow saved.",
        page=lambda builder, status: _settings_page(request, console, status=status, flow_builder=builder),
    )
