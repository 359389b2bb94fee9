"""What My Account shows: the reads behind its sections."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet
from django.utils import timezone

from identity.audit.labels import API_CALL_ACTIONS, EventView
from identity.audit.models import AuditEvent
from identity.models import Application, OAuthAuthorization, SSOSession, User
from identity.selectors.applications import application_authorized_scopes, applications_available_in
from identity.selectors.audit_log import audit_event_views
from impersonation import policy
from impersonation.misuse import MISUSE_REPORTED
from impersonation.models import ImpersonationSession
from organizations.models import Organization

PAGE_SIZE = 10
CHANGES_SHOWN = 25
SESSIONS_SHOWN = 50


# --- Applications --------------------------------------------------------------------------------


def _discoverable(org: Organization) -> list[Application]:
    return [
        app
        for app in applications_available_in(org)
        if app.discoverable and app.access_url and not app.is_system
    ]


def user_applications(*, user: User, org: Organization) -> list[Application]:
    """The discoverable business applications (with an access URL) available in ``org``.
    Anyone who may sign in to ``org`` may use them (their OIDC scopes need no role)."""
    if not user.can_sign_in:
        return []
    return _discoverable(org)


@dataclass(frozen=True)
class Launchable:
    application: Application
    # Why it cannot be entered as the user, or "" when it can.
    blocked: str = ""


def impersonation_applications(*, impersonator: User, subject: User, org: Organization) -> list[Launchable]:
    """The discoverable applications an impersonator may enter as ``subject`` in ``org``:
    authorized for the impersonate scope of ``org`` (User Impersonation at the root,
    Organization User Impersonation below it), available in ``org``, and the impersonator
    holds that scope for them there. One that would ask for the user's consent is listed as
    blocked (consent is never given on someone's behalf)."""
    needed = policy.impersonate_scope_for(org)
    found: list[Launchable] = []
    for app in _discoverable(org):
        if not application_authorized_scopes(app).filter(name=needed).exists():
            continue
        try:
            policy.check_impersonator_permission(
                policy.Attempt(
                    impersonator=impersonator,
                    subject_id=str(subject.pk),
                    org=org,
                    application=app,
                    requested_scopes=(),
                )
            )
        except policy.Refused:
            continue
        blocked = (
            ""
            if app.skip_login_consent
            else "It asks for the user's consent, which cannot be given while impersonating."
        )
        found.append(Launchable(app, blocked))
    return found


# --- Security ------------------------------------------------------------------------------------


def user_live_sso_sessions(user: User) -> list[SSOSession]:
    """The user's own SSO sessions that have not ended or expired, most recently used first."""
    return list(
        SSOSession.objects.filter(user=user, ended_at__isnull=True, expires_at__gt=timezone.now())
        .select_related("organization")
        .order_by("-last_seen_at", "-pk")[:SESSIONS_SHOWN]
    )


# --- Access to my account ---------------------------------------------------------------------


@dataclass
class AccessEntry:
    session: ImpersonationSession
    applications: list[Application] = field(default_factory=list)
    changes: list[EventView] = field(default_factory=list)  # oldest first, in words
    more_changes: int = 0

    @property
    def active(self) -> bool:
        return self.session.ended_at is None and self.session.expires_at > timezone.now()

    @property
    def ended_at(self) -> dt.datetime:
        """When it ended: its end, or its time limit when that passed first."""
        if self.session.ended_at is not None:
            return self.session.ended_at
        return self.session.expires_at

    @property
    def end_label(self) -> str:
        if self.session.ended_at is None:
            return ImpersonationSession.EndReason.EXPIRED.label
        return (
            ImpersonationSession.EndReason(self.session.end_reason).label if self.session.end_reason else ""
        )

    @property
    def duration(self) -> dt.timedelta:
        end = timezone.now() if self.active else self.ended_at
        return max(dt.timedelta(0), end - self.session.started_at)

    @property
    def duration_label(self) -> str:
        minutes = int(self.duration.total_seconds() // 60)
        if minutes < 1:
            return "less than a minute"
        hours, minutes = divmod(minutes, 60)
        if hours:
            return f"{hours} h {minutes} min" if minutes else f"{hours} h"
        return f"{minutes} min"


@dataclass(frozen=True)
class AccessPage:
    entries: list[AccessEntry]
    older: str | None


def encode_cursor(session: ImpersonationSession) -> str:
    raw = f"{session.started_at.isoformat()}|{session.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID] | None:
    """None for anything that is not a cursor this module made."""
    if not cursor or len(cursor) > 200:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        started, _, pk = base64.urlsafe_b64decode(padded.encode("ascii")).decode().partition("|")
        when = dt.datetime.fromisoformat(started)
        if when.tzinfo is None:
            return None
        return when, uuid.UUID(pk)
    except (ValueError, binascii.Error, UnicodeError):
        return None


# What the timeline of an impersonation shows itself rather than as a change.
_BOOKKEEPING = ("impersonation-",)


def _changes_during(*, tenant: Organization, user: User, entry: AccessEntry) -> QuerySet[AuditEvent]:
    """What the impersonator did to ``user`` while ``entry``'s impersonation lasted, one event
    per change. A write through an API with an impersonated token records two events in one
    request: the API call (``resource-…-via-impersonation``) and the change the service made
    (``user-profile-update``, …); the call is left out when its request recorded the change,
    and kept when it recorded nothing else (a refused call, say)."""
    session = entry.session
    during = AuditEvent.objects.filter(
        tenant_id=tenant.pk,
        impersonator_id=session.impersonator_id,
        subject_id=user.pk,
        created_at__gte=session.started_at,
        created_at__lte=entry.ended_at if not entry.active else timezone.now(),
    )
    for prefix in _BOOKKEEPING:
        during = during.exclude(action__startswith=prefix)
    recorded = during.exclude(action__in=API_CALL_ACTIONS).exclude(request_id="").values("request_id")
    return during.exclude(action__in=API_CALL_ACTIONS, request_id__in=recorded)


def access_history(
    *, user: User, tenant: Organization, before: tuple[dt.datetime, uuid.UUID] | None, size: int = PAGE_SIZE
) -> AccessPage:
    """One page, newest first, of every impersonation of ``user``: who, when, why, which
    applications (the one it started with and every one that got tokens under it) and what
    the impersonator changed (audit events with them as impersonator and ``user`` as subject
    while it lasted). Keyset pagination on (started, id)."""
    qs = ImpersonationSession.objects.filter(subject=user, tenant=tenant).select_related(
        "impersonator", "organization", "application"
    )
    if before is not None:
        started, pk = before
        qs = qs.filter(Q(started_at__lt=started) | Q(started_at=started, pk__lt=pk))
    rows = list(qs.order_by("-started_at", "-pk")[: size + 1])
    older = encode_cursor(rows[size - 1]) if len(rows) > size else None
    entries = [AccessEntry(session) for session in rows[:size]]
    if not entries:
        return AccessPage(entries, older)
    by_id = {entry.session.pk: entry for entry in entries}
    for entry in entries:
        entry.applications.append(entry.session.application)
    used = (
        OAuthAuthorization.objects.filter(impersonation_id__in=list(by_id))
        .select_related("application")
        .order_by("created_at", "pk")
    )
    for authorization in used:
        entry = by_id[authorization.impersonation_id]  # type: ignore[index]
        if all(app.pk != authorization.application_id for app in entry.applications):
            entry.applications.append(authorization.application)
    listed: dict[uuid.UUID, list[AuditEvent]] = {}
    for entry in entries:
        changes = _changes_during(tenant=tenant, user=user, entry=entry)
        found = list(changes.order_by("seq")[: CHANGES_SHOWN + 1])
        listed[entry.session.pk] = found[:CHANGES_SHOWN]
        entry.more_changes = changes.count() - CHANGES_SHOWN if len(found) > CHANGES_SHOWN else 0
    # in words, with the names of every event of the page resolved at once
    views = iter(audit_event_views([e for entry in entries for e in listed[entry.session.pk]]))
    for entry in entries:
        entry.changes = [next(views) for _ in listed[entry.session.pk]]
    return AccessPage(entries, older)


def reported_impersonations(*, tenant: Organization, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these impersonations their subject has reported as misuse."""
    if not ids:
        return set()
    found = AuditEvent.objects.filter(
        tenant_id=tenant.pk, action=MISUSE_REPORTED, target_id__in=[str(i) for i in ids]
    ).values_list("target_id", flat=True)
    return {uuid.UUID(value) for value in found}


# --- while impersonated --------------------------------------------------------------------------


def impersonation_by_id(impersonation_id: uuid.UUID | None) -> ImpersonationSession | None:
    """The impersonation My Account's token was minted under (its read-only flag, its people)."""
    if impersonation_id is None:
        return None
    return (
        ImpersonationSession.objects.select_related("impersonator", "subject", "organization")
        .filter(pk=impersonation_id)
        .first()
    )
