"""Authenticators: the options a login-flow step offers.

- ``BasicAuthenticator``: username and password.
- ``SharedUserIdentifierExecutor``: the identifier only, looked up in the accessing
  organization among its residents and the users shared into it, so a shared user signs in
  with their resident profile. It always moves on, whether or not the user exists.
- ``email-otp``: a one-time code sent by email to a user identified by an earlier step.

Every failure answers with one generic message, whether or not the user exists; refusals
are audited in their own transaction.

Password and code guesses are counted in the shared cache (Redis in production), per
*account* — the resolved user's id, or for a username that names nobody a stand-in derived
from the organization and the username, which every budget treats exactly like an account:

- per account and client address (``ACTAS_LOGIN_MAX_FAILURES_PER_USER``, 5): past it, that
  address is refused for that account until the window (``ACTAS_LOGIN_FAILURE_WINDOW``,
  15 minutes from the first failure) ends; other addresses are not affected, so a stranger
  cannot lock anyone out;
- per client address (``ACTAS_LOGIN_MAX_FAILURES_PER_IP``, 30; an IPv6 /64 counts as one
  address): past it, the address is refused for every account;
- per account, from all addresses together: past ``ACTAS_LOGIN_ACCOUNT_DELAY_AFTER`` (10)
  failures in the window, an address that has already failed for the account gets one attempt
  on it, then the next one must wait 1 s, 2 s, 4 s … up to ``ACTAS_LOGIN_ACCOUNT_DELAY_MAX``
  (60 s), for the whole account. Attempts that arrive sooner are refused with the seconds
  left, before any password is checked. An address with no failure for the account is never
  held back, so guessing from many addresses slows down while the owner, from an address that
  has not failed, signs in.

A success gives its units back. Nothing sleeps: a refused attempt costs one cache round trip.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import math
import secrets
import time
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
from identity.audit.services import audit_refusal
from identity.backends import TenantUserBackend
from identity.models import EmailOTPChallenge, User, UserAssociation
from identity.notifications.outbox import outbox_enqueue
from identity.ratelimit import address_bucket
from organizations.models import Organization

log = logging.getLogger(__name__)

GENERIC_FAILURE = "The username or password is incorrect."
THROTTLED = "Too many failed sign-in attempts. Wait a few minutes and try again."
SLOWED = "Too many failed sign-in attempts on this account. Wait {seconds} second{s} and try again."
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
    and cannot give a unit back.) The window is fixed from the counter's first unit: the
    counter is created with its time-to-live (``SET NX EX`` on Redis) and counted with
    ``INCR``, which keeps it. With no reachable cache the budget fails closed.
    """

    def __init__(self, scope: str, value: str, limit: int) -> None:
        digest = hashlib.sha256(value.encode()).hexdigest()[:32]
        self.key = f"actas:signin:{scope}:{digest}"
        self.limit = limit

    def reserve(self) -> int:
        window = settings.ACTAS_LOGIN_FAILURE_WINDOW
        cache.add(self.key, 0, timeout=window)
        try:
            count = int(cache.incr(self.key))
        except ValueError:  # expired between add and incr
            cache.set(self.key, 1, timeout=window)
            return 1
        if count == 1:
            # Either add() just made the counter (this renews the same time-to-live) or it
            # expired between incr()'s existence check and its INCR, which then made a
            # counter without one; a counter that never expires would refuse for ever.
            cache.touch(self.key, window)
        return count

    def release(self) -> None:
        try:
            left = int(cache.decr(self.key))
        except ValueError:  # expired meanwhile: nothing to give back
            return
        if left < 0:
            # It expired between decr()'s existence check and its DECR, which then made a
            # counter of -1 without a time-to-live: remove it.
            cache.delete(self.key)


def account_delay(failures: int) -> int:
    """Seconds an address that has failed for an account waits between attempts on it, once
    the account has ``failures`` failures in the window (this attempt included): none up to
    ``ACTAS_LOGIN_ACCOUNT_DELAY_AFTER``, then 1, 2, 4 … capped at ``ACTAS_LOGIN_ACCOUNT_DELAY_MAX``."""
    over = failures - settings.ACTAS_LOGIN_ACCOUNT_DELAY_AFTER
    if over <= 0:
        return 0
    return max(1, min(settings.ACTAS_LOGIN_ACCOUNT_DELAY_MAX, 2 ** min(over - 1, 16)))


class AccountGate:
    """The next moment an address that has failed for an account may try it again.

    One key per account that exists while attempts must wait: an attempt claims the gate by
    creating the key with the delay as its time-to-live (``SET NX EX`` on Redis, atomic), so
    of a concurrent burst exactly one attempt passes. The key holds the moment it opens, for
    the retry-after the refused ones are told."""

    def __init__(self, account: str) -> None:
        digest = hashlib.sha256(account.encode()).hexdigest()[:32]
        self.key = f"actas:signin:gate:{digest}"

    def claim(self, seconds: int) -> int:
        """Pass and close the gate for ``seconds``: 0; or, while it is closed, the seconds left."""
        if cache.add(self.key, time.time() + seconds, timeout=seconds):
            return 0
        opens = cache.get(self.key)
        return max(1, math.ceil(float(opens) - time.time())) if opens is not None else 1


@dataclass(frozen=True)
class Reservation:
    """The units one attempt holds; a right secret gives them back."""

    budgets: tuple[FailureBudget, ...]

    def release(self) -> None:
        for budget in self.budgets:
            budget.release()


def account_key(org: Organization, *, user_id: object | None, username: str) -> str:
    """What the budgets count per account: the user's id, or for a username that names nobody
    here a stand-in of the organization and the username, treated exactly the same way."""
    return f"user:{user_id}" if user_id else f"unknown:{org.pk}:{username}"


def _reserve(org: Organization, *, account: str, username: str) -> tuple[Reservation | None, str]:
    """Reserve one unit of each budget for an attempt on ``account`` from the request's
    address; return (reservation, "") or (None, the message to show)."""
    address = address_bucket(context.current().ip or "")
    pair = FailureBudget(
        "account-address", f"{account}|{address}", settings.ACTAS_LOGIN_MAX_FAILURES_PER_USER
    )
    per_address = FailureBudget("address", address, settings.ACTAS_LOGIN_MAX_FAILURES_PER_IP)
    whole = FailureBudget("account", account, settings.ACTAS_LOGIN_ACCOUNT_DELAY_AFTER)
    failures = retry_after = 0
    try:
        pair_count, address_count = pair.reserve(), per_address.reserve()
        spent = pair_count > pair.limit or address_count > per_address.limit
        if not spent:
            failures = whole.reserve()
            # An address with no failure for this account is never held back.
            wait = account_delay(failures) if pair_count > 1 else 0
            retry_after = AccountGate(account).claim(wait) if wait else 0
    except Exception:  # the cache is down: refuse rather than allow unlimited guessing
        log.exception("sign-in failure budget unavailable")
        return None, THROTTLED
    if spent:
        # Record the first refusal of a window, not every one of a flood.
        first = [
            name
            for name, count, budget in (
                ("account-address", pair_count, pair),
                ("address", address_count, per_address),
            )
            if count == budget.limit + 1
        ]
        if first:
            _audit(org, "login-throttled", username, {"budget": first[0]})
        return None, THROTTLED
    reservation = Reservation((pair, per_address, whole))
    if retry_after:
        reservation.release()  # refused before any check: not a failure
        return None, SLOWED.format(seconds=retry_after, s="" if retry_after == 1 else "s")
    if failures == whole.limit + 1:
        # The account-wide threshold is crossed (once a window): guessing from several
        # addresses; from now on the addresses that failed wait.
        _audit(org, "login-slowed", username, {"failures": failures})
    return reservation, ""


def _audit(org: Organization, action: str, username: str, data: dict[str, Any] | None = None) -> None:
    audit_refusal(
        org=org, action=action, actor=None, target_type="username", target_id=username, data=data or {}
    )


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
        known: User | None
        if progress.identifier:  # identified by an earlier step (None: nobody who may sign in)
            known = User.objects.filter(pk=progress.user_id).first() if progress.user_id else None
        else:
            known = User.objects.filter(organization=org, username=username).first()
        reservation, error = _reserve(
            org,
            account=account_key(org, user_id=known.pk if known else None, username=username),
            username=username,
        )
        if reservation is None:
            return StepResult(False, error)
        password = form.cleaned_data["password"]
        if known is None:
            # As long as checking a real password, so timing does not tell who exists.
            TenantUserBackend.hash_dummy(password)
        user = known if known is not None and known.check_password(password) and known.can_sign_in else None
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
        reservation.release()
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
        # Codes per account (known or not, so the limit reveals nothing) and per address.
        account = account_key(org, user_id=progress.user_id, username=progress.identifier)
        sends = (
            FailureBudget("otp-send", account, settings.ACTAS_EMAIL_OTP_MAX_SENDS),
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
        account = account_key(org, user_id=progress.user_id, username=progress.identifier)
        reservation, error = _reserve(org, account=account, username=progress.identifier)
        if reservation is None:
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
        reservation.release()
        return StepResult(True)


AUTHENTICATORS: dict[str, Authenticator] = {
    a.name: a for a in (BasicAuthenticator(), SharedUserIdentifierExecutor(), EmailOTPAuthenticator())
}
