"""Impersonation sessions and the subject tokens that start them (DESIGN §3, §4, §5)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from identity.models import Application, SSOSession, User
from organizations.models import Organization


class ImpersonationSession(models.Model):
    """One impersonator acting as one subject in one organization, for a bounded time.

    It binds the impersonator's SSO session: while it lasts, every sign-in in that browser is
    for the subject, with ``act``. Ending it revokes every token minted under it and ends the
    bound SSO session.
    """

    class Channel(models.TextChoices):
        TOKEN_EXCHANGE = "token-exchange", "Token exchange"
        CONSOLE = "console", "Console"

    class EndReason(models.TextChoices):
        ENDED = "ended", "Ended by the impersonator"
        ENDED_BY_SUBJECT = "ended-by-subject", "Ended by the impersonated user"
        FORCE_ENDED = "force-ended", "Ended by an administrator"
        EXPIRED = "expired", "Time limit reached"
        POLICY = "policy", "No longer allowed"
        SIGNED_OUT = "signed-out", "Signed out"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    impersonator = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    subject = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="+")
    sso_session = models.ForeignKey(SSOSession, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=32, choices=Channel.choices)
    reason = models.TextField(blank=True)
    read_only = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, choices=EndReason.choices, blank=True)
    ended_by_id = models.UUIDField(null=True, blank=True)

    class Meta:
        constraints = [
            # One subject per SSO session at a time.
            models.UniqueConstraint(
                fields=["sso_session"], condition=Q(ended_at__isnull=True), name="impersonation_once_per_sso"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "ended_at", "started_at"], name="impersonation_live_idx"),
            models.Index(fields=["subject", "started_at"], name="impersonation_subject_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.impersonator_id} as {self.subject_id}"


class SubjectToken(models.Model):
    """A subject token issued at /authorize: single use, through this row (its ``jti``).

    It carries what the impersonator confirmed (reason, read-only) into the exchange, the
    SSO session it was issued in, and for a public client the PKCE challenge of the request.
    """

    jti = models.CharField(max_length=64, primary_key=True)
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    impersonator = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    subject = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    sso_session = models.ForeignKey(SSOSession, on_delete=models.CASCADE, related_name="+")
    scope = models.TextField(blank=True)
    reason = models.TextField(blank=True)
    read_only = models.BooleanField(default=False)
    code_challenge = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"subject token {self.jti}"
