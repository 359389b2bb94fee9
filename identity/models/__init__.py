"""Users, shared-user associations, API resources and scopes, applications, roles, login
flows, the SSO session and the audit trail.

Every decision that cannot change later is taken here, in the first migration: the custom
user model (UUID ids, usernames unique within the resident organization), and the swapped
django-oauth-toolkit Application model (an application allows several grant types, which
DOT's single ``authorization_grant_type`` column cannot express).

One module per domain: ``users``, ``resources`` (API resources, scopes), ``applications``
(with sharing, API authorizations, login flows), ``roles``, ``sessions`` (SSO sessions, email
codes, OAuth authorizations), ``audit``, ``notifications`` (outbox, branding, email templates).
Django finds the models here; import them from ``identity.models``."""

from __future__ import annotations

from identity.models.applications import Application, ApplicationAPIAuthorization, ApplicationShare, LoginFlow
from identity.models.audit import AuditChainHead, AuditEvent
from identity.models.notifications import (
    EmailTemplate,
    OrganizationBranding,
    OutboxMessage,
    validate_https_url,
)
from identity.models.resources import (
    IMPERSONATE_SCOPE,
    IMPERSONATION_SCOPES,
    LOGIN_SCOPE,
    OIDC_SCOPES,
    OPEN_SCOPES,
    ORG_IMPERSONATE_SCOPE,
    APIResource,
    Scope,
)
from identity.models.roles import Role, RoleAssignment
from identity.models.sessions import EmailOTPChallenge, OAuthAuthorization, SSOSession
from identity.models.users import User, UserAssociation, UserManager

__all__ = [
    "IMPERSONATE_SCOPE",
    "ORG_IMPERSONATE_SCOPE",
    "IMPERSONATION_SCOPES",
    "OIDC_SCOPES",
    "LOGIN_SCOPE",
    "OPEN_SCOPES",
    "UserManager",
    "User",
    "UserAssociation",
    "APIResource",
    "Scope",
    "Application",
    "ApplicationShare",
    "ApplicationAPIAuthorization",
    "Role",
    "RoleAssignment",
    "LoginFlow",
    "SSOSession",
    "AuditEvent",
    "AuditChainHead",
    "OutboxMessage",
    "EmailOTPChallenge",
    "OAuthAuthorization",
    "validate_https_url",
    "OrganizationBranding",
    "EmailTemplate",
]
