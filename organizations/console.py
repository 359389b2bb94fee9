"""Console pages owned by organizations: the tree, creating a child, switching into it, and
the organization's impersonation settings (Login & Registration)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from identity.access import access_console_child_org
from identity.console.shell import Console, console_page
from identity.forms import apply_service_errors
from organizations.forms import OrganizationCreateForm
from organizations.models import Organization, OrganizationSettings
from organizations.selectors import (
    EffectiveOrgSettings,
    org_ancestors,
    org_children,
    org_effective_settings,
)
from organizations.services import (
    organization_create,
    organization_set_status,
    organization_settings_update,
)


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


# --- Login & Registration → Organization settings → Impersonation --------------------------

CONFIG_VIEW = "internal_config_mgt_view"
CONFIG_UPDATE = "internal_config_mgt_update"
INHERIT = "inherit"


class ImpersonationSettingsForm(forms.Form):
    """This organization's own impersonation settings; "inherit" clears a value.

    Field names are the service's, so its field errors (a child loosening what it inherits,
    a length out of range) land in place."""

    impersonation_email_enabled = forms.ChoiceField(
        label="Email the user when an impersonation starts", widget=forms.RadioSelect
    )
    impersonation_reason_required = forms.ChoiceField(
        label="Reason required to start an impersonation", widget=forms.RadioSelect
    )
    max_minutes_mode = forms.ChoiceField(label="Maximum impersonation length", widget=forms.RadioSelect)
    impersonation_max_minutes = forms.IntegerField(
        label="Minutes",
        required=False,
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "min": 1, "max": 1440}),
        help_text="1 to 1440 (24 hours); used when this organization sets its own maximum.",
    )

    def __init__(self, *args: Any, inherit_labels: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields = self.fields
        cast(forms.ChoiceField, fields["impersonation_email_enabled"]).choices = [
            (INHERIT, inherit_labels["email"]),
            ("on", "On: email the user"),
            ("off", "Off: do not email"),
        ]
        cast(forms.ChoiceField, fields["impersonation_reason_required"]).choices = [
            (INHERIT, inherit_labels["reason"]),
            ("required", "Required"),
            ("optional", "Optional"),
        ]
        cast(forms.ChoiceField, fields["max_minutes_mode"]).choices = [
            (INHERIT, inherit_labels["max_minutes"]),
            ("set", "Set this organization's own maximum"),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("max_minutes_mode") == "set" and data.get("impersonation_max_minutes") is None:
            if "impersonation_max_minutes" not in self.errors:
                self.add_error("impersonation_max_minutes", "Enter the maximum length in minutes.")
        return data

    def own_values(self) -> dict[str, bool | int | None]:
        """The submitted values as the service takes them (None = inherit)."""
        d = self.cleaned_data
        choice = {INHERIT: None, "on": True, "off": False, "required": True, "optional": False}
        return {
            "impersonation_email_enabled": choice[d["impersonation_email_enabled"]],
            "impersonation_reason_required": choice[d["impersonation_reason_required"]],
            "impersonation_max_minutes": d["impersonation_max_minutes"]
            if d["max_minutes_mode"] == "set"
            else None,
        }

    @staticmethod
    def initial_from(own: dict[str, bool | int | None]) -> dict[str, object]:
        def pick(value: bool | int | None, yes: str, no: str) -> str:
            return INHERIT if value is None else (yes if value else no)

        minutes = own["impersonation_max_minutes"]
        return {
            "impersonation_email_enabled": pick(own["impersonation_email_enabled"], "on", "off"),
            "impersonation_reason_required": pick(
                own["impersonation_reason_required"], "required", "optional"
            ),
            "max_minutes_mode": INHERIT if minutes is None else "set",
            "impersonation_max_minutes": minutes,
        }


def _own_settings(org: Organization) -> dict[str, bool | int | None]:
    """This organization's own values (None = inherit), as the service takes them."""
    row = OrganizationSettings.objects.filter(organization=org).first()
    return {
        "impersonation_email_enabled": row.impersonation_email_enabled if row else None,
        "impersonation_reason_required": row.impersonation_reason_required if row else None,
        "impersonation_max_minutes": row.impersonation_max_minutes if row else None,
    }


def _source(console: Console, source: Organization | None) -> str:
    if source is None:
        return "Default"
    if source.pk == console.org.pk:
        return "Set by this organization"
    return f"Inherited from {source.name}"


def _on_off(value: bool) -> str:
    return "On" if value else "Off"


def _settings_context(console: Console, form: ImpersonationSettingsForm | None = None) -> dict[str, Any]:
    org = console.org
    effective = org_effective_settings(org)
    inherited = org_effective_settings(org, include_self=False)
    own = _own_settings(org)
    parent_name = console.path[-2].name if len(console.path) > 1 else ""
    if form is None:
        form = ImpersonationSettingsForm(
            initial=ImpersonationSettingsForm.initial_from(own),
            inherit_labels=_inherit_labels(console, inherited),
        )
    rows = [
        {
            "label": "Email the user when an impersonation starts",
            "value": _on_off(effective.impersonation_email_enabled),
            "on": effective.impersonation_email_enabled,
            "source": _source(console, effective.email_source),
            "overridden": False,
        },
        {
            "label": "Reason required to start",
            "value": "Required" if effective.impersonation_reason_required else "Optional",
            "on": effective.impersonation_reason_required,
            "source": _source(console, effective.reason_source),
            # this organization's own value is looser than what it inherits, so it has no effect
            "overridden": own["impersonation_reason_required"] is False
            and effective.impersonation_reason_required,
        },
        {
            "label": "Longest impersonation session",
            "value": f"{effective.impersonation_max_minutes} minutes",
            "on": True,
            "source": _source(console, effective.max_minutes_source),
            "overridden": own["impersonation_max_minutes"] is not None
            and int(own["impersonation_max_minutes"]) > effective.impersonation_max_minutes,
        },
    ]
    return {
        "console": console,
        "form": form,
        "rows": rows,
        "inherited": inherited,
        "parent_name": parent_name,
        "can_update": console.can(CONFIG_UPDATE),
    }


def _inherit_labels(console: Console, inherited: EffectiveOrgSettings) -> dict[str, str]:
    if console.is_root:
        prefix = "Default"
    else:
        prefix = f"Inherit from {console.path[-2].name}"
    return {
        "email": f"{prefix} ({_on_off(inherited.impersonation_email_enabled).lower()})",
        "reason": f"{prefix} ({'required' if inherited.impersonation_reason_required else 'optional'})",
        "max_minutes": f"{prefix} ({inherited.impersonation_max_minutes} minutes)",
    }


@console_page(scope=CONFIG_VIEW)
@require_http_methods(["GET", "POST"])
def impersonation_settings(request: HttpRequest, console: Console) -> HttpResponse:
    """Console → Login & Registration → Organization settings → Impersonation.

    Viewing needs ``internal_config_mgt_view``, saving ``internal_config_mgt_update`` (the
    Console's Administrator role holds both). A child organization may tighten what it
    inherits (require a reason, shorten the maximum length), never loosen it: the service
    refuses, and its errors are shown on the fields."""
    template = "organizations/console/impersonation_settings.html"
    if request.method != "POST":
        return render(request, template, _settings_context(console))
    if not console.can(CONFIG_UPDATE):
        raise PermissionDenied("Your role does not allow this action.")
    inherited = org_effective_settings(console.org, include_self=False)
    form = ImpersonationSettingsForm(request.POST, inherit_labels=_inherit_labels(console, inherited))
    if form.is_valid():
        before = _own_settings(console.org)
        wanted = form.own_values()
        changed: dict[str, Any] = {k: v for k, v in wanted.items() if before[k] != v}
        if not changed:
            messages.info(request, "Nothing changed.")
            return HttpResponseRedirect(console.url("impersonation-settings"))
        try:
            organization_settings_update(actor=console.user, org=console.org, **changed)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Impersonation settings saved.")
            return HttpResponseRedirect(console.url("impersonation-settings"))
    return render(request, template, _settings_context(console, form), status=400)
