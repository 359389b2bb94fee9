"""Roles (organization or application audience) and their assignments."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from identity.models.applications import Application
from identity.models.resources import Scope
from identity.models.users import User, UserAssociation
from organizations.models import Organization


class Role(models.Model):
    class Audience(models.TextChoices):
        ORGANIZATION = "organization", "Organization"
        APPLICATION = "application", "Application"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="roles")
    name = models.CharField(max_length=120)
    audience = models.CharField(max_length=16, choices=Audience.choices)
    audience_application = models.ForeignKey(
        Application, null=True, blank=True, on_delete=models.CASCADE, related_name="roles"
    )
    # System roles (Administrator, Impersonator) are assignable but never edited.
    is_system = models.BooleanField(default=False)
    permissions = models.ManyToManyField(Scope, related_name="roles", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(audience="organization") & Q(audience_application__isnull=True))
                | (Q(audience="application") & Q(audience_application__isnull=False)),
                name="role_audience_consistent",
            ),
            models.UniqueConstraint(
                fields=["organization", "name"],
                condition=Q(audience="organization"),
                name="role_name_in_org",
            ),
            models.UniqueConstraint(
                fields=["organization", "audience_application", "name"],
                condition=Q(audience="application"),
                name="role_name_in_application",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RoleAssignment(models.Model):
    """A role given to a resident user (``user``) or to a shared profile (``association``)."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="role_assignments"
    )
    association = models.ForeignKey(
        UserAssociation,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="role_assignments",
    )
    assigned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(association__isnull=True))
                | (Q(user__isnull=True) & Q(association__isnull=False)),
                name="assignment_one_principal",
            ),
            models.UniqueConstraint(
                fields=["role", "user"], condition=Q(user__isnull=False), name="assignment_user_once"
            ),
            models.UniqueConstraint(
                fields=["role", "association"],
                condition=Q(association__isnull=False),
                name="assignment_association_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role_id} -> {self.user_id or self.association_id}"
