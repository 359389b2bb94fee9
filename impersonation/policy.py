"""Who may impersonate whom: one ordered chain of small checks, the first failure wins.

Every start (the subject token at /authorize, the token exchange, the Console) runs the whole
chain; every later mint, refresh and organization switch re-runs the checks that can change
over time (:func:`recheck`). A refusal carries a machine-readable ``code`` and a ``detail``
for the audit trail; the client only ever hears a generic error, so a refusal never reveals
whether the target exists, is locked or is protected.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from identity.models import IMPERSONATE_SCOPE, ORG_IMPERSONATE_SCOPE, Application, User
from identity.selectors.permission_map import dominance_gaps, impersonated_scopes
from identity.selectors.permissions import oauth_user_scopes, user_scopes_for_application
from organizations.models import Organization
from organizations.selectors import org_is_usable


class Refused(Exception):
    """An impersonation the policy does not allow. ``detail`` is for the audit trail only."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail or code


#: Every code a :class:`Refused` is raised with (the metrics' bounded label set;
#: tests/impersonation/test_metrics.py checks the source raises no other).
REFUSAL_CODES = frozenset(
    {
        "already-impersonating",
        "application-impersonation-off",
        "application-unavailable",
        "chained",
        "dominance",
        "ended",
        "endpoint-organization",
        "expired",
        "impersonator-inactive",
        "no-permission",
        "not-resident",
        "org-inactive",
        "pkce",
        "reason-required",
        "self",
        "sso-session",
        "sso-session-ended",
        "subject-disabled",
        "subject-locked",
        "subject-protected",
        "subject-token-mismatch",
        "subject-token-unusable",
        "unknown-subject",
    }
)


def impersonate_scope_for(org: Organization) -> str:
    """``internal_user_impersonate`` in a root organization, the ``org`` variant below it."""
    return IMPERSONATE_SCOPE if org.parent_id is None else ORG_IMPERSONATE_SCOPE


@dataclass
class Attempt:
    """One impersonation being decided. ``subject`` is resolved by the chain."""

    impersonator: User
    subject_id: str
    org: Organization
    application: Application
    requested_scopes: Sequence[str]
    read_only: bool = False
    # The impersonator's sign-in is itself impersonated (a bound SSO session).
    chained: bool = False
    subject: User | None = None
    approved_scopes: list[str] = field(default_factory=list)


Check = Callable[[Attempt], None]


def check_impersonator_permission(attempt: Attempt) -> None:
    """The impersonator holds the impersonate scope for this application in this organization
    (an application role on it; the Impersonator role for My Account)."""
    needed = impersonate_scope_for(attempt.org)
    if not attempt.impersonator.can_sign_in or not org_is_usable(attempt.org):
        raise Refused("impersonator-inactive", "The impersonator's account or organization is not active.")
    held = user_scopes_for_application(
        user=attempt.impersonator, application=attempt.application, org=attempt.org
    )
    if needed not in held:
        raise Refused(
            "no-permission",
            f"{attempt.impersonator.username} lacks {needed} for {attempt.application.client_id}.",
        )


def check_resident_organization(attempt: Attempt) -> None:
    """The target lives in the organization of the impersonation: a child organization's
    impersonator never reaches a user shared into it from elsewhere (seed 000, second
    limitation). A shared parent-organization user signed in there through the Shared User
    Identifier may impersonate that organization's own users (seed 001). A target the caller
    has loaded already (``attempt.subject``) is not read again."""
    try:
        subject_id = uuid.UUID(str(attempt.subject_id))
    except ValueError:
        raise Refused("unknown-subject", "requested_subject is not a user id.") from None
    subject = attempt.subject if attempt.subject is not None and attempt.subject.pk == subject_id else None
    if subject is not None and subject.organization_id == attempt.org.pk:
        return  # resident in the organization of the impersonation, hence in its tenant
    if subject is None:
        subject = User.objects.select_related("organization").filter(pk=subject_id).first()
    if subject is None or subject.organization.tenant_id != attempt.org.tenant_id:
        raise Refused("unknown-subject", f"No user {subject_id} in this tenant.")
    if subject.organization_id != attempt.org.pk:
        raise Refused("not-resident", f"{subject.username} is not resident in {attempt.org.name}.")
    attempt.subject = subject


def _subject(attempt: Attempt) -> User:
    assert attempt.subject is not None, "check_resident_organization runs first"
    return attempt.subject


def check_account_status(attempt: Attempt) -> None:
    _account_status(_subject(attempt))


def _account_status(subject: User) -> None:
    if not subject.is_active:
        raise Refused("subject-disabled", f"{subject.username} is disabled.")
    if subject.is_locked:
        raise Refused("subject-locked", f"{subject.username} is locked.")
    if subject.is_protected:
        raise Refused("subject-protected", f"{subject.username} is protected from impersonation.")


def check_not_self(attempt: Attempt) -> None:
    if _subject(attempt).pk == attempt.impersonator.pk:
        raise Refused("self", "An impersonator cannot impersonate themself.")


def check_not_chained(attempt: Attempt) -> None:
    if attempt.chained:
        raise Refused("chained", "An impersonated session cannot start another impersonation.")


def check_dominance(attempt: Attempt) -> None:
    _dominance(attempt.impersonator, _subject(attempt))


def _dominance(impersonator: User, subject: User) -> None:
    gaps = dominance_gaps(impersonator=impersonator, subject=subject)
    if gaps:
        summary = "; ".join(
            f"{org_id}: {', '.join(sorted(scopes))}" for org_id, scopes in sorted(gaps.items())
        )
        raise Refused("dominance", f"The target holds permissions the impersonator lacks: {summary}.")


def approved_scopes(
    *, subject: User, application: Application, org: Organization, requested: Sequence[str], read_only: bool
) -> list[str]:
    """What the target holds of the requested scopes for the app, never the impersonate
    scopes; read-only keeps only scopes flagged read-only (and the OIDC ones)."""
    held = oauth_user_scopes(user=subject, application=application, org=org, requested=requested)
    return impersonated_scopes(held, tenant_id=org.tenant_id, read_only=read_only)


def check_subject_scopes(attempt: Attempt) -> None:
    attempt.approved_scopes = approved_scopes(
        subject=_subject(attempt),
        application=attempt.application,
        org=attempt.org,
        requested=attempt.requested_scopes,
        read_only=attempt.read_only,
    )


CHAIN: tuple[Check, ...] = (
    check_impersonator_permission,
    check_resident_organization,
    check_account_status,
    check_not_self,
    check_not_chained,
    check_dominance,
    check_subject_scopes,
)


def evaluate(attempt: Attempt) -> Attempt:
    """Run the whole chain; raise :class:`Refused` at the first failure."""
    for check in CHAIN:
        check(attempt)
    return attempt


def recheck(*, impersonator: User, subject: User, org: Organization) -> None:
    """What can change during a session and ends it: both accounts' status and dominance.
    The callers pass users loaded in this request."""
    if not impersonator.can_sign_in:
        raise Refused("impersonator-inactive", "The impersonator's account is disabled or locked.")
    if not org_is_usable(org):
        raise Refused("org-inactive", f"{org.name} is disabled.")
    _account_status(subject)
    _dominance(impersonator, subject)
