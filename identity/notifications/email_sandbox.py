"""The sandbox that renders editable emails (``identity.notifications.emails`` resolves which template).

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
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, ClassVar

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


# ``identity.notifications.email_sandbox`` is itself the only template library of the sandbox engines.
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
        builtins=["identity.notifications.email_sandbox"],
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
def compile_template(source: str, *, html: bool, names: frozenset[str] | None) -> Any:
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
    template = compile_template(source, html=html, names=None if strict else frozenset(context))
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
