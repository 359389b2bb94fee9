"""API resources, their scopes, and the scope names with a fixed meaning."""

from __future__ import annotations

import uuid

from django.db import models

from organizations.models import Organization

# The scopes that let a user impersonate others. They are granted only through application
# roles (an organization-wide role never carries them).
IMPERSONATE_SCOPE = "internal_user_impersonate"
ORG_IMPERSONATE_SCOPE = "internal_org_user_impersonate"
IMPERSONATION_SCOPES = frozenset({IMPERSONATE_SCOPE, ORG_IMPERSONATE_SCOPE})
# Scopes anyone who may use an application gets when asking (DESIGN §3); every other scope
# is granted only through roles.
OIDC_SCOPES = frozenset({"openid", "profile", "email"})
LOGIN_SCOPE = "internal_login"
OPEN_SCOPES = OIDC_SCOPES | {LOGIN_SCOPE}


class APIResource(models.Model):
    class Type(models.TextChoices):
        TENANT = "tenant", "Tenant"
        ORGANIZATION = "organization", "Organization"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="api_resources")
    identifier = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.TENANT)
    is_system = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "identifier"], name="api_resource_identifier"),
        ]

    def __str__(self) -> str:
        return self.name


class Scope(models.Model):
    """A permission. ``read_only`` scopes are the ones a read-only impersonation keeps."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Scope names travel bare in tokens, so they are unique in the whole tenant.
    tenant = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    resource = models.ForeignKey(APIResource, on_delete=models.CASCADE, related_name="scopes")
    name = models.CharField(max_length=150)
    display_name = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    read_only = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="scope_name_in_tenant")]

    def __str__(self) -> str:
        return self.name
