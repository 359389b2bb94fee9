"""Console pages owned by identity: the API Authorization, Roles, Login Flow, Advanced, Shared
Access and Delete tabs of an application (the General and Protocol tabs: ``applications``)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from identity.access import (
    access_application_business,
    access_application_sharing,
    access_grant,
)
from identity.console.applications import (
    ROLE_CREATE,
    UPDATE,
    VIEW,
    console_app,
    disable_form,
    is_post,
    require_scope,
    require_writable,
    tab_page,
)
from identity.console.loginflow import LoginFlowBuilder, builder_post, builder_redirect, named_steps
from identity.console.shell import Console, console_page
from identity.forms import (
    APIAuthorizeForm,
    APIUnauthorizeForm,
    ApplicationAdvancedForm,
    ApplicationDeleteForm,
    ApplicationRoleForm,
    ApplicationShareForm,
    apply_service_errors,
)
from identity.models import APIResource, Application, Scope
from identity.selectors.applications import (
    application_api_authorizations,
    application_authorized_scopes,
    application_roles_in_org,
    login_flow_is_own,
    login_flow_steps,
    tenant_api_resources,
)
from identity.services.application_edits import (
    application_delete,
    application_remove_api_authorization,
    application_update_advanced,
)
from identity.services.applications import application_authorize_api, application_share
from identity.services.loginflows import login_flow_reset, login_flow_set
from identity.services.roles import role_create
from organizations.models import Organization
from organizations.selectors import org_descendants, org_in_tree_order


def _authorize_form_for(
    console: Console, resource: APIResource, app: Application, data: Any = None
) -> APIAuthorizeForm:
    current = [
        s.name
        for a in application_api_authorizations(app)
        if a.resource_id == resource.pk
        for s in a.scopes.all()
    ]
    return APIAuthorizeForm(
        data,
        scopes=list(resource.scopes.all()),
        initial={"resource": resource.pk, "scopes": current},
    )


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def application_api_authorization(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    app = console_app(console, app_id)
    resources = tenant_api_resources(console.tenant)
    picked: APIResource | None = None
    form: APIAuthorizeForm | None = None
    status = 200
    if is_post(request):
        require_writable(console, app)
        access_application_business(org=console.org, application=app)
        status = 400
        raw = request.POST.get("resource", "")
        picked = next((r for r in resources if str(r.pk) == raw), None)
        if picked is None:
            messages.error(request, "Choose an API resource of this tenant.")
        else:
            form = _authorize_form_for(console, picked, app, request.POST)
            if form.is_valid():
                try:
                    application_authorize_api(
                        actor=console.user,
                        application=app,
                        resource=picked,
                        scopes=[s.name for s in form.cleaned_data["scopes"]],
                    )
                except ValidationError as exc:
                    apply_service_errors(form, exc)
                else:
                    messages.success(
                        request, f"{app.name} may now request the chosen scopes of {picked.name}."
                    )
                    return HttpResponseRedirect(console.url("application-api-authorization", app.pk))
    else:
        raw = request.GET.get("resource", "")
        picked = next((r for r in resources if str(r.pk) == raw), None)
        if picked is not None:
            form = _authorize_form_for(console, picked, app)
    return tab_page(
        request,
        console,
        app,
        tab="application-api-authorization",
        template="application_api_authorization.html",
        status=status,
        authorizations=application_api_authorizations(app),
        resources=resources,
        picked=picked,
        form=form,
        editable=app.organization_id == console.org.pk and not app.system_key and console.can(UPDATE),
    )


@console_page(scope=UPDATE)
@require_POST
def application_api_authorization_remove(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    app = console_app(console, app_id)
    access_application_business(org=console.org, application=app)
    form = APIUnauthorizeForm(request.POST)
    resource = None
    if form.is_valid():
        resource = APIResource.objects.filter(tenant=console.tenant, pk=form.cleaned_data["resource"]).first()
    if resource is None:
        messages.error(request, "Choose an authorized API resource to remove.")
    else:
        try:
            application_remove_api_authorization(actor=console.user, application=app, resource=resource)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"{app.name} may no longer request scopes of {resource.name}.")
    return HttpResponseRedirect(console.url("application-api-authorization", app.pk))


def _role_pool(app: Application) -> list[Scope]:
    return list(application_authorized_scopes(app).select_related("resource").order_by("name"))


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def application_roles(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    """Application roles of this application; new ones hold only its authorized scopes."""
    app = console_app(console, app_id)
    pool = _role_pool(app)
    form = ApplicationRoleForm(request.POST or None, scopes=pool)
    if is_post(request):
        require_writable(console, app)
        require_scope(console, ROLE_CREATE)
        if form.is_valid():
            permissions = [s.name for s in form.cleaned_data["permissions"]]
            try:
                access_grant(user=console.user, org=console.org, path=console.path, permissions=permissions)
                role = role_create(
                    actor=console.user,
                    org=console.org,
                    name=form.cleaned_data["name"],
                    audience_application=app,
                    permissions=permissions,
                )
            except PermissionDenied as exc:
                form.add_error("permissions", str(exc))
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, f"Role {role.name} created. Assign it from its page.")
                return HttpResponseRedirect(console.url("application-roles", app.pk))
    return tab_page(
        request,
        console,
        app,
        tab="application-roles",
        template="application_roles.html",
        status=400 if is_post(request) else 200,
        roles=application_roles_in_org(application=app, org=console.org),
        form=form,
        can_create=app.organization_id == console.org.pk and console.can(UPDATE) and console.can(ROLE_CREATE),
    )


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def application_login_flow(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    """The flow used to sign in to this application in this organization, edited with the
    login-flow builder. An organization the application is shared with may set its own and
    return to the owner's."""
    app = console_app(console, app_id)
    steps = login_flow_steps(application=app, org=console.org)
    own_flow = login_flow_is_own(application=app, org=console.org)
    url = console.url("application-login-flow", app.pk)
    builder = LoginFlowBuilder(
        steps=steps,
        saved=steps,
        action_url=url,
        page_url=url,
        reset_label=f"Use {app.organization.name}'s flow"
        if own_flow and app.organization_id != console.org.pk
        else "",
    )

    def page(builder: LoginFlowBuilder, status: int) -> HttpResponse:
        return tab_page(
            request,
            console,
            app,
            tab="application-login-flow",
            template="application_login_flow.html",
            status=status,
            steps=named_steps(steps),
            own_flow=own_flow,
            builder=builder,
            can_edit_flow=console.can(UPDATE),
        )

    if not is_post(request):
        return page(builder, 200)
    require_scope(console, UPDATE)
    if request.POST.get("reset"):
        try:
            login_flow_reset(actor=console.user, application=app, org=console.org)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"{console.org.name} now uses {app.organization.name}'s login flow.")
        return builder_redirect(request, url)
    return builder_post(
        request,
        builder,
        save=lambda draft: login_flow_set(actor=console.user, application=app, org=console.org, steps=draft),
        done_url=url,
        done_message="Login flow saved.",
        page=page,
    )


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def application_advanced(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    app = console_app(console, app_id)
    initial = {"skip_login_consent": app.skip_login_consent, "skip_logout_consent": app.skip_logout_consent}
    form = ApplicationAdvancedForm(request.POST or None, initial=initial)
    if is_post(request):
        require_writable(console, app)
        if form.is_valid():
            application_update_advanced(actor=console.user, application=app, **form.cleaned_data)
            messages.success(request, "Advanced settings saved.")
            return HttpResponseRedirect(console.url("application-advanced", app.pk))
    elif app.organization_id != console.org.pk or not console.can(UPDATE):
        disable_form(form)
    return tab_page(
        request,
        console,
        app,
        tab="application-advanced",
        template="application_advanced.html",
        status=400 if is_post(request) else 200,
        form=form,
    )


def _share_candidates(app: Application) -> list[Organization]:
    return list(org_in_tree_order(org_descendants(app.organization)))


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def application_shared_access(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    app = console_app(console, app_id)
    owned = app.organization_id == console.org.pk
    candidates = _share_candidates(app) if owned else []
    initial = {
        "mode": app.shared_access,
        "organizations": [s.organization_id for s in app.shares.all()],
    }
    form = ApplicationShareForm(request.POST or None, initial=initial, organizations=candidates)
    if is_post(request):
        require_writable(console, app)
        access_application_sharing(org=console.org, application=app)
        if form.is_valid():
            try:
                application_share(
                    actor=console.user,
                    application=app,
                    mode=form.cleaned_data["mode"],
                    organizations=list(form.cleaned_data["organizations"]),
                )
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, "Shared access saved.")
                return HttpResponseRedirect(console.url("application-shared-access", app.pk))
    editable = owned and console.can(UPDATE) and app.system_key != Application.SystemKey.CONSOLE
    if not is_post(request) and not editable:
        disable_form(form)
    return tab_page(
        request,
        console,
        app,
        tab="application-shared-access",
        template="application_shared_access.html",
        status=400 if is_post(request) else 200,
        form=form,
        editable=editable,
    )


@console_page(scope=UPDATE)
@require_http_methods(["GET", "POST"])
def application_delete_view(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    app = console_app(console, app_id)
    access_application_business(org=console.org, application=app)
    form = ApplicationDeleteForm(request.POST or None, application=app)
    if is_post(request) and form.is_valid():
        name = app.name
        try:
            application_delete(actor=console.user, application=app)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Application {name} deleted.")
            return HttpResponseRedirect(console.url("applications"))
    return render(
        request,
        "identity/console/application_delete.html",
        {"console": console, "app": app, "form": form},
        status=400 if is_post(request) else 200,
    )
