"""DRF serializers of actas's own APIs: SCIM 2.0 users (RFC 7643 / 7644). (The impersonation
configuration's are ``impersonation.serializers``.)

Input serializers only check the *shape* of a request (types, lengths, no NUL); the services
in ``identity.services`` apply the rules. :func:`scim_patch_changes` turns a validated PATCH
body into service arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from identity.models import User

SCIM_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SCIM_PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_SEARCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

NAME_MAX = 150
EMAIL_MAX = 254
EXTERNAL_ID_MAX = 255
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
    lastModified = serializers.DateTimeField()  # noqa: N815
    location = serializers.URLField()
    version = serializers.CharField(help_text='A weak entity tag (W/"…"): send it back in If-Match.')


def scim_version(user: User) -> str:
    """``meta.version``: a weak entity tag of what a SCIM client sees of ``user`` (RFC 7644
    §3.14); it changes with every visible change, whatever path made it."""
    seen = "\x1f".join(
        str(v)
        for v in (
            user.pk,
            user.username,
            user.external_id,
            user.given_name,
            user.family_name,
            user.email,
            user.is_active,
            user.organization_id,
        )
    )
    return 'W/"' + hashlib.sha256(seen.encode()).hexdigest()[:20] + '"'


def etag_matches(header: str, version: str) -> bool:
    """Whether an ``If-Match`` / ``If-None-Match`` header names ``version`` (weak comparison;
    ``*`` matches any)."""

    def opaque(tag: str) -> str:
        tag = tag.strip()
        return tag[2:] if tag[:2] in {"W/", "w/"} else tag

    wanted = opaque(version)
    return any(tag.strip() == "*" or opaque(tag) == wanted for tag in header.split(","))


def scim_user_location(*, tenant: str, user_id: object, child: bool) -> str:
    prefix = f"{settings.BASE_URL}/t/{tenant}/o/scim2" if child else f"{settings.BASE_URL}/t/{tenant}/scim2"
    return f"{prefix}/Users/{user_id}"


class ScimUserSerializer(serializers.Serializer[User]):
    """A user in the SCIM 2.0 core User shape. Context: ``tenant`` (handle) and ``child``
    (whether the resource lives under ``/o/scim2``)."""

    schemas = serializers.SerializerMethodField()
    id = serializers.UUIDField(source="pk", read_only=True)
    externalId = serializers.SerializerMethodField()  # noqa: N815
    userName = serializers.CharField(source="username", read_only=True)  # noqa: N815
    name = serializers.SerializerMethodField()
    emails = serializers.SerializerMethodField()
    active = serializers.BooleanField(source="is_active", read_only=True)
    meta = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_schemas(self, user: User) -> list[str]:
        return [SCIM_USER_SCHEMA]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_externalId(self, user: User) -> str | None:  # noqa: N802
        return user.external_id or None

    @extend_schema_field(ScimNameSerializer)
    def get_name(self, user: User) -> dict[str, str]:
        return {"givenName": user.given_name, "familyName": user.family_name}

    def to_representation(self, instance: User) -> dict[str, Any]:
        # Unassigned attributes are left out (RFC 7643 §2.5: absent and null are the same).
        body = dict(super().to_representation(instance))
        if body.get("externalId") is None:
            body.pop("externalId", None)
        name = {k: v for k, v in body["name"].items() if v}
        if name:
            body["name"] = name
        else:
            body.pop("name")
        if not body["emails"]:
            body.pop("emails")
        return body

    @extend_schema_field(ScimEmailSerializer(many=True))
    def get_emails(self, user: User) -> list[dict[str, Any]]:
        # One address per user: no "primary" flag to choose between several.
        return [{"value": user.email}] if user.email else []

    @extend_schema_field(ScimMetaSerializer)
    def get_meta(self, user: User) -> dict[str, Any]:
        stamp = serializers.DateTimeField()
        return {
            "resourceType": "User",
            "created": stamp.to_representation(user.date_joined),
            "lastModified": stamp.to_representation(max(user.updated_at, user.date_joined)),
            "version": scim_version(user),
            "location": scim_user_location(
                tenant=self.context["tenant"], user_id=user.pk, child=bool(self.context.get("child"))
            ),
        }


class ScimUserResourceSerializer(serializers.Serializer[Any]):
    """How the API documents a User resource: ``id``, ``schemas`` and ``meta`` always; the
    rest when set and asked for (``attributes`` / ``excludedAttributes``)."""

    schemas = serializers.ListField(child=serializers.CharField())
    id = serializers.UUIDField()
    externalId = serializers.CharField(required=False)  # noqa: N815
    userName = serializers.CharField(required=False)  # noqa: N815
    name = ScimNameSerializer(required=False)
    emails = ScimEmailSerializer(many=True, required=False)
    active = serializers.BooleanField(required=False)
    meta = ScimMetaSerializer()


class ScimListResponseSerializer(serializers.Serializer[Any]):
    """RFC 7644 §3.4.2 ListResponse (documentation of the list endpoint's answer)."""

    schemas = serializers.ListField(child=serializers.CharField())
    totalResults = serializers.IntegerField()  # noqa: N815
    startIndex = serializers.IntegerField()  # noqa: N815
    itemsPerPage = serializers.IntegerField()  # noqa: N815
    Resources = ScimUserResourceSerializer(many=True)  # noqa: N815


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
    externalId = serializers.CharField(  # noqa: N815
        max_length=EXTERNAL_ID_MAX, required=False, allow_blank=True, allow_null=True
    )
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


class ScimUserReplaceSerializer(ScimUserCreateSerializer):
    """``PUT /Users/<id>``: the whole resource. ``userName`` must be the user's own (it is
    immutable in actas); attributes left out are cleared, except ``active`` and ``password``,
    which stay as they are when left out."""

    active = serializers.BooleanField(required=False)


class ScimSearchRequestSerializer(serializers.Serializer[Any]):
    """RFC 7644 §3.4.3 SearchRequest (``POST /Users/.search``)."""

    schemas = serializers.ListField(child=serializers.CharField(max_length=200), max_length=10)
    filter = serializers.CharField(required=False, max_length=2000, trim_whitespace=False)
    sortBy = serializers.CharField(required=False, max_length=200)  # noqa: N815
    sortOrder = serializers.CharField(required=False, max_length=20)  # noqa: N815
    startIndex = serializers.IntegerField(required=False, min_value=1)  # noqa: N815
    count = serializers.IntegerField(required=False, min_value=0)
    attributes = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=50
    )
    excludedAttributes = serializers.ListField(  # noqa: N815
        child=serializers.CharField(max_length=200), required=False, max_length=50
    )

    def validate_schemas(self, value: list[str]) -> list[str]:
        if SCIM_SEARCH_SCHEMA not in value:
            raise serializers.ValidationError(f"schemas must contain {SCIM_SEARCH_SCHEMA}.")
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


# --- projections ---------------------------------------------------------------------------

ALWAYS_RETURNED = frozenset({"id", "schemas", "meta"})


def _attribute_names(raw: Iterable[str] | str | None) -> list[str]:
    if raw is None:
        return []
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    names = []
    for item in items:
        name = str(item).strip()
        if name.lower().startswith(SCIM_USER_SCHEMA.lower() + ":"):
            name = name[len(SCIM_USER_SCHEMA) + 1 :]
        if name:
            names.append(name)
    return names


def scim_project(
    body: dict[str, Any], *, attributes: Iterable[str] | str | None, excluded: Iterable[str] | str | None
) -> dict[str, Any]:
    """``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5) applied to one resource:
    ``id``, ``schemas`` and ``meta`` are always returned; ``name.givenName`` picks a
    sub-attribute."""
    wanted = _attribute_names(attributes)
    unwanted = _attribute_names(excluded)
    if wanted:
        kept: dict[str, Any] = {}
        lookup = {key.lower(): key for key in body}
        for name in wanted:
            top, _, sub = name.partition(".")
            key = lookup.get(top.lower())
            if key is None:
                continue
            if not sub or not isinstance(body[key], dict):
                kept[key] = body[key]
                continue
            subs = {k.lower(): k for k in body[key]}
            if sub.lower() in subs:
                kept.setdefault(key, {})[subs[sub.lower()]] = body[key][subs[sub.lower()]]
        body = {k: v for k, v in body.items() if k in ALWAYS_RETURNED or k in kept} | kept
    for name in unwanted:
        top, _, sub = name.partition(".")
        for key in list(body):
            if key.lower() != top.lower() or key in ALWAYS_RETURNED:
                continue
            if not sub:
                del body[key]
            elif isinstance(body[key], dict):
                body[key] = {k: v for k, v in body[key].items() if k.lower() != sub.lower()}
    return body
