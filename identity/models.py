"""Users, shared-user associations, API resources and scopes, applications, roles, login
flows, the SSO session and the audit trail.

Every decision that cannot change later is taken here, in the first migration: the custom
user model (UUID ids, usernames unique within the resident organization), and the swapped
django-oauth-toolkit Application model (an application allows several grant types, which
DOT's single ``authorization_grant_type`` column cannot express).
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.db.models import Q
from oauth2_provider.models import AbstractApplication

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

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email"]

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "username"], name="user_username_in_org"),
        ]
        indexes = [models.Index(fields=["username", "id"], name="user_username_id_idx")]

    def __str__(self) -> str:
        return self.username

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


class AuditEvent(models.Model):
    """One append-only audit record, hash-chained per tenant.

    People are referenced by id plus a label captured at write time (not by foreign key), so
    the trail outlives deleted accounts. On PostgreSQL a trigger refuses UPDATE and DELETE.
    """

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+", db_constraint=True)
    seq = models.PositiveBigIntegerField()
    created_at = models.DateTimeField()
    org_id = models.UUIDField(null=True, blank=True)
    action = models.CharField(max_length=100)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    actor_id = models.UUIDField(null=True, blank=True)
    actor_label = models.CharField(max_length=255, blank=True)
    impersonator_id = models.UUIDField(null=True, blank=True)
    impersonator_label = models.CharField(max_length=255, blank=True)
    subject_id = models.UUIDField(null=True, blank=True)
    subject_label = models.CharField(max_length=255, blank=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=255, blank=True)
    client_id = models.CharField(max_length=255, blank=True)
    scopes = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    # Text, not inet: the hash covers exactly the characters written.
    ip = models.CharField(max_length=45, null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["tenant_id", "seq"]
        constraints = [models.UniqueConstraint(fields=["tenant", "seq"], name="audit_seq_in_tenant")]
        indexes = [
            models.Index(fields=["tenant", "created_at"], name="audit_tenant_time_idx"),
            models.Index(fields=["tenant", "action", "created_at"], name="audit_tenant_action_idx"),
            models.Index(fields=["subject_id", "created_at"], name="audit_subject_idx"),
            models.Index(fields=["impersonator_id", "created_at"], name="audit_impersonator_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.seq} {self.action}"


class AuditChainHead(models.Model):
    """The head of a tenant's chain; locked by every writer so the chain stays linear."""

    tenant = models.OneToOneField(Organization, primary_key=True, on_delete=models.PROTECT, related_name="+")
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)
    # The checkpoint left by `manage.py audit_purge`: events up to base_seq were exported and
    # deleted; the first remaining event follows base_hash (the genesis hash when none were).
    base_seq = models.PositiveBigIntegerField(default=0)
    base_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"chain head of {self.tenant_id} at {self.seq}"


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
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="outbox_due_idx")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to_email} ({self.status})"


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
        verbose_name_plural = "organization brandings"

    def __str__(self) -> str:
        return f"branding of {self.organization_id}"


class EmailTemplate(models.Model):
    """An organization's own wording of one email in one locale (a Django template string,
    rendered sandboxed by ``identity.emails``). A child organization without one falls back
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
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind", "locale"], name="email_template_unique_org_kind_locale"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}/{self.locale} of {self.organization_id}"
