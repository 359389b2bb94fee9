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
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from identity.access import (
    access_application_business,
    access_application_owned,
    access_console,
    access_console_application,
    access_not_impersonating,
)
from identity.console.shell import Console, console_page
from identity.forms import (
    ApplicationCreateForm,
    ApplicationGeneralForm,
    ApplicationProtocolForm,
    apply_service_errors,
)
from identity.models import Application
from identity.selectors.applications import applications_available_in
from identity.services.application_edits import (
    application_impersonation_enabled,
    application_regenerate_secret,
    application_update_general,
    application_update_protocol,
)
from identity.services.applications import application_create

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


def require_scope(console: Console, scope: str) -> None:
    access_console(user=console.user, org=console.org, scope=scope, path=console.path)


def no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def disable_form(form: forms.BaseForm) -> None:
    for field in form.fields.values():
        field.disabled = True


def is_post(request: HttpRequest) -> bool:
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
    if is_post(request):
        require_scope(console, UPDATE)
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
                    pkce_required=data["pkce_required"],
                )
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                return secret_page(request, console, app, secret, created=True)
    status = 400 if is_post(request) else 200
    return render(
        request, "identity/console/application_create.html", {"console": console, "form": form}, status=status
    )


def secret_page(
    request: HttpRequest, console: Console, app: Application, secret: str, *, created: bool
) -> HttpResponse:
    """The only page that ever shows a client secret: the response to the POST that made it."""
    response = render(
        request,
        "identity/console/application_secret.html",
        {"console": console, "app": app, "secret": secret, "created": created},
    )
    return no_store(response)


# --- the tabs -----------------------------------------------------------------------------


def tab_page(
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


def console_app(console: Console, app_id: str) -> Application:
    return access_console_application(org=console.org, application_id=app_id)


def require_writable(console: Console, app: Application) -> None:
    """A POST that changes the application itself: the write scope, in its owner's Console."""
    require_scope(console, UPDATE)
    access_application_owned(org=console.org, application=app)


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def application_detail(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    """The General tab."""
    app = console_app(console, app_id)
    initial = {
        "name": app.name,
        "description": app.description,
        "discoverable": app.discoverable,
        "access_url": app.access_url,
    }
    form = ApplicationGeneralForm(request.POST or None, initial=initial)
    if is_post(request):
        require_writable(console, app)
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
            disable_form(form)
        elif app.system_key:
            form.fields["name"].disabled = True
    return tab_page(
        request,
        console,
        app,
        tab="application-detail",
        template="application_general.html",
        status=400 if is_post(request) else 200,
        form=form,
    )


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def application_protocol(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    app = console_app(console, app_id)
    locked = bool(app.system_key)
    form = ProtocolForm(request.POST or None, initial=ProtocolForm.initial_for(app), locked=locked)
    if is_post(request):
        require_writable(console, app)
        if form.is_valid():
            try:
                app, secret = application_update_protocol(
                    actor=console.user, application=app, **form.cleaned_data
                )
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                if secret:
                    return secret_page(request, console, app, secret, created=False)
                messages.success(request, "Protocol settings saved.")
                return HttpResponseRedirect(console.url("application-protocol", app.pk))
        app.refresh_from_db()
    elif app.organization_id != console.org.pk or not console.can(UPDATE):
        disable_form(form)
    return tab_page(
        request,
        console,
        app,
        tab="application-protocol",
        template="application_protocol.html",
        status=400 if is_post(request) else 200,
        form=form,
        locked=locked,
        impersonation_on=application_impersonation_enabled(app),
    )


@console_page(scope=UPDATE)
@require_POST
def application_secret(request: HttpRequest, console: Console, app_id: str) -> HttpResponse:
    app = console_app(console, app_id)
    access_application_business(org=console.org, application=app)
    access_not_impersonating(request=request)
    try:
        secret = application_regenerate_secret(actor=console.user, application=app)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return HttpResponseRedirect(console.url("application-protocol", app.pk))
    return secret_page(request, console, app, secret, created=False)
