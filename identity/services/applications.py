"""Application services: create (secret shown once), authorize API scopes, share.

The Console's edits of an application are ``identity.services.application_edits``; login flows
are ``identity.services.loginflows``."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from oauth2_provider.settings import oauth2_settings

from identity.audit.services import audit_record
from identity.hooks import impersonations_revalidate
from identity.models import (
    IMPERSONATION_SCOPES,
    APIResource,
    Application,
    ApplicationAPIAuthorization,
    ApplicationShare,
    User,
)
from identity.selectors.permissions import user_grantable_scope_names
from identity.services.oauth import oauth_client_tokens_revoke
from organizations.models import Organization
from organizations.selectors import org_is_descendant

KNOWN_GRANTS = {g for g, _ in Application.GRANT_TYPE_CHOICES}


def generate_client_secret() -> str:
    """A 256-bit random secret; stored only as a keyed hash (identity.hashers)."""
    return secrets.token_urlsafe(32)


def validate_uris(
    field: str, uris: Sequence[str], errors: dict[str, list[str]], *, redirect: bool = True
) -> None:
    """http(s) URLs; a redirect URI (``redirect``) also of a scheme the OAuth server redirects
    to (served over HTTPS: https only, unless ACTAS_ALLOW_HTTP_REDIRECT_URIS), without fragment."""
    check = URLValidator(schemes=["http", "https"])
    allowed = set(oauth2_settings.ALLOWED_REDIRECT_URI_SCHEMES)
    for uri in uris:
        try:
            check(uri)
        except ValidationError:
            errors.setdefault(field, []).append(f"Not a valid http(s) URL: {uri}")
            continue
        if not redirect:
            continue
        if urlsplit(uri).scheme not in allowed:
            errors.setdefault(field, []).append(f"This server redirects only to https addresses: {uri}")
        if "#" in uri:
            errors.setdefault(field, []).append(f"A redirect URI must not contain a fragment: {uri}")


@transaction.atomic
def application_create(
    *,
    actor: User | None,
    org: Organization,
    name: str,
    client_type: str = Application.CLIENT_CONFIDENTIAL,
    grant_types: Sequence[str] = (Application.GRANT_AUTHORIZATION_CODE_TYPE,),
    redirect_uris: Sequence[str] = (),
    post_logout_redirect_uris: Sequence[str] = (),
    client_id: str | None = None,
    client_secret: str | None = None,
    system_key: str = "",
    **options: object,
) -> tuple[Application, str]:
    """Create an application owned by ``org``. Returns it with its plain client secret
    (empty for a public client), which is never retrievable again."""
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["Enter a name."]
    elif Application.objects.filter(organization=org, name=name).exists():
        errors["name"] = ["An application with this name already exists in this organization."]
    unknown = sorted(set(grant_types) - KNOWN_GRANTS)
    if unknown or not grant_types:
        errors["grant_types"] = [
            f"Unknown grant type: {', '.join(unknown)}." if unknown else "Choose at least one grant type."
        ]
    if client_type not in (Application.CLIENT_CONFIDENTIAL, Application.CLIENT_PUBLIC):
        errors["client_type"] = ["Unknown client type."]
    if client_type == Application.CLIENT_PUBLIC and Application.GRANT_CLIENT_CREDENTIALS_TYPE in grant_types:
        errors.setdefault("grant_types", []).append("A public client cannot use client credentials.")
    if Application.GRANT_AUTHORIZATION_CODE_TYPE in grant_types and not redirect_uris:
        errors["redirect_uris"] = ["The authorization code grant needs at least one redirect URI."]
    if (
        client_type == Application.CLIENT_PUBLIC
        and Application.GRANT_AUTHORIZATION_CODE_TYPE in grant_types
        and options.get("pkce_required") is False
    ):
        errors["pkce_required"] = ["A public client must use PKCE."]
    validate_uris("redirect_uris", redirect_uris, errors)
    validate_uris("post_logout_redirect_uris", post_logout_redirect_uris, errors)
    if client_id and Application.objects.filter(client_id=client_id).exists():
        errors["client_id"] = ["This client id is taken."]
    if errors:
        raise ValidationError(errors)

    plain_secret = ""
    if client_type == Application.CLIENT_CONFIDENTIAL:
        plain_secret = client_secret or generate_client_secret()
    # A public client gets a random secret that nobody ever sees, so no guess (an empty
    # string included) authenticates it as if it were confidential.
    stored_secret = plain_secret or generate_client_secret()
    primary = (
        Application.GRANT_AUTHORIZATION_CODE
        if Application.GRANT_AUTHORIZATION_CODE_TYPE in grant_types
        else Application.GRANT_CLIENT_CREDENTIALS
    )
    app = Application(
        organization=org,
        name=name,
        client_type=client_type,
        authorization_grant_type=primary,
        grant_types=sorted(set(grant_types)),
        redirect_uris=" ".join(redirect_uris),
        post_logout_redirect_uris=" ".join(post_logout_redirect_uris),
        client_secret=stored_secret,
        hash_client_secret=True,
        algorithm=Application.RS256_ALGORITHM,
        system_key=system_key,
        skip_authorization=False,
    )
    if client_id:
        app.client_id = client_id
    for key, value in options.items():
        if not hasattr(app, key) or key.startswith("_"):
            raise TypeError(f"unknown application option {key!r}")
        setattr(app, key, value)
    # DOT's own clean() also wants the OIDC signing key configured; keys arrive with the
    # OAuth server, so only the field validators run here.
    app.clean_fields(exclude=["client_secret", "user", "authorization_grant_type"])
    app.save()
    audit_record(
        org=org,
        action="application-create",
        actor=actor,
        target_type="application",
        target_id=app.client_id,
        data={"name": app.name, "grant_types": app.grant_types, "client_type": client_type},
    )
    return app, plain_secret


@transaction.atomic
def application_authorize_api(
    *,
    actor: User | None,
    application: Application,
    resource: APIResource,
    scopes: Iterable[str],
) -> ApplicationAPIAuthorization:
    """Allow ``application`` to request these scopes of ``resource`` (replaces the set)."""
    if resource.tenant_id != application.organization.tenant_id:
        raise ValidationError({"resource": ["This API resource belongs to another tenant."]})
    wanted = sorted(set(scopes))
    found = list(resource.scopes.filter(name__in=wanted))
    missing = sorted(set(wanted) - {s.name for s in found})
    if missing:
        raise ValidationError({"scopes": [f"Not a scope of {resource.name}: {', '.join(missing)}."]})
    authorization, _ = ApplicationAPIAuthorization.objects.get_or_create(
        application=application, resource=resource
    )
    if actor is not None and resource.is_system:
        # No privilege escalation through an application: with a client-credentials token it
        # acts on its own (a provisioning tool), with these scopes. Whoever authorizes a system
        # API's scopes must hold them in the application's organization. (The impersonate
        # scopes never reach such a token, and a user's token carries only what they hold.)
        before = set(authorization.scopes.values_list("name", flat=True))
        added = {s.name for s in found} - before - IMPERSONATION_SCOPES
        lacking = sorted(added - user_grantable_scope_names(user=actor, org=application.organization))
        if lacking:
            raise ValidationError(
                {"scopes": [f"You can only authorize scopes you hold yourself: {', '.join(lacking)}."]}
            )
    narrowed = bool(set(authorization.scopes.values_list("name", flat=True)) - {s.name for s in found})
    authorization.scopes.set(found)
    if narrowed:
        # Its own tokens may carry a scope it no longer has: it asks again.
        oauth_client_tokens_revoke(application)
    # Fewer scopes of the impersonation API: its impersonators may have lost the permission.
    impersonations_revalidate(
        actor=actor,
        tenant_id=application.organization.tenant_id or application.organization_id,
        application_id=application.pk,
    )
    audit_record(
        org=application.organization,
        action="application-api-authorize",
        actor=actor,
        target_type="application",
        target_id=application.client_id,
        data={"resource": resource.identifier, "scopes": wanted},
    )
    return authorization


@transaction.atomic
def application_share(
    *,
    actor: User | None,
    application: Application,
    mode: str,
    organizations: Sequence[Organization] = (),
) -> Application:
    """Share with every descendant organization (current and future), selected ones, or none.

    The application's roles then appear in those organizations as shared roles."""
    owner = application.organization
    if mode not in Application.SharedAccess.values:
        raise ValidationError({"mode": ["Unknown sharing mode."]})
    if mode != Application.SharedAccess.SELECTED and organizations:
        raise ValidationError({"organizations": ["Organizations are chosen only for selected sharing."]})
    for org in organizations:
        if org.tenant_id != owner.tenant_id or not org_is_descendant(org, of=owner):
            raise ValidationError({"organizations": [f"{org.name} is not below {owner.name}."]})
    application.shared_access = mode
    application.save(update_fields=["shared_access"])
    ApplicationShare.objects.filter(application=application).exclude(
        organization__in=[o.pk for o in organizations]
    ).delete()
    for org in organizations:
        ApplicationShare.objects.get_or_create(application=application, organization=org)
    # Impersonations in organizations it is no longer shared with end.
    impersonations_revalidate(
        actor=actor, tenant_id=owner.tenant_id or owner.pk, application_id=application.pk
    )
    audit_record(
        org=owner,
        action="application-share",
        actor=actor,
        target_type="application",
        target_id=application.client_id,
        data={"mode": mode, "organizations": sorted(str(o.pk) for o in organizations)},
    )
    return application
