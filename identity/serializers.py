"""DRF serializers of actas's own APIs: SCIM 2.0 users (RFC 7643 / 7644). (The impersonation
configuration's are ``impersonation.serializers``.)

Input serializers only check the *shape* of a request (types, lengths, no NUL); the services
in ``identity.services`` apply the rules. :func:`scim_patch_changes` turns a validated PATCH
body into service arguments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from identity.models import User

SCIM_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SCIM_PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"

NAME_MAX = 150
EMAIL_MAX = 254
PASSWORD_MAX = 256
MAX_PATCH_OPERATIONS = 50


class ScimError(Exception):
    """A SCIM protocol error (RFC 7644 §3.12): rendered as a SCIM Error message."""

    def __init__(self, detail: str, *, status: int = 400, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.scim_type = scim_type


# --- SCIM user (output) -------------------------------------------------------------------


class ScimNameSerializer(serializers.Serializer[Any]):
    givenName = serializers.CharField(allow_blank=True, required=False, max_length=NAME_MAX)  # noqa: N815
    familyName = serializers.CharField(allow_blank=True, required=False, max_length=NAME_MAX)  # noqa: N815


class ScimEmailSerializer(serializers.Serializer[Any]):
    value = serializers.CharField(max_length=EMAIL_MAX, allow_blank=True)
    primary = serializers.BooleanField(required=False, default=False)


class ScimMetaSerializer(serializers.Serializer[Any]):
    resourceType = serializers.CharField(default="User")  # noqa: N815
    created = serializers.DateTimeField()
    location = serializers.URLField()


def scim_user_location(*, tenant: str, user_id: object, child: bool) -> str:
    prefix = f"{settings.BASE_URL}/t/{tenant}/o/scim2" if child else f"{settings.BASE_URL}/t/{tenant}/scim2"
    return f"{prefix}/Users/{user_id}"


class ScimUserSerializer(serializers.Serializer[User]):
    """A user in the SCIM 2.0 core User shape. Context: ``tenant`` (handle) and ``child``
    (whether the resource lives under ``/o/scim2``)."""

    schemas = serializers.SerializerMethodField()
    id = serializers.UUIDField(source="pk", read_only=True)
    userName = serializers.CharField(source="username", read_only=True)  # noqa: N815
    name = serializers.SerializerMethodField()
    emails = serializers.SerializerMethodField()
    active = serializers.BooleanField(source="is_active", read_only=True)
    meta = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_schemas(self, user: User) -> list[str]:
        return [SCIM_USER_SCHEMA]

    @extend_schema_field(ScimNameSerializer)
    def get_name(self, user: User) -> dict[str, str]:
        return {"givenName": user.given_name, "familyName": user.family_name}

    @extend_schema_field(ScimEmailSerializer(many=True))
    def get_emails(self, user: User) -> list[dict[str, Any]]:
        return [{"value": user.email, "primary": True}] if user.email else []

    @extend_schema_field(ScimMetaSerializer)
    def get_meta(self, user: User) -> dict[str, Any]:
        return {
            "resourceType": "User",
            "created": serializers.DateTimeField().to_representation(user.date_joined),
            "location": scim_user_location(
                tenant=self.context["tenant"], user_id=user.pk, child=bool(self.context.get("child"))
            ),
        }


class ScimListResponseSerializer(serializers.Serializer[Any]):
    """RFC 7644 §3.4.2 ListResponse (documentation of the list endpoint's answer)."""

    schemas = serializers.ListField(child=serializers.CharField())
    totalResults = serializers.IntegerField()  # noqa: N815
    startIndex = serializers.IntegerField()  # noqa: N815
    itemsPerPage = serializers.IntegerField()  # noqa: N815
    Resources = ScimUserSerializer(many=True)  # noqa: N815


class ScimErrorSerializer(serializers.Serializer[Any]):
    """RFC 7644 §3.12 error message."""

    schemas = serializers.ListField(child=serializers.CharField())
    status = serializers.CharField()
    scimType = serializers.CharField(required=False)  # noqa: N815
    detail = serializers.CharField()


# --- SCIM user (input) --------------------------------------------------------------------


class ScimUserCreateSerializer(serializers.Serializer[Any]):
    """``POST /Users``: ``userName`` is required; ``password`` optional (without one the user
    signs in only through other authenticators until a password is set)."""

    schemas = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=10
    )
    userName = serializers.CharField(max_length=NAME_MAX)  # noqa: N815
    password = serializers.CharField(
        max_length=PASSWORD_MAX, required=False, write_only=True, trim_whitespace=False
    )
    name = ScimNameSerializer(required=False)
    emails = ScimEmailSerializer(many=True, required=False, max_length=10)  # type: ignore[call-arg]
    active = serializers.BooleanField(required=False, default=True)

    def validate_schemas(self, value: list[str]) -> list[str]:
        if SCIM_USER_SCHEMA not in value:
            raise serializers.ValidationError(f"schemas must contain {SCIM_USER_SCHEMA}.")
        return value


def primary_email(emails: list[dict[str, Any]]) -> str:
    """The primary address of a SCIM ``emails`` list (else the first; "" for none)."""
    for item in emails:
        if item.get("primary"):
            return str(item.get("value", ""))
    return str(emails[0].get("value", "")) if emails else ""


class ScimPatchOperationSerializer(serializers.Serializer[Any]):
    op = serializers.CharField(max_length=16)
    path = serializers.CharField(max_length=200, required=False, allow_blank=False)
    value = serializers.JSONField(required=False, allow_null=True)

    def validate_op(self, value: str) -> str:
        op = value.lower()
        if op not in {"add", "replace", "remove"}:
            raise serializers.ValidationError("op must be add, replace or remove.")
        return op


class ScimPatchOpSerializer(serializers.Serializer[Any]):
    """RFC 7644 §3.5.2 PatchOp."""

    schemas = serializers.ListField(child=serializers.CharField(max_length=200), max_length=10)
    Operations = ScimPatchOperationSerializer(  # noqa: N815
        many=True,
        allow_empty=False,
        max_length=MAX_PATCH_OPERATIONS,  # type: ignore[call-arg]
    )

    def validate_schemas(self, value: list[str]) -> list[str]:
        if SCIM_PATCH_SCHEMA not in value:
            raise serializers.ValidationError(f"schemas must contain {SCIM_PATCH_SCHEMA}.")
        return value


@dataclass
class ScimChanges:
    """Service arguments of a PATCH: ``None`` leaves a value as it is."""

    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    is_active: bool | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return {
            "given_name": self.given_name,
            "family_name": self.family_name,
            "email": self.email,
            "is_active": self.is_active,
        }


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


_PRIMARY_EMAIL_PATH = re.compile(r"^emails\[\s*primary\s+eq\s+true\s*\]\.value$", re.IGNORECASE)


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
    elif lowered == "emails":
        changes.email = _emails(value)
    elif _PRIMARY_EMAIL_PATH.match(path):
        changes.email = _text(value, "emails.value")
    elif lowered == "active":
        if not allow_active:
            raise ScimError("active cannot be changed here.", scim_type="mutability")
        changes.is_active = _boolean(value, "active")
    elif lowered in {"username", "id", "meta", "schemas", "password"}:
        raise ScimError(f"{path} cannot be changed with PATCH.", scim_type="mutability")
    else:
        raise ScimError(f"{path} is not a supported attribute of User.", scim_type="invalidPath")


def scim_patch_changes(operations: list[dict[str, Any]], *, allow_active: bool = True) -> ScimChanges:
    """What a validated list of PatchOp operations changes (later operations win).

    Supported: ``add`` / ``replace`` of ``name.givenName``, ``name.familyName``, ``name``,
    ``emails``, ``emails[primary eq true].value``, ``active`` (and the same attributes in a
    path-less ``value`` object); ``remove`` of the names and emails (they become empty)."""
    changes = ScimChanges()
    for operation in operations:
        op = operation["op"]
        path = operation.get("path")
        value = operation.get("value")
        if op == "remove":
            if not path:
                raise ScimError("remove needs a path.", scim_type="noTarget")
            if path.lower() in {"active"}:
                raise ScimError("active cannot be removed.", scim_type="mutability")
            _apply(path, {} if path.lower() == "name" else None, changes, allow_active=allow_active)
            if path.lower() == "name":
                changes.given_name = changes.family_name = ""
            continue
        if "value" not in operation:
            raise ScimError(f"{op} needs a value.", scim_type="invalidValue")
        if path:
            _apply(path, value, changes, allow_active=allow_active)
            continue
        if not isinstance(value, dict):
            raise ScimError(
                "Without a path, value must be an object of attributes.", scim_type="invalidValue"
            )
        for key, item in value.items():
            _apply(str(key), item, changes, allow_active=allow_active)
    return changes


# --- SCIM filter --------------------------------------------------------------------------

_FILTER = re.compile(r'^\s*(userName)\s+(eq)\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)
FILTER_MAX = 500


def parse_user_filter(raw: str) -> str:
    """The user name of a ``userName eq "…"`` filter; :class:`ScimError` (invalidFilter) for
    anything else (the only filter actas supports so far)."""
    if len(raw) > FILTER_MAX or "\x00" in raw:
        raise ScimError("The filter is too long or contains NUL characters.", scim_type="invalidFilter")
    match = _FILTER.match(raw)
    if match is None:
        raise ScimError(
            'Only filters of the form userName eq "value" are supported.', scim_type="invalidFilter"
        )
    try:
        value = json.loads(f'"{match.group(3)}"')
    except ValueError as exc:
        raise ScimError("The filter's value is not a valid string.", scim_type="invalidFilter") from exc
    if "\x00" in value:
        raise ScimError("The filter's value contains NUL characters.", scim_type="invalidFilter")
    return str(value)
