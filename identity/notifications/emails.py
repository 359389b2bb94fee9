"""Editable emails: the registry of email kinds, resolving an organization's template, and
rendering it in the sandbox (``identity.notifications.email_sandbox``, which has the limits).

The registered kinds (below) are editable per organization and locale. The template of
(org, kind, locale) is the organization's own, else the nearest ancestor's, else actas's
default: the blocks of ``templates/templated_email/<kind>.email`` (the defaults' single source
of truth; the other emails still go through django-templated-email).
A locale such as ``de-AT`` falls back to ``de`` and then to ``en``, each walked up the tree.

*Email kinds* are an extension point: ``KINDS`` holds the kinds registered with
``email_kind_register``, ordered by ``Kind.position`` (the Console's Email Templates page
lists them in that order). identity registers its own, ``email_otp``, here; another app
registers its kinds from its ``AppConfig.ready()`` (impersonation: ``impersonation_started``,
``impersonation.emails``), so identity never names them. A kind lists its placeholders (a
description and a sample value each); its default wording is the ``.email`` file named by its
key. Past a limit of the sandbox, delivery (``email_render``) falls back to actas's default
wording and says so in ``RenderedEmail.fallback``, for the outbox to audit.
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template import (
    TemplateSyntaxError,
)

from identity.notifications.email_sandbox import (
    RenderBudget,
    TemplateLimitError,
    compile_template,
    render_string,
)
from organizations.models import Organization
from organizations.selectors import org_ancestors

# --- the kinds, their placeholders and sample values ------------------------------------------

EMAIL_OTP = "email_otp"
DEFAULT_LOCALE = "en"

# Placeholders every kind may offer: the organization's effective branding (``email_render``
# fills them in when the caller does not).
BRAND_PLACEHOLDERS = {
    "support_email": ("The organization's support address (Branding)", "support@example.com"),
    "brand_name": ("The organization's display name (Branding)", "Example Corp"),
    "logo_url": ("The organization's logo address, https (Branding)", "https://example.com/logo.png"),
}


@dataclass(frozen=True)
class Kind:
    """One kind of editable email. ``key``: its name in templates and the outbox, and the name
    of its default wording (``templates/templated_email/<key>.email``); ``position``: where the
    Console lists it."""

    key: str
    label: str
    placeholders: dict[str, tuple[str, str]]  # name -> (what it is, sample value)
    position: int = 100

    @property
    def sample(self) -> dict[str, str]:
        return {name: sample for name, (_, sample) in self.placeholders.items()}


# The registered kinds by key, in ``position`` order (the extension point; see the module's
# docstring). One dict, updated in place: importers keep a reference to it.
KINDS: dict[str, Kind] = {}


def email_kind_register(kind: Kind) -> None:
    """Make ``kind`` editable (call from an ``AppConfig.ready()``). Registering a key again
    replaces its kind."""
    kinds = {**KINDS, kind.key: kind}
    KINDS.clear()
    KINDS.update(sorted(kinds.items(), key=lambda item: (item[1].position, item[0])))


email_kind_register(
    Kind(
        EMAIL_OTP,
        "Email sign-in code",
        {
            "user_name": ("The user's name", "Erin Example"),
            "org_name": ("The organization", "Example Corp"),
            "code": ("The one-time code", "482913"),
            "minutes": ("Minutes until the code expires", "10"),
            **BRAND_PLACEHOLDERS,
        },
        position=20,
    )
)

_LOCALE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")


def locale_normalize(value: str) -> str:
    """A short BCP 47 tag, lower case (``en``, ``de``, ``pt-br``); raises ValueError otherwise."""
    clean = (value or "").strip().lower().replace("_", "-")
    if not _LOCALE.match(clean):
        raise ValueError("Use a short language tag such as en, de or pt-BR.")
    return clean


def _locale_chain(locale: str) -> list[str]:
    try:
        clean = locale_normalize(locale)
    except ValueError:
        clean = DEFAULT_LOCALE
    chain = [clean, clean.split("-")[0], DEFAULT_LOCALE]
    return list(dict.fromkeys(chain))


# --- actas's defaults ------------------------------------------------------------------------

_BLOCK = re.compile(r"{%\s*block\s+(subject|plain|html)\s*%}(.*?){%\s*endblock\s*%}", re.DOTALL)


@dataclass(frozen=True)
class TemplateText:
    subject: str
    html_body: str
    text_body: str


@functools.cache
def default_template(kind: str) -> TemplateText:
    """actas's own wording: the blocks of ``templates/templated_email/<kind>.email``."""
    path = Path(settings.BASE_DIR) / "templates" / "templated_email" / f"{KINDS[kind].key}.email"
    blocks = {name: body for name, body in _BLOCK.findall(path.read_text(encoding="utf-8"))}
    return TemplateText(
        subject=blocks["subject"].strip(), html_body=blocks["html"].strip() + "\n", text_body=blocks["plain"]
    )


# --- resolving ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedTemplate:
    text: TemplateText
    kind: str
    locale: str  # the locale of the template found ("en" for the default)
    source: Organization | None  # whose template it is; None: actas's default
    template_id: uuid.UUID | None = None  # its EmailTemplate row; None: actas's default

    @property
    def is_default(self) -> bool:
        return self.source is None


def template_resolve(
    *, org: Organization, kind: str, locale: str = DEFAULT_LOCALE, include_self: bool = True
) -> ResolvedTemplate:
    """The template (org, kind, locale) uses: the org's own, else the nearest ancestor's, for the
    locale, then its language, then ``en``; else actas's default."""
    from identity.notifications.models import EmailTemplate

    if kind not in KINDS:
        raise KeyError(kind)
    path = org_ancestors(org, include_self=include_self)
    chain = _locale_chain(locale)
    rows = {
        (row.organization_id, row.locale): row
        for row in EmailTemplate.objects.filter(
            organization__in=[o.pk for o in path], kind=kind, locale__in=chain
        )
    }
    for wanted in chain:
        for node in reversed(path):  # nearest first
            row = rows.get((node.pk, wanted))
            if row is not None:
                text = TemplateText(row.subject, row.html_body, row.text_body)
                return ResolvedTemplate(text=text, kind=kind, locale=wanted, source=node, template_id=row.pk)
    return ResolvedTemplate(text=default_template(kind), kind=kind, locale=DEFAULT_LOCALE, source=None)


@dataclass(frozen=True)
class Branding:
    brand_name: str
    support_email: str
    logo_url: str
    sources: dict[str, Organization | None]  # field -> the org it comes from (None: default)

    def values(self) -> dict[str, str]:
        return {"brand_name": self.brand_name, "support_email": self.support_email, "logo_url": self.logo_url}


def branding_effective(org: Organization, *, include_self: bool = True) -> Branding:
    """Each branding field from the nearest organization up the tree that sets it. Without one,
    the brand name is the tenant's name and the other fields are empty."""
    from identity.notifications.models import OrganizationBranding

    path = org_ancestors(org, include_self=include_self)
    stored = OrganizationBranding.objects.filter(organization__in=[o.pk for o in path])
    rows = {b.organization_id: b for b in stored}
    found: dict[str, tuple[str, Organization | None]] = {}
    for node in reversed(path):
        row = rows.get(node.pk)
        if row is None:
            continue
        for field, attr in (
            ("brand_name", "display_name"),
            ("support_email", "support_email"),
            ("logo_url", "logo_url"),
        ):
            value = getattr(row, attr)
            if value and field not in found:
                found[field] = (value, node)
    root = path[0] if path else org
    defaults = {"brand_name": root.name, "support_email": "", "logo_url": ""}
    values = {field: found.get(field, (defaults[field], None)) for field in defaults}
    return Branding(
        brand_name=values["brand_name"][0],
        support_email=values["support_email"][0],
        logo_url=values["logo_url"][0],
        sources={field: value[1] for field, value in values.items()},
    )


# --- rendering and validating ----------------------------------------------------------------


@dataclass(frozen=True)
class TemplateFallback:
    """The organization's template went over a limit with these values: the email was rendered
    with actas's default wording instead."""

    template: ResolvedTemplate
    error: str


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    fallback: TemplateFallback | None = None


def render_text(text: TemplateText, values: dict[str, Any]) -> RenderedEmail:
    """Render the three parts of an email within one budget (``RENDER_SECONDS`` and
    ``MAX_LOOP_ITERATIONS`` for them together). Raises TemplateLimitError past a limit."""
    budget = RenderBudget()
    subject = render_string(text.subject, values, html=False, budget=budget)
    return RenderedEmail(
        subject=" ".join(subject.split())[:300],
        text=render_string(text.text_body, values, html=False, budget=budget),
        html=render_string(text.html_body, values, html=True, budget=budget),
    )


RenderCache = dict[tuple[Any, str, str], tuple[dict[str, str], ResolvedTemplate]]


def email_render(
    *,
    org: Organization,
    kind: str,
    locale: str = DEFAULT_LOCALE,
    values: dict[str, Any],
    cache: RenderCache | None = None,
) -> RenderedEmail:
    """Render the email (org, kind, locale) resolves to. Branding values not given are taken
    from the organization's effective branding. ``cache``: a dict kept by the caller across a
    short run of emails (the outbox's delivery batch), so the template and branding of an
    (org, kind, locale) are looked up once per run.

    An organization's template that goes over a limit of the sandbox with these values is
    replaced by actas's default wording, and the result says so (``fallback``): the email
    still goes out, and the caller records why."""
    key = (org.pk, kind, locale)
    found = cache.get(key) if cache is not None else None
    if found is None:
        found = (branding_effective(org).values(), template_resolve(org=org, kind=kind, locale=locale))
        if cache is not None:
            cache[key] = found
    branding, resolved = found
    context = {**branding, **{k: v for k, v in values.items() if v is not None}}
    try:
        return render_text(resolved.text, context)
    except TemplateLimitError as exc:
        if resolved.is_default:
            raise
        rendered = render_text(default_template(kind), context)
        return replace(rendered, fallback=TemplateFallback(template=resolved, error=str(exc)))


def template_validate(*, kind: str, subject: str, html_body: str, text_body: str) -> RenderedEmail:
    """Compile the three parts and render them with the sample values, within the limits of
    the sandbox; a ValidationError names the part that is broken or over a limit, and says why."""
    sample = KINDS[kind].sample
    errors: dict[str, list[str]] = {}
    rendered: dict[str, str] = {}
    budget = RenderBudget()  # one for the three parts, as when the email is delivered
    for field, source, html in (
        ("subject", subject, False),
        ("html_body", html_body, True),
        ("text_body", text_body, False),
    ):
        if "\x00" in source:
            errors[field] = ["Remove the control characters."]
            continue
        try:
            if budget.spent:  # an earlier part used up the email's time or loops: only compile
                compile_template(source, html=html, names=None)
                continue
            rendered[field] = render_string(source, sample, html=html, strict=True, budget=budget)
        except TemplateLimitError as exc:
            errors[field] = [f"Template limit: {exc}"]
        except TemplateSyntaxError as exc:
            errors[field] = [f"Template error: {exc}"]
        except Exception as exc:  # a filter failing on the sample values
            errors[field] = [f"Template error: {exc.__class__.__name__}: {exc}"]
    if errors:
        raise ValidationError(errors)
    return RenderedEmail(
        subject=" ".join(rendered["subject"].split())[:300],
        text=rendered["text_body"],
        html=rendered["html_body"],
    )
