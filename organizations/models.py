"""The organization tree.

A root organization is a *tenant*: its handle names it in every URL (``/t/<handle>/``).
Child organizations hang below it (django-mptt). Nothing outside ``selectors.py`` and
``services.py`` of this app may call mptt's tree API, so a later move to another tree
implementation touches two files.
"""

from __future__ import annotations

import uuid

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from mptt.models import MPTTModel, TreeForeignKey

handle_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1-50 lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
)


NAME_MAX_LENGTH = 120


class Organization(MPTTModel):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    handle = models.CharField(max_length=50, validators=[handle_validator])
    parent = TreeForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    # The root of this organization's tree (itself for a root). Set once at creation; it is
    # what every tenant-scoped table and the per-tenant audit chain key on.
    tenant = models.ForeignKey("self", null=True, on_delete=models.PROTECT, related_name="+", editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class MPTTMeta:
        order_insertion_by = ["name"]

    class Meta:
        # Declared so that mptt's (tree_id, lft) index reaches the migrations
        # (django-mptt#682: the autodetector ignores indexes mptt adds at runtime).
        indexes: list[models.Index] = []
        constraints = [
            models.UniqueConstraint(
                fields=["handle"], condition=Q(parent__isnull=True), name="org_root_handle_unique"
            ),
            models.UniqueConstraint(fields=["tenant", "handle"], name="org_handle_unique_in_tenant"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_root(self) -> bool:
        return self.parent_id is None

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class OrganizationSettings(models.Model):
    """Per-organization settings. ``None`` means *inherit from the parent*.

    Effective values come from ``selectors.org_effective_settings``: the email toggle is the
    nearest value set on the way up (default on); "reason required" and the maximum
    impersonation length can only be tightened by a child, never loosened.
    """

    organization = models.OneToOneField(
        Organization, primary_key=True, on_delete=models.CASCADE, related_name="settings"
    )
    impersonation_email_enabled = models.BooleanField(null=True, blank=True)
    impersonation_reason_required = models.BooleanField(null=True, blank=True)
    impersonation_max_minutes = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "organization settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(impersonation_max_minutes__isnull=True)
                | Q(impersonation_max_minutes__gte=1, impersonation_max_minutes__lte=24 * 60),
                name="org_settings_max_minutes_range",
            )
        ]

    def __str__(self) -> str:
        return f"settings of {self.organization_id}"
