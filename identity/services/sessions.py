"""The SSO session: start, end, keep alive."""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from collections.abc import Callable, Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from identity.audit.services import audit_record
from identity.models import SSOSession, User
from identity.services.oauth import oauth_session_revoke
from organizations.models import Organization

TOUCH_EVERY = dt.timedelta(seconds=60)


@functools.cache
def _end_hooks() -> tuple[Callable[..., None], ...]:
    """What other apps do, in the same transaction, when an SSO session ends
    (``ACTAS_SSO_SESSION_END_HOOKS``: an impersonation bound to it ends too)."""
    return tuple(import_string(path) for path in getattr(settings, "ACTAS_SSO_SESSION_END_HOOKS", ()))


@transaction.atomic
def sso_session_start(
    *,
    user: User,
    org: Organization,
    amr: Sequence[str],
    ip: str | None = None,
    user_agent: str = "",
) -> SSOSession:
    now = timezone.now()
    session = SSOSession.objects.create(
        sid=secrets.token_urlsafe(32),
        tenant_id=org.tenant_id,
        organization=org,
        user=user,
        amr=list(amr),
        auth_time=now,
        last_seen_at=now,
        expires_at=now + dt.timedelta(seconds=settings.ACTAS_SSO_SESSION_MAX_AGE),
        ip=ip,
        user_agent=user_agent[:300],
    )
    audit_record(
        org=org,
        action="login-success",
        actor=user,
        subject=user,
        target_type="sso_session",
        target_id=session.pk,
        data={"amr": list(amr)},
    )
    return session


@transaction.atomic
def sso_session_end(*, actor: User | None, session: SSOSession, reason: str) -> SSOSession:
    locked = SSOSession.objects.select_for_update().get(pk=session.pk)
    if locked.ended_at is None:
        locked.ended_at = timezone.now()
        locked.end_reason = reason[:64]
        locked.save(update_fields=["ended_at", "end_reason"])
        # Whatever ends a sign-in (sign-out, RP logout, sign out elsewhere, a replaced or ended
        # impersonation) ends the tokens applications got through it.
        oauth_session_revoke(actor=actor, session=locked, reason=reason)
        for hook in _end_hooks():
            hook(actor=actor, session=locked)
        audit_record(
            org=locked.organization,
            action="logout",
            actor=actor,
            subject=locked.user,
            target_type="sso_session",
            target_id=locked.pk,
            data={"reason": reason},
        )
    return locked


def sso_session_touch(session: SSOSession) -> None:
    now = timezone.now()
    if now - session.last_seen_at >= TOUCH_EVERY:
        SSOSession.objects.filter(pk=session.pk).update(last_seen_at=now)
        session.last_seen_at = now


def sso_session_get_live(*, sid: str) -> SSOSession | None:
    """The session with this opaque id, if it has not ended or expired."""
    if not sid or not isinstance(sid, str):
        return None
    return (
        SSOSession.objects.select_related("user", "organization", "tenant")
        .filter(sid=sid, ended_at__isnull=True, expires_at__gt=timezone.now())
        .order_by()
        .first()
    )


def sso_session_is_fresh(session: SSOSession, *, max_age: int | None) -> bool:
    """OIDC ``max_age``: did the user authenticate at most ``max_age`` seconds ago?

    ``None`` means no limit; ``0`` always asks for a new sign-in.
    """
    if max_age is None:
        return True
    if max_age <= 0:
        return False
    return timezone.now() - session.auth_time <= dt.timedelta(seconds=max_age)


@transaction.atomic
def sso_session_add_methods(*, session: SSOSession, methods: list[str]) -> SSOSession:
    """A step-up: the live session's user passed more authenticators."""
    locked = SSOSession.objects.select_for_update().get(pk=session.pk)
    locked.amr = [*locked.amr, *[m for m in methods if m not in locked.amr]]
    locked.save(update_fields=["amr"])
    session.amr = locked.amr
    audit_record(
        org=locked.organization,
        action="login-step-up",
        actor=locked.user,
        subject=locked.user,
        target_type="sso_session",
        target_id=locked.pk,
        data={"added": methods},
    )
    return locked


@transaction.atomic
def sso_session_reauthenticate(*, session: SSOSession, methods: list[str]) -> SSOSession:
    """The live session's user signed in again (OIDC ``prompt=login`` or ``max_age``): its
    ``auth_time`` is now and the methods passed join its ``amr``."""
    locked = SSOSession.objects.select_for_update().get(pk=session.pk)
    locked.auth_time = timezone.now()
    locked.amr = [*locked.amr, *[m for m in methods if m not in locked.amr]]
    locked.save(update_fields=["auth_time", "amr"])
    session.auth_time, session.amr = locked.auth_time, locked.amr
    audit_record(
        org=locked.organization,
        action="login-reauthenticate",
        actor=locked.user,
        subject=locked.user,
        target_type="sso_session",
        target_id=locked.pk,
        data={"methods": methods},
    )
    return locked


@transaction.atomic
def sso_session_continue(*, previous: SSOSession, reason: str) -> SSOSession | None:
    """A new SSO session for the user of ``previous``, which has just ended for a reason that
    was not their own sign-out (the end of an impersonation bound to it): the browser stays
    signed in as that user, under a new opaque id, so nothing issued under the old one (nor a
    replayed cookie naming it) carries on. It is no fresher than ``previous``: the same
    authentication time and methods, and it expires when ``previous`` would have without the
    cap an impersonation put on it. None when that time has passed, or ``previous`` has not
    ended (then there is nothing to continue). Audited ``login-continued``."""
    ended = SSOSession.objects.select_related("user", "organization").get(pk=previous.pk)
    now = timezone.now()
    expires = ended.created_at + dt.timedelta(seconds=settings.ACTAS_SSO_SESSION_MAX_AGE)
    if ended.ended_at is None or expires <= now or not ended.user.can_sign_in:
        return None
    session = SSOSession.objects.create(
        sid=secrets.token_urlsafe(32),
        tenant_id=ended.tenant_id,
        organization=ended.organization,
        user=ended.user,
        amr=list(ended.amr),
        auth_time=ended.auth_time,
        last_seen_at=now,
        expires_at=expires,
        ip=ended.ip,
        user_agent=ended.user_agent,
    )
    # The sign-in it continues started when ``previous`` did: kept, so that a chain of
    # continuations (impersonate, End, impersonate, End…) never outlives the first sign-in.
    SSOSession.objects.filter(pk=session.pk).update(created_at=ended.created_at)
    session.created_at = ended.created_at
    audit_record(
        org=ended.organization,
        action="login-continued",
        actor=ended.user,
        subject=ended.user,
        target_type="sso_session",
        target_id=session.pk,
        data={"previous": ended.pk, "reason": reason[:64], "amr": list(ended.amr)},
    )
    return session
