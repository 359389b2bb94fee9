"""Impersonation writes: subject tokens, starting and ending sessions, refusals.

Every service takes the acting user and writes its audit row in the same transaction as the
change; refusals are audited in a transaction of their own.
"""

from __future__ import annotations

import datetime as dt
import functools
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from oauth2_provider.models import IDToken

from identity import tokens
from identity.models import Application, AuditEvent, OAuthAuthorization, SSOSession, User
from identity.oauth import claims as oauth_claims
from identity.oauth import rows
from identity.selectors.applications import application_available_in
from identity.selectors.roles import role_assignments_in_org, tenant_system_role
from identity.services.audit import audit_record, audit_refusal
from identity.services.oauth import oauth_authorization_revoke
from identity.services.outbox import outbox_enqueue
from identity.services.sessions import sso_session_continue, sso_session_end
from identity.services.tenants import ADMINISTRATOR_ROLE
from impersonation import policy
from impersonation.models import ImpersonationSession, SubjectToken
from organizations.models import Organization
from organizations.selectors import org_ancestors, org_descendant_ids, org_effective_settings, org_tenant

SUBJECT_TOKEN_TYP = "jwt"  # noqa: S105 (a JOSE type)
MAX_REASON = 500

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


# Removed from a reason: control characters, zero-width spaces and the byte-order mark, and
# the bidirectional controls that could make the Console or the email show it reordered.
# (The zero-width joiners stay: some scripts and emoji need them.)
_REMOVED: dict[int, str | None] = {
    **dict.fromkeys([*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)], " "),
    **dict.fromkeys(
        [0x200B, 0x2060, 0xFEFF, 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)], None
    ),
}
# Letters and symbols that draw nothing (fillers, the blank braille pattern).
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u034f")
# Unicode categories that show nothing on their own: separators, format and control
# characters, marks without a base, unassigned and private-use code points.
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"})


def _normalise_reason(reason: str) -> str:
    return " ".join((reason or "").translate(_REMOVED).split())


def _has_visible_text(text: str) -> bool:
    """Does ``text`` show at least one character to a reader?"""
    return any(ch not in _BLANK and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES for ch in text)


def _clean_reason(reason: str) -> str:
    """The reason as kept: invisible control characters removed, white space collapsed, and
    empty when nothing in it is visible."""
    clean = _normalise_reason(reason)[:MAX_REASON]
    return clean if _has_visible_text(clean) else ""


def impersonation_reason_check(*, org: Organization, reason: str) -> tuple[str, str]:
    """The reason as it will be kept, and what is wrong with it ("" when nothing): at most
    ``MAX_REASON`` characters, and, where the organization requires one, with visible text
    (spaces, zero-width and other invisible characters alone are no reason)."""
    clean = _normalise_reason(reason)
    if len(clean) > MAX_REASON:
        return clean, f"Give a reason of at most {MAX_REASON} characters."
    if not _has_visible_text(clean):
        clean = ""
        if org_effective_settings(org).impersonation_reason_required:
            return clean, (
                "Give a reason for this impersonation: spaces and invisible characters alone are not one."
            )
    return clean, ""


@transaction.atomic
def subject_token_issue(
    *,
    actor: User,
    attempt: policy.Attempt,
    sso_session: SSOSession,
    reason: str,
    code_challenge: str = "",
) -> str:
    """Mint a single-use subject token for ``attempt`` (which has passed the policy chain):
    ``sub`` = the target, ``may_act.sub`` = the impersonator, the target's approved scopes,
    lifetime = the application's subject token expiry."""
    subject = attempt.subject
    assert subject is not None
    app = attempt.application
    now = timezone.now()
    issued = int(now.timestamp())
    jti = tokens.new_jti()
    tenant = org_tenant(attempt.org)
    claims = {
        "iss": oauth_claims.issuer_for(tenant),
        "sub": str(subject.pk),
        "aud": app.client_id,
        "azp": app.client_id,
        "client_id": app.client_id,
        "scope": " ".join(attempt.approved_scopes),
        "may_act": {"sub": str(actor.pk)},
        "iat": issued,
        "nbf": issued,
        "exp": issued + app.subject_token_expiry,
        "jti": jti,
        **oauth_claims.organization_claims(org=attempt.org, user=subject),
    }
    SubjectToken.objects.create(
        jti=jti,
        application=app,
        organization=attempt.org,
        impersonator=actor,
        subject=subject,
        sso_session=sso_session,
        scope=claims["scope"],
        reason=_clean_reason(reason),
        read_only=attempt.read_only,
        code_challenge=code_challenge[:128],
        expires_at=now + dt.timedelta(seconds=app.subject_token_expiry),
    )
    audit_record(
        org=attempt.org,
        action="impersonation-subject-token-issued",
        actor=actor,
        subject=subject,
        target_type="user",
        target_id=subject.pk,
        client_id=app.client_id,
        scopes=claims["scope"],
        data={"reason": _clean_reason(reason), "read_only": attempt.read_only},
    )
    return tokens.mint(claims, typ=SUBJECT_TOKEN_TYP)


@dataclass(frozen=True)
class Consumed:
    """A subject token just used up (:func:`subject_token_claim`), with its sign-in row-locked."""

    row: SubjectToken
    # Whether the sign-in was impersonating already, read after its lock was taken.
    bound: bool
    # False: the actor token named was not issued to the client for that user (nothing used).
    actor_recorded: bool = True


def subject_token_claim(
    *, jti: str, application: Application, actor: tuple[uuid.UUID, uuid.UUID] | None = None
) -> Consumed | None:
    """Mark a subject token used (once): None if unknown, expired, for another client or
    used already, or (``actor``: an ID token's ``(jti, sub)``) when that ID token was not
    issued to ``application`` for that user (the token is then left unused). Runs inside the
    caller's transaction (the token request's). Two statements:

    * the subject token with the rows the exchange needs (impersonator, subject, organization,
      whether the actor token was recorded) and its sign-in, whose row alone is locked: locks
      are taken in the one order every impersonation start and end follows (see
      :data:`LOCK_ORDER`), the sign-in's SSO session first, so two subject tokens of one
      sign-in exchanged at once queue on it instead of each holding its token while waiting
      for the other's;
    * the single-use UPDATE, which also reads (in a statement that starts after the lock was
      granted) whether the sign-in is bound to a live impersonation already."""
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        return None
    now = timezone.now()
    found = _claim_read(jti=jti, application=application, actor=actor)
    if found is None:
        return None
    row, actor_recorded = found
    if not actor_recorded:
        return Consumed(row=row, bound=False, actor_recorded=False)
    used = _use(row, now)
    if used is None:
        return None  # used, voided by a start that won the lock, or expired
    row.used_at = now
    return Consumed(row=row, bound=used)


_CLAIM_PARTS: tuple[tuple[type[Any], str], ...] = (
    (SubjectToken, "st"),
    (User, "imp"),
    (User, "sub"),
    (Organization, "org"),
    (SSOSession, "sso"),
)


@functools.cache
def _claim_sql(*, for_update: bool) -> str:
    select = ", ".join(rows.columns(model, alias) for model, alias in _CLAIM_PARTS)
    user, org = User._meta.db_table, Organization._meta.db_table
    return (
        f"SELECT {select}, "  # noqa: S608 (model metadata)
        f"EXISTS (SELECT 1 FROM {IDToken._meta.db_table} idt "
        "WHERE idt.jti = %s AND idt.application_id = %s AND idt.user_id = %s) "
        f"FROM {SubjectToken._meta.db_table} st "
        f"JOIN {user} imp ON imp.id = st.impersonator_id "
        f"JOIN {user} sub ON sub.id = st.subject_id "
        f"JOIN {org} org ON org.id = st.organization_id "
        f"JOIN {SSOSession._meta.db_table} sso ON sso.id = st.sso_session_id "
        "WHERE st.jti = %s AND st.application_id = %s" + (" FOR UPDATE OF sso" if for_update else "")
    )


def _claim_read(
    *, jti: str, application: Application, actor: tuple[uuid.UUID, uuid.UUID] | None
) -> tuple[SubjectToken, bool] | None:
    """The subject token with its impersonator, subject, organization and sign-in (whose row
    alone is locked), and whether ``actor`` names an ID token recorded for the client and
    user (True without one): one statement."""
    jti_db, user_db = IDToken._meta.get_field("jti"), IDToken._meta.get_field("user")
    found = rows.fetch(
        _claim_sql(for_update=connection.features.has_select_for_update_of),
        [
            jti_db.get_db_prep_value(actor[0] if actor else uuid.UUID(int=0), connection),
            application.pk,
            user_db.get_db_prep_value(actor[1] if actor else uuid.UUID(int=0), connection),
            jti,
            application.pk,
        ],
    )
    if not found:
        return None
    row = found[0]
    parts: list[Any] = []
    start = 0
    for model, _alias in _CLAIM_PARTS:
        parts.append(rows.instance(model, row, start))
        start += rows.width(model)
    token, impersonator, subject, organization, sso_session = parts
    token.impersonator, token.subject = impersonator, subject
    token.organization, token.sso_session, token.application = organization, sso_session, application
    return token, (bool(row[start]) if actor is not None else True)


def _use(row: SubjectToken, now: dt.datetime) -> bool | None:
    """The single-use UPDATE of ``row``: None when it was not usable; else whether its
    sign-in is bound to a live impersonation (read by the same statement)."""
    token_table = SubjectToken._meta.db_table
    binding_table = ImpersonationSession._meta.db_table
    used_at = SubjectToken._meta.get_field("used_at").get_db_prep_value(now, connection)
    not_before = SubjectToken._meta.get_field("expires_at").get_db_prep_value(
        now - dt.timedelta(seconds=tokens.LEEWAY_SECONDS), connection
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {token_table} SET used_at = %s "  # noqa: S608 (model metadata)
            "WHERE jti = %s AND used_at IS NULL AND expires_at > %s "
            f"RETURNING EXISTS (SELECT 1 FROM {binding_table} b "
            "WHERE b.sso_session_id = %s AND b.ended_at IS NULL)",
            [used_at, row.pk, not_before, row.sso_session_id],
        )
        returned = cursor.fetchone()
    return None if returned is None else bool(returned[0])


def subject_token_consume(*, jti: str, application: Application) -> SubjectToken | None:
    """:func:`subject_token_claim` without the actor check: the used-up row, or None."""
    claimed = subject_token_claim(jti=jti, application=application)
    return claimed.row if claimed is not None and claimed.actor_recorded else None


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


def live_session_for(sso_session: SSOSession) -> ImpersonationSession | None:
    return (
        ImpersonationSession.objects.select_related(
            "impersonator", "subject", "organization", "application", "tenant", "sso_session"
        )
        .filter(sso_session=sso_session, ended_at__isnull=True)
        .first()
    )


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
    clean = _clean_reason(reason)
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
            "started_at": _utc(session.started_at),
            "expires_at": _utc(session.expires_at),
            "org_name": session.organization.name,
            "reason": session.reason,
            "read_only": session.read_only,
            "access_url": access_url,
            # The report form of this impersonation, on the Access to my account page.
            "report_url": f"{access_url}#imp-{session.pk}",
            # The branding is filled in when the email is rendered (identity.emails.email_render).
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


def _application_grounds(session: ImpersonationSession) -> None:
    """The application the impersonation started with still allows it in its organization:
    shared there, and, for an impersonation started by token exchange, with subject tokens
    and the token-exchange grant still on."""
    application = session.application
    if session.channel == ImpersonationSession.Channel.TOKEN_EXCHANGE and not (
        application.subject_token_enabled
        and application.allows_grant_type(Application.GRANT_TOKEN_EXCHANGE_TYPE)
    ):
        raise policy.Refused(
            "application-impersonation-off",
            f"{application.client_id} no longer allows subject tokens and the token exchange.",
        )
    if not application_available_in(application=application, org=session.organization):
        raise policy.Refused(
            "application-unavailable",
            f"{application.client_id} is no longer available in {session.organization.name}.",
        )


def impersonation_grounds(session: ImpersonationSession) -> policy.Refused | None:
    """What takes away a live impersonation's grounds, or None while it may go on: both
    accounts' status (disabled, locked, the target protected), the organization and its
    ancestors being active, dominance, the application still allowing impersonation there,
    and the impersonator's permission for it. Reads the rows as they are now (in the caller's
    transaction: a change just made counts)."""
    try:
        policy.recheck(impersonator=session.impersonator, subject=session.subject, org=session.organization)
        _application_grounds(session)
        policy.check_impersonator_permission(
            policy.Attempt(
                impersonator=session.impersonator,
                subject_id=str(session.subject_id),
                org=session.organization,
                application=session.application,
                requested_scopes=(),
            )
        )
    except policy.Refused as refusal:
        return refusal
    return None


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


MAX_MISUSE_NOTE = 2000
MISUSE_REPORTED = "impersonation-misuse-reported"


def _misuse_recipients(session: ImpersonationSession, *, reporter: User) -> list[User]:
    """The administrators of the impersonation's organization (Administrator role assigned
    there), or of its nearest ancestor that has any: never the impersonator being reported nor
    the reporter, only active accounts with an email address."""
    administrator = tenant_system_role(tenant=session.tenant, name=ADMINISTRATOR_ROLE)
    excluded = {session.impersonator_id, reporter.pk}
    for node in reversed(org_ancestors(session.organization, include_self=True)):
        found: dict[object, User] = {}
        for assignment in role_assignments_in_org(role=administrator, org=node):
            person = assignment.user or (assignment.association.user if assignment.association else None)
            if person is None or person.pk in excluded or not person.can_sign_in or not person.email:
                continue
            found[person.pk] = person
        if found:
            return sorted(found.values(), key=lambda u: u.username)
    return []


def _utc(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


@transaction.atomic
def impersonation_report_misuse(*, actor: User, session: ImpersonationSession, note: str) -> int:
    """The impersonated user reports an impersonation of their account as misuse: audited
    (``impersonation-misuse-reported``) and emailed, through the outbox, to each administrator
    of the organization. Once per impersonation. Returns how many emails were queued."""
    if "\x00" in (note or ""):
        raise ValidationError({"note": ["Remove the control characters."]})
    clean = (note or "").strip()
    if len(clean) > MAX_MISUSE_NOTE:
        raise ValidationError({"note": [f"Use at most {MAX_MISUSE_NOTE} characters."]})
    locked = (
        ImpersonationSession.objects.select_for_update()
        .select_related("impersonator", "subject", "organization", "tenant", "application")
        .get(pk=session.pk)
    )
    if locked.subject_id != actor.pk:
        raise PermissionDenied("Only the impersonated user can report this impersonation.")
    already = AuditEvent.objects.filter(
        tenant_id=locked.tenant_id, action=MISUSE_REPORTED, target_id=str(locked.pk)
    ).exists()
    if already:
        raise ValidationError("You have already reported this impersonation.")
    recipients = _misuse_recipients(locked, reporter=actor)
    impersonator = locked.impersonator
    context = {
        "org_name": locked.organization.name,
        "reporter_name": actor.display_name,
        "reporter_username": actor.username,
        "impersonator_name": impersonator.display_name,
        "impersonator_username": impersonator.username,
        "started_at": _utc(locked.started_at),
        "ended_at": _utc(locked.ended_at),
        "reason": locked.reason,
        "note": clean,
        "impersonation_id": str(locked.pk),
    }
    for admin in recipients:
        outbox_enqueue(
            tenant=locked.tenant,
            kind="impersonation-misuse",
            template="impersonation_misuse",
            to_email=admin.email,
            context={**context, "admin_name": admin.display_name},
        )
    audit_record(
        org=locked.organization,
        action=MISUSE_REPORTED,
        actor=actor,
        subject=actor,
        target_type="impersonation",
        target_id=locked.pk,
        client_id=locked.application.client_id,
        data={
            "note": clean,
            "impersonator": str(impersonator.pk),
            "impersonator_username": impersonator.username,
            "active": locked.ended_at is None,
            "notified": [admin.username for admin in recipients],
        },
    )
    return len(recipients)
