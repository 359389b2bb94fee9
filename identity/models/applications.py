"""Applications (the swapped django-oauth-toolkit model: an application allows several grant
types, which DOT's single ``authorization_grant_type`` column cannot express), where they are
shared, the APIs they may call, and their login flows."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q
from oauth2_provider.models import AbstractApplication

from identity.models.resources import APIResource, Scope
from organizations.models import Organization


class Application(AbstractApplication):
    """An OAuth 2.0 / OIDC client (django-oauth-toolkit's swapped Application model)."""

    class SharedAccess(models.TextChoices):
        NONE = "none", "Not shared"
        ALL = "all", "All organizations, current and future"
        SELECTED = "selected", "Selected organizations"

    class SystemKey(models.TextChoices):
        NONE = "", "Business application"
        CONSOLE = "console", "Console"
        MYACCOUNT = "myaccount", "My Account"

    GRANT_AUTHORIZATION_CODE_TYPE = "authorization_code"
    GRANT_REFRESH_TOKEN_TYPE = "refresh_token"  # noqa: S105 (a grant name)
    GRANT_CLIENT_CREDENTIALS_TYPE = "client_credentials"
    GRANT_TOKEN_EXCHANGE_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
    GRANT_ORGANIZATION_SWITCH_TYPE = "organization_switch"
    GRANT_TYPE_CHOICES = (
        (GRANT_AUTHORIZATION_CODE_TYPE, "Authorization code"),
        (GRANT_REFRESH_TOKEN_TYPE, "Refresh token"),
        (GRANT_CLIENT_CREDENTIALS_TYPE, "Client credentials"),
        (GRANT_TOKEN_EXCHANGE_TYPE, "Token exchange"),
        (GRANT_ORGANIZATION_SWITCH_TYPE, "Organization switch"),
    )
    # DOT's names for the grants it asks about, mapped to the OAuth grant_type values we store.
    _DOT_GRANT_NAMES: ClassVar[dict[str, str]] = {
        AbstractApplication.GRANT_AUTHORIZATION_CODE: GRANT_AUTHORIZATION_CODE_TYPE,
        AbstractApplication.GRANT_CLIENT_CREDENTIALS: GRANT_CLIENT_CREDENTIALS_TYPE,
        AbstractApplication.GRANT_OPENID_HYBRID: "openid-hybrid",
        AbstractApplication.GRANT_IMPLICIT: "implicit",
        AbstractApplication.GRANT_PASSWORD: "password",
    }

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="applications")
    description = models.TextField(blank=True)
    system_key = models.CharField(
        max_length=16, choices=SystemKey.choices, default=SystemKey.NONE, blank=True
    )
    grant_types = models.JSONField(default=list, blank=True)
    pkce_required = models.BooleanField(default=True)
    subject_token_enabled = models.BooleanField(default=False)
    subject_token_expiry = models.PositiveIntegerField(default=180)
    access_token_lifetime = models.PositiveIntegerField(default=3600)
    refresh_token_lifetime = models.PositiveIntegerField(default=86400)
    id_token_lifetime = models.PositiveIntegerField(default=3600)
    discoverable = models.BooleanField(default=False)
    access_url = models.URLField(blank=True)
    skip_login_consent = models.BooleanField(default=False)
    skip_logout_consent = models.BooleanField(default=False)
    shared_access = models.CharField(max_length=16, choices=SharedAccess.choices, default=SharedAccess.NONE)

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "system_key"],
                condition=~Q(system_key=""),
                name="application_system_key_once",
            ),
            models.UniqueConstraint(fields=["organization", "name"], name="application_name_in_org"),
        ]

    @property
    def is_system(self) -> bool:
        return bool(self.system_key)

    def allows_grant_type(self, *grant_types: str) -> bool:
        allowed = set(self.grant_types or [])
        return any(self._DOT_GRANT_NAMES.get(g, g) in allowed for g in grant_types)


class ApplicationShare(models.Model):
    """An application shared with one selected organization (``shared_access=selected``)."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="shares")
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="shared_applications"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["application", "organization"], name="share_once"),
        ]

    def __str__(self) -> str:
        return f"{self.application_id} shared with {self.organization_id}"


class ApplicationAPIAuthorization(models.Model):
    """Which scopes of an API resource an application may request."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="api_authorizations")
    resource = models.ForeignKey(APIResource, on_delete=models.PROTECT, related_name="+")
    scopes = models.ManyToManyField(Scope, related_name="+", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["application", "resource"], name="authorization_once"),
        ]

    def __str__(self) -> str:
        return f"{self.application_id} may use {self.resource_id}"


class LoginFlow(models.Model):
    """Ordered steps; each step is a list of alternative authenticator names.

    One per (application, organization): a child organization may set its own flow for a
    shared application or its Console; otherwise the owner's flow applies.
    """

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="login_flows")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="login_flows")
    steps = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["application", "organization"], name="login_flow_once"),
        ]

    def __str__(self) -> str:
        return f"login flow of {self.application_id} in {self.organization_id}"
