"""Authenticators: the options a login-flow step offers.

- ``BasicAuthenticator``: username and password.
- ``SharedUserIdentifierExecutor``: the identifier only, looked up in the accessing
  organization among its residents and the users shared into it, so a shared user signs in
  with their resident profile. It always moves on, whether or not the user exists.
- ``email-otp``: a one-time code sent by email to a user identified by an earlier step.

Every failure answers with one generic message, whether or not the user exists; password
and code guesses are budgeted per user and per client address; refusals are audited in their
own transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from identity import context
from identity.backends import TenantUserBackend
from identity.models import EmailOTPChallenge, User, UserAssociation
from identity.services.audit import audit_refusal
from identity.services.outbox import outbox_enqueue
from organizations.models import Organization

log = logging.getLogger(__name__)

GENERIC_FAILURE = "The username or password is incorrect."
THROTTLED = "Too many failed sign-in attempts. Wait a few minutes and try again."
CODE_FAILURE = "That code is not right, or it has expired. Ask for a new one."
OTP_TTL = dt.timedelta(minutes=10)
OTP_MAX_ATTEMPTS = 5


@dataclass
class FlowProgress:
    """What the login flow knows so far (kept in the browser session between steps)."""

    user_id: str | None = None
    identifier: str = ""  # what was typed at an identifier step, for the next steps
    otp_id: str = ""
    amr: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StepResult:
    done: bool
    error: str = ""
    notice: str = ""


class FailureBudget:
    """Sign-in failures allowed per key in a window, counted in the shared cache.

    An attempt *reserves* one unit before the secret is checked and gives it back only when
    it was right, so a burst of concurrent guesses cannot all slip through between a check
    and an increment. (django-ratelimit, tried first, checks and counts in two separate steps
    and cannot give a unit back.) With no reachable cache the budget fails closed.
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


def _budgets(org: Organization, username: str) -> tuple[FailureBudget, FailureBudget]:
    return (
        FailureBudget("user", f"{org.tenant_id}:{username}", settings.ACTAS_LOGIN_MAX_FAILURES_PER_USER),
        FailureBudget("ip", context.current().ip or "", settings.ACTAS_LOGIN_MAX_FAILURES_PER_IP),
    )


def _reserve(org: Organization, username: str) -> tuple[tuple[FailureBudget, ...] | None, str]:
    """Reserve a unit of each budget; return (budgets, "") or (None, error)."""
    budgets = _budgets(org, username)
    try:
        counts = [b.reserve() for b in budgets]
    except Exception:  # the cache is down: refuse rather than allow unlimited guessing
        log.exception("sign-in failure budget unavailable")
        return None, THROTTLED
    pairs = list(zip(counts, budgets, strict=True))
    if any(count > budget.limit for count, budget in pairs):
        # Record the first refusal of a window, not every one of a flood.
        if any(count == budget.limit + 1 for count, budget in pairs):
            audit_refusal(
                org=org, action="login-throttled", actor=None, target_type="username", target_id=username
            )
        return None, THROTTLED
    return budgets, ""


def _member(org: Organization, username: str) -> User | None:
    """A resident of ``org`` with this username, else the one user shared into it under it."""
    resident = User.objects.filter(organization=org, username=username).first()
    if resident is not None:
        return resident
    shared = list(
        User.objects.filter(
            pk__in=UserAssociation.objects.filter(organization=org).values("user"), username=username
        )[:2]
    )
    return shared[0] if len(shared) == 1 else None


class Authenticator:
    name: ClassVar[str]
    amr: ClassVar[str]
    label: ClassVar[str]
    identifies: ClassVar[bool] = False  # may run before the user is known

    def form(self, progress: FlowProgress, data: Any = None) -> forms.Form:
        raise NotImplementedError

    def handle(
        self, request: HttpRequest, *, org: Organization, progress: FlowProgress, data: Any
    ) -> StepResult:
        raise NotImplementedError


class _PasswordForm(forms.Form):
    username = forms.CharField(
        max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True})
    )
    password = forms.CharField(
        max_length=4096, strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class _IdentifierForm(forms.Form):
    username = forms.CharField(
        max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True})
    )


class _CodeForm(forms.Form):
    code = forms.CharField(
        max_length=12,
        required=False,
        label="Code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class BasicAuthenticator(Authenticator):
    name = "BasicAuthenticator"
    amr = "pwd"
    label = "Username and password"
    identifies = True

    def form(self, progress: FlowProgress, data: Any = None) -> forms.Form:
        form = _PasswordForm(data, initial={"username": progress.identifier})
        if progress.identifier:
            # The user was identified by an earlier step: ask only for the password.
            form.fields["username"].widget = forms.HiddenInput()
            form.fields["username"].required = False
            form.fields["password"].widget.attrs["autofocus"] = True
        return form

    def handle(
        self, request: HttpRequest, *, org: Organization, progress: FlowProgress, data: Any
    ) -> StepResult:
        form = self.form(progress, data)
        if not form.is_valid():
            return StepResult(False, GENERIC_FAILURE)
        username = (progress.identifier or form.cleaned_data["username"]).strip().lower()[:150]
        budgets, error = _reserve(org, username)
        if budgets is None:
            return StepResult(False, error)
        password = form.cleaned_data["password"]
        user: User | None
        if progress.identifier:
            known = User.objects.filter(pk=progress.user_id).first() if progress.user_id else None
            user = known if known and known.can_sign_in and known.check_password(password) else None
            if known is None:
                TenantUserBackend.hash_dummy(password)
        else:
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
            return StepResult(False, GENERIC_FAILURE)
        for budget in budgets:
            budget.release()
        progress.user_id = str(user.pk)
        progress.identifier = user.username
        return StepResult(True)


class SharedUserIdentifierExecutor(Authenticator):
    name = "SharedUserIdentifierExecutor"
    amr = "user"
    label = "Username"
    identifies = True

    def form(self, progress: FlowProgress, data: Any = None) -> forms.Form:
        return _IdentifierForm(data, initial={"username": progress.identifier})

    def handle(
        self, request: HttpRequest, *, org: Organization, progress: FlowProgress, data: Any
    ) -> StepResult:
        form = self.form(progress, data)
        if not form.is_valid():
            return StepResult(False, "Enter your username.")
        username = form.cleaned_data["username"].strip().lower()[:150]
        user = _member(org, username)
        # Move on either way: whether the user exists is revealed by no step.
        progress.identifier = username
        progress.user_id = str(user.pk) if user is not None and user.can_sign_in else None
        return StepResult(True)


def _code_hash(challenge_id: str, code: str) -> str:
    key = str(getattr(settings, "ACTAS_CLIENT_SECRET_KEY", "") or settings.SECRET_KEY).encode()
    return hmac.new(key, f"email-otp:{challenge_id}:{code}".encode(), hashlib.sha256).hexdigest()


class EmailOTPAuthenticator(Authenticator):
    name = "email-otp"
    amr = "otp"
    label = "A code sent by email"

    def form(self, progress: FlowProgress, data: Any = None) -> forms.Form:
        return _CodeForm(data)

    def _send(self, *, org: Organization, progress: FlowProgress) -> StepResult:
        notice = "If this account has an email address, a code is on its way. It expires in 10 minutes."
        # Codes per user (known or not, so the limit reveals nothing) and per address.
        sends = (
            FailureBudget(
                "otp-send", f"{org.tenant_id}:{progress.identifier}", settings.ACTAS_EMAIL_OTP_MAX_SENDS
            ),
            FailureBudget("otp-send-ip", context.current().ip or "", settings.ACTAS_EMAIL_OTP_MAX_SENDS * 4),
        )
        try:
            counts = [b.reserve() for b in sends]
        except Exception:
            log.exception("email code budget unavailable")
            return StepResult(False, THROTTLED)
        if any(count > budget.limit for count, budget in zip(counts, sends, strict=True)):
            return StepResult(False, "Too many codes were requested. Wait a few minutes and try again.")
        user = User.objects.filter(pk=progress.user_id).first() if progress.user_id else None
        if user is None or not user.email or not user.can_sign_in:
            progress.otp_id = str(uuid.uuid4())  # nothing was sent; every code will fail
            return StepResult(False, notice=notice)
        code = f"{secrets.randbelow(10**6):06d}"
        with transaction.atomic():
            # A new code replaces the earlier ones.
            EmailOTPChallenge.objects.filter(user=user, used_at__isnull=True).update(used_at=timezone.now())
            challenge = EmailOTPChallenge.objects.create(
                user=user, code_hash="", expires_at=timezone.now() + OTP_TTL
            )
            challenge.code_hash = _code_hash(str(challenge.pk), code)
            challenge.save(update_fields=["code_hash"])
            outbox_enqueue(
                tenant=org.tenant or org,
                organization=org,
                kind="email-otp",
                template="email_otp",
                to_email=user.email,
                context={
                    "code": code,
                    "minutes": int(OTP_TTL.total_seconds() // 60),
                    "org_name": org.name,
                    "user_name": user.display_name,
                },
            )
        progress.otp_id = str(challenge.pk)
        return StepResult(False, notice=notice)

    def handle(
        self, request: HttpRequest, *, org: Organization, progress: FlowProgress, data: Any
    ) -> StepResult:
        if data.get("action") == "send" or not progress.otp_id:
            return self._send(org=org, progress=progress)
        form = self.form(progress, data)
        code = form.cleaned_data.get("code", "").strip() if form.is_valid() else ""
        budgets, error = _reserve(org, progress.identifier)
        if budgets is None:
            return StepResult(False, error)
        with transaction.atomic():
            challenge = (
                EmailOTPChallenge.objects.select_for_update()
                .filter(pk=progress.otp_id, user_id=progress.user_id, used_at__isnull=True)
                .first()
                if progress.user_id
                else None
            )
            ok = (
                challenge is not None
                and challenge.expires_at > timezone.now()
                and challenge.attempts < OTP_MAX_ATTEMPTS
                and constant_time_compare(challenge.code_hash, _code_hash(str(challenge.pk), code))
            )
            if challenge is not None:
                if ok:
                    challenge.used_at = timezone.now()
                else:
                    challenge.attempts += 1
                challenge.save(update_fields=["used_at", "attempts"])
        if not ok:
            audit_refusal(
                org=org,
                action="login-failure",
                actor=None,
                target_type="username",
                target_id=progress.identifier,
                data={"authenticator": self.name},
            )
            return StepResult(False, CODE_FAILURE)
        for budget in budgets:
            budget.release()
        return StepResult(True)


AUTHENTICATORS: dict[str, Authenticator] = {
    a.name: a for a in (BasicAuthenticator(), SharedUserIdentifierExecutor(), EmailOTPAuthenticator())
}
