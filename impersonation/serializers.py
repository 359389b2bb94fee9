"""Serializers of the impersonation configuration API (the WSO2
``/api/server/v1/configs/impersonation`` shape, ``impersonation.api``).

Input serializers only check the *shape* of a request; :func:`config_patch_values` turns a
validated PATCH body into the arguments of ``organizations.services.organization_settings_update``,
which applies the inherit/tighten rules.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

# There is no per-organization "maximum reason length" setting yet: the impersonation
# confirmation accepts reasons up to this many characters, reported read-only.
REASON_MAX_LENGTH = 500
MAX_MINUTES_LIMIT = 24 * 60


class ImpersonationConfigSerializer(serializers.Serializer[Any]):
    """The organization's effective impersonation settings."""

    enableEmailNotification = serializers.BooleanField(  # noqa: N815
        help_text=(
            "Email the user when an impersonation of their account starts "
            "(inherited; a child may switch it either way)."
        )
    )
    reasonRequired = serializers.BooleanField(  # noqa: N815
        help_text=(
            "A reason is required to start an impersonation "
            "(a child organization may require it, never drop it)."
        )
    )
    maxMinutes = serializers.IntegerField(  # noqa: N815
        min_value=1,
        max_value=MAX_MINUTES_LIMIT,
        help_text=(
            "Maximum length of an impersonation in minutes "
            "(a child organization may shorten it, never lengthen it)."
        ),
    )
    reasonMaxLength = serializers.IntegerField(  # noqa: N815
        read_only=True,
        help_text="Maximum length of a reason (fixed, read-only: there is no setting for it yet).",
    )


class ConfigPatchOperationSerializer(serializers.Serializer[Any]):
    """One operation of ``PATCH /configs/impersonation``, e.g.
    ``{"operation": "REPLACE", "path": "/enableEmailNotification", "value": false}``; ``REMOVE``
    clears the organization's own value so it inherits again."""

    operation = serializers.CharField(max_length=16)
    path = serializers.CharField(max_length=100)
    value = serializers.JSONField(required=False, allow_null=True)

    def validate_operation(self, value: str) -> str:
        op = value.upper()
        if op not in {"REPLACE", "REMOVE"}:
            raise serializers.ValidationError("operation must be REPLACE or REMOVE.")
        return op


CONFIG_PATHS = {
    "/enableEmailNotification": "impersonation_email_enabled",
    "/reasonRequired": "impersonation_reason_required",
    "/maxMinutes": "impersonation_max_minutes",
}


class ConfigPatchError(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def config_patch_values(operations: list[dict[str, Any]]) -> dict[str, Any]:
    """Keyword arguments of ``organization_settings_update`` for validated operations
    (``None`` = inherit). Types and ranges are checked here; inherit/tighten rules by the
    service."""
    values: dict[str, Any] = {}
    for operation in operations:
        path = operation["path"]
        if path == "/reasonMaxLength":
            raise ConfigPatchError("reasonMaxLength is read-only.")
        field = CONFIG_PATHS.get(path)
        if field is None:
            raise ConfigPatchError(f"Unsupported path {path[:100]!r}; use one of {', '.join(CONFIG_PATHS)}.")
        if operation["operation"] == "REMOVE":
            values[field] = None
            continue
        if "value" not in operation:
            raise ConfigPatchError(f"REPLACE of {path} needs a value.")
        value = operation["value"]
        if field == "impersonation_max_minutes":
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_MINUTES_LIMIT:
                raise ConfigPatchError(
                    f"{path} must be a whole number of minutes from 1 to {MAX_MINUTES_LIMIT}."
                )
        elif not isinstance(value, bool):
            raise ConfigPatchError(f"{path} must be true or false.")
        values[field] = value
    return values
