"""The Console's login-flow builder: steps as cards, each with its authentications.

One piece serves Console Settings (the organization's own Console flow) and an application's
Login Flow tab. The draft travels in the form itself — one hidden ``step`` field per step, the
step's authenticators separated by commas — so every page works without JavaScript: each
button (add an authentication to a step, remove it, add, remove or move a step) is a submit
button of the same form, named ``action``, and the answer is the page again with the change
applied and the rules the draft breaks shown next to its steps. Nothing is saved until
"Update" (``action=save``), which goes through ``login_flow_set`` and its audit event.

With htmx the form posts in the background and only the builder is swapped
(``HX-Request``); a successful save answers ``HX-Redirect`` so the page reloads with its
message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render

from identity.services.loginflows import (
    AUTHENTICATOR_DISPLAY_NAMES,
    KNOWN_AUTHENTICATORS,
    SHARED_USER_IDENTIFIER,
    display_name,
    login_flow_problems,
)

FRAGMENT = "identity/console/_login_flow_builder.html"
# A valid flow never has more steps than there are authentications (none may repeat); a few
# more are kept in a draft so that a half-edited one still shows, and no more are read.
MAX_DRAFT_STEPS = 2 * len(KNOWN_AUTHENTICATORS)
MAX_NAME = 64

DESCRIPTIONS = {
    "BasicAuthenticator": "Asks for the username and password.",
    SHARED_USER_IDENTIFIER: (
        "Asks only for the username and also finds people shared into the organization, so they "
        "sign in with their own account. Must be alone in step 1, followed by a step that "
        "authenticates."
    ),
    "email-otp": "Emails a one-time code to the user found by an earlier step.",
}


@dataclass(frozen=True)
class Option:
    name: str  # the internal identifier: only ever in hidden fields and button values
    display_name: str
    description: str


def _option(name: str) -> Option:
    return Option(name, display_name(name), DESCRIPTIONS.get(name, ""))


@dataclass
class StepCard:
    index: int
    options: list[Option]
    addable: list[Option]
    problems: list[str]
    first: bool
    last: bool

    @property
    def number(self) -> int:
        return self.index + 1


@dataclass
class LoginFlowBuilder:
    """A draft flow, what it breaks, and where the form posts."""

    steps: list[list[str]]
    saved: list[list[str]]
    action_url: str  # where the form posts
    page_url: str  # the page it is on ("Discard changes")
    reset_label: str = ""  # "Use Acme's flow": offered when the organization has its own flow
    notice: str = ""  # what the last button did
    save_errors: list[str] = field(default_factory=list)

    @property
    def cards(self) -> list[StepCard]:
        problems = login_flow_problems(self.steps)
        count = len(self.steps)
        return [
            StepCard(
                index=index,
                options=[_option(n) for n in step],
                addable=[_option(n) for n in KNOWN_AUTHENTICATORS if n not in step],
                problems=[p.message for p in problems if p.step == index],
                first=index == 0,
                last=index == count - 1,
            )
            for index, step in enumerate(self.steps)
        ]

    @property
    def flow_problems(self) -> list[str]:
        return [p.message for p in login_flow_problems(self.steps) if p.step is None]

    @property
    def valid(self) -> bool:
        return not login_flow_problems(self.steps)

    @property
    def changed(self) -> bool:
        return self.steps != self.saved

    @property
    def can_add_step(self) -> bool:
        return len(self.steps) < len(KNOWN_AUTHENTICATORS)

    @property
    def hidden_steps(self) -> list[str]:
        return [",".join(step) for step in self.steps]


def named_steps(steps: Sequence[Sequence[str]]) -> list[list[str]]:
    """A flow as people read it: the display names of each step's authentications."""
    return [[display_name(n) for n in step] for step in steps]


def draft_from_post(data: QueryDict) -> list[list[str]]:
    """The draft in the hidden ``step`` fields; anything that is not a short identifier-like
    word is dropped (it can only come from a tampered form)."""
    steps: list[list[str]] = []
    for raw in data.getlist("step")[:MAX_DRAFT_STEPS]:
        names = [n.strip() for n in raw.split(",") if n.strip()]
        clean = [n for n in names if len(n) <= MAX_NAME and n.replace("-", "").isalnum()]
        steps.append(clean[:MAX_DRAFT_STEPS])
    return steps


def _index(raw: str, steps: Sequence[object]) -> int | None:
    # ASCII digits only: "²" is a digit to str.isdigit() but not a number to int().
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 4:
        return None
    return int(raw) if int(raw) < len(steps) else None


def draft_apply(steps: list[list[str]], action: str) -> tuple[list[list[str]], str]:
    """The draft after one builder button, and a sentence saying what changed (empty when
    the action made no sense for this draft: it is then ignored)."""
    steps = [list(step) for step in steps]
    kind, _, rest = action.partition(":")
    arg, _, name = rest.partition(":")
    index = _index(arg, steps)
    if kind == "add-step" and len(steps) < len(KNOWN_AUTHENTICATORS):
        steps.append([])
        return steps, f"Step {len(steps)} added. Add an authentication to it."
    if index is None:
        return steps, ""
    number = index + 1
    if kind == "add" and name in AUTHENTICATOR_DISPLAY_NAMES and name not in steps[index]:
        steps[index].append(name)
        return steps, f"{display_name(name)} added to step {number}."
    if kind == "remove" and name in steps[index]:
        steps[index].remove(name)
        return steps, f"{display_name(name)} removed from step {number}."
    if kind == "remove-step":
        del steps[index]
        return steps, f"Step {number} removed."
    if kind == "up" and index > 0:
        steps[index - 1], steps[index] = steps[index], steps[index - 1]
        return steps, f"Step {number} is now step {number - 1}."
    if kind == "down" and index < len(steps) - 1:
        steps[index + 1], steps[index] = steps[index], steps[index + 1]
        return steps, f"Step {number} is now step {number + 1}."
    return steps, ""


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def builder_redirect(request: HttpRequest, url: str) -> HttpResponse:
    """After a save or a reset: a redirect, or for htmx a full reload of ``url`` (never the
    page swapped into the builder)."""
    if is_htmx(request):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url)


def builder_post(
    request: HttpRequest,
    builder: LoginFlowBuilder,
    *,
    save: Callable[[list[list[str]]], object],
    done_url: str,
    done_message: str,
    page: Callable[[LoginFlowBuilder, int], HttpResponse],
) -> HttpResponse:
    """Answer a POST of the builder form: apply the button pressed to the draft, or save it.

    ``save`` calls the service (which validates and audits); ``page`` renders the whole page
    around the builder with a status. Without htmx a change re-renders the page (200) and a
    refused save answers 400; with htmx only the builder comes back (200, so it is swapped)."""
    builder.steps = draft_from_post(request.POST)
    action = request.POST.get("action", "")[:100]
    if action == "save":
        try:
            save(builder.steps)
        except ValidationError as exc:
            builder.save_errors = list(exc.messages)
        else:
            messages.success(request, done_message)
            return builder_redirect(request, done_url)
    else:
        builder.steps, builder.notice = draft_apply(builder.steps, action)
    if is_htmx(request):
        return render(request, FRAGMENT, {"builder": builder})
    return page(builder, 400 if builder.save_errors else 200)
