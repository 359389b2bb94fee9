"""The pure parts of the API serializers: SCIM filters, PatchOp and config PATCH bodies."""

from __future__ import annotations

from typing import Any

import pytest

from identity.serializers import ScimError, parse_user_filter, primary_email, scim_patch_changes
from impersonation.serializers import ConfigPatchError, config_patch_values


def test_user_filter() -> None:
    assert parse_user_filter('userName eq "alice"') == "alice"
    assert parse_user_filter('  USERNAME EQ "a\\"b"  ') == 'a"b'
    assert parse_user_filter('userName eq ""') == ""
    for bad in (
        'userName ne "a"',
        'userName eq "a" or userName eq "b"',
        "userName eq 'a'",
        'userName eq "\\u0000"',
    ):
        with pytest.raises(ScimError) as caught:
            parse_user_filter(bad)
        assert caught.value.scim_type == "invalidFilter"


def test_patch_changes_later_operations_win() -> None:
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": "name.givenName", "value": "A"},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName", "value": "B"},
        {"op": "replace", "value": {"name": {"familyName": "C"}, "emails": [{"value": "x@e.test"}]}},
        {"op": "remove", "path": "name"},
        {"op": "replace", "path": "name.familyName", "value": "D"},
        {"op": "replace", "path": "active", "value": "TRUE"},
    ]
    changes = scim_patch_changes(ops)
    assert changes.as_kwargs() == {
        "given_name": "",
        "family_name": "D",
        "email": "x@e.test",
        "is_active": True,
    }
    with pytest.raises(ScimError) as caught:
        scim_patch_changes([{"op": "replace", "path": "active", "value": False}], allow_active=False)
    assert caught.value.scim_type == "mutability"


def test_primary_email() -> None:
    assert primary_email([]) == ""
    assert primary_email([{"value": "a"}, {"value": "b", "primary": True}]) == "b"
    assert primary_email([{"value": "a"}, {"value": "b"}]) == "a"


def test_config_patch_values() -> None:
    assert config_patch_values(
        [
            {"operation": "REPLACE", "path": "/enableEmailNotification", "value": False},
            {"operation": "REMOVE", "path": "/reasonRequired"},
            {"operation": "REPLACE", "path": "/maxMinutes", "value": 1440},
        ]
    ) == {
        "impersonation_email_enabled": False,
        "impersonation_reason_required": None,
        "impersonation_max_minutes": 1440,
    }
    for bad in (
        {"operation": "REPLACE", "path": "/maxMinutes", "value": "10"},
        {"operation": "REPLACE", "path": "/reasonRequired", "value": 1},
        {"operation": "REPLACE", "path": "/reasonMaxLength", "value": 500},
    ):
        with pytest.raises(ConfigPatchError):
            config_patch_values([bad])
