"""SCIM PATCH (RFC 7644 §3.5.2) and PUT bodies of a user, turned into the arguments of
``identity.services.users.user_update_scim``: which attribute changes to what. The shape of
the body is checked by the serializers first; the rules are the service's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from identity.models import User
from identity.selectors.scim_filter import ScimFilterError, value_matcher
from identity.serializers import SCIM_USER_SCHEMA, ScimError, primary_email


@dataclass
class ScimChanges:
    """Service arguments of a PATCH or PUT: ``None`` leaves a value as it is."""

    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    is_active: bool | None = None
    external_id: str | None = None
    password: str | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "given_name": self.given_name,
            "family_name": self.family_name,
            "email": self.email,
            "is_active": self.is_active,
            "external_id": self.external_id,
            "password": self.password,
        }


def scim_replace_changes(data: dict[str, Any], user: User) -> ScimChanges:
    """What a validated PUT body changes (everything it can, cleared when left out)."""
    if data["userName"].strip().lower() != user.username:
        raise ScimError("userName cannot be changed.", scim_type="mutability")
    name = data.get("name") or {}
    return ScimChanges(
        given_name=name.get("givenName") or "",
        family_name=name.get("familyName") or "",
        email=primary_email(data.get("emails") or []),
        is_active=data.get("active"),
        external_id=data.get("externalId") or "",
        password=data.get("password") or None,
    )


def _text(value: Any, attribute: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ScimError(f"{attribute} must be a string.", scim_type="invalidValue")
    if "\x00" in value:
        raise ScimError(f"{attribute} must not contain NUL characters.", scim_type="invalidValue")
    return value


def _boolean(value: Any, attribute: str) -> bool:
    if isinstance(value, bool):
        return value
    # Some SCIM clients (Microsoft Entra) send booleans as strings.
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise ScimError(f"{attribute} must be a boolean.", scim_type="invalidValue")


def _emails(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or len(value) > 10:
        raise ScimError("emails must be a list of {value, primary} objects.", scim_type="invalidValue")
    items = []
    for item in value:
        if not isinstance(item, dict):
            raise ScimError("emails must be a list of {value, primary} objects.", scim_type="invalidValue")
        items.append(
            {"value": _text(item.get("value"), "emails.value"), "primary": item.get("primary") is True}
        )
    return primary_email(items)


def _name(value: Any, changes: ScimChanges) -> None:
    if not isinstance(value, dict):
        raise ScimError("name must be an object.", scim_type="invalidValue")
    for key, item in value.items():
        lowered = key.lower()
        if lowered == "givenname":
            changes.given_name = _text(item, "name.givenName")
        elif lowered == "familyname":
            changes.family_name = _text(item, "name.familyName")
        elif lowered in {"formatted", "middlename", "honorificprefix", "honorificsuffix"}:
            raise ScimError(f"name.{key} is not supported.", scim_type="invalidPath")
        else:
            raise ScimError(f"name.{key} is not an attribute of User.", scim_type="invalidPath")


# emails[<filter>] or emails[<filter>].<sub-attribute>
_VALUE_PATH = re.compile(r"^(?P<attr>[A-Za-z]+)\[(?P<filter>[^\[\]]+)\](?:\.(?P<sub>[A-Za-z]+))?$")


def _email_item(current_email: str) -> dict[str, Any]:
    return {"value": current_email, "primary": True}


def _apply_value_path(
    op: str, match: re.Match[str], value: Any, changes: ScimChanges, *, current_email: str
) -> None:
    """``emails[value eq "a@example.org"]`` (the user's one address, which is primary)."""
    if match["attr"].lower() != "emails":
        raise ScimError(f"{match['attr']} has no value filter in actas.", scim_type="invalidPath")
    try:
        matches = value_matcher(match["filter"])
        hit = bool(current_email) and matches(_email_item(current_email))
    except ScimFilterError as exc:
        raise ScimError(str(exc), scim_type="invalidFilter") from exc
    sub = (match["sub"] or "").lower()
    if sub not in {"", "value", "primary"}:
        raise ScimError(f"emails.{match['sub']} is not supported.", scim_type="invalidPath")
    if not hit:
        if op == "remove":
            return  # nothing matched: nothing to remove
        raise ScimError("No email address matches the path's filter.", scim_type="noTarget")
    if op == "remove":
        if sub in {"", "value"}:
            changes.email = ""
        return
    if sub == "value":
        changes.email = _text(value, "emails.value")
    elif sub == "":
        changes.email = _emails(value)
    # emails[...].primary: the one address is always primary.


def _apply(path: str, value: Any, changes: ScimChanges, *, allow_active: bool) -> None:
    lowered = path.lower()
    if lowered.startswith(SCIM_USER_SCHEMA.lower() + ":"):
        path = path[len(SCIM_USER_SCHEMA) + 1 :]
        lowered = path.lower()
    if lowered == "name.givenname":
        changes.given_name = _text(value, "name.givenName")
    elif lowered == "name.familyname":
        changes.family_name = _text(value, "name.familyName")
    elif lowered == "name":
        _name(value, changes)
    elif lowered in {"emails", "emails.value"}:
        changes.email = _emails(value) if lowered == "emails" else _text(value, "emails.value")
    elif lowered == "externalid":
        changes.external_id = _text(value, "externalId")
    elif lowered == "password":
        if not isinstance(value, str) or not value:
            raise ScimError("password must be a non-empty string.", scim_type="invalidValue")
        changes.password = value
    elif lowered == "active":
        if not allow_active:
            raise ScimError("active cannot be changed here.", scim_type="mutability")
        changes.is_active = _boolean(value, "active")
    elif lowered in {"username", "id", "meta", "schemas"} or lowered.startswith("meta."):
        raise ScimError(f"{path} cannot be changed.", scim_type="mutability")
    else:
        raise ScimError(f"{path} is not a supported attribute of User.", scim_type="invalidPath")


_REMOVABLE = {
    "name": ("given_name", "family_name"),
    "name.givenname": ("given_name",),
    "name.familyname": ("family_name",),
    "emails": ("email",),
    "emails.value": ("email",),
    "externalid": ("external_id",),
}


def _remove(path: str, changes: ScimChanges, *, current_email: str) -> None:
    lowered = path.lower()
    if lowered.startswith(SCIM_USER_SCHEMA.lower() + ":"):
        path = path[len(SCIM_USER_SCHEMA) + 1 :]
        lowered = path.lower()
    match = _VALUE_PATH.match(path)
    if match:
        _apply_value_path("remove", match, None, changes, current_email=current_email)
        return
    fields = _REMOVABLE.get(lowered)
    if fields is None:
        if lowered == "password":
            changes.password = ""  # no usable password: other authenticators only
            return
        if lowered in {"active", "username", "id", "meta", "schemas"}:
            raise ScimError(f"{path} cannot be removed.", scim_type="mutability")
        raise ScimError(f"{path} is not a supported attribute of User.", scim_type="invalidPath")
    for field in fields:
        setattr(changes, field, "")


def scim_patch_changes(
    operations: list[dict[str, Any]],
    *,
    allow_active: bool = True,
    current_email: str = "",
    current_username: str | None = None,
) -> ScimChanges:
    """What a validated list of PatchOp operations changes (later operations win).

    Paths: ``name`` and its ``givenName``/``familyName``, ``emails`` (also
    ``emails.value`` and value filters such as ``emails[value eq "…"]`` or
    ``emails[primary eq true].value``), ``externalId``, ``password`` (write-only),
    ``active``; or no path and an object of those attributes. ``remove`` clears a value
    (``active`` and ``userName`` cannot be removed; removing ``password`` leaves the user
    without a usable one). ``current_email`` is the
    address value filters are matched against; ``current_username`` the user name a path-less
    value may repeat (never change)."""
    changes = ScimChanges()
    for operation in operations:
        op = operation["op"]
        path = operation.get("path")
        value = operation.get("value")
        if op == "remove":
            if not path:
                raise ScimError("remove needs a path.", scim_type="noTarget")
            email_now = changes.email if changes.email is not None else current_email
            _remove(path, changes, current_email=email_now)
            continue
        if "value" not in operation:
            raise ScimError(f"{op} needs a value.", scim_type="invalidValue")
        if path:
            match = _VALUE_PATH.match(path.split(SCIM_USER_SCHEMA + ":", 1)[-1])
            if match:
                email_now = changes.email if changes.email is not None else current_email
                _apply_value_path(op, match, value, changes, current_email=email_now)
            else:
                _apply(path, value, changes, allow_active=allow_active)
            continue
        if not isinstance(value, dict):
            raise ScimError(
                "Without a path, value must be an object of attributes.", scim_type="invalidValue"
            )
        for key, item in value.items():
            if str(key).lower() in {"schemas", "id", "meta"}:
                continue  # a whole resource sent back as the value: its read-only parts are ignored
            if str(key).lower() == "username":
                # A whole resource sent back: its own userName is fine, another one is a rename.
                if current_username is None or str(item).strip().lower() != current_username:
                    raise ScimError("userName cannot be changed.", scim_type="mutability")
                continue
            _apply(str(key), item, changes, allow_active=allow_active)
    return changes
