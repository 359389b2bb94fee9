"""The token path's merged statements (plain SQL through :mod:`identity.oauth.rows`).

* :func:`refresh_lookup`: a refresh token with its access token, its user and the live
  authorization of its family (organization, SSO session, impersonator): one statement where
  DOT and the validator made four.
* :func:`refresh_token_retire`: a rotation retires the presented refresh token (one
  conditional UPDATE, which also takes its row lock) and deletes its access token (one more
  statement; on PostgreSQL together with clearing the authorization's pointer to it).
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, RefreshToken

from identity.models import Application, OAuthAuthorization, SSOSession, User
from identity.oauth import claims as oauth_claims
from identity.oauth import rows
from organizations.models import Organization

_REFRESH_PARTS: tuple[tuple[type, str], ...] = (
    (RefreshToken, "rt"),
    (AccessToken, "at"),
    (User, "u"),
    (OAuthAuthorization, "au"),
    (Organization, "o"),
    (SSOSession, "s"),
    (User, "i"),
)


@functools.cache
def _refresh_sql() -> str:
    t = {
        "rt": RefreshToken._meta.db_table,
        "at": AccessToken._meta.db_table,
        "u": User._meta.db_table,
        "au": OAuthAuthorization._meta.db_table,
        "o": Organization._meta.db_table,
        "s": SSOSession._meta.db_table,
    }
    select = ", ".join(rows.columns(model, alias) for model, alias in _REFRESH_PARTS)
    # As DOT: of the rows sharing a checksum, the unrevoked one, else the latest revoked.
    return (
        f"SELECT {select} FROM {t['rt']} rt "  # noqa: S608 (model metadata)
        f"LEFT JOIN {t['at']} at ON at.id = rt.access_token_id "
        f"LEFT JOIN {t['u']} u ON u.id = rt.user_id "
        f"LEFT JOIN {t['au']} au ON au.refresh_family = rt.token_family AND au.revoked_at IS NULL "
        f"LEFT JOIN {t['o']} o ON o.id = au.organization_id "
        f"LEFT JOIN {t['s']} s ON s.id = au.sso_session_id "
        f"LEFT JOIN {t['u']} i ON i.id = au.impersonator_id "
        "WHERE rt.token_checksum = %s ORDER BY rt.revoked DESC NULLS FIRST LIMIT 1"
    )


def refresh_lookup(raw: str) -> tuple[RefreshToken, OAuthAuthorization | None] | None:
    """The refresh token presented as ``raw`` (related rows filled in), and the live
    authorization of its family (None: none, or revoked)."""
    found = rows.fetch(_refresh_sql(), [oauth_claims.token_checksum(raw)])
    if not found:
        return None
    row = found[0]
    parts: list[Any] = []
    start = 0
    for model, _alias in _REFRESH_PARTS:
        parts.append(rows.instance(model, row, start))
        start += rows.width(model)
    rt, at, user, authorization, org, session, impersonator = parts
    assert isinstance(rt, RefreshToken)
    rt.access_token = at if isinstance(at, AccessToken) else None
    rt.user = user if isinstance(user, User) else None
    if isinstance(authorization, OAuthAuthorization):
        assert isinstance(org, Organization)
        authorization.organization = org
        authorization.sso_session = session if isinstance(session, SSOSession) else None
        authorization.impersonator = impersonator if isinstance(impersonator, User) else None
        if isinstance(user, User) and authorization.user_id == user.pk:
            authorization.user = user
        return rt, authorization
    return rt, None


@functools.cache
def _grant_sql() -> str:
    return (
        f"SELECT {rows.columns(Grant, 'g')}, {rows.columns(User, 'u')} "  # noqa: S608 (model metadata)
        f"FROM {Grant._meta.db_table} g LEFT JOIN {User._meta.db_table} u ON u.id = g.user_id "
        "WHERE g.code = %s ORDER BY g.id LIMIT 1"
    )


def grant_by_code(code: str) -> Grant | None:
    """DOT's Grant row of an authorization code, with its user: one plain statement."""
    found = rows.fetch(_grant_sql(), [code])
    if not found:
        return None
    grant = rows.instance(Grant, found[0], 0)
    assert grant is not None
    user = rows.instance(User, found[0], rows.width(Grant))
    if user is not None:
        grant.user = user
    return grant


@functools.cache
def _code_claim_sql() -> str:
    table = OAuthAuthorization._meta.db_table
    return (
        f"WITH c AS (UPDATE {table} SET code_used_at = %s "  # noqa: S608 (model metadata)
        "WHERE code_checksum = %s AND application_id = %s AND code_used_at IS NULL RETURNING *) "
        f"SELECT {rows.columns(OAuthAuthorization, 'c')}, {rows.columns(Organization, 'o')}, "
        f"{rows.columns(SSOSession, 's')} FROM c "
        f"JOIN {Organization._meta.db_table} o ON o.id = c.organization_id "
        f"LEFT JOIN {SSOSession._meta.db_table} s ON s.id = c.sso_session_id"
    )


def code_claim(checksum: str, client: Application) -> OAuthAuthorization | None:
    """Claim the authorization of a code at its first presentation (one conditional UPDATE:
    of two concurrent exchanges exactly one gets it) and read it with its organization and
    SSO session: one statement on PostgreSQL. None when nothing was claimed (unknown, another
    client's, or used already)."""
    now = timezone.now()
    if connection.vendor != "postgresql":
        claimed = OAuthAuthorization.objects.filter(
            code_checksum=checksum, application=client, code_used_at__isnull=True
        ).update(code_used_at=now)
        if not claimed:
            return None
        return (
            OAuthAuthorization.objects.select_related("organization", "sso_session", "application")
            .filter(code_checksum=checksum, application=client)
            .first()
        )
    used_at = rows.param(OAuthAuthorization, "code_used_at", now)
    found = rows.fetch(_code_claim_sql(), [used_at, checksum, client.pk])
    if not found:
        return None
    row = found[0]
    authorization = rows.instance(OAuthAuthorization, row, 0)
    assert authorization is not None
    start = rows.width(OAuthAuthorization)
    organization = rows.instance(Organization, row, start)
    assert organization is not None
    authorization.organization = organization
    authorization.sso_session = rows.instance(SSOSession, row, start + rows.width(Organization))
    authorization.application = client
    return authorization


def refresh_token_retire(rt: RefreshToken) -> bool:
    """Retire ``rt`` for its successor: revoked now and unpaired, its access token deleted.
    False when a concurrent rotation (or a revocation) got it first."""
    now = timezone.now()
    refresh, access = RefreshToken._meta.db_table, AccessToken._meta.db_table
    authorization = OAuthAuthorization._meta.db_table
    stamps = [rows.param(RefreshToken, "revoked", now), rows.param(RefreshToken, "updated", now), rt.pk]
    if connection.vendor == "postgresql" and rt.access_token_id is not None:
        # One statement: the claim (its row lock; a concurrent rotation waits, then finds it
        # revoked and claims nothing), and only if it claimed, the access token goes. The
        # foreign keys are checked at commit (deferred).
        claimed_rows = rows.fetch(
            f"WITH claimed AS (UPDATE {refresh} SET revoked = %s, updated = %s, access_token_id = NULL "  # noqa: S608
            "WHERE id = %s AND revoked IS NULL RETURNING id), "
            f"unpointed AS (UPDATE {authorization} SET first_access_token_id = NULL "
            "WHERE first_access_token_id = %s AND EXISTS (SELECT 1 FROM claimed)), "
            f"gone AS (DELETE FROM {access} WHERE id = %s AND EXISTS (SELECT 1 FROM claimed)) "
            "SELECT count(*) FROM claimed",
            [*stamps, rt.access_token_id, rt.access_token_id],
        )
        if not claimed_rows or not claimed_rows[0][0]:
            return False
        rt.revoked = now
        rt.access_token_id = None
        return True
    claimed = rows.execute(
        f"UPDATE {refresh} SET revoked = %s, updated = %s, access_token_id = NULL "  # noqa: S608
        "WHERE id = %s AND revoked IS NULL",
        stamps,
    )
    if not claimed:
        return False
    if rt.access_token_id is not None:
        rows.execute(
            f"UPDATE {authorization} SET first_access_token_id = NULL WHERE first_access_token_id = %s",  # noqa: S608
            [rt.access_token_id],
        )
        rows.execute(f"DELETE FROM {access} WHERE id = %s", [rt.access_token_id])  # noqa: S608
    rt.revoked = now
    rt.access_token_id = None
    return True
