"""Editable emails: resolving an organization's template, and rendering it sandboxed.

Two kinds are editable per organization and locale: ``impersonation_started`` and
``email_otp``. The template of (org, kind, locale) is the organization's own, else the
nearest ancestor's, else actas's default: the blocks of ``templates/templated_email/<kind>.email``
(the defaults' single source of truth; the other emails still go through django-templated-email).
A locale such as ``de-AT`` falls back to ``de`` and then to ``en``, each walked up the tree.

Every editable template, default or custom, renders through a dedicated
:class:`django.template.Engine` that knows only a few safe tags and filters, has no loaders, no
context processors and no libraries, renders missing values as the empty string, and is given a
plain dict of strings: a template can show the values handed to it and nothing else (no
settings, no objects, no attribute lookups). HTML bodies are autoescaped; subjects and plain
text are not. Broken or disallowed syntax is refused when the template is saved.
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import Lexer, TokenType

from config.prepared import Prepared
from organizations.models import Organization
from organizations.selectors import org_ancestors

# --- the sandbox ---------------------------------------------------------------------------

# ``identity.emails`` is itself the only template library of the sandbox engines.
register = Library()
for _name in ("if", "for", "with", "comment", "firstof", "spaceless", "verbatim", "templatetag"):
    _tag = {
        "if": defaulttags.do_if,
        "for": defaulttags.do_for,
        "with": defaulttags.do_with,
        "comment": defaulttags.comment,
        "firstof": defaulttags.firstof,
        "spaceless": defaulttags.spaceless,
        "verbatim": defaulttags.verbatim,
        "templatetag": defaulttags.templatetag,
    }[_name]
    register.tag(_name, _tag)
SAFE_FILTERS = (
    "default",
    "default_if_none",
    "upper",
    "lower",
    "title",
    "capfirst",
    "truncatechars",
    "truncatewords",
    "linebreaks",
    "linebreaksbr",
    "urlencode",
    "yesno",
    "length",
    "cut",
    "wordwrap",
    "center",
    "ljust",
    "rjust",
)
for _name in SAFE_FILTERS:
    register.filter(_name, getattr(defaultfilters, _name))

ALLOWED_TAGS = frozenset(register.tags)
# Tags refused with a message of their own (they reach files, settings or other templates).
FORBIDDEN_TAGS = frozenset(
    {
        "load",
        "include",
        "extends",
        "ssi",
        "debug",
        "block",
        "url",
        "static",
        "csrf_token",
        "autoescape",
        "now",
    }
)
MAX_TEMPLATE_CHARS = 100_000


class _SandboxEngine(Engine):
    default_builtins: ClassVar[list[str]] = []  # not the default tags, filters and loader tags


def _engine(*, autoescape: bool) -> Engine:
    return _SandboxEngine(
        dirs=[],
        app_dirs=False,
        context_processors=[],
        debug=False,
        loaders=[],
        string_if_invalid="",
        file_charset="utf-8",
        libraries={},
        builtins=["identity.emails"],
        autoescape=autoescape,
    )


@functools.cache
def _html_engine() -> Engine:
    return _engine(autoescape=True)


@functools.cache
def _text_engine() -> Engine:
    return _engine(autoescape=False)


_STRING_LITERAL = re.compile(r""""[^"]*"|'[^']*'""")
_DOTTED = re.compile(r"(?<![\w.])[A-Za-z_]\w*\.[A-Za-z_]\w*")


def _check_tokens(source: str, *, names: frozenset[str] | None) -> None:
    """Refuse what the engine would accept but the sandbox does not: the forbidden tags (with a
    clear message) and attribute lookups (``{{ a.b }}``): placeholders are plain values.
    ``names``: refuse lookups only on these values (rendering: the values given, an unknown
    name renders empty); ``None``: refuse every lookup (saving)."""
    for token in Lexer(source).tokenize():
        if token.token_type is TokenType.TEXT:
            if "{{" in token.contents or "{%" in token.contents:
                raise TemplateSyntaxError(f"Line {token.lineno}: a {{{{ or {{% is not closed.")
            continue
        if token.token_type not in (TokenType.VAR, TokenType.BLOCK):
            continue
        contents = token.contents.strip()
        if token.token_type is TokenType.BLOCK:
            name = contents.split()[0] if contents else ""
            if name in FORBIDDEN_TAGS:
                raise TemplateSyntaxError(
                    f"Line {token.lineno}: the {{% {name} %}} tag is not allowed in email templates."
                )
        for dotted in _DOTTED.finditer(_STRING_LITERAL.sub('""', contents)):
            if names is not None and dotted.group(0).split(".")[0] not in names:
                continue
            raise TemplateSyntaxError(
                f"Line {token.lineno}: '{dotted.group(0)}' is not allowed: placeholders are plain "
                "values, use them without a dot."
            )


@functools.lru_cache(maxsize=256)
def _compile(source: str, *, html: bool, names: frozenset[str] | None) -> Any:
    """The checked, compiled template of ``source`` (kept: a compiled template is immutable and
    renders any context; a worker sending a run of emails compiles each template once)."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateSyntaxError(f"Use at most {MAX_TEMPLATE_CHARS} characters.")
    _check_tokens(source, names=names)
    return (_html_engine() if html else _text_engine()).from_string(source)


def plain_context(values: dict[str, Any]) -> dict[str, str]:
    """Only strings reach a template: booleans become "yes" or "", ``None`` becomes ""."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None or value is False:
            out[str(key)] = ""
        elif value is True:
            out[str(key)] = "yes"
        else:
            out[str(key)] = str(value)
    return out


def render_string(source: str, values: dict[str, Any], *, html: bool, strict: bool = False) -> str:
    """Render one template string in the sandbox (``strict``: refuse every attribute lookup,
    as saving does)."""
    context = plain_context(values)
    template = _compile(source, html=html, names=None if strict else frozenset(context))
    # A plain str, never a SafeString: whoever shows the result (the Console's preview) escapes it.
    return str.__str__(template.render(Context(context, autoescape=html)))


# --- the kinds, their placeholders and sample values ------------------------------------------

IMPERSONATION_STARTED = "impersonation_started"
EMAIL_OTP = "email_otp"
DEFAULT_LOCALE = "en"

_BRAND_PLACEHOLDERS = {
    "support_email": ("The organization's support address (Branding)", "support@example.com"),
    "brand_name": ("The organization's display name (Branding)", "Example Corp"),
    "logo_url": ("The organization's logo address, https (Branding)", "https://example.com/logo.png"),
}


@dataclass(frozen=True)
class Kind:
    key: str
    label: str
    placeholders: dict[str, tuple[str, str]]  # name -> (what it is, sample value)

    @property
    def sample(self) -> dict[str, str]:
        return {name: sample for name, (_, sample) in self.placeholders.items()}


KINDS: dict[str, Kind] = {
    IMPERSONATION_STARTED: Kind(
        IMPERSONATION_STARTED,
        "Impersonation started",
        {
            "user_name": ("The impersonated user's name", "Erin Example"),
            "impersonator_name": ("Who is acting as the user", "Sam Support"),
            "started_at": ("When it started (UTC)", "2026-01-15 09:30 UTC"),
            "expires_at": ("When it ends at the latest (UTC)", "2026-01-15 10:30 UTC"),
            "org_name": ("The organization", "Example Corp EU"),
            "reason": ("The reason the impersonator gave", "Ticket #4711: cannot see invoices"),
            "read_only": ('"yes" when read-only, else empty', "yes"),
            "access_url": (
                "The Access to my account page",
                "https://id.example.com/t/example/myaccount/access/",
            ),
            "report_url": (
                "Where to report misuse",
                "https://id.example.com/t/example/myaccount/access/#imp-00000000",
            ),
            **_BRAND_PLACEHOLDERS,
        },
    ),
    EMAIL_OTP: Kind(
        EMAIL_OTP,
        "Email sign-in code",
        {
            "user_name": ("The user's name", "Erin Example"),
            "org_name": ("The organization", "Example Corp"),
            "code": ("The one-time code", "482913"),
            "minutes": ("Minutes until the code expires", "10"),
            **_BRAND_PLACEHOLDERS,
        },
    ),
}

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

    @property
    def is_default(self) -> bool:
        return self.source is None


def template_resolve(
    *, org: Organization, kind: str, locale: str = DEFAULT_LOCALE, include_self: bool = True
) -> ResolvedTemplate:
    """The template (org, kind, locale) uses: the org's own, else the nearest ancestor's, for the
    locale, then its language, then ``en``; else actas's default."""
    from identity.models import EmailTemplate

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
                return ResolvedTemplate(text=text, kind=kind, locale=wanted, source=node)
    return ResolvedTemplate(text=default_template(kind), kind=kind, locale=DEFAULT_LOCALE, source=None)


@dataclass(frozen=True)
class Branding:
    brand_name: str
    support_email: str
    logo_url: str
    sources: dict[str, Organization | None]  # field -> the org it comes from (None: default)

    def values(self) -> dict[str, str]:
        return {"brand_name": self.brand_name, "support_email": self.support_email, "logo_url": self.logo_url}


@functools.cache
def _branding_of_org() -> Prepared[Any]:
    """A root's branding row (identity.models imports this module: built on first use)."""
    from identity.models import OrganizationBranding

    return Prepared(
        lambda org_id: OrganizationBranding.objects.filter(organization_id=org_id), org_id=uuid.UUID
    )


def branding_effective(org: Organization, *, include_self: bool = True) -> Branding:
    """Each branding field from the nearest organization up the tree that sets it. Without one,
    the brand name is the tenant's name and the other fields are empty."""
    from identity.models import OrganizationBranding

    path = org_ancestors(org, include_self=include_self)
    stored = (
        _branding_of_org().all(org_id=path[0].pk)  # a root: every impersonation email reads it
        if len(path) == 1
        else OrganizationBranding.objects.filter(organization__in=[o.pk for o in path])
    )
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
class RenderedEmail:
    subject: str
    text: str
    html: str


def render_text(text: TemplateText, values: dict[str, Any]) -> RenderedEmail:
    subject = render_string(text.subject, values, html=False)
    return RenderedEmail(
        subject=" ".join(subject.split())[:300],
        text=render_string(text.text_body, values, html=False),
        html=render_string(text.html_body, values, html=True),
    )


RenderCache = dict[tuple[Any, str, str], tuple[dict[str, str], TemplateText]]


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
    (org, kind, locale) are looked up once per run."""
    key = (org.pk, kind, locale)
    found = cache.get(key) if cache is not None else None
    if found is None:
        found = (branding_effective(org).values(), template_resolve(org=org, kind=kind, locale=locale).text)
        if cache is not None:
            cache[key] = found
    branding, text = found
    context = {**branding, **{k: v for k, v in values.items() if v is not None}}
    return render_text(text, context)


def template_validate(*, kind: str, subject: str, html_body: str, text_body: str) -> RenderedEmail:
    """Compile the three parts and render them with the sample values; a ValidationError names
    the part that is broken and says why."""
    sample = KINDS[kind].sample
    errors: dict[str, list[str]] = {}
    rendered: dict[str, str] = {}
    for field, source, html in (
        ("subject", subject, False),
        ("html_body", html_body, True),
        ("text_body", text_body, False),
    ):
        if "\x00" in source:
            errors[field] = ["Remove the control characters."]
            continue
        try:
            rendered[field] = render_string(source, sample, html=html, strict=True)
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
