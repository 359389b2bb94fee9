"""Users (custom user model: UUID ids, usernames unique within the resident organization) and
shared-user associations."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models

from organizations.models import Organization

# What a SCIM client sees of a user: a save of any of these moves meta.lastModified.
SCIM_VISIBLE_FIELDS = frozenset(
    {
        "username",
        "email",
        "given_name",
        "family_name",
        "is_active",
        "external_id",
        "organization",
        "organization_id",
    }
)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(
        self,
        username: str,
        password: str | None = None,
        *,
        organization: Organization,
        **extra: Any,
    ) -> User:
        user = self.model(username=username, organization=organization, **extra)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save(using=self._db)
        return user


class User(AbstractBaseUser):  # type: ignore[django-manager-missing]
    """A person. ``id`` is the ``sub`` claim; ``organization`` is the resident organization."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="resident_users")
    username = models.CharField(max_length=150)
    email = models.EmailField(blank=True)
    given_name = models.CharField(max_length=150, blank=True)
    family_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_locked = models.BooleanField(default=False)
    # A protected account is never impersonated, whoever asks.
    is_protected = models.BooleanField(default=False)
    date_joined = models.DateTimeField(auto_now_add=True)
    # SCIM: the provisioning client's own identifier for the user (RFC 7643 §3.1), and when
    # the user last changed (meta.lastModified).
    external_id = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email"]

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "username"], name="user_username_in_org"),
        ]
        indexes = [
            models.Index(fields=["username", "id"], name="user_username_id_idx"),
            # Provisioning clients find their users by externalId.
            models.Index(fields=["external_id"], name="user_external_id_idx"),
        ]

    def __str__(self) -> str:
        return self.username

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A save of some fields moves meta.lastModified when a SCIM client can see the change
        # (not for a sign-in's last_login).
        fields = kwargs.get("update_fields")
        if fields is not None and "updated_at" not in fields and set(fields) & SCIM_VISIBLE_FIELDS:
            kwargs["update_fields"] = [*fields, "updated_at"]
        super().save(*args, **kwargs)

    @property
    def display_name(self) -> str:
        full = f"{self.given_name} {self.family_name}".strip()
        return full or self.username

    @property
    def can_sign_in(self) -> bool:
        return self.is_active and not self.is_locked


class UserAssociation(models.Model):
    """A user's shared profile in a descendant of their resident organization.

    Roles in that organization are assigned to the association, never to the user directly.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="associations")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="shared_users")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="association_once_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.organization_id}"
