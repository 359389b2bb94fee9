"""Subject tokens: issued to an application for an impersonation it asks for, claimed once by
the token exchange (impersonation.grants), locking in LOCK_ORDER (impersonation.services)."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from oauth2_provider.models import IDToken

from identity.audit.services import audit_record
from identity.models import Application, SSOSession, User
from identity.oauth import claims as oauth_claims
from identity.oauth import rows, tokens
from impersonation import policy
from impersonation.models import ImpersonationSession, SubjectToken
from impersonation.reasons import reason_clean
from organizations.models import Organization
from organizations.selectors import org_tenant

SUBJECT_TOKEN_TYP = "jwt"  # noqa: S105 (a JOSE type)


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
        reason=reason_clean(reason),
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
        data={"reason": reason_clean(reason), "read_only": attempt.read_only},
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
      :data:`impersonation.services.LOCK_ORDER`), the sign-in's SSO session first, so two
      subject tokens of one sign-in exchanged at once queue on it instead of each holding its
      token while waiting for the other's;
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
