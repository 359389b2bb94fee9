"""Application services: create (secret shown once), authorize API scopes, share."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from identity.models import (
    APIResource,
    Application,
    ApplicationAPIAuthorization,
    ApplicationShare,
    LoginFlow,
    User,
)
from identity.oauth.hooks import impersonations_revalidate
from identity.services.audit import audit_record
from organizations.models import Organization
from organizations.selectors import org_is_descendant

KNOWN_GRANTS = {g for g, _ in Application.GRANT_TYPE_CHOICES}
USERNAME_PASSWORD = "BasicAuthenticator"  # noqa: S105 (an authenticator's name)
SHARED_USER_IDENTIFIER = "SharedUserIdentifierExecutor"
EMAIL_OTP = "email-otp"
# The authenticators a login-flow step may offer, in the order the Console lists them, with the
# names people see (the Console never shows the internal identifiers).
AUTHENTICATOR_DISPLAY_NAMES = {
    USERNAME_PASSWORD: "Username & Password",
    SHARED_USER_IDENTIFIER: "Shared User Identifier",
    EMAIL_OTP: "Email one-time code",
}
KNOWN_AUTHENTICATORS = tuple(AUTHENTICATOR_DISPLAY_NAMES)


def display_name(authenticator: str) -> str:
    return AUTHENTICATOR_DISPLAY_NAMES.get(authenticator, "an unknown authentication")


def _listed(names: Iterable[str]) -> str:
    """The display names as "A", "A and B" or "A, B and C"."""
    shown = [display_name(n) for n in names]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def generate_client_secret() -> str:
    """A 256-bit random secret; stored only as a keyed hash (identity.hashers)."""
    return secrets.token_urlsafe(32)


def _validate_uris(field: str, uris: Sequence[str], errors: dict[str, list[str]]) -> None:
    check = URLValidator(schemes=["http", "https"])
    for uri in uris:
        try:
            check(uri)
        except ValidationError:
            errors.setdefault(field, []).append(f"Not a valid http(s) URL: {uri}")
            continue
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
    _validate_uris("redirect_uris", redirect_uris, errors)
    _validate_uris("post_logout_redirect_uris", post_logout_redirect_uris, errors)
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
    authorization.scopes.set(found)
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


@dataclass(frozen=True)
class FlowProblem:
    """A rule a login flow breaks: ``step`` is the 0-based step it concerns, or None for the
    flow as a whole."""

    step: int | None
    message: str


def login_flow_problems(steps: Sequence[Sequence[str]]) -> list[FlowProblem]:
    """Every rule a draft flow breaks, in the words the Console shows (display names, never
    internal identifiers), so an editor can show them next to the step before saving.

    A flow is a non-empty list of steps, each a non-empty list of distinct known
    authenticators, none repeated from an earlier step; the Shared User Identifier, when used,
    is the only option of step 1 and is followed by a step that authenticates; an email
    one-time code never comes first (it needs a user identified by an earlier step)."""
    problems: list[FlowProblem] = []
    if not steps:
        return [FlowProblem(None, "A login flow needs at least one step.")]
    seen: set[str] = set()
    for index, step in enumerate(steps):
        number = index + 1
        if not step:
            problems.append(
                FlowProblem(index, f"Step {number} has no authentication: add one or remove the step.")
            )
            continue
        if any(name not in KNOWN_AUTHENTICATORS for name in step):
            problems.append(FlowProblem(index, f"Step {number} has an authentication actas does not know."))
            continue
        if len(set(step)) != len(step):
            problems.append(FlowProblem(index, f"Step {number} lists an authentication twice."))
        if SHARED_USER_IDENTIFIER in step:
            if index != 0:
                problems.append(
                    FlowProblem(index, f"{display_name(SHARED_USER_IDENTIFIER)} can only be in step 1.")
                )
            elif len(set(step)) > 1:
                others = _listed(n for n in dict.fromkeys(step) if n != SHARED_USER_IDENTIFIER)
                problems.append(
                    FlowProblem(
                        index,
                        f"{display_name(SHARED_USER_IDENTIFIER)} must be the only authentication in "
                        f"step 1: remove {others}.",
                    )
                )
        if index == 0 and EMAIL_OTP in step:
            problems.append(
                FlowProblem(
                    index,
                    f"{display_name(EMAIL_OTP)} cannot be in step 1: it needs an earlier step that "
                    "identifies the user.",
                )
            )
        repeated = [n for n in dict.fromkeys(step) if n in seen]
        if repeated:
            problems.append(
                FlowProblem(index, f"Step {number} repeats {_listed(repeated)} from an earlier step.")
            )
        seen.update(step)
    if list(steps[0]) == [SHARED_USER_IDENTIFIER] and len(steps) == 1:
        problems.append(
            FlowProblem(
                0,
                f"{display_name(SHARED_USER_IDENTIFIER)} only asks who the user is: add a second step "
                f"that authenticates them, such as {display_name(USERNAME_PASSWORD)}.",
            )
        )
    return problems


def login_flow_validate(steps: object) -> list[list[str]]:
    """The flow as a clean list of steps, or ValidationError with every rule it breaks
    (``login_flow_problems``)."""
    if (
        not isinstance(steps, list)
        or not all(isinstance(step, list) for step in steps)
        or not all(isinstance(name, str) for step in steps for name in step)
    ):
        raise ValidationError("A login flow is a list of steps, each a list of authentications.")
    problems = login_flow_problems(steps)
    if problems:
        raise ValidationError([p.message for p in problems])
    return [list(step) for step in steps]


@transaction.atomic
def login_flow_set(
    *, actor: User | None, application: Application, org: Organization, steps: object
) -> LoginFlow:
    clean = login_flow_validate(steps)
    flow, _ = LoginFlow.objects.update_or_create(
        application=application, organization=org, defaults={"steps": clean}
    )
    audit_record(
        org=org,
        action="login-flow-update",
        actor=actor,
        target_type="application",
        target_id=application.client_id,
        data={"steps": clean},
    )
    return flow


@transaction.atomic
def login_flow_reset(*, actor: User | None, application: Application, org: Organization) -> None:
    """Drop ``org``'s own flow for ``application``: the owner's flow applies again."""
    if org.pk == application.organization_id:
        raise ValidationError("The owner's flow is the default; edit it instead.")
    deleted, _ = LoginFlow.objects.filter(application=application, organization=org).delete()
    if deleted:
        audit_record(
            org=org,
            action="login-flow-reset",
            actor=actor,
            target_type="application",
            target_id=application.client_id,
        )


# --- Console editing ----------------------------------------------------------------------

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
    _validate_uris(field, clean, errors)
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
            _validate_uris("access_url", [access_url], errors)
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
        data={"resource": resource.identifier},
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
