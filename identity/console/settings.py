"""Console pages owned by identity: Console Settings (administrators and the Console's login flow)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from identity.access import (
    access_console_user,
)
from identity.console.loginflow import LoginFlowBuilder, builder_post, builder_redirect, named_steps
from identity.console.picker import admin_picker, assign_from_form, picker_results
from identity.console.shell import Console, console_page
from identity.forms import (
    RoleAssignForm,
    RoleUnassignForm,
)
from identity.models import Application
from identity.selectors.applications import login_flow_is_own, login_flow_steps, tenant_system_application
from identity.selectors.roles import role_assignments_in_org, tenant_system_role
from identity.services.loginflows import login_flow_reset, login_flow_set
from identity.services.roles import (
    role_unassign,
)
from identity.services.tenants import ADMINISTRATOR_ROLE

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
            "admin_picker": admin_picker(console, errors=admin_form),
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
        return picker_results(
            request,
            console,
            admin_picker(console, request=request),
            heading="Add an administrator",
            nav="settings",
            back=(console.url("settings"), "Console Settings"),
        )
    administrator = tenant_system_role(tenant=console.tenant, name=ADMINISTRATOR_ROLE)
    form = RoleAssignForm(request.POST)
    member = assign_from_form(console, administrator, form)
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
