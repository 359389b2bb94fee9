"""Login-flow services: the authenticators a step may offer, the rules a flow must keep, and
setting or resetting an application's flow in an organization (audited)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from identity.audit.services import audit_record
from identity.models import (
    Application,
    LoginFlow,
    User,
)
from organizations.models import Organization

USERNAME_PASSWORD = "BasicAuthenticator"  # noqa: S105 (an authenticator's name)
SHARED_USER_IDENTIFIER = "SharedUserIdentifierExecutor"
EMAIL_OTP = "email-otp"
# The authenticators a login-flow step may offer, in the order the Console lists them, with the
# names people see (the Console never shows the internal identifiers).
AUTHENTICATOR_DISPLAY_NAMES = {
    USERNAME_PASSWORD: "Username & Password",
    SHARED_USER_IDENTIFIER: "Shared User Identifier",
    EMAIL_OTP: "Email one-time code",
}
KNOWN_AUTHENTICATORS = tuple(AUTHENTICATOR_DISPLAY_NAMES)


def display_name(authenticator: str) -> str:
    return AUTHENTICATOR_DISPLAY_NAMES.get(authenticator, "an unknown authentication")


def _listed(names: Iterable[str]) -> str:
    """The display names as "A", "A and B" or "A, B and C"."""
    shown = [display_name(n) for n in names]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


@dataclass(frozen=True)
class FlowProblem:
    """A rule a login flow breaks: ``step`` is the 0-based step it concerns, or None for the
    flow as a whole."""

    step: int | None
    message: str


def login_flow_problems(steps: Sequence[Sequence[str]]) -> list[FlowProblem]:
    """Every rule a draft flow breaks, in the words the Console shows (display names, never
    internal identifiers), so an editor can show them next to the step before saving.

    A flow is a non-empty list of steps, each a non-empty list of distinct known
    authenticators, none repeated from an earlier step; the Shared User Identifier, when used,
    is the only option of step 1 and is followed by a step that authenticates; an email
    one-time code never comes first (it needs a user identified by an earlier step)."""
    problems: list[FlowProblem] = []
    if not steps:
        return [FlowProblem(None, "A login flow needs at least one step.")]
    seen: set[str] = set()
    for index, step in enumerate(steps):
        number = index + 1
        if not step:
            problems.append(
                FlowProblem(index, f"Step {number} has no authentication: add one or remove the step.")
            )
            continue
        if any(name not in KNOWN_AUTHENTICATORS for name in step):
            problems.append(FlowProblem(index, f"Step {number} has an authentication actas does not know."))
            continue
        if len(set(step)) != len(step):
            problems.append(FlowProblem(index, f"Step {number} lists an authentication twice."))
        if SHARED_USER_IDENTIFIER in step:
            if index != 0:
                problems.append(
                    FlowProblem(index, f"{display_name(SHARED_USER_IDENTIFIER)} can only be in step 1.")
                )
            elif len(set(step)) > 1:
                others = _listed(n for n in dict.fromkeys(step) if n != SHARED_USER_IDENTIFIER)
                problems.append(
                    FlowProblem(
                        index,
                        f"{display_name(SHARED_USER_IDENTIFIER)} must be the only authentication in "
                        f"step 1: remove {others}.",
                    )
                )
        if index == 0 and EMAIL_OTP in step:
            problems.append(
                FlowProblem(
                    index,
                    f"{display_name(EMAIL_OTP)} cannot be in step 1: it needs an earlier step that "
                    "identifies the user.",
                )
            )
        repeated = [n for n in dict.fromkeys(step) if n in seen]
        if repeated:
            problems.append(
                FlowProblem(index, f"Step {number} repeats {_listed(repeated)} from an earlier step.")
            )
        seen.update(step)
    if list(steps[0]) == [SHARED_USER_IDENTIFIER] and len(steps) == 1:
        problems.append(
            FlowProblem(
                0,
                f"{display_name(SHARED_USER_IDENTIFIER)} only asks who the user is: add a second step "
                f"that authenticates them, such as {display_name(USERNAME_PASSWORD)}.",
            )
        )
    return problems


def login_flow_validate(steps: object) -> list[list[str]]:
    """The flow as a clean list of steps, or ValidationError with every rule it breaks
    (``login_flow_problems``)."""
    if (
        not isinstance(steps, list)
        or not all(isinstance(step, list) for step in steps)
        or not all(isinstance(name, str) for step in steps for name in step)
    ):
        raise ValidationError("A login flow is a list of steps, each a list of authentications.")
    problems = login_flow_problems(steps)
    if problems:
        raise ValidationError([p.message for p in problems])
    return [list(step) for step in steps]


@transaction.atomic
def login_flow_set(
    *, actor: User | None, application: Application, org: Organization, steps: object
) -> LoginFlow:
    clean = login_flow_validate(steps)
    flow, _ = LoginFlow.objects.update_or_create(
        application=application, organization=org, defaults={"steps": clean}
    )
    audit_record(
        org=org,
        action="login-flow-update",
        actor=actor,
        target_type="application",
        target_id=application.client_id,
        data={"steps": clean},
    )
    return flow


@transaction.atomic
def login_flow_reset(*, actor: User | None, application: Application, org: Organization) -> None:
    """Drop ``org``'s own flow for ``application``: the owner's flow applies again."""
    if org.pk == application.organization_id:
        raise ValidationError("The owner's flow is the default; edit it instead.")
    deleted, _ = LoginFlow.objects.filter(application=application, organization=org).delete()
    if deleted:
        audit_record(
            org=org,
            action="login-flow-reset",
            actor=actor,
            target_type="application",
            target_id=application.client_id,
        )
