"""Users, shared-user associations, API resources and scopes, applications, roles, login
flows and the SSO session.

Every decision that cannot change later is taken here, in the first migration: the custom
user model (UUID ids, usernames unique within the resident organization), and the swapped
django-oauth-toolkit Application model (an application allows several grant types, which
DOT's single ``authorization_grant_type`` column cannot express).

One module per domain: ``users``, ``resources`` (API resources, scopes), ``applications``
(with sharing, API authorizations, login flows), ``roles``, ``sessions`` (SSO sessions, email
codes, OAuth authorizations). Django finds the models here; import them from
``identity.models``. The audit trail's and the outbox's models live in their own apps
(``identity.audit.models``, ``identity.notifications.models``)."""

from __future__ import annotations

from identity.models.applications import Application, ApplicationAPIAuthorization, ApplicationShare, LoginFlow
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
from identity.models.sessions import EmailOTPChallenge, OAuthAuthorization, OAuthConsent, SSOSession
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
    "EmailOTPChallenge",
    "OAuthAuthorization",
    "OAuthConsent",
]
