"""The pure parts of the API serializers: SCIM versions and projections, config PATCH bodies."""

from __future__ import annotations

import pytest

from identity.models import User
from identity.serializers import etag_matches, primary_email, scim_project, scim_version
from impersonation.serializers import ConfigPatchError, config_patch_values


def test_primary_email() -> None:
    assert primary_email([]) == ""
    assert primary_email([{"value": "a"}, {"value": "b", "primary": True}]) == "b"
    assert primary_email([{"value": "a"}, {"value": "b"}]) == "a"


def test_version_moves_with_what_a_client_sees() -> None:
    user = User(username="carol", given_name="Carol", email="c@e.test")
    before = scim_version(user)
    assert before.startswith('W/"') and scim_version(user) == before
    user.last_login = None  # not part of the resource
    assert scim_version(user) == before
    user.external_id = "X-1"
    assert scim_version(user) != before
    after = scim_version(user)
    assert etag_matches(after, after) and etag_matches(after[2:], after)  # weak comparison
    assert etag_matches(f'"other", {after}', after) and etag_matches("*", after)
    assert not etag_matches(before, after)


def test_projection() -> None:
    body = {
        "schemas": ["s"],
        "id": "1",
        "userName": "carol",
        "name": {"givenName": "Carol", "familyName": "King"},
        "active": True,
        "meta": {"version": "v"},
    }
    assert scim_project(dict(body), attributes="userName,name.familyName", excluded=None) == {
        "schemas": ["s"],
        "id": "1",
        "userName": "carol",
        "name": {"familyName": "King"},
        "meta": {"version": "v"},
    }
    assert "active" not in scim_project(dict(body), attributes=None, excluded="ACTIVE,id")
    assert "id" in scim_project(dict(body), attributes=None, excluded="id")  # always returned
    assert scim_project(dict(body), attributes=None, excluded="name.givenName")["name"] == {
        "familyName": "King"
    }


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
