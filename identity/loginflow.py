"""The login-flow engine.

An application's flow in an organization is a list of steps; each step is a list of
alternative authenticators (``identity.selectors.applications.login_flow_steps``). The engine keeps the
progress of one sign-in in the browser session (one entry per organization and application),
skips every step the browser's live SSO session already satisfies — so signing in to a second
application with the same flow asks nothing, and a stricter flow asks only for what is
missing — and, when the last step passes, starts the SSO session (or adds the new methods to
the live one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.contrib import auth
from django.http import HttpRequest

from identity import context
from identity.authenticators import AUTHENTICATORS, FlowProgress, StepResult
from identity.middleware import SSO_SESSION_KEY
from identity.models import Application, SSOSession, User
from identity.selectors.users import user_is_member
from identity.services.sessions import (
    sso_session_add_methods,
    sso_session_end,
    sso_session_reauthenticate,
    sso_session_start,
)
from organizations.models import Organization

SESSION_PREFIX = "actas.login"


@dataclass
class Flow:
    org_id: str
    client_id: str
    next_url: str
    progress: FlowProgress = field(default_factory=FlowProgress)
    step: int = 0
    # The steps this flow was started for, and the SSO session it was seeded from: when
    # either changes (a flow edited or reset, a session ended) the flow starts over.
    steps: list[list[str]] = field(default_factory=list)
    seeded_from: str = ""
    # A re-authentication (OIDC prompt=login, max_age): every step is asked again, whatever
    # the live session has passed, and completing it renews the session's auth_time.
    fresh: bool = False

    @property
    def key(self) -> str:
        return f"{SESSION_PREFIX}:{self.org_id}:{self.client_id}"

    def to_session(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_session(cls, data: dict[str, Any]) -> Flow:
        progress = FlowProgress(**data.pop("progress"))
        return cls(progress=progress, **data)


def _live_session(request: HttpRequest, org: Organization) -> SSOSession | None:
    session: SSOSession | None = getattr(request, "sso_session", None)
    if session and session.organization_id == org.pk and session.user.can_sign_in:
        return session
    return None


def flow_load(
    request: HttpRequest,
    *,
    org: Organization,
    app: Application,
    steps: list[list[str]],
    next_url: str,
    restart: bool = False,
    fresh: bool = False,
) -> Flow:
    """The sign-in in progress for (org, app), or a new one seeded from the live SSO session.

    A saved flow is used only while it was started for these very steps and the SSO session it
    was seeded from (if any) is still the live one."""
    key = f"{SESSION_PREFIX}:{org.pk}:{app.client_id}"
    data = request.session.get(key)
    live = _live_session(request, org)
    if data and not restart:
        try:
            flow = Flow.from_session(dict(data))
        except (TypeError, KeyError):
            flow = None
        if (
            flow is not None
            and flow.steps == steps
            and (not flow.seeded_from or (live is not None and live.sid == flow.seeded_from))
        ):
            flow.next_url = next_url or flow.next_url
            return flow
    flow = Flow(org_id=str(org.pk), client_id=app.client_id, next_url=next_url, steps=steps, fresh=fresh)
    if live is not None and not fresh:
        flow.progress.user_id = str(live.user_id)
        flow.progress.identifier = live.user.username
        flow.progress.amr = list(live.amr)
        flow.seeded_from = live.sid
    return flow


def flow_save(request: HttpRequest, flow: Flow) -> None:
    request.session[flow.key] = flow.to_session()


def flow_discard(request: HttpRequest, flow: Flow) -> None:
    request.session.pop(flow.key, None)


CREDENTIALS = frozenset({"BasicAuthenticator", "email-otp"})


def _satisfied(step: list[str], progress: FlowProgress) -> bool:
    if any(name in progress.amr for name in step):
        return True
    # An identifier step is satisfied once the user is known (from the live session).
    return step == ["SharedUserIdentifierExecutor"] and progress.user_id is not None and bool(progress.amr)


def flow_satisfied_by_session(session: SSOSession, steps: list[list[str]]) -> bool:
    """Does a live SSO session already satisfy every step of a flow (so an application
    with this flow signs in without asking anything)?"""
    progress = FlowProgress(
        user_id=str(session.user_id), identifier=session.user.username, amr=list(session.amr)
    )
    return (
        session.user.can_sign_in
        and all(_satisfied(step, progress) for step in steps)
        and bool(CREDENTIALS & set(session.amr))
    )


def flow_advance(flow: Flow, steps: list[list[str]]) -> None:
    while flow.step < len(steps) and _satisfied(steps[flow.step], flow.progress):
        flow.step += 1


def flow_is_complete(flow: Flow, steps: list[list[str]]) -> bool:
    return flow.step >= len(steps)


def flow_submit(
    request: HttpRequest, flow: Flow, steps: list[list[str]], *, org: Organization, name: str, data: Any
) -> StepResult:
    """Run the named authenticator of the current step."""
    if flow_is_complete(flow, steps) or name not in steps[flow.step]:
        return StepResult(False, "That sign-in method is not offered at this step.")
    result = AUTHENTICATORS[name].handle(request, org=org, progress=flow.progress, data=data)
    if result.done:
        if name not in flow.progress.amr:
            flow.progress.amr.append(name)
        flow.step += 1
        flow_advance(flow, steps)
    return result


def flow_finish(request: HttpRequest, flow: Flow, *, org: Organization) -> User | None:
    """Sign the browser in (or step up its live session). None if the user may not.

    Checked again here, not trusted from the step counter: every step of the flow has an
    option among the methods passed, and one of them checked a credential."""
    if flow.progress.user_id is None:
        return None
    if not all(_satisfied(step, flow.progress) for step in flow.steps) or not (
        CREDENTIALS & set(flow.progress.amr)
    ):
        return None
    user = User.objects.select_related("organization").filter(pk=flow.progress.user_id).first()
    if user is None or not user.can_sign_in or not user_is_member(user=user, org=org):
        return None
    live = _live_session(request, org)
    if live is not None and live.user_id == user.pk:
        if flow.fresh:
            sso_session_reauthenticate(session=live, methods=flow.progress.amr)
            return user
        new = [m for m in flow.progress.amr if m not in live.amr]
        if new:
            sso_session_add_methods(session=live, methods=new)
        return user
    previous: SSOSession | None = getattr(request, "sso_session", None)
    if previous:
        sso_session_end(actor=previous.user, session=previous, reason="replaced")
    auth.login(request, user, backend="identity.backends.TenantUserBackend")
    session = sso_session_start(
        user=user,
        org=org,
        amr=flow.progress.amr,
        ip=context.current().ip,
        user_agent=request.headers.get("User-Agent", ""),
    )
    request.session[SSO_SESSION_KEY] = session.sid
    return user
