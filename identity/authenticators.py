"""Authenticators: the steps a login flow is made of.

Only ``BasicAuthenticator`` (username + password) exists yet; the login-flow engine that
chains several steps comes with the OAuth server. Failures are budgeted per user and per
client address, answer with one generic message whether or not the user exists, and are
audited in their own transaction.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from identity import context
from identity.backends import TenantUserBackend
from identity.models import User
from identity.services.audit import audit_refusal
from organizations.models import Organization

log = logging.getLogger(__name__)

GENERIC_FAILURE = "The username or password is incorrect."
THROTTLED = "Too many failed sign-in attempts. Wait a few minutes and try again."


@dataclass(frozen=True)
class AuthOutcome:
    user: User | None
    error: str = ""


class FailureBudget:
    """Sign-in failures allowed per key in a window, counted in the shared cache.

    An attempt *reserves* one unit before the password is checked and gives it back only
    when the password was right, so a burst of concurrent guesses cannot all slip through
    between a check and an increment. (django-ratelimit, tried first, checks and counts in
    two separate steps and cannot give a unit back.) With no reachable cache the budget
    fails closed.
    """

    def __init__(self, scope: str, value: str, limit: int) -> None:
        digest = hashlib.sha256(value.encode()).hexdigest()[:32]
        self.key = f"actas:signin:{scope}:{digest}"
        self.limit = limit

    def reserve(self) -> int:
        window = settings.ACTAS_LOGIN_FAILURE_WINDOW
        cache.add(self.key, 0, timeout=window)
        try:
            return int(cache.incr(self.key))
        except ValueError:  # expired between add and incr
            cache.set(self.key, 1, timeout=window)
            return 1

    def release(self) -> None:
        try:
            cache.decr(self.key)
        except ValueError:
            pass


class BasicAuthenticator:
    name = "BasicAuthenticator"
    amr = "pwd"

    def authenticate(
        self, request: HttpRequest, *, org: Organization, username: str, password: str
    ) -> AuthOutcome:
        username = (username or "").strip().lower()[:150]
        ip = context.current().ip or ""
        budgets = (
            FailureBudget("user", f"{org.tenant_id}:{username}", settings.ACTAS_LOGIN_MAX_FAILURES_PER_USER),
            FailureBudget("ip", ip, settings.ACTAS_LOGIN_MAX_FAILURES_PER_IP),
        )
        try:
            counts = [b.reserve() for b in budgets]
        except Exception:  # the cache is down: refuse rather than allow unlimited guessing
            log.exception("sign-in failure budget unavailable")
            return AuthOutcome(None, THROTTLED)
        over = [count > budget.limit for count, budget in zip(counts, budgets, strict=True)]
        if any(over):
            # Record the first refusal of a window, not every one of a flood.
            if any(count == budget.limit + 1 for count, budget in zip(counts, budgets, strict=True)):
                audit_refusal(
                    org=org, action="login-throttled", actor=None, target_type="username", target_id=username
                )
            return AuthOutcome(None, THROTTLED)
        user = TenantUserBackend().authenticate(request, org=org, username=username, password=password)
        if user is None:
            audit_refusal(
                org=org,
                action="login-failure",
                actor=None,
                target_type="username",
                target_id=username,
                data={"authenticator": self.name},
            )
            return AuthOutcome(None, GENERIC_FAILURE)
        for budget in budgets:
            budget.release()
        return AuthOutcome(user)
