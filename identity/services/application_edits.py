"""Application services behind the Console's application tabs: General, Protocol (with the
Impersonation switch and a new client secret), Advanced, removing an API authorization, and
deleting an application. Every change is audited with what changed."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from identity.audit.services import audit_record
from identity.hooks import impersonations_revalidate
from identity.models import (
    APIResource,
    Application,
    ApplicationAPIAuthorization,
    User,
)
from identity.services.applications import KNOWN_GRANTS, generate_client_secret, validate_uris
from identity.services.oauth import oauth_client_tokens_revoke

# Token lifetimes are whole seconds between one second and one year; a subject token lives
# minutes at most (it is single use and only bridges authorize and token exchange).
MAX_TOKEN_LIFETIME = 365 * 24 * 3600
MAX_SUBJECT_TOKEN_EXPIRY = 3600
NAME_MAX = 255
DESCRIPTION_MAX = 1000
URL_MAX = 200  # Application.access_url (a URLField) and each redirect URI


def _is_system(application: Application) -> bool:
    return bool(application.system_key)


def _check_lifetime(
    field: str, value: object, errors: dict[str, list[str]], *, maximum: int = MAX_TOKEN_LIFETIME
) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= maximum:
        errors.setdefault(field, []).append(f"Enter a whole number of seconds from 1 to {maximum}.")


def _clean_uri_list(field: str, uris: Sequence[str], errors: dict[str, list[str]]) -> list[str]:
    clean = [u.strip() for u in uris if u.strip()]
    for uri in clean:
        if len(uri) > URL_MAX:
            errors.setdefault(field, []).append(f"A URL can be at most {URL_MAX} characters long.")
            return clean
    validate_uris(field, clean, errors)
    return list(dict.fromkeys(clean))


def _audit_update(
    application: Application, actor: User | None, action: str, changes: dict[str, object]
) -> None:
    audit_record(
        org=application.organization,
        action=action,
        actor=actor,
        target_type="application",
        target_id=application.client_id,
        client_id=application.client_id,
        data=changes,
    )


def _diff(application: Application, values: dict[str, object]) -> dict[str, object]:
    """Set ``values`` on ``application``; the changed fields as ``{field: {from, to}}``."""
    changes: dict[str, object] = {}
    for field, value in values.items():
        before = getattr(application, field)
        if before != value:
            changes[field] = {"from": before, "to": value}
            setattr(application, field, value)
    return changes


@transaction.atomic
def application_update_general(
    *,
    actor: User | None,
    application: Application,
    name: str,
    description: str,
    discoverable: bool,
    access_url: str,
) -> Application:
    """Name, description, and whether My Account lists the application (at ``access_url``).

    A system application (Console, My Account) keeps its name."""
    name = (name or "").strip()
    description = (description or "").strip()
    access_url = (access_url or "").strip()
    errors: dict[str, list[str]] = {}
    if _is_system(application) and name != application.name:
        errors["name"] = ["A system application cannot be renamed."]
    elif not name:
        errors["name"] = ["Enter a name."]
    elif len(name) > NAME_MAX:
        errors["name"] = [f"A name can be at most {NAME_MAX} characters long."]
    elif (
        Application.objects.filter(organization_id=application.organization_id, name=name)
        .exclude(pk=application.pk)
        .exists()
    ):
        errors["name"] = ["An application with this name already exists in this organization."]
    if len(description) > DESCRIPTION_MAX:
        errors["description"] = [f"A description can be at most {DESCRIPTION_MAX} characters long."]
    if access_url:
        if len(access_url) > URL_MAX:
            errors["access_url"] = [f"A URL can be at most {URL_MAX} characters long."]
        else:
            validate_uris("access_url", [access_url], errors, redirect=False)
    if discoverable and not access_url:
        errors.setdefault("access_url", []).append("A discoverable application needs an access URL.")
    if errors:
        raise ValidationError(errors)
    changes = _diff(
        application,
        {"name": name, "description": description, "discoverable": discoverable, "access_url": access_url},
    )
    if changes:
        try:
            with transaction.atomic():
                application.save(update_fields=[*changes, "updated"])
        except IntegrityError as exc:  # a concurrent rename to the same name
            raise ValidationError(
                {"name": ["An application with this name already exists in this organization."]}
            ) from exc
        _audit_update(application, actor, "application-update", {"tab": "general", "changes": changes})
    return application


@transaction.atomic
def application_update_protocol(
    *,
    actor: User | None,
    application: Application,
    client_type: str,
    grant_types: Sequence[str],
    redirect_uris: Sequence[str],
    post_logout_redirect_uris: Sequence[str],
    pkce_required: bool,
    access_token_lifetime: int,
    refresh_token_lifetime: int,
    id_token_lifetime: int,
    subject_token_enabled: bool,
    subject_token_expiry: int,
) -> tuple[Application, str]:
    """The OAuth settings. Returns the application and, when it has just become
    confidential, its new client secret (shown once; otherwise empty).

    ``subject_token_enabled`` is the Impersonation switch: impersonation needs both subject
    tokens (at /authorize) and the token-exchange grant (at /token), and neither is any use
    without the other, so it turns both on or both off; whether ``grant_types`` lists token
    exchange does not matter.

    A system application keeps its client type, grant types (apart from the token exchange the
    Impersonation switch brings) and redirect URIs: the Console and My Account depend on them."""
    exchange = Application.GRANT_TOKEN_EXCHANGE_TYPE
    grants = sorted(set(grant_types) - {exchange} | ({exchange} if subject_token_enabled else set()))
    impersonation_before = application_impersonation_enabled(application)
    errors: dict[str, list[str]] = {}
    redirects = _clean_uri_list("redirect_uris", redirect_uris, errors)
    logouts = _clean_uri_list("post_logout_redirect_uris", post_logout_redirect_uris, errors)
    if _is_system(application):
        locked = {
            "client_type": client_type != application.client_type,
            "grant_types": set(grants) - {exchange} != set(application.grant_types or []) - {exchange},
            "redirect_uris": redirects != application.redirect_uris.split(),
            "post_logout_redirect_uris": logouts != application.post_logout_redirect_uris.split(),
        }
        for field, changed in locked.items():
            if changed:
                errors.setdefault(field, []).append("This cannot be changed for a system application.")
    unknown = sorted(set(grants) - KNOWN_GRANTS)
    if unknown:
        errors.setdefault("grant_types", []).append(f"Unknown grant type: {', '.join(unknown)}.")
    elif not grants:
        errors.setdefault("grant_types", []).append("Choose at least one grant type.")
    if client_type not in (Application.CLIENT_CONFIDENTIAL, Application.CLIENT_PUBLIC):
        errors.setdefault("client_type", []).append("Unknown client type.")
    public = client_type == Application.CLIENT_PUBLIC
    if public and Application.GRANT_CLIENT_CREDENTIALS_TYPE in grants:
        errors.setdefault("grant_types", []).append("A public client cannot use client credentials.")
    if public and Application.GRANT_AUTHORIZATION_CODE_TYPE in grants and not pkce_required:
        errors.setdefault("pkce_required", []).append("A public client must use PKCE.")
    if Application.GRANT_AUTHORIZATION_CODE_TYPE in grants and not redirects:
        errors.setdefault("redirect_uris", []).append(
            "The authorization code grant needs at least one redirect URI."
        )
    _check_lifetime("access_token_lifetime", access_token_lifetime, errors)
    _check_lifetime("refresh_token_lifetime", refresh_token_lifetime, errors)
    _check_lifetime("id_token_lifetime", id_token_lifetime, errors)
    _check_lifetime("subject_token_expiry", subject_token_expiry, errors, maximum=MAX_SUBJECT_TOKEN_EXPIRY)
    if errors:
        raise ValidationError(errors)

    becomes_confidential = (
        client_type == Application.CLIENT_CONFIDENTIAL and application.client_type != client_type
    )
    becomes_public = public and application.client_type != client_type
    changes = _diff(
        application,
        {
            "client_type": client_type,
            "grant_types": grants,
            "redirect_uris": " ".join(redirects),
            "post_logout_redirect_uris": " ".join(logouts),
            "pkce_required": pkce_required,
            "access_token_lifetime": access_token_lifetime,
            "refresh_token_lifetime": refresh_token_lifetime,
            "id_token_lifetime": id_token_lifetime,
            "subject_token_enabled": subject_token_enabled,
            "subject_token_expiry": subject_token_expiry,
        },
    )
    application.authorization_grant_type = (
        Application.GRANT_AUTHORIZATION_CODE
        if Application.GRANT_AUTHORIZATION_CODE_TYPE in grants
        else Application.GRANT_CLIENT_CREDENTIALS
    )
    plain_secret = ""
    if becomes_confidential or becomes_public:
        # A new confidential client gets a fresh secret to show once; a client that turns
        # public gets one nobody sees, so the old secret stops authenticating it.
        secret = generate_client_secret()
        plain_secret = secret if becomes_confidential else ""
        application.client_secret = secret
        application.hash_client_secret = True
    if changes:
        application.save()
        # Subject tokens or the token exchange turned off: its impersonations end.
        impersonations_revalidate(
            actor=actor,
            tenant_id=application.organization.tenant_id or application.organization_id,
            application_id=application.pk,
        )
        _audit_update(
            application,
            actor,
            "application-update",
            {
                "tab": "protocol",
                "changes": changes,
                "secret_replaced": becomes_confidential or becomes_public,
                "impersonation": {"from": impersonation_before, "to": subject_token_enabled},
            },
        )
    return application, plain_secret


def application_impersonation_enabled(application: Application) -> bool:
    """Can the application impersonate: subject tokens on and the token-exchange grant allowed
    (what /authorize checks before it hands out a subject token)."""
    return bool(application.subject_token_enabled) and application.allows_grant_type(
        Application.GRANT_TOKEN_EXCHANGE_TYPE
    )


@transaction.atomic
def application_regenerate_secret(*, actor: User | None, application: Application) -> str:
    """Replace the client secret of a confidential client; the new one is returned once and
    only its keyed hash is stored. The old secret stops working at once."""
    if application.client_type != Application.CLIENT_CONFIDENTIAL or _is_system(application):
        raise ValidationError("Only a confidential business application has a client secret.")
    plain = generate_client_secret()
    application.client_secret = plain
    application.hash_client_secret = True
    application.save(update_fields=["client_secret", "hash_client_secret", "updated"])
    _audit_update(application, actor, "application-secret-regenerate", {})
    return plain


@transaction.atomic
def application_update_advanced(
    *, actor: User | None, application: Application, skip_login_consent: bool, skip_logout_consent: bool
) -> Application:
    changes = _diff(
        application,
        {"skip_login_consent": skip_login_consent, "skip_logout_consent": skip_logout_consent},
    )
    if changes:
        application.save(update_fields=[*changes, "updated"])
        _audit_update(application, actor, "application-update", {"tab": "advanced", "changes": changes})
    return application


@transaction.atomic
def application_remove_api_authorization(
    *, actor: User | None, application: Application, resource: APIResource
) -> None:
    """Stop ``application`` from requesting any scope of ``resource``. Roles keep the
    permissions they list, but a scope the application is not authorized for never counts."""
    deleted, _ = ApplicationAPIAuthorization.objects.filter(
        application=application, resource=resource
    ).delete()
    if not deleted:
        raise ValidationError({"resource": ["This API resource is not authorized for the application."]})
    revoked = oauth_client_tokens_revoke(application)
    # Without the impersonation API authorized, nobody holds the impersonate scope for it.
    impersonations_revalidate(
        actor=actor,
        tenant_id=application.organization.tenant_id or application.organization_id,
        application_id=application.pk,
    )
    audit_record(
        org=application.organization,
        action="application-api-unauthorize",
        actor=actor,
        target_type="application",
        target_id=application.client_id,
        data={"resource": resource.identifier} | ({"own_tokens_revoked": revoked} if revoked else {}),
    )


@transaction.atomic
def application_delete(*, actor: User | None, application: Application) -> None:
    """Delete a business application with its roles, flows, shares and tokens."""
    if _is_system(application):
        raise ValidationError("A system application cannot be deleted.")
    audit_record(
        org=application.organization,
        action="application-delete",
        actor=actor,
        target_type="application",
        target_id=application.client_id,
        client_id=application.client_id,
        data={"name": application.name},
    )
    try:
        with transaction.atomic():
            application.delete()
    except ProtectedError as exc:
        raise ValidationError(
            "Records that must be kept still refer to this application; it cannot be deleted."
        ) from exc
