"""Reads about impersonations: prerequisites of the Console action, lists, audit trails."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from identity.audit.models import AuditEvent
from identity.models import Application, OAuthAuthorization, SSOSession, User
from identity.oauth import rows
from identity.selectors.applications import (
    application_available_in,
    login_flow_steps,
    tenant_system_application,
)
from impersonation.models import ImpersonationSession
from organizations.models import Organization
from organizations.selectors import org_descendant_filter, org_tenant

CREDENTIAL_STEPS = frozenset({"BasicAuthenticator", "email-otp"})


# --- one impersonation with the rows every check under it reads ------------------------------

_READ_PARTS: tuple[tuple[type[Any], str], ...] = (
    (ImpersonationSession, "i"),
    (User, "imp"),
    (User, "sub"),
    (Organization, "o"),
    (Application, "a"),
    (SSOSession, "s"),
    (Organization, "t"),
)


@functools.cache
def _read_sql(where: str) -> str:
    user, org = User._meta.db_table, Organization._meta.db_table
    select = ", ".join(rows.columns(model, alias) for model, alias in _READ_PARTS)
    return (
        f"SELECT {select} FROM {ImpersonationSession._meta.db_table} i "  # noqa: S608 (model metadata)
        f"JOIN {user} imp ON imp.id = i.impersonator_id JOIN {user} sub ON sub.id = i.subject_id "
        f"JOIN {org} o ON o.id = i.organization_id "
        f"JOIN {Application._meta.db_table} a ON a.id = i.application_id "
        f"JOIN {SSOSession._meta.db_table} s ON s.id = i.sso_session_id "
        f"JOIN {org} t ON t.id = i.tenant_id WHERE {where}"
    )


def _read(where: str, params: list[Any]) -> ImpersonationSession | None:
    found = rows.fetch(_read_sql(where), params)
    if not found:
        return None
    parts: list[Any] = []
    start = 0
    for model, _alias in _READ_PARTS:
        parts.append(rows.instance(model, found[0], start))
        start += rows.width(model)
    session, impersonator, subject, organization, application, sso_session, tenant = parts
    session.impersonator, session.subject, session.organization = impersonator, subject, organization
    session.application, session.sso_session, session.tenant = application, sso_session, tenant
    assert isinstance(session, ImpersonationSession)
    return session


def impersonation_read(pk: uuid.UUID) -> ImpersonationSession | None:
    """An impersonation with the rows every mint under it re-checks (impersonator, subject,
    organization, application, sign-in, tenant): one statement (a refresh, a code exchange, an
    organization switch of an impersonated token)."""
    return _read("i.id = %s", [rows.param(ImpersonationSession, "id", pk)])


def live_session_for(sso_session: SSOSession) -> ImpersonationSession | None:
    """The live impersonation bound to this sign-in, if any, with the same rows: one plain
    statement (read on every page and sign-in of a signed-in browser)."""
    return _read(
        "i.sso_session_id = %s AND i.ended_at IS NULL", [rows.param(SSOSession, "id", sso_session.pk)]
    )


def myaccount_for(*, org: Organization) -> Application | None:
    """The tenant's My Account, if it is enabled for ``org`` (owned by it or shared with it)."""
    app = tenant_system_application(tenant=org_tenant(org), key=Application.SystemKey.MYACCOUNT)
    if app is None or not application_available_in(application=app, org=org):
        return None
    return app


def login_flows_compatible(*, org: Organization, myaccount: Application) -> bool:
    """Does every sign-in to the Console of ``org`` satisfy My Account's flow there (the seed's
    "same login flow" prerequisite)? The methods every Console sign-in passes are those of its
    single-option steps; each My Account step needs one of them."""
    console = tenant_system_application(tenant=org_tenant(org), key=Application.SystemKey.CONSOLE)
    if console is None:
        return False
    always = {step[0] for step in login_flow_steps(application=console, org=org) if len(step) == 1}
    return all(set(step) & always for step in login_flow_steps(application=myaccount, org=org))


def _subtree(org: Organization) -> Q:
    return Q(**org_descendant_filter(org, prefix="organization__", include_self=True))


def active_impersonations(*, org: Organization) -> list[ImpersonationSession]:
    now = timezone.now()
    return list(
        ImpersonationSession.objects.filter(_subtree(org), ended_at__isnull=True, expires_at__gt=now)
        .select_related("impersonator", "subject", "organization", "application")
        .order_by("-started_at")[:200]
    )


@dataclass(frozen=True)
class ImpersonationPage:
    rows: list[ImpersonationSession]
    next_cursor: str | None


def _cursor(row: ImpersonationSession) -> str:
    raw = f"{row.started_at.isoformat()}|{row.pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[dt.datetime, uuid.UUID] | None:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        when, _, pk = raw.partition("|")
        moment = dt.datetime.fromisoformat(when)
        if moment.tzinfo is None:
            return None
        return moment.astimezone(dt.UTC), uuid.UUID(pk)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        return None


def past_impersonations(*, org: Organization, before: str | None = None) -> ImpersonationPage:
    """Ended (or timed-out) impersonations, newest first, keyset-paginated."""
    size = settings.ACTAS_CONSOLE_PAGE_SIZE
    now = timezone.now()
    qs = ImpersonationSession.objects.filter(_subtree(org)).filter(
        Q(ended_at__isnull=False) | Q(expires_at__lte=now)
    )
    decoded = _decode(before) if before else None
    if decoded is not None:
        when, pk = decoded
        qs = qs.filter(Q(started_at__lt=when) | Q(started_at=when, pk__lt=pk))
    rows = list(
        qs.select_related("impersonator", "subject", "organization", "application").order_by(
            "-started_at", "-pk"
        )[: size + 1]
    )
    return ImpersonationPage(
        rows=rows[:size], next_cursor=_cursor(rows[size - 1]) if len(rows) > size else None
    )


def impersonation_in_subtree(*, org: Organization, impersonation_id: str) -> ImpersonationSession | None:
    try:
        pk = uuid.UUID(str(impersonation_id))
    except ValueError:
        return None
    return (
        ImpersonationSession.objects.filter(_subtree(org), pk=pk)
        .select_related("impersonator", "subject", "organization", "application", "sso_session")
        .first()
    )


def impersonation_trail(impersonation: ImpersonationSession) -> list[AuditEvent]:
    """The audit events of an impersonation: its own (start, end) and everything the
    impersonator did as the subject while it lasted."""
    until = impersonation.ended_at or min(timezone.now(), impersonation.expires_at)
    return list(
        AuditEvent.objects.filter(tenant_id=impersonation.tenant_id)
        .filter(
            Q(target_type="impersonation", target_id=str(impersonation.pk))
            | Q(
                impersonator_id=impersonation.impersonator_id,
                subject_id=impersonation.subject_id,
                created_at__gte=impersonation.started_at,
                created_at__lte=until,
            )
        )
        .order_by("seq")[:500]
    )


def impersonation_applications(impersonation: ImpersonationSession) -> list[Application]:
    """The application it started with, and every application that got tokens under it."""
    ids = set(
        OAuthAuthorization.objects.filter(impersonation_id=impersonation.pk).values_list(
            "application_id", flat=True
        )
    )
    ids.add(impersonation.application_id)
    return list(Application.objects.filter(pk__in=ids).order_by("name"))
