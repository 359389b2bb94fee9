"""Authenticators: the steps a login flow is made of.

Only ``BasicAuthenticator`` (username + password) exists yet; the login-flow engine that
chains several steps comes with the OAuth server. Failures are rate-limited per user and
per client IP, answer with one generic message whether or not the user exists, and are
audited in their own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage

from identity import context
from identity.backends import TenantUserBackend
from identity.models import AuditEvent, User
from identity.services.audit import audit_refusal
from organizations.models import Organization

GENERIC_FAILURE = "The username or password is incorrect."
THROTTLED = "Too many failed sign-in attempts. Wait a few minutes and try again."


@dataclass(frozen=True)
class AuthOutcome:
    user: User | None
    error: str = ""


def _rate(limit: int) -> str:
    return f"{limit}/{settings.ACTAS_LOGIN_FAILURE_WINDOW}s"


class BasicAuthenticator:
    name = "BasicAuthenticator"
    amr = "pwd"

    def _limited(self, request: HttpRequest, *, org: Organization, username: str, increment: bool) -> bool:
        """With ``increment`` count one more failure; either way say whether the user or the
        address has reached its failure budget for the window."""
        ip = context.current().ip or request.META.get("REMOTE_ADDR", "")
        checks = (
            ("login-user", f"{org.tenant_id}:{username}", settings.ACTAS_LOGIN_MAX_FAILURES_PER_USER),
            ("login-ip", ip, settings.ACTAS_LOGIN_MAX_FAILURES_PER_IP),
        )
        limited = False
        for group, value, limit in checks:
            usage = get_usage(
                request,
                group=group,
                key=lambda _g, _r, v=value: v,
                rate=_rate(limit),
                increment=increment,
            )
            # A cache that cannot answer fails closed (django-ratelimit reports should_limit).
            if usage is None or usage["should_limit"] or usage["count"] >= limit:
                limited = True
        return limited

    def authenticate(
        self, request: HttpRequest, *, org: Organization, username: str, password: str
    ) -> AuthOutcome:
        username = (username or "").strip().lower()[:150]
        if self._limited(request, org=org, username=username, increment=False):
            audit_refusal(
                org=org,
                action="login-throttled",
                actor=None,
                target_type="username",
                target_id=username,
                outcome=AuditEvent.Outcome.FAILURE,
            )
            return AuthOutcome(None, THROTTLED)
        user = TenantUserBackend().authenticate(request, org=org, username=username, password=password)
        if user is None:
            self._limited(request, org=org, username=username, increment=True)
            audit_refusal(
                org=org,
                action="login-failure",
                actor=None,
                target_type="username",
                target_id=username,
                data={"authenticator": self.name},
            )
            return AuthOutcome(None, GENERIC_FAILURE)
        return AuthOutcome(user)
