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

Rendering is bounded (issue 13), so that a template cannot make a request or a worker spend
seconds or megabytes: ``center``, ``ljust`` and ``rjust`` pad to at most ``MAX_PAD_WIDTH``
characters; ``{% for %}`` nests at most ``MAX_LOOP_DEPTH`` deep and block tags at most
``MAX_BLOCK_DEPTH``; a loop runs over at most ``MAX_LOOP_ITEMS`` items and the loops of one email
at most ``MAX_LOOP_ITERATIONS`` times in all; each part renders to at most ``MAX_RENDER_CHARS``
characters; one email (its three parts) renders within ``RENDER_SECONDS``. The checks run in
the sandbox's own loop nodes and filters (each loop pass and each filter call looks at the
clock, the pass count and the size held), so a render is stopped where it is, in the thread
that runs it, without signals or timers. Past a limit a :class:`TemplateLimitError` is raised:
saving and previewing show it on the field; delivery (``email_render``) falls back to actas's
default wording and says so in ``RenderedEmail.fallback``, for the outbox to audit.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template import (
    Context,
    Engine,
    Library,
    Node,
    NodeList,
    TemplateSyntaxError,
    defaultfilters,
    defaulttags,
)
from django.template.base import FilterExpression, Lexer, Parser, Token, TokenType
from django.utils.safestring import SafeString

from config.prepared import Prepared
from organizations.models import Organization
from organizations.selectors import org_ancestors

# --- the sandbox ---------------------------------------------------------------------------

MAX_TEMPLATE_CHARS = 100_000
MAX_PAD_WIDTH = 1_000  # center, ljust, rjust
MAX_LOOP_DEPTH = 3  # {% for %} inside {% for %}
MAX_BLOCK_DEPTH = 20  # {% if %}, {% for %}, {% with %}, {% spaceless %} inside one another
MAX_LOOP_ITEMS = 1_000  # what one {% for %} runs over
MAX_LOOP_ITERATIONS = 10_000  # loop passes of one email, all loops and parts together
MAX_RENDER_CHARS = 256 * 1024  # one part (subject, HTML body or plain-text body)
RENDER_SECONDS = 0.2  # one email, its three parts together


class TemplateLimitError(Exception):
    """A template over one of the sandbox's limits (its message says which, in plain words)."""


class RenderBudget:
    """What one email may still spend: render time, loop passes, and (per part) characters held.

    The clock runs while a part renders (``start`` … ``stop``), not while it is compiled: compiling
    is bounded by the template's size and done once per worker. ``spent`` once the time or the
    loop passes are used up (the later parts of the email are then not rendered)."""

    def __init__(self) -> None:
        self.seconds = RENDER_SECONDS
        self.remaining = self.seconds
        self.deadline = time.monotonic() + self.remaining
        self.iterations = 0
        self.held = 0  # characters produced by the finished loop passes of the current part
        self.spent = False

    def start(self) -> None:
        self.deadline = time.monotonic() + self.remaining
        self.held = 0

    def stop(self) -> None:
        self.remaining = max(0.0, self.deadline - time.monotonic())

    def check_time(self) -> None:
        if time.monotonic() >= self.deadline:
            self.spent = True
            raise TemplateLimitError(f"Rendering ran longer than {self.seconds * 1000:.0f} ms.")

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_LOOP_ITERATIONS:
            self.spent = True
            raise TemplateLimitError(
                f"The loops of this email ran more than {MAX_LOOP_ITERATIONS:,} times in total."
            )
        self.check_time()

    def check_size(self, chars: int) -> None:
        if chars > MAX_RENDER_CHARS:
            raise TemplateLimitError(
                f"The rendered text would be larger than {MAX_RENDER_CHARS // 1024} KB "
                f"({MAX_RENDER_CHARS:,} characters)."
            )

    def hold(self, chars: int) -> None:
        self.check_size(chars)
        self.held = chars


# The budget of the render running in this thread (or task): the sandbox's loops and filters
# are handed no context of their own, so they find it here.
_BUDGET: ContextVar[RenderBudget | None] = ContextVar("actas_email_budget", default=None)
# (block tags, loops) open around the tag being compiled.
_NESTING: ContextVar[tuple[int, int]] = ContextVar("actas_email_nesting", default=(0, 0))


# --- the sandbox's tags: nesting counted, loops metered -----------------------------------


def _nested(compile_tag: Callable[[Parser, Token], Node], *, loop: bool) -> Callable[[Parser, Token], Node]:
    """``compile_tag`` refusing to open more than the allowed blocks or loops around it."""

    @functools.wraps(compile_tag)
    def compile_nested(parser: Parser, token: Token) -> Node:
        blocks, loops = _NESTING.get()
        blocks, loops = blocks + 1, loops + int(loop)
        if loops > MAX_LOOP_DEPTH:
            raise TemplateLimitError(
                f"Line {token.lineno}: {{% for %}} loops may nest at most {MAX_LOOP_DEPTH} deep."
            )
        if blocks > MAX_BLOCK_DEPTH:
            raise TemplateLimitError(f"Line {token.lineno}: tags may nest at most {MAX_BLOCK_DEPTH} deep.")
        reset = _NESTING.set((blocks, loops))
        try:
            return compile_tag(parser, token)
        finally:
            _NESTING.reset(reset)

    return compile_nested


class _Metered:
    """A loop's items; each pass is counted against the email's budget (and the clock)."""

    def __init__(self, items: Any, budget: RenderBudget | None) -> None:
        self.items = items
        self.budget = budget

    def __len__(self) -> int:
        return len(self.items)

    def _passes(self, items: Any) -> Iterator[Any]:
        for item in items:
            if self.budget is not None:
                self.budget.iterate()
            yield item

    def __iter__(self) -> Iterator[Any]:
        return self._passes(self.items)

    def __reversed__(self) -> Iterator[Any]:
        return self._passes(reversed(self.items))


class _LoopSequence(FilterExpression):
    """What ``{% for %}`` runs over: at most ``MAX_LOOP_ITEMS`` items, handed out metered."""

    def resolve(self, context: Context, ignore_failures: bool = False) -> Any:
        values = super().resolve(context, ignore_failures=ignore_failures)
        if values is None:
            return None
        if not hasattr(values, "__len__"):
            try:
                values = list(itertools.islice(values, MAX_LOOP_ITEMS + 1))
            except TypeError:
                return values  # not iterable: the loop refuses it as it always did
        if len(values) > MAX_LOOP_ITEMS:
            raise TemplateLimitError(
                f"A {{% for %}} loop may run over at most {MAX_LOOP_ITEMS:,} items; this one has more."
            )
        return _Metered(values, _BUDGET.get())


class _LoopBody(Node):
    """One pass of a loop's body; what the passes of the current part produce is held against
    the size limit as it grows (an inner loop's passes are counted once, inside the outer's)."""

    child_nodelists = ("nodelist",)

    def __init__(self, nodelist: NodeList) -> None:
        self.nodelist = nodelist

    def render(self, context: Context) -> SafeString:
        budget = _BUDGET.get()
        if budget is None:
            return self.nodelist.render(context)
        held = budget.held
        output = self.nodelist.render(context)
        budget.hold(held + len(output))
        return output


def _for(parser: Parser, token: Token) -> Node:
    node = defaulttags.do_for(parser, token)
    body = node.nodelist_loop
    if not isinstance(body, NodeList):  # what parser.parse() returns; the stubs allow a list too
        raise TypeError("a {% for %} body is a NodeList")
    return defaulttags.ForNode(
        node.loopvars,
        _LoopSequence(str(node.sequence), parser),  # the same expression, resolved metered
        node.is_reversed,
        NodeList([_LoopBody(body)]),
        node.nodelist_empty,
    )


# ``identity.emails`` is itself the only template library of the sandbox engines.
register = Library()
register.tag("if", _nested(defaulttags.do_if, loop=False))
register.tag("for", _nested(_for, loop=True))
register.tag("with", _nested(defaulttags.do_with, loop=False))
register.tag("spaceless", _nested(defaulttags.spaceless, loop=False))
for _name in ("comment", "firstof", "verbatim", "templatetag"):
    register.tag(_name, defaulttags.register.tags[_name])

# --- the sandbox's filters: every call metered, padding bounded -----------------------------

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
PADDING_FILTERS = frozenset({"center", "ljust", "rjust"})


def _pad_width(arg: Any) -> int | None:
    """The width a padding filter would use (``None``: not a number, the filter refuses it)."""
    try:
        return int(arg)
    except (TypeError, ValueError, OverflowError):
        return None


def _metered(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Django's filter ``func``, checking the clock before each call and the size of what it
    returns (a padding filter also its width, before padding anything)."""

    @functools.wraps(func)
    def run(value: Any, *args: Any, **kwargs: Any) -> Any:
        if name in PADDING_FILTERS and args:
            width = _pad_width(args[0])
            if width is not None and width > MAX_PAD_WIDTH:
                raise TemplateLimitError(
                    f"{name} pads to at most {MAX_PAD_WIDTH:,} characters (not {width:,})."
                )
        budget = _BUDGET.get()
        if budget is not None:
            budget.check_time()
        result = func(value, *args, **kwargs)
        if budget is not None and isinstance(result, str):
            budget.check_size(len(result))
        return result

    return run


for _name in SAFE_FILTERS:
    register.filter(_name, _metered(_name, defaultfilters.register.filters[_name]))

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
# A string literal (skipped), or a padding filter with its argument (a literal or a name), as
# Django's filter syntax writes them: ``|ljust:"20"``, ``|ljust:20``, ``|ljust:_("20")``, ``|ljust:w``.
_QUOTED = r""""[^"\\]*(?:\\.[^"\\]*)*"|'[^'\\]*(?:\\.[^'\\]*)*'"""
_PADDING = re.compile(
    rf"""(?P<literal>{_QUOTED})|\|\s*(?P<name>center|ljust|rjust):(?:_\()?(?P<arg>{_QUOTED}|[^\s|)"']+)"""
)


def _literal_width(arg: str) -> int | None:
    """The width a padding filter's literal argument asks for, as the engine reads it (a quoted
    string, or a number: ``20``, ``2e7``); ``None`` for a name (checked when rendering)."""
    if arg[:1] in ("'", '"'):
        return _pad_width(arg[1:-1])
    try:
        number: float = float(arg) if ("." in arg or "e" in arg.lower()) else int(arg)
    except ValueError:
        return None
    return _pad_width(number)


def _check_padding(contents: str, lineno: int) -> None:
    """Refuse a padding filter whose literal width is over the limit, even where the sample
    values never reach it (a width given by a value is checked when rendering)."""
    for match in _PADDING.finditer(contents):
        if match.group("name") is None:
            continue
        width = _literal_width(match.group("arg"))
        if width is not None and width > MAX_PAD_WIDTH:
            raise TemplateLimitError(
                f"Line {lineno}: {match.group('name')} pads to at most {MAX_PAD_WIDTH:,} characters "
                f"(not {width:,})."
            )


def _check_tokens(source: str, *, names: frozenset[str] | None) -> None:
    """Refuse what the engine would accept but the sandbox does not: the forbidden tags (with a
    clear message), padding past ``MAX_PAD_WIDTH`` and attribute lookups (``{{ a.b }}``):
    placeholders are plain values.
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
        _check_padding(contents, token.lineno or 0)
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


def render_string(
    source: str,
    values: dict[str, Any],
    *,
    html: bool,
    strict: bool = False,
    budget: RenderBudget | None = None,
) -> str:
    """Render one template string in the sandbox (``strict``: refuse every attribute lookup,
    as saving does), within ``budget`` (default: a budget of its own). Raises
    TemplateLimitError past a limit."""
    context = plain_context(values)
    if budget is None:
        budget = RenderBudget()
    template = _compile(source, html=html, names=None if strict else frozenset(context))
    current = _BUDGET.set(budget)
    budget.start()
    try:
        output = template.render(Context(context, autoescape=html))
        budget.check_time()
    finally:
        budget.stop()
        _BUDGET.reset(current)
    budget.check_size(len(output))
    # A plain str, never a SafeString: whoever shows the result (the Console's preview) escapes it.
    return str.__str__(output)


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
    template_id: uuid.UUID | None = None  # its EmailTemplate row; None: actas's default

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
                _compile(source, html=html, names=None)
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
