"""Console → Branding and Console → Email Templates.

Branding: the organization's display name, support address and logo used by its emails; an
empty field inherits from the parent. Email Templates: per kind and locale, the organization's
own subject, HTML body and plain-text body, else the parent's, else actas's default. Preview
renders with sample values without saving; Save refuses broken or disallowed syntax (400, the
error on the field, nothing written); Reset to inherited deletes the own template.

Viewing needs ``internal_config_mgt_view``; previewing and writing need
``internal_config_mgt_update`` (both held by the Console's Administrator role). Preview and
Save render within the sandbox's limits (``identity.notifications.email_sandbox``): a template
over one is refused with the limit named on the field.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from identity.console.shell import Console, console_page
from identity.csp import csp_email_preview
from identity.forms import apply_service_errors
from identity.notifications import email_sandbox
from identity.notifications.branding import branding_update, email_template_reset, email_template_save
from identity.notifications.emails import (
    DEFAULT_LOCALE,
    KINDS,
    RenderedEmail,
    ResolvedTemplate,
    branding_effective,
    locale_normalize,
    template_resolve,
    template_validate,
)
from identity.notifications.models import EmailTemplate, OrganizationBranding
from organizations.selectors import org_ancestors

VIEW = "internal_config_mgt_view"
UPDATE = "internal_config_mgt_update"


def _require_update(console: Console) -> None:
    if not console.can(UPDATE):
        raise PermissionDenied("Your role does not allow this action.")


# --- Branding -------------------------------------------------------------------------------


class BrandingForm(forms.Form):
    display_name = forms.CharField(
        label="Display name",
        max_length=120,
        required=False,
        help_text="Shown in emails as the sender's brand.",
    )
    support_email = forms.EmailField(label="Support email", max_length=254, required=False)
    logo_url = forms.URLField(
        label="Logo URL",
        max_length=500,
        required=False,
        assume_scheme="https",
        help_text="An https:// address of an image.",
    )

    def clean_logo_url(self) -> str:
        value: str = self.cleaned_data["logo_url"]
        if value and not value.lower().startswith("https://"):
            raise forms.ValidationError("Enter an https:// address.")
        return value


def _branding_context(console: Console, form: BrandingForm | None = None) -> dict[str, Any]:
    own = OrganizationBranding.objects.filter(organization=console.org).first()
    if form is None:
        initial = (
            {"display_name": own.display_name, "support_email": own.support_email, "logo_url": own.logo_url}
            if own
            else {}
        )
        form = BrandingForm(initial=initial)
    inherited = branding_effective(console.org, include_self=False) if not console.is_root else None
    effective = branding_effective(console.org)
    rows = []
    for field, label in (
        ("brand_name", "Display name"),
        ("support_email", "Support email"),
        ("logo_url", "Logo URL"),
    ):
        source = effective.sources[field]
        if source is None:
            origin = "actas default (the tenant's name)" if field == "brand_name" else "not set"
        elif source.pk == console.org.pk:
            origin = "this organization"
        else:
            origin = f"inherited from {source.name}"
        rows.append({"label": label, "value": getattr(effective, field), "origin": origin})
    return {
        "console": console,
        "form": form,
        "rows": rows,
        "inherited": inherited,
        "can_update": console.can(UPDATE),
    }


@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def branding(request: HttpRequest, console: Console) -> HttpResponse:
    template = "identity/console/branding.html"
    if request.method != "POST":
        return render(request, template, _branding_context(console))
    _require_update(console)
    form = BrandingForm(request.POST)
    if form.is_valid():
        try:
            branding_update(actor=console.user, org=console.org, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Branding saved.")
            return HttpResponseRedirect(console.url("branding"))
    return render(request, template, _branding_context(console, form), status=400)


# --- Email Templates ------------------------------------------------------------------------


def _origin(resolved: ResolvedTemplate, console: Console, locale: str) -> dict[str, str]:
    """How a (kind, locale) is provided here: own, inherited from <org>, or actas default."""
    if resolved.source is None:
        return {"state": "default", "label": "actas default"}
    if resolved.source.pk == console.org.pk and resolved.locale == locale:
        return {"state": "own", "label": "own"}
    where = "this organization" if resolved.source.pk == console.org.pk else resolved.source.name
    suffix = f" ({resolved.locale})" if resolved.locale != locale else ""
    return {"state": "inherited", "label": f"inherited from {where}{suffix}"}


class OpenTemplateForm(forms.Form):
    kind = forms.ChoiceField(label="Email", choices=[(k.key, k.label) for k in KINDS.values()])
    locale = forms.CharField(
        label="Language", max_length=16, help_text="A short language tag: en, de, pt-BR."
    )

    def clean_locale(self) -> str:
        try:
            return locale_normalize(self.cleaned_data["locale"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


def _list_context(console: Console, open_form: OpenTemplateForm | None = None) -> dict[str, Any]:
    path = org_ancestors(console.org, include_self=True)
    locales = {DEFAULT_LOCALE} | set(
        EmailTemplate.objects.filter(organization__in=[o.pk for o in path]).values_list("locale", flat=True)
    )
    rows = []
    for kind in KINDS.values():
        for locale in sorted(locales):
            resolved = template_resolve(org=console.org, kind=kind.key, locale=locale)
            rows.append(
                {
                    "kind": kind,
                    "locale": locale,
                    "origin": _origin(resolved, console, locale),
                    "url": console.url("email-template-edit", kind.key, locale),
                }
            )
    return {
        "console": console,
        "rows": rows,
        "open_form": open_form or OpenTemplateForm(initial={"locale": ""}),
        "can_update": console.can(UPDATE),
    }


@console_page(scope=VIEW)
def email_template_list(request: HttpRequest, console: Console) -> HttpResponse:
    """The kinds × locales, and a form to open another locale (a GET)."""
    template = "identity/console/email_template_list.html"
    if "kind" in request.GET or "locale" in request.GET:
        form = OpenTemplateForm(request.GET)
        if form.is_valid():
            data = form.cleaned_data
            return HttpResponseRedirect(console.url("email-template-edit", data["kind"], data["locale"]))
        return render(request, template, _list_context(console, form), status=400)
    return render(request, template, _list_context(console))


class EmailTemplateForm(forms.Form):
    subject = forms.CharField(label="Subject", max_length=300)
    html_body = forms.CharField(
        label="HTML body",
        strip=False,
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false", "class": "code"}),
    )
    text_body = forms.CharField(
        label="Plain-text body",
        strip=False,
        max_length=100_000,
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "code"}),
    )


def _kind_locale(kind: str, locale: str) -> tuple[str, str]:
    if kind not in KINDS:
        raise Http404("No such email.")
    try:
        return kind, locale_normalize(locale)
    except ValueError as exc:
        raise Http404("No such language.") from exc


# The sandbox's limits, as the edit page states them.
_LIMITS = {
    "pad_width": f"{email_sandbox.MAX_PAD_WIDTH:,}",
    "loop_depth": email_sandbox.MAX_LOOP_DEPTH,
    "loop_items": f"{email_sandbox.MAX_LOOP_ITEMS:,}",
    "loop_iterations": f"{email_sandbox.MAX_LOOP_ITERATIONS:,}",
    "render_kb": email_sandbox.MAX_RENDER_CHARS // 1024,
    "render_ms": round(email_sandbox.RENDER_SECONDS * 1000),
}


def _edit_page(
    request: HttpRequest,
    console: Console,
    *,
    kind: str,
    locale: str,
    form: EmailTemplateForm | None = None,
    preview: RenderedEmail | None = None,
    status: int = 200,
) -> HttpResponse:
    resolved = template_resolve(org=console.org, kind=kind, locale=locale)
    origin = _origin(resolved, console, locale)
    if form is None:
        text = resolved.text
        form = EmailTemplateForm(
            initial={"subject": text.subject, "html_body": text.html_body, "text_body": text.text_body}
        )
    if not console.can(UPDATE):
        for field in form.fields.values():
            field.disabled = True
    inherited = template_resolve(org=console.org, kind=kind, locale=locale, include_self=False)
    if console.is_root and inherited.source is None:
        inherits_label = "actas default"
    else:
        inherits_label = _origin(inherited, console, locale)["label"]
    context = {
        "console": console,
        "kind": KINDS[kind],
        "locale": locale,
        "origin": origin,
        "inherits_label": inherits_label,
        "form": form,
        "placeholders": [
            {"name": name, "description": description, "sample": sample}
            for name, (description, sample) in KINDS[kind].placeholders.items()
        ],
        "preview": preview,
        "can_update": console.can(UPDATE),
        "limits": _LIMITS,
    }
    return render(request, "identity/console/email_template_edit.html", context, status=status)


@csp_email_preview  # the preview's srcdoc frame inherits this page's policy
@console_page(scope=VIEW)
@require_http_methods(["GET", "POST"])
def email_template_edit(request: HttpRequest, console: Console, kind: str, locale: str) -> HttpResponse:
    """GET: the template in use here (own, inherited or default). POST (update scope)
    ``action=preview`` renders it with the sample values; ``action=save`` saves it as this
    organization's own."""
    kind, locale = _kind_locale(kind, locale)
    if request.method != "POST":
        return _edit_page(request, console, kind=kind, locale=locale)
    _require_update(console)  # previewing renders what the user wrote: as costly as saving it
    action = request.POST.get("action", "save")
    form = EmailTemplateForm(request.POST)
    if not form.is_valid():
        return _edit_page(request, console, kind=kind, locale=locale, form=form, status=400)
    data = form.cleaned_data
    if action == "preview":
        try:
            preview = template_validate(kind=kind, **data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
            return _edit_page(request, console, kind=kind, locale=locale, form=form, status=400)
        return _edit_page(request, console, kind=kind, locale=locale, form=form, preview=preview)
    try:
        email_template_save(actor=console.user, org=console.org, kind=kind, locale=locale, **data)
    except ValidationError as exc:
        apply_service_errors(form, exc)
        return _edit_page(request, console, kind=kind, locale=locale, form=form, status=400)
    messages.success(request, f"{KINDS[kind].label} ({locale}) saved for {console.org.name}.")
    return HttpResponseRedirect(console.url("email-template-edit", kind, locale))


@console_page(scope=VIEW)
@require_POST
def email_template_reset_view(request: HttpRequest, console: Console, kind: str, locale: str) -> HttpResponse:
    kind, locale = _kind_locale(kind, locale)
    _require_update(console)
    if email_template_reset(actor=console.user, org=console.org, kind=kind, locale=locale):
        messages.success(request, f"{KINDS[kind].label} ({locale}) now inherits again.")
    else:
        messages.info(request, "This organization has no template of its own here.")
    return HttpResponseRedirect(console.url("email-template-edit", kind, locale))
