"""Impersonation writes: starting and ending sessions, re-checking them, refusals. Subject
tokens are in ``impersonation.subject_tokens``, the reason in ``impersonation.reasons``, what
ends an impersonation's grounds in ``impersonation.grounds``, misuse reports in
``impersonation.misuse``; all take locks in :data:`LOCK_ORDER`.

Every service takes the acting user and writes its audit row in the same transaction as the
change; refusals are audited in a transaction of their own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from identity import metrics
from identity.audit.services import audit_record, audit_refusal
from identity.models import Application, OAuthAuthorization, SSOSession, User
from identity.notifications.outbox import outbox_enqueue
from identity.oauth import rows
from identity.services.oauth import oauth_authorization_revoke
from identity.services.sessions import sso_session_continue, sso_session_end
from impersonation import policy
from impersonation.grounds import impersonation_grounds
from impersonation.models import ImpersonationSession, SubjectToken
from impersonation.reasons import reason_clean
from organizations.models import Organization
from organizations.selectors import org_descendant_ids, org_effective_settings, org_tenant

#: The order in which impersonation starts and ends take row locks, so that no two of them
#: wait on each other: the impersonator's SSO session, then the impersonation, then the
#: sign-in's subject tokens, then the OAuth authorizations, and the tenant's audit chain head
#: last (every audited write takes it and keeps it until commit).
LOCK_ORDER = ("sso_session", "impersonation", "subject_tokens", "authorizations", "audit_chain_head")


def impersonation_refused(
    *,
    actor: User | None,
    org: Organization,
    application: Application,
    refusal: policy.Refused,
    subject_id: str = "",
    stage: str,
) -> None:
    """Audit a refused impersonation with its real reason (the client hears a generic one)."""
    audit_refusal(
        org=org,
        action="impersonation-refused",
        actor=actor,
        target_type="user",
        target_id=str(subject_id)[:64],
        client_id=application.client_id,
        data={"code": refusal.code, "detail": refusal.detail, "stage": stage},
    )
    metrics.impersonation_refused(refusal.code, policy.REFUSAL_CODES)


def _cap_and_void(locked: SSOSession, *, expires: dt.datetime | None, now: dt.datetime) -> None:
    sso_table, token_table = SSOSession._meta.db_table, SubjectToken._meta.db_table
    void = f"UPDATE {token_table} SET used_at = %s WHERE sso_session_id = %s AND used_at IS NULL"  # noqa: S608
    used_at = SubjectToken._meta.get_field("used_at").get_db_prep_value(now, connection)
    if expires is None:
        rows.execute(void, [used_at, locked.pk])
        return
    expires_db = SSOSession._meta.get_field("expires_at").get_db_prep_value(expires, connection)
    cap = f"UPDATE {sso_table} SET expires_at = %s WHERE id = %s"  # noqa: S608
    if connection.vendor == "postgresql":
        rows.execute(f"WITH capped AS ({cap}) {void}", [expires_db, locked.pk, used_at, locked.pk])
    else:
        rows.execute(cap, [expires_db, locked.pk])
        rows.execute(void, [used_at, locked.pk])


def _first_locked_sso_session(pk: int) -> SSOSession | None:
    return SSOSession.objects.select_for_update().filter(pk=pk).order_by().first()


def _bound(sso_session: SSOSession) -> bool:
    """Is this sign-in already impersonating (a live impersonation bound to it)? One query."""
    return ImpersonationSession.objects.filter(sso_session_id=sso_session.pk, ended_at__isnull=True).exists()


def _start_locked(
    *,
    actor: User,
    subject: User,
    org: Organization,
    application: Application,
    locked: SSOSession,
    bound: bool,
    reason: str,
    read_only: bool,
    channel: str,
) -> ImpersonationSession:
    """Start the impersonation bound to ``locked`` (the impersonator's SSO session, row-locked
    by the caller, so no other start in it runs meanwhile).

    The end time is the start plus the organization's cap; the bound SSO session expires no
    later, so the browser is signed out when the time is up."""
    if bound:
        # The policy chain refuses this as chained; refused here too, so the
        # one-live-impersonation-per-sign-in rule never rests on the chain alone.
        raise policy.Refused("already-impersonating", "This sign-in is already impersonating.")
    now = timezone.now()
    settings = org_effective_settings(org)
    clean = reason_clean(reason)
    if settings.impersonation_reason_required and not clean:
        raise policy.Refused("reason-required", "A reason is required in this organization.")
    expires = now + dt.timedelta(minutes=settings.impersonation_max_minutes)
    # The SSO session row is locked and has no live impersonation: the partial unique
    # constraint (one live impersonation per sign-in) is not hit here.
    session = ImpersonationSession.objects.create(
        tenant_id=org.tenant_id or org.pk,
        organization=org,
        impersonator=actor,
        subject=subject,
        application=application,
        sso_session=locked,
        channel=channel,
        reason=clean,
        read_only=read_only,
        started_at=now,
        expires_at=expires,
    )
    capped = locked.expires_at > expires
    if capped:
        locked.expires_at = expires
    # The sign-in expires with the impersonation at the latest, and its subject tokens not yet
    # exchanged can no longer start anything: together, one statement on PostgreSQL.
    _cap_and_void(locked, expires=expires if capped else None, now=now)
    if settings.impersonation_email_enabled and subject.email:
        _notify_subject(session=session)
    audit_record(
        org=org,
        action="impersonation-start",
        actor=actor,
        impersonator=actor,
        subject=subject,
        target_type="impersonation",
        target_id=session.pk,
        client_id=application.client_id,
        data={
            "reason": clean,
            "read_only": read_only,
            "channel": channel,
            "expires_at": expires.isoformat(),
        },
    )
    # Counted once committed: a start its caller rolls back (a refused exchange) never happened.
    transaction.on_commit(lambda: metrics.impersonation_started(channel, ImpersonationSession.Channel.values))
    return session


def _lock_sso_session(sso_session: SSOSession, *, actor: User, held: bool = False) -> SSOSession:
    """``sso_session`` row-locked (``held``: it was read with its lock in this transaction)."""
    locked = sso_session if held else _first_locked_sso_session(sso_session.pk)
    if locked is None or locked.ended_at is not None or locked.user_id != actor.pk:
        raise policy.Refused("sso-session-ended", "The impersonator's sign-in has ended.")
    return locked


def _notify_subject(*, session: ImpersonationSession) -> None:
    """The email to the impersonated user, queued with the start (DESIGN §5.7)."""
    tenant = org_tenant(session.organization)
    base = f"{django_settings.BASE_URL}/t/{tenant.handle}"
    if session.organization_id != tenant.pk:
        base = f"{base}/o/{session.organization_id}"
    access_url = f"{base}/myaccount/access/"
    outbox_enqueue(
        tenant=tenant,
        organization=session.organization,
        kind="impersonation-started",
        template="impersonation_started",
        to_email=session.subject.email,
        context={
            "user_name": session.subject.display_name,
            "impersonator_name": session.impersonator.display_name,
            "started_at": utc_minutes(session.started_at),
            "expires_at": utc_minutes(session.expires_at),
            "org_name": session.organization.name,
            "reason": session.reason,
            "read_only": session.read_only,
            "access_url": access_url,
            # The report form of this impersonation, on the Access to my account page.
            "report_url": f"{access_url}#imp-{session.pk}",
            # The branding is filled in when the email is rendered
            # (identity.notifications.emails.email_render).
        },
    )


@transaction.atomic
def impersonation_end(
    *,
    actor: User | None,
    session: ImpersonationSession,
    reason: str,
    cause: policy.Refused | None = None,
) -> ImpersonationSession:
    """End an impersonation: revoke every token minted under it and end the bound SSO
    session (the impersonator signs in again). Idempotent. Locks in :data:`LOCK_ORDER`: the
    bound SSO session before the impersonation, so an End never waits on a start in the same
    sign-in that waits on it."""
    _first_locked_sso_session(session.sso_session_id)
    locked = ImpersonationSession.objects.select_for_update().get(pk=session.pk)
    if locked.ended_at is not None:
        return locked
    locked.ended_at = timezone.now()
    locked.end_reason = reason
    locked.ended_by_id = actor.pk if actor is not None else None
    locked.save(update_fields=["ended_at", "end_reason", "ended_by_id"])
    revoked = 0
    for authorization in OAuthAuthorization.objects.filter(
        impersonation_id=locked.pk, revoked_at__isnull=True
    ).select_related("organization", "application", "user"):
        revoked += oauth_authorization_revoke(
            actor=actor, authorization=authorization, reason="impersonation-ended"
        )
    sso_session_end(actor=actor, session=locked.sso_session, reason=f"impersonation-{reason}")
    audit_record(
        org=locked.organization,
        action="impersonation-end",
        actor=actor,
        impersonator=locked.impersonator,
        subject=locked.subject,
        target_type="impersonation",
        target_id=locked.pk,
        client_id=locked.application.client_id,
        data={
            "reason": reason,
            "authorizations_revoked": revoked,
            # Why it could not go on (a re-check that failed): the policy's code and detail.
            **({"cause": cause.code, "detail": cause.detail} if cause is not None else {}),
        },
    )
    transaction.on_commit(lambda: metrics.impersonation_ended(reason, ImpersonationSession.EndReason.values))
    return locked


@transaction.atomic
def impersonation_end_by_impersonator(
    *, actor: User, session: ImpersonationSession
) -> tuple[ImpersonationSession, SSOSession | None]:
    """The impersonator ends their own impersonation from the browser it is bound to (the
    banner's End impersonation, or End in Console → Impersonations there): everything
    :func:`impersonation_end` does — every token minted under it revoked, the bound SSO
    session ended, so no cookie or ID token of it resumes anything — and then, in the same
    transaction, a new SSO session of the impersonator's own for that browser
    (:func:`sso_session_continue`, audited ``login-continued``): they stay signed in as
    themselves, no fresher than before. Returns the ended impersonation and the new sign-in
    (None when the impersonation had ended already, or the old sign-in's own time is up).
    Locks in :data:`LOCK_ORDER` (the new sign-in is a new row, written before the last audit
    event)."""
    if session.impersonator_id != actor.pk:
        raise PermissionDenied("Only the impersonator ends an impersonation this way.")
    # Whether this call is the one that ends it, read under the locks impersonation_end takes
    # (the same rows, in the same order): a second End (a double click) continues nothing.
    _first_locked_sso_session(session.sso_session_id)
    current = ImpersonationSession.objects.select_for_update().get(pk=session.pk)
    if current.ended_at is not None:
        return current, None
    ended = impersonation_end(actor=actor, session=current, reason=ImpersonationSession.EndReason.ENDED)
    continued = sso_session_continue(
        previous=ended.sso_session, reason=f"impersonation-{ImpersonationSession.EndReason.ENDED}"
    )
    return ended, continued


def impersonation_guard(*, session: ImpersonationSession, application: Application) -> int:
    """Re-check a live impersonation before minting under it (a refresh, an SSO sign-in, an
    organization switch). Returns the seconds left.

    Time and the impersonation's grounds (:func:`impersonation_grounds`) can end it. For
    another application than the one it started with, the impersonator's permission for that
    application is checked too: losing it only refuses that sign-in. Raises
    :class:`policy.Refused`."""
    now = timezone.now()
    if session.ended_at is not None:
        raise policy.Refused("ended", "The impersonation has ended.")
    if session.expires_at <= now:
        impersonation_end(actor=None, session=session, reason=ImpersonationSession.EndReason.EXPIRED)
        raise policy.Refused("expired", "The impersonation has reached its time limit.")
    refusal = impersonation_grounds(session)
    if refusal is not None:
        impersonation_end(
            actor=None, session=session, reason=ImpersonationSession.EndReason.POLICY, cause=refusal
        )
        raise refusal
    if application.pk != session.application_id:
        policy.check_impersonator_permission(
            policy.Attempt(
                impersonator=session.impersonator,
                subject_id=str(session.subject_id),
                org=session.organization,
                application=application,
                requested_scopes=(),
            )
        )
    return int((session.expires_at - now).total_seconds())


@transaction.atomic
def impersonations_revalidate(
    *,
    actor: User | None,
    tenant_id: uuid.UUID,
    user_ids: Sequence[object] = (),
    org: Organization | None = None,
    application_id: int | None = None,
    everyone: bool = False,
) -> int:
    """After a change that can take away the grounds of live impersonations, end at once, in
    the change's transaction, every one that has lost them: its tokens are revoked, the bound
    sign-in ends and the audit trail says why (``impersonation-end`` with the failed check).

    Which live impersonations of the tenant are re-checked: those whose impersonator or
    target is in ``user_ids``, that run in ``org`` or below it, or that started with
    ``application_id``; ``everyone``: all of them (a role's permissions changed). Returns how
    many ended."""
    live = ImpersonationSession.objects.filter(tenant_id=tenant_id, ended_at__isnull=True)
    if not everyone:
        which = Q()
        if user_ids:
            which |= Q(impersonator_id__in=list(user_ids)) | Q(subject_id__in=list(user_ids))
        if org is not None:
            which |= Q(organization_id__in=org_descendant_ids(org, include_self=True))
        if application_id is not None:
            which |= Q(application_id=application_id)
        if not which:
            return 0
        live = live.filter(which)
    failing: list[tuple[ImpersonationSession, policy.Refused]] = []
    for session in live.select_related(
        "impersonator", "subject", "organization", "application", "tenant", "sso_session"
    ).order_by("started_at", "pk"):
        refusal = impersonation_grounds(session)
        if refusal is not None:
            failing.append((session, refusal))
    if not failing:
        return 0
    # LOCK_ORDER: every SSO session to end is locked (in one order) before the first end
    # writes an audit event, which takes the tenant's audit chain head until commit.
    list(
        SSOSession.objects.select_for_update()
        .filter(pk__in=[session.sso_session_id for session, _ in failing])
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for session, refusal in failing:
        impersonation_end(
            actor=actor, session=session, reason=ImpersonationSession.EndReason.POLICY, cause=refusal
        )
    return len(failing)


def _evaluate(
    *,
    actor: User,
    subject_id: str,
    org: Organization,
    application: Application,
    sso_session: SSOSession,
    requested_scopes: Sequence[str],
    read_only: bool,
) -> policy.Attempt:
    """The whole policy chain for a request made in ``sso_session`` (chained if it is bound)."""
    return policy.evaluate(
        policy.Attempt(
            impersonator=actor,
            subject_id=subject_id,
            org=org,
            application=application,
            requested_scopes=requested_scopes,
            read_only=read_only,
            chained=_bound(sso_session),
        )
    )


def impersonation_begin(
    *,
    actor: User,
    subject_id: str,
    org: Organization,
    application: Application,
    sso_session: SSOSession,
    reason: str,
    read_only: bool,
    channel: str,
    requested_scopes: Sequence[str] = (),
    subject: User | None = None,
    sso_session_locked: bool = False,
    bound: bool | None = None,
) -> tuple[ImpersonationSession, policy.Attempt]:
    """Start an impersonation after the whole policy chain: the one path for the Console and
    the token exchange. One impersonation per sign-in, started once: the SSO session row is
    locked first, so a second start in it (another subject, or the same one with other terms)
    is refused as chained. ``subject``: the target if the caller has loaded it already.
    ``sso_session_locked``: the caller has row-locked ``sso_session`` in this transaction
    already (the token exchange, through :func:`subject_token_claim`); ``bound``: whether it is
    bound to a live impersonation, as read after that lock was taken (the claim reads it).
    Raises :class:`policy.Refused` (the caller audits it)."""
    # A caller that holds the sign-in's lock is inside its own transaction (the token
    # request's, whose savepoint around the start rolls it back on a refusal): no savepoint of
    # this function's own there.
    with transaction.atomic(savepoint=not sso_session_locked):
        locked = _lock_sso_session(sso_session, actor=actor, held=sso_session_locked)
        if bound is None or not sso_session_locked:
            bound = _bound(locked)  # read under the lock: no other start in this sign-in runs now
        attempt = policy.evaluate(
            policy.Attempt(
                impersonator=actor,
                subject_id=subject_id,
                org=org,
                application=application,
                requested_scopes=requested_scopes,
                read_only=read_only,
                chained=bound,
                subject=subject if subject is not None and str(subject.pk) == str(subject_id) else None,
            )
        )
        assert attempt.subject is not None
        session = _start_locked(
            actor=actor,
            subject=attempt.subject,
            org=org,
            application=application,
            locked=locked,
            bound=bound,
            reason=reason,
            read_only=read_only,
            channel=channel,
        )
        return session, attempt


def impersonation_check(
    *,
    actor: User,
    subject_id: str,
    org: Organization,
    application: Application,
    sso_session: SSOSession,
    requested_scopes: Sequence[str],
    read_only: bool,
    stage: str,
) -> policy.Attempt:
    """Run the whole policy chain for a request made in ``sso_session``; a refusal is audited
    (in its own transaction) and raised again."""
    try:
        return _evaluate(
            actor=actor,
            subject_id=subject_id,
            org=org,
            application=application,
            sso_session=sso_session,
            requested_scopes=requested_scopes,
            read_only=read_only,
        )
    except policy.Refused as refusal:
        impersonation_refused(
            actor=actor, org=org, application=application, refusal=refusal, subject_id=subject_id, stage=stage
        )
        raise


def utc_minutes(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""
