"""Console pages owned by organizations: the tree, creating a child, switching into it."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from identity.access import access_console_child_org
from identity.console_shell import Console, console_page
from identity.forms import apply_service_errors
from identity.services.organizations import organization_create, organization_set_status
from organizations.forms import OrganizationCreateForm
from organizations.models import Organization
from organizations.selectors import org_ancestors, org_children


def _node_from(request: HttpRequest, console: Console) -> Organization:
    node_id = request.GET.get("node")
    if not node_id:
        return console.org
    return access_console_child_org(org=console.org, org_id=node_id)


def _tree_context(console: Console, node: Organization) -> dict[str, object]:
    if node.pk == console.org.pk:
        trail = [console.org]
    else:
        trail = [o for o in org_ancestors(node, include_self=True) if o.level >= console.org.level]
    return {"console": console, "node": node, "trail": trail, "children": list(org_children(node))}


@console_page(scope="internal_org_mgt_view")
@require_GET
def organization_tree(request: HttpRequest, console: Console) -> HttpResponse:
    node = _node_from(request, console)
    context = _tree_context(console, node)
    context["form"] = OrganizationCreateForm(initial={"parent": node.pk})
    return render(request, "organizations/console/tree.html", context)


@console_page(scope="internal_org_mgt_view")
@require_GET
def organization_children(request: HttpRequest, console: Console, node_id: str) -> HttpResponse:
    """The children of one node: the fragment htmx loads when a branch is opened."""
    node = access_console_child_org(org=console.org, org_id=node_id)
    return render(
        request,
        "organizations/console/_children.html",
        {"console": console, "children": list(org_children(node))},
    )


@console_page(scope="internal_org_mgt_create")
@require_POST
def organization_create_view(request: HttpRequest, console: Console) -> HttpResponse:
    form = OrganizationCreateForm(request.POST)
    parent: Organization | None = None
    if form.is_valid():
        try:
            parent = access_console_child_org(org=console.org, org_id=form.cleaned_data["parent"])
        except Http404:
            form.add_error(None, "The parent organization is not one you administer.")
    if form.is_valid() and parent is not None:
        try:
            org = organization_create(
                actor=console.user,
                parent=parent,
                name=form.cleaned_data["name"],
                handle=form.cleaned_data["handle"],
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Organization {org.name} created.")
            url = console.url("organizations")
            return HttpResponseRedirect(url if parent.pk == console.org.pk else f"{url}?node={parent.pk}")
    node = parent or console.org
    context = _tree_context(console, node)
    context["form"] = form
    return render(request, "organizations/console/tree.html", context, status=400)


@console_page(scope="internal_org_mgt_update")
@require_POST
def organization_status_view(request: HttpRequest, console: Console, node_id: str) -> HttpResponse:
    """Disable or enable an organization below this Console's own (never the Console's own
    organization: its administrators would lock themselves out)."""
    node = access_console_child_org(org=console.org, org_id=node_id)
    if node.pk == console.org.pk:
        raise Http404("No such organization.")
    status = request.POST.get("status", "")
    try:
        organization_set_status(actor=console.user, org=node, status=status)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        verb = "enabled" if status == Organization.Status.ACTIVE else "disabled"
        messages.success(request, f"Organization {node.name} {verb}.")
    url = console.url("organizations")
    parent_id = node.parent_id
    return HttpResponseRedirect(url if parent_id == console.org.pk else f"{url}?node={parent_id}")
