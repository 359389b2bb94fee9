"""Sign-in state: the SSO session, email one-time codes, and the OAuth authorizations that
tie tokens to a session."""

from __future__ import annotations

import uuid

from django.db import models

from identity.models.applications import Application
from identity.models.users import User
from organizations.models import Organization


class SSOSession(models.Model):
    """The single sign-on session of one browser with one tenant.

    ``sid`` is opaque and survives Django session-key cycling; it (never the cookie) is the
    ``sid``/``isk`` of ID tokens. ``amr`` lists the authenticators that have completed.
    """

    id = models.BigAutoField(primary_key=True)
    sid = models.CharField(max_length=64, unique=True)
    tenant = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    # The organization signed in to (the accessing organization for a shared user).
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sso_sessions")
    amr = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    auth_time = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "ended_at"], name="sso_user_live_idx")]

    def __str__(self) -> str:
        return f"SSO session {self.pk} of {self.user_id}"


class EmailOTPChallenge(models.Model):
    """A one-time sign-in code sent by email: stored as a keyed hash, expiring, single use,
    with a bounded number of attempts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"email OTP for {self.user_id}"


class OAuthAuthorization(models.Model):
    """One sign-in's authorization of an application in an organization.

    Every authorization code, access token and refresh token derived from it is minted with
    its context: the organization (``org_id``), the SSO session (``sid``), the user. A code is
    stored by checksum only, marked used on its single exchange, so a replay is recognised and
    revokes what the code produced (RFC 6749 §4.1.2). Refresh tokens of the authorization share
    one DOT token family.
    """

    id = models.BigAutoField(primary_key=True)
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    sso_session = models.ForeignKey(
        SSOSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="authorizations"
    )
    scope = models.TextField(blank=True)
    code_checksum = models.CharField(max_length=64, unique=True, null=True, blank=True)
    code_used_at = models.DateTimeField(null=True, blank=True)
    refresh_family = models.UUIDField(unique=True, null=True, blank=True)
    first_access_token = models.ForeignKey(
        "oauth2_provider.AccessToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Under impersonation: who acts (the ``act.sub`` of every token) and the impersonation
    # session (``impersonation_id``); the impersonation app owns the sessions themselves.
    impersonator = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    impersonation_id = models.UUIDField(null=True, blank=True, db_index=True)
    read_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"authorization {self.pk} of {self.application_id}"

    @property
    def act_claims(self) -> dict[str, object]:
        """The claims every token of an impersonated authorization carries."""
        if self.impersonator_id is None or self.impersonation_id is None:
            return {}
        return {"act": {"sub": str(self.impersonator_id)}, "impersonation_id": str(self.impersonation_id)}


class OAuthConsent(models.Model):
    """A user's remembered consent: the scopes they allowed an application in an organization.

    The consent screen is skipped while a request asks for no scope beyond these (and not for
    ``prompt=consent``), so silent renewal (``prompt=none``) works. The user sees and revokes
    their consents in My Account → Applications; revoking also revokes the application's tokens.
    """

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    scope = models.TextField(blank=True)  # space-separated, sorted
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "application", "organization"], name="oauth_consent_once")
        ]

    def __str__(self) -> str:
        return f"consent of user {self.user_id} to application {self.application_id}"

    @property
    def scopes(self) -> list[str]:
        return self.scope.split()
