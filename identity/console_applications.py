"""Console pages owned by identity: Applications (with their tabs) and API Resources.

An application is edited only in the Console of the organization that owns it; an
organization it is shared with sees it read-only except for its own Login Flow. System
applications (Console, My Account) keep their name, client type, grant types and redirect
URIs and cannot be deleted. A client secret appears exactly once: in the response to the
POST that created it, never stored in a session and never retrievable again.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from identity.access import (
    access_api_resource_editable,
    access_application_business,
    access_application_owned,
    access_application_sharing,
    access_console,
    access_console_api_resource,
    access_console_application,
    access_grant,
    access_not_impersonating,
)
from identity.console_loginflow import LoginFlowBuilder, builder_post, builder_redirect, named_steps
from identity.console_shell import Console, console_page
from identity.forms import (
    APIAuthorizeForm,
    APIResourceForm,
    APIUnauthorizeForm,
    ApplicationAdvancedForm,
    ApplicationCreateForm,
    ApplicationDeleteForm,
    ApplicationGeneralForm,
    ApplicationProtocolForm,
    ApplicationRoleForm,
    ApplicationShareForm,
    ScopeForm,
    ScopeFormSet,
    apply_service_errors,
)
from identity.models import APIResource, Application, Scope
from identity.selectors import (
    application_api_authorizations,
    application_authorized_scopes,
    application_roles_in_org,
    applications_available_in,
    login_flow_is_own,
    login_flow_steps,
    tenant_api_resources,
)
from identity.services.applications import (
    application_authorize_api,
    application_create,
    application_delete,
    application_impersonation_enabled,
    application_regenerate_secret,
    application_remove_api_authorization,
    application_share,
    application_update_advanced,
    application_update_general,
    application_update_protocol,
    login_flow_reset,
    login_flow_set,
)
from identity.services.resources import ScopeSpec, api_resource_create, scope_create
from identity.services.roles import role_create
from organizations.models import Organization
from organizations.selectors import org_descendants

VIEW = "internal_application_mgt_view"
# The tenant's Console resource has one write scope for applications and API resources;
# creating and deleting are writes like any other.
UPDATE = "internal_application_mgt_update"
ROLE_CREATE = "internal_role_mgt_create"

# (URL name, tab label): the tabs of an application, in order.
TABS = (
    ("application-detail", "General"),
    ("application-protocol", "Protocol"),
    ("application-api-authorization", "API Authorization"),
    ("application-roles", "Roles"),
    ("application-login-flow", "Login Flow"),
    ("application-advanced", "Advanced"),
    ("application-shared-access", "Shared Access"),
)


class ProtocolForm(ApplicationProtocolForm):
    """The Protocol tab. The token-exchange grant is not a grant type to tick here: it is part
    of the Impersonation switch (``subject_token_enabled``), which turns on subject tokens and
    the token exchange together (``application_update_protocol``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        exchange = Application.GRANT_TOKEN_EXCHANGE_TYPE
        grants = self.fields["grant_types"]
        assert isinstance(grants, forms.MultipleChoiceField)
        grants.choices = [(v, label) for v, label in Application.GRANT_TYPE_CHOICES if v != exchange]
        self.initial["grant_types"] = [g for g in self.initial.get("grant_types", []) if g != exchange]
        switch = self.fields["subject_token_enabled"]
        switch.label = "Allow impersonation"
        switch.help_text = "Turns on subject tokens and the token-exchange grant together."
        expiry = self.fields["subject_token_expiry"]
        expiry.help_text = "How long a subject token stays valid before it must be exchanged. Default 180."

    @staticmethod
    def initial_for(app: Application) -> dict[str, object]:
        initial = ApplicationProtocolForm.initial_for(app)
        initial["subject_token_enabled"] = application_impersonation_enabled(app)
        return initial


def _require(console: Console, scope: str) -> None:
    access_console(user=console.user, org=console.org, scope=scope, path=console.path)


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def _disable(form: forms.BaseForm) -> None:
    for field in form.fields.values():
        field.disabled = True


def _is_post(request: HttpRequest) -> bool:
    return request.method == "POST"


# --- list and create ----------------------------------------------------------------------


@console_page(scope=VIEW)
def application_list(request: HttpRequest, console: Console) -> HttpResponse:
    rows = [
        {"app": app, "owned": app.organization_id == console.org.pk}
        for app in applications_available_in(console.org)
    ]
    return render(request, "identity/console/application_list.html", {"console": console, "rows": rows})


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def application_create_view(request: HttpRequest, console: Console) -> HttpResponse:
    form = ApplicationCreateForm(request.POST or None)
    if _is_post(request):
        _require(console, UPDATE)
        access_not_impersonating(request=request)
        if form.is_valid():
            data = form.cleaned_data
            try:
                app, secret = application_create(
                    actor=console.user,
                    org=console.org,
                    name=data["name"],
                    description=data["description"],
                    client_type=data["client_type"],
                    grant_types=data["grant_types"],
                    redirect_uris=data["redirect_uris"],
                )
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                return _secret_page(request, console, app, secret, created=True)
    status = 400 if _is_post(request) else 200
    return render(
        request, "identity/console/application_create.html", {"console": console, "form": form}, status=status
    )


def _secret_page(
    request: HttpRequest, console: Console, app: Application, secret: str, *, created: bool
) -> HttpResponse:
    """The only page that ever shows a client secret: the response to the POST that made it."""
    response = render(
        request,
        "identity/console/application_secret.html",
        {"console": console, "app": app, "secret": secret, "created": created},
    )
    return _no_store(response)


# --- the tabs -----------------------------------------------------------------------------


def _tab_page(
    request: HttpRequest,
    console: Console,
    app: Application,
    *,
    tab: str,
    template: str,
    status: int = 200,
    **context: Any,
) -> HttpResponse:
    owned = app.organization_id == console.org.pk
    base = {
        "console": console,
        "app": app,
        "tab": tab,
        "tabs": TABS,
        "owned": owned,
        "can_update": owned and console.can(UPDATE),
        "can_delete": owned and not app.system_key and console.can(UPDATE),
    }
    return render(request, f"identity/console/{template}", {**base, **context}, status=status)


def _app(console: Console, app_id: str) -> Application:
    return access_console_application(org=console.org, application_id=app_id)


def _writable(console: Console, app: Application) -> None:
    """A POST that changes the application itself: the write scope, in its owner's Console."""
    _require(console, UPDATE)
    access_application_owned(org=console.org, application=app)


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def application_detail(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    """The General tab."""
    app = _app(console, app_id)
    initial = {
        "name": app.name,
        "description": app.description,
        "discoverable": app.discoverable,
        "access_url": app.access_url,
    }
    form = ApplicationGeneralForm(request.POST or None, initial=initial)
    if _is_post(request):
        _writable(console, app)
        if app.system_key:
            form.fields["name"].disabled = True
        if form.is_valid():
            try:
                application_update_general(actor=console.user, application=app, **form.cleaned_data)
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, "General settings saved.")
                return HttpResponseRedirect(console.url("application-detail", app.pk))
        app.refresh_from_db()
    else:
        if app.organization_id != console.org.pk or not console.can(UPDATE):
            _disable(form)
        elif app.system_key:
            form.fields["name"].disabled = True
    return _tab_page(
        request,
        console,
        app,
        tab="application-detail",
        template="application_general.html",
        status=400 if _is_post(request) else 200,
        form=form,
    )


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def application_protocol(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    app = _app(console, app_id)
    locked = bool(app.system_key)
    form = ProtocolForm(request.POST or None, initial=ProtocolForm.initial_for(app), locked=locked)
    if _is_post(request):
        _writable(console, app)
        if form.is_valid():
            try:
                app, secret = application_update_protocol(
                    actor=console.user, application=app, **form.cleaned_data
                )
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                if secret:
                    return _secret_page(request, console, app, secret, created=False)
                messages.success(request, "Protocol settings saved.")
                return HttpResponseRedirect(console.url("application-protocol", app.pk))
        app.refresh_from_db()
    elif app.organization_id != console.org.pk or not console.can(UPDATE):
        _disable(form)
    return _tab_page(
        request,
        console,
        app,
        tab="application-protocol",
        template="application_protocol.html",
        status=400 if _is_post(request) else 200,
        form=form,
        locked=locked,
        impersonation_on=application_impersonation_enabled(app),
    )


@console_page(scope=UPDATE)
@require_POST
def application_secret(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    app = _app(console, app_id)
    access_application_business(org=console.org, application=app)
    access_not_impersonating(request=request)
    try:
        secret = application_regenerate_secret(actor=console.user, application=app)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return HttpResponseRedirect(console.url("application-protocol", app.pk))
    return _secret_page(request, console, app, secret, created=False)


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
    app = _app(console, app_id)
    resources = tenant_api_resources(console.tenant)
    picked: APIResource | None = None
    form: APIAuthorizeForm | None = None
    status = 200
    if _is_post(request):
        _writable(console, app)
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
    return _tab_page(
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
    app = _app(console, app_id)
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
    app = _app(console, app_id)
    pool = _role_pool(app)
    form = ApplicationRoleForm(request.POST or None, scopes=pool)
    if _is_post(request):
        _writable(console, app)
        _require(console, ROLE_CREATE)
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
    return _tab_page(
        request,
        console,
        app,
        tab="application-roles",
        template="application_roles.html",
        status=400 if _is_post(request) else 200,
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
    app = _app(console, app_id)
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
        return _tab_page(
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

    if not _is_post(request):
        return page(builder, 200)
    _require(console, UPDATE)
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
    app = _app(console, app_id)
    initial = {"skip_login_consent": app.skip_login_consent, "skip_logout_consent": app.skip_logout_consent}
    form = ApplicationAdvancedForm(request.POST or None, initial=initial)
    if _is_post(request):
        _writable(console, app)
        if form.is_valid():
            application_update_advanced(actor=console.user, application=app, **form.cleaned_data)
            messages.success(request, "Advanced settings saved.")
            return HttpResponseRedirect(console.url("application-advanced", app.pk))
    elif app.organization_id != console.org.pk or not console.can(UPDATE):
        _disable(form)
    return _tab_page(
        request,
        console,
        app,
        tab="application-advanced",
        template="application_advanced.html",
        status=400 if _is_post(request) else 200,
        form=form,
    )


def _share_candidates(app: Application) -> list[Organization]:
    return list(org_descendants(app.organization).order_by("tree_id", "lft"))


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def application_shared_access(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    app = _app(console, app_id)
    owned = app.organization_id == console.org.pk
    candidates = _share_candidates(app) if owned else []
    initial = {
        "mode": app.shared_access,
        "organizations": [s.organization_id for s in app.shares.all()],
    }
    form = ApplicationShareForm(request.POST or None, initial=initial, organizations=candidates)
    if _is_post(request):
        _writable(console, app)
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
    if not _is_post(request) and not editable:
        _disable(form)
    return _tab_page(
        request,
        console,
        app,
        tab="application-shared-access",
        template="application_shared_access.html",
        status=400 if _is_post(request) else 200,
        form=form,
        editable=editable,
    )


@console_page(scope=UPDATE)
@require_http_methods(["GET", "POST"])
def application_delete_view(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    app = _app(console, app_id)
    access_application_business(org=console.org, application=app)
    form = ApplicationDeleteForm(request.POST or None, application=app)
    if _is_post(request) and form.is_valid():
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
        status=400 if _is_post(request) else 200,
    )


# --- API resources ------------------------------------------------------------------------


@console_page(scope=VIEW)
def api_resource_list(request: HttpRequest, console: Console) -> HttpResponse:
    resources = tenant_api_resources(console.tenant)
    return render(
        request,
        "identity/console/api_resource_list.html",
        {
            "console": console,
            "system": [r for r in resources if r.is_system],
            "business": [r for r in resources if not r.is_system],
            "can_create": console.is_root and console.can(UPDATE),
        },
    )


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def api_resource_create_view(request: HttpRequest, console: Console) -> HttpResponse:
    access_api_resource_editable(org=console.org)
    data = request.POST if _is_post(request) else None
    form = APIResourceForm(data)
    formset = ScopeFormSet(data, prefix="scopes")
    if _is_post(request):
        _require(console, UPDATE)
        if form.is_valid() & formset.is_valid():
            specs = [
                ScopeSpec(
                    name=f.cleaned_data["name"],
                    display_name=f.cleaned_data.get("display_name", ""),
                    description=f.cleaned_data.get("description", ""),
                    read_only=f.cleaned_data.get("read_only", False),
                )
                for f in formset.forms
                if f.cleaned_data.get("name")
            ]
            try:
                resource = api_resource_create(
                    actor=console.user, tenant=console.tenant, scopes=specs, **form.cleaned_data
                )
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, f"API resource {resource.name} created.")
                return HttpResponseRedirect(console.url("api-resource-detail", resource.pk))
    return render(
        request,
        "identity/console/api_resource_create.html",
        {"console": console, "form": form, "formset": formset},
        status=400 if _is_post(request) else 200,
    )


def _resource_page(
    request: HttpRequest,
    console: Console,
    resource: APIResource,
    *,
    scope_form: ScopeForm | None = None,
    status: int = 200,
) -> HttpResponse:
    editable = console.is_root and not resource.is_system and console.can(UPDATE)
    return render(
        request,
        "identity/console/api_resource_detail.html",
        {
            "console": console,
            "resource": resource,
            "scopes": list(resource.scopes.order_by("name")),
            "editable": editable,
            "scope_form": scope_form or ScopeForm(),
        },
        status=status,
    )


@console_page(scope=VIEW)
def api_resource_detail(request: HttpRequest, console: Console, resource_id: str) -> HttpResponse:
    resource = access_console_api_resource(tenant=console.tenant, resource_id=resource_id)
    return _resource_page(request, console, resource)


@console_page(scope=UPDATE)
@require_POST
def api_resource_scope_add(request: HttpRequest, console: Console, resource_id: str) -> HttpResponse:
    resource = access_console_api_resource(tenant=console.tenant, resource_id=resource_id)
    access_api_resource_editable(org=console.org, resource=resource)
    form = ScopeForm(request.POST)
    if form.is_valid():
        try:
            scope = scope_create(actor=console.user, resource=resource, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Scope {scope.name} added.")
            return HttpResponseRedirect(console.url("api-resource-detail", resource.pk))
    return _resource_page(request, console, resource, scope_form=form, status=400)
