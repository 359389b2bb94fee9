"""Email: the outbox, an organization's branding, and its own email templates."""

from __future__ import annotations

import uuid

from django.db import models

from organizations.models import Organization


class OutboxMessage(models.Model):
    """An email waiting to be sent, written in the same transaction as the event behind it.

    A thin Celery task delivers it after commit; celery beat re-queues rows left pending
    (Redis or SMTP down), workers claim rows with ``SKIP LOCKED``, and each message keeps one
    ``Message-ID`` across retries so a receiver can recognise a repeat.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    # The organization whose branding and email templates render it (None: the tenant's).
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    locale = models.CharField(max_length=16, default="en")
    kind = models.CharField(max_length=64)
    template = models.CharField(max_length=100)
    to_email = models.EmailField()
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "identity_outboxmessage"  # tables keep the names they had under identity
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_due_idx")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to_email} ({self.status})"


def validate_https_url(value: str) -> None:
    from django.core.validators import URLValidator

    if not value:
        return
    URLValidator(schemes=["https"], message="Enter an https:// address.")(value)


class OrganizationBranding(models.Model):
    """What an organization's emails show of it: display name, support address and logo.
    Empty fields inherit from the nearest ancestor that sets them."""

    organization = models.OneToOneField(
        Organization, primary_key=True, on_delete=models.CASCADE, related_name="branding"
    )
    display_name = models.CharField(max_length=120, blank=True)
    support_email = models.EmailField(blank=True)
    logo_url = models.URLField(max_length=500, blank=True, validators=[validate_https_url])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "identity_organizationbranding"
        verbose_name_plural = "organization brandings"

    def __str__(self) -> str:
        return f"branding of {self.organization_id}"


class EmailTemplate(models.Model):
    """An organization's own wording of one email in one locale (a Django template string,
    rendered sandboxed by ``identity.notifications.emails``). A child organization without one falls back
    to its parent's, then to actas's default."""

    class Kind(models.TextChoices):
        IMPERSONATION_STARTED = "impersonation_started", "Impersonation started"
        EMAIL_OTP = "email_otp", "Email sign-in code"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    locale = models.CharField(max_length=16, default="en")
    subject = models.CharField(max_length=300)
    html_body = models.TextField()
    text_body = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "identity_emailtemplate"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind", "locale"], name="email_template_unique_org_kind_locale"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}/{self.locale} of {self.organization_id}"
