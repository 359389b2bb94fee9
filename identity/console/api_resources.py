"""Console pages owned by identity: API Resources (list, create, scopes)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from identity.access import (
    access_api_resource_editable,
    access_console_api_resource,
)
from identity.console.applications import (
    UPDATE,
    VIEW,
    is_post,
    require_scope,
)
from identity.console.shell import Console, console_page
from identity.forms import (
    APIResourceForm,
    ScopeForm,
    ScopeFormSet,
    apply_service_errors,
)
from identity.models import APIResource
from identity.selectors.applications import tenant_api_resources
from identity.services.resources import ScopeSpec, api_resource_create, scope_create

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
    data = request.POST if is_post(request) else None
    form = APIResourceForm(data)
    formset = ScopeFormSet(data, prefix="scopes")
    if is_post(request):
        require_scope(console, UPDATE)
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
        status=400 if is_post(request) else 200,
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
