"""Extension points of identity's core, filled through settings so ``identity`` never
imports the apps that plug in (``impersonation``): the OAuth server (``identity.oauth``) asks
them who a sign-in is for and whether tokens may be minted, and identity's services ask them to
re-check impersonations when roles, sharing or API authorizations change.

* ``ACTAS_OAUTH_PRINCIPAL_RESOLVER``: who a sign-in at /authorize is for. By default the
  SSO session's user; an impersonation bound to the session makes it the impersonated user,
  with ``act``.
* ``ACTAS_OAUTH_MINT_GUARD``: called before any token is minted from an impersonated
  authorization (code exchange, refresh); returns the seconds the tokens may live or refuses.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from identity.models import Application, OAuthAuthorization, SSOSession, User
from organizations.models import Organization


@dataclass(frozen=True)
class Principal:
    """Who tokens are minted for, and who acts when that is someone else."""

    user: User
    impersonator: User | None = None
    impersonation_id: uuid.UUID | None = None
    read_only: bool = False
    # Seconds the tokens may live at most (an impersonation's end).
    expires_cap: int | None = None

    @property
    def act_claims(self) -> dict[str, Any]:
        if self.impersonator is None or self.impersonation_id is None:
            return {}
        return {"act": {"sub": str(self.impersonator.pk)}, "impersonation_id": str(self.impersonation_id)}


class PrincipalRefused(Exception):
    """This sign-in may not go on; ``message`` is shown to the person signing in."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MintRefused(Exception):
    """No token may be minted from this authorization any more."""


def _default_resolver(*, session: SSOSession, application: Application, org: Organization) -> Principal:
    return Principal(user=session.user)


def _default_guard(*, authorization: OAuthAuthorization, application: Application) -> int | None:
    raise MintRefused("impersonated authorizations need ACTAS_OAUTH_MINT_GUARD")


@functools.cache
def _hook(setting: str, default: Callable[..., Any]) -> Callable[..., Any]:
    path = getattr(settings, setting, "")
    return import_string(path) if path else default


def resolve_principal(*, session: SSOSession, application: Application, org: Organization) -> Principal:
    resolver = _hook("ACTAS_OAUTH_PRINCIPAL_RESOLVER", _default_resolver)
    principal: Principal = resolver(session=session, application=application, org=org)
    return principal


def mint_guard(*, authorization: OAuthAuthorization, application: Application) -> int | None:
    """None for an ordinary authorization; the seconds left for an impersonated one."""
    if authorization.impersonation_id is None:
        return None
    guard = _hook("ACTAS_OAUTH_MINT_GUARD", _default_guard)
    cap: int | None = guard(authorization=authorization, application=application)
    return cap


def _no_impersonation(*, session: SSOSession) -> Principal | None:
    return None


def session_impersonation(*, session: SSOSession | None) -> Principal | None:
    """The live impersonation bound to ``session`` (who acts as whom), without re-checking it;
    None when the browser is not impersonating (``ACTAS_SSO_IMPERSONATION``)."""
    if session is None:
        return None
    lookup = _hook("ACTAS_SSO_IMPERSONATION", _no_impersonation)
    found: Principal | None = lookup(session=session)
    return found


def _no_live_until(*, impersonation_id: uuid.UUID) -> dt.datetime | None:
    return None


def impersonation_live_until(impersonation_id: object) -> dt.datetime | None:
    """When the impersonation named in a token ends, or None if it has ended already (or is
    unknown): tokens minted under it are good only while it lives (``ACTAS_IMPERSONATION_LIVE_UNTIL``)."""
    try:
        pk = uuid.UUID(str(impersonation_id))
    except ValueError:
        return None
    lookup = _hook("ACTAS_IMPERSONATION_LIVE_UNTIL", _no_live_until)
    until: dt.datetime | None = lookup(impersonation_id=pk)
    return until


def _never_read_only(*, impersonation_id: uuid.UUID) -> bool:
    return False


def impersonation_read_only(impersonation_id: object) -> bool:
    """Whether the impersonation named in a token was started read-only: its tokens may not
    write through actas's own APIs (``ACTAS_IMPERSONATION_READ_ONLY``). An id that is not a
    UUID is not an impersonation this server knows, so nothing is read-only about it (such a
    token never gets this far: ``impersonation_live_until`` refuses it first)."""
    try:
        pk = uuid.UUID(str(impersonation_id))
    except ValueError:
        return False
    lookup = _hook("ACTAS_IMPERSONATION_READ_ONLY", _never_read_only)
    return bool(lookup(impersonation_id=pk))


def _no_revalidate(**kwargs: Any) -> int:
    return 0


def impersonations_revalidate(
    *,
    actor: User | None,
    tenant_id: uuid.UUID,
    user_ids: tuple[object, ...] = (),
    org: Organization | None = None,
    application_id: int | None = None,
    everyone: bool = False,
) -> int:
    """Called by the services whose changes can take away a live impersonation's grounds
    (an account disabled, locked or protected; a role assigned, unassigned or changed; an
    organization disabled; an application's impersonation settings or sharing changed), in
    the change's transaction: every such impersonation that has lost them ends at once
    (``ACTAS_IMPERSONATION_REVALIDATE``). Returns how many ended."""
    revalidate = _hook("ACTAS_IMPERSONATION_REVALIDATE", _no_revalidate)
    ended: int = revalidate(
        actor=actor,
        tenant_id=tenant_id,
        user_ids=user_ids,
        org=org,
        application_id=application_id,
        everyone=everyone,
    )
    return ended
