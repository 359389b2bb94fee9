"""User services: create, share into a descendant organization, change status, edit a profile."""

from __future__ import annotations

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, RegexValidator
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from identity.audit.services import audit_record, audit_refusal
from identity.hooks import impersonations_revalidate
from identity.models import Application, OAuthAuthorization, RoleAssignment, SSOSession, User, UserAssociation
from identity.services.oauth import oauth_authorization_revoke
from identity.services.sessions import sso_session_end
from organizations.models import Organization
from organizations.selectors import org_is_descendant, org_is_usable

username_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9._@+-]{0,149}$",
    "Use lowercase letters, digits and . _ @ + - (up to 150 characters).",
)


def normalise_username(value: str) -> str:
    return (value or "").strip().lower()


# Who makes a change: a person, or an application with a client-credentials token (a
# provisioning tool); ``None`` for the system.
Actor = User | Application


def _person(actor: Actor | None) -> User | None:
    """The person behind ``actor`` (None for an application or the system): the revalidation
    of impersonations records who ended them only when it was a person."""
    return actor if isinstance(actor, User) else None


@transaction.atomic
def user_create(
    *,
    actor: Actor | None,
    org: Organization,
    username: str,
    password: str | None,
    email: str = "",
    given_name: str = "",
    family_name: str = "",
    is_protected: bool = False,
    impersonator: User | None = None,
    external_id: str = "",
) -> User:
    """Create a user resident in ``org``. Errors come back as field errors; ``impersonator``
    is set when the creation is made with an impersonated token."""
    username = normalise_username(username)
    email = (email or "").strip()
    errors: dict[str, list[str]] = {}
    try:
        username_validator(username)
    except ValidationError as exc:
        errors["username"] = list(exc.messages)
    if email:
        try:
            EmailValidator()(email)
        except ValidationError as exc:
            errors["email"] = list(exc.messages)
    external_id = _external_id(external_id, errors=errors)
    if org.status != Organization.Status.ACTIVE:
        errors.setdefault("__all__", []).append("This organization is disabled.")
    if password and impersonator is not None:
        raise UserChangeRefused(
            "password-while-impersonating",
            "A password cannot be set while impersonating; the user sets their own.",
        )
    if password:
        try:
            validate_password(password, User(username=username, email=email, organization=org))
        except ValidationError as exc:
            errors["password"] = list(exc.messages)
    if "username" not in errors and User.objects.filter(organization=org, username=username).exists():
        errors["username"] = ["A user with this username already exists in this organization."]
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                username,
                password,
                organization=org,
                email=email,
                given_name=given_name.strip(),
                family_name=family_name.strip(),
                is_protected=is_protected,
                external_id=external_id,
            )
    except IntegrityError as exc:  # a concurrent create of the same username
        raise ValidationError(
            {"username": ["A user with this username already exists in this organization."]}
        ) from exc
    audit_record(
        org=org,
        action="user-create",
        actor=actor,
        impersonator=impersonator,
        subject=user,
        target_type="user",
        target_id=user.pk,
        data={"username": user.username, "email": user.email}
        | ({"external_id": external_id} if external_id else {}),
    )
    return user


def _check_shareable(*, user: User, org: Organization) -> None:
    resident = user.organization
    if (org.tenant_id or org.pk) != (resident.tenant_id or resident.pk) or not org_is_descendant(
        org, of=resident
    ):
        raise ValidationError(
            {
                "organization": [
                    f"{user.username} can only be shared with organizations below {resident.name}."
                ]
            }
        )
    if not org_is_usable(org):
        raise ValidationError(
            {"organization": [f"{org.name} is disabled (or sits below a disabled organization)."]}
        )


@transaction.atomic
def user_share(*, actor: User | None, user: User, org: Organization) -> UserAssociation:
    """Share ``user`` into ``org``, a strict descendant of the user's resident organization.
    Sharing a user who is shared there already changes nothing (and records nothing)."""
    _check_shareable(user=user, org=org)
    resident = user.organization
    association, created = UserAssociation.objects.get_or_create(user=user, organization=org)
    if created:
        audit_record(
            org=org,
            action="user-share",
            actor=actor,
            subject=user,
            target_type="user",
            target_id=user.pk,
            data={"resident_org": str(resident.pk), "association": str(association.pk)},
        )
    return association


@transaction.atomic
def user_share_with(*, actor: User | None, user: User, orgs: list[Organization]) -> list[UserAssociation]:
    """Share ``user`` with each of ``orgs`` at once: all or none. Returns the new shares
    (organizations the user is shared with already are left as they are)."""
    for org in orgs:
        _check_shareable(user=user, org=org)
    already = set(
        UserAssociation.objects.filter(user=user, organization__in=[o.pk for o in orgs]).values_list(
            "organization_id", flat=True
        )
    )
    return [user_share(actor=actor, user=user, org=org) for org in orgs if org.pk not in already]


@transaction.atomic
def user_unshare(*, actor: User | None, user: User, org: Organization) -> None:
    """Stop sharing ``user`` with ``org``: their profile there goes, and with it what hangs
    off it — their roles in ``org``, their sign-ins to ``org`` (ended, their tokens revoked)
    and the tokens applications got for them in ``org`` (an organization switch); every live
    impersonation that loses its grounds ends. One audit event (``user-unshare``) names what
    was removed; the sign-ins and tokens ended write their own.

    Refused (``ValidationError``) for the user's resident organization, an organization the
    user is not shared with, and the acting administrator's own account."""
    if org.pk == user.organization_id:
        raise ValidationError(
            {"organization": [f"{org.name} is {user.username}'s own organization; it cannot be unshared."]}
        )
    if actor is not None and actor.pk == user.pk:
        raise ValidationError(
            {"organization": ["You cannot stop sharing your own account; ask another administrator."]}
        )
    association = UserAssociation.objects.select_for_update().filter(user=user, organization=org).first()
    if association is None:
        raise ValidationError({"organization": [f"{user.username} is not shared with {org.name}."]})
    # Lock order as everywhere: the sign-ins first (sso_session_end locks each again, a no-op).
    sessions = list(
        SSOSession.objects.select_for_update()
        .filter(user=user, organization=org, ended_at__isnull=True)
        .select_related("organization", "user")
        .order_by("pk")
    )
    roles = sorted(
        RoleAssignment.objects.filter(association=association).values_list("role__name", flat=True)
    )
    association_id = association.pk
    association.delete()  # its role assignments go with it (CASCADE)
    # An impersonator whose roles here made the impersonation possible stops at once; before
    # anything below writes an audit event (the audit chain head is locked last).
    impersonations_revalidate(actor=actor, tenant_id=org.tenant_id or org.pk, user_ids=(user.pk,))
    for session in sessions:
        sso_session_end(actor=actor, session=session, reason="user-unshared")
    revoked = 0
    for authorization in (
        OAuthAuthorization.objects.filter(user=user, organization=org, revoked_at__isnull=True)
        .select_related("organization", "application", "user")
        .order_by("pk")
    ):
        revoked += oauth_authorization_revoke(
            actor=actor, authorization=authorization, reason="user-unshared"
        )
    audit_record(
        org=org,
        action="user-unshare",
        actor=actor,
        subject=user,
        target_type="user",
        target_id=user.pk,
        data={
            "resident_org": str(user.organization_id),
            "association": str(association_id),
            "roles_removed": roles,
            "sign_ins_ended": len(sessions),
            "authorizations_revoked": revoked,
        },
    )


@transaction.atomic
def user_set_flags(
    *,
    actor: User | None,
    user: User,
    is_active: bool | None = None,
    is_locked: bool | None = None,
    is_protected: bool | None = None,
) -> User:
    changes: dict[str, tuple[bool, bool]] = {}
    for field, value in (("is_active", is_active), ("is_locked", is_locked), ("is_protected", is_protected)):
        if value is not None and getattr(user, field) != value:
            changes[field] = (getattr(user, field), value)
            setattr(user, field, value)
    if changes:
        user.save(update_fields=list(changes))
        # Disabling, locking or protecting an account ends the impersonations it was part of,
        # before this change's own audit event (locks in impersonation's one order).
        impersonations_revalidate(
            actor=actor, tenant_id=user.organization.tenant_id or user.organization_id, user_ids=(user.pk,)
        )
        audit_record(
            org=user.organization,
            action="user-status-change",
            actor=actor,
            subject=user,
            target_type="user",
            target_id=user.pk,
            data={k: {"from": a, "to": b} for k, (a, b) in changes.items()},
        )
    return user


PROFILE_NAME_MAX = 150
EMAIL_MAX = 254
EXTERNAL_ID_MAX = 255
PASSWORD_MAX = 256


def _profile_text(value: str, *, field: str, limit: int, errors: dict[str, list[str]]) -> str:
    clean = " ".join((value or "").split())
    if "\x00" in clean or any(ord(ch) < 32 for ch in clean):
        errors[field] = ["Remove the control characters."]
    elif len(clean) > limit:
        errors[field] = [f"Use at most {limit} characters."]
    return clean


def _external_id(value: str, *, errors: dict[str, list[str]]) -> str:
    """A provisioning client's identifier, kept as sent (it is compared case-exactly)."""
    value = value or ""
    if any(ord(ch) < 32 for ch in value):
        errors["external_id"] = ["Remove the control characters."]
    elif len(value) > EXTERNAL_ID_MAX:
        errors["external_id"] = [f"Use at most {EXTERNAL_ID_MAX} characters."]
    return value


def user_profile_update(
    *,
    actor: User,
    user: User,
    impersonator: User | None,
    given_name: str,
    family_name: str,
    email: str,
) -> User:
    """Change a user's given name, family name and email address; audited.

    ``actor`` is the person acting (the user themself, or the impersonator acting as them);
    ``impersonator`` is set whenever the change is made under an impersonation, and then the
    email address cannot change (DESIGN §7: a sensitive action) — the refusal is audited.
    Errors come back as field errors; nothing changes unless everything is valid."""
    errors: dict[str, list[str]] = {}
    given = _profile_text(given_name, field="given_name", limit=PROFILE_NAME_MAX, errors=errors)
    family = _profile_text(family_name, field="family_name", limit=PROFILE_NAME_MAX, errors=errors)
    address = _profile_text(email, field="email", limit=EMAIL_MAX, errors=errors)
    if address and "email" not in errors:
        try:
            EmailValidator()(address)
        except ValidationError as exc:
            errors["email"] = list(exc.messages)
    if errors:
        raise ValidationError(errors)
    if impersonator is not None and address != (user.email or ""):
        audit_refusal(
            org=user.organization,
            action="user-profile-update-refused",
            actor=actor,
            impersonator=impersonator,
            subject=user,
            target_type="user",
            target_id=user.pk,
            data={"code": "email-while-impersonating"},
        )
        raise ValidationError(
            {"email": ["The email address cannot be changed while someone is impersonating this user."]}
        )
    return _user_profile_save(
        actor=actor,
        user=user,
        impersonator=impersonator,
        values={"given_name": given, "family_name": family, "email": address},
    )


@transaction.atomic
def _user_profile_save(
    *, actor: Actor, user: User, impersonator: User | None, values: dict[str, str]
) -> User:
    locked = User.objects.select_for_update().get(pk=user.pk)
    changes = {
        field: {"from": getattr(locked, field), "to": value}
        for field, value in values.items()
        if getattr(locked, field) != value
    }
    if not changes:
        return locked
    for field in changes:
        setattr(locked, field, values[field])
    locked.save(update_fields=list(changes))
    audit_record(
        org=locked.organization,
        action="user-profile-update",
        actor=actor,
        impersonator=impersonator,
        subject=locked,
        target_type="user",
        target_id=locked.pk,
        data={"changes": changes},
    )
    for field in changes:
        setattr(user, field, values[field])
    return locked


class UserChangeRefused(Exception):
    """A change the rules forbid (not a malformed value): the API answers 403 and audits the
    refusal in a transaction of its own (``code`` names the rule)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UserDeleteConflict(Exception):
    """The user cannot be deleted (records that must outlive them point at them)."""


def user_update_scim(
    *,
    actor: Actor,
    user: User,
    impersonator: User | None,
    given_name: str | None = None,
    family_name: str | None = None,
    email: str | None = None,
    is_active: bool | None = None,
    external_id: str | None = None,
    password: str | None = None,
) -> User:
    """Apply a SCIM PATCH or PUT (or the /Me PATCH) to ``user``: names, email, externalId,
    password, active; audited.

    ``None`` leaves a value as it is. ``actor`` is the token's user, or the application of a
    client-credentials token; ``impersonator`` is set whenever the token is impersonated, and
    then neither the email address nor the password can change (DESIGN §7, sensitive
    actions): :class:`UserChangeRefused`. Malformed values are field errors
    (``ValidationError``); nothing changes unless everything is valid. The caller audits a
    refusal (the API does, outside the transaction that rolls back)."""
    errors: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    if given_name is not None:
        values["given_name"] = _profile_text(
            given_name, field="given_name", limit=PROFILE_NAME_MAX, errors=errors
        )
    if family_name is not None:
        values["family_name"] = _profile_text(
            family_name, field="family_name", limit=PROFILE_NAME_MAX, errors=errors
        )
    if email is not None:
        address = _profile_text(email, field="email", limit=EMAIL_MAX, errors=errors)
        if address and "email" not in errors:
            try:
                EmailValidator()(address)
            except ValidationError as exc:
                errors["email"] = list(exc.messages)
        values["email"] = address
    if external_id is not None:
        values["external_id"] = _external_id(external_id, errors=errors)
    if password:  # "" removes the password (no usable one)
        try:
            validate_password(password, user)
        except ValidationError as exc:
            errors["password"] = list(exc.messages)
    if errors:
        raise ValidationError(errors)
    if impersonator is not None and "email" in values and values["email"] != (user.email or ""):
        raise UserChangeRefused(
            "email-while-impersonating",
            "The email address cannot be changed while someone is impersonating this user.",
        )
    if password is not None and len(password) > PASSWORD_MAX:
        raise ValidationError({"password": [f"Use at most {PASSWORD_MAX} characters."]})
    if impersonator is not None and password is not None:
        raise UserChangeRefused(
            "password-while-impersonating",
            "The password cannot be changed while someone is impersonating this user.",
        )
    with transaction.atomic():
        # A new or removed password signs the user out everywhere (a reset after a compromise
        # must not leave the intruder signed in). Lock order as everywhere: the sign-ins
        # before the first audit event.
        sessions = (
            list(
                SSOSession.objects.select_for_update()
                .filter(user=user, ended_at__isnull=True)
                .select_related("organization", "user")
                .order_by("pk")
            )
            if password is not None
            else []
        )
        saved = _user_profile_save(actor=actor, user=user, impersonator=impersonator, values=values)
        if password is not None:
            saved.set_password(password or None)  # None: an unusable password
            saved.save(update_fields=["password"])
            audit_record(
                org=saved.organization,
                action="user-password-set" if password else "user-password-remove",
                actor=actor,
                impersonator=impersonator,
                subject=saved,
                target_type="user",
                target_id=saved.pk,
                data={"sign_ins_ended": len(sessions)},
            )
            for session in sessions:
                sso_session_end(actor=_person(actor), session=session, reason="password-changed")
            for authorization in (
                OAuthAuthorization.objects.filter(user=saved, revoked_at__isnull=True)
                .select_related("organization", "application", "user")
                .order_by("pk")
            ):
                oauth_authorization_revoke(
                    actor=_person(actor), authorization=authorization, reason="password-changed"
                )
        if is_active is not None and saved.is_active != is_active:
            before = saved.is_active
            saved.is_active = is_active
            saved.save(update_fields=["is_active"])
            impersonations_revalidate(
                actor=_person(actor),
                tenant_id=saved.organization.tenant_id or saved.organization_id,
                user_ids=(saved.pk,),
            )
            audit_record(
                org=saved.organization,
                action="user-status-change",
                actor=actor,
                impersonator=impersonator,
                subject=saved,
                target_type="user",
                target_id=saved.pk,
                data={"is_active": {"from": before, "to": is_active}},
            )
    for field, value in values.items():
        setattr(user, field, value)
    user.is_active = saved.is_active
    return saved


@transaction.atomic
def user_delete(*, actor: Actor, user: User, impersonator: User | None) -> None:
    """Delete ``user`` (their associations, sessions and tokens go with them); audited.

    Refused with :class:`UserDeleteConflict` for the acting user themself, the impersonator,
    and a user that impersonation records point at (the trail must keep them: deactivate such
    a user instead)."""
    if user.pk == getattr(_person(actor), "pk", None) or (
        impersonator is not None and user.pk == impersonator.pk
    ):
        raise UserDeleteConflict("A user cannot delete their own account this way.")
    org = user.organization
    pk, username = user.pk, user.username
    audit_record(
        org=org,
        action="user-delete",
        actor=actor,
        impersonator=impersonator,
        subject=user,
        target_type="user",
        target_id=pk,
        data={"username": username, "email": user.email},
    )
    try:
        with transaction.atomic():
            User.objects.filter(pk=pk).delete()
    except ProtectedError as exc:
        raise UserDeleteConflict(
            "This user appears in impersonation records and cannot be deleted; deactivate them instead."
        ) from exc
