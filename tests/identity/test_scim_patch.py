"""SCIM PATCH and PUT bodies → service arguments (identity/scim_patch.py)."""

from __future__ import annotations

from typing import Any

import pytest

from identity.models import User
from identity.scim_patch import scim_patch_changes, scim_replace_changes
from identity.serializers import ScimError


def test_later_operations_win() -> None:
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": "name.givenName", "value": "A"},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName", "value": "B"},
        {"op": "replace", "value": {"name": {"familyName": "C"}, "emails": [{"value": "x@e.test"}]}},
        {"op": "remove", "path": "name"},
        {"op": "replace", "path": "name.familyName", "value": "D"},
        {"op": "replace", "path": "active", "value": "TRUE"},
        {"op": "Replace", "path": "externalId", "value": "E-9"},
        {"op": "replace", "path": "password", "value": "a-new-long-password"},
    ]
    assert scim_patch_changes(ops).as_kwargs() == {
        "given_name": "",
        "family_name": "D",
        "email": "x@e.test",
        "is_active": True,
        "external_id": "E-9",
        "password": "a-new-long-password",
    }
    with pytest.raises(ScimError) as caught:
        scim_patch_changes([{"op": "replace", "path": "active", "value": False}], allow_active=False)
    assert caught.value.scim_type == "mutability"


def test_value_filter_paths_target_the_one_address() -> None:
    replace = [{"op": "replace", "path": 'emails[value eq "old@e.test"].value', "value": "new@e.test"}]
    assert scim_patch_changes(replace, current_email="OLD@e.test").email == "new@e.test"
    primary = [{"op": "replace", "path": "emails[primary eq true].value", "value": "p@e.test"}]
    assert scim_patch_changes(primary, current_email="old@e.test").email == "p@e.test"
    remove = [{"op": "remove", "path": 'emails[value eq "old@e.test"]'}]
    assert scim_patch_changes(remove, current_email="old@e.test").email == ""
    # Nothing matches: remove is a no-op, replace has no target.
    assert scim_patch_changes(remove, current_email="other@e.test").email is None
    with pytest.raises(ScimError) as caught:
        scim_patch_changes(replace, current_email="other@e.test")
    assert caught.value.scim_type == "noTarget"
    with pytest.raises(ScimError) as caught:
        scim_patch_changes([{"op": "remove", "path": 'emails[type eq "work"]'}], current_email="a@e.test")
    assert caught.value.scim_type == "invalidFilter"


@pytest.mark.parametrize(
    ("operation", "scim_type"),
    [
        ({"op": "remove", "path": "active"}, "mutability"),
        ({"op": "remove", "path": "userName"}, "mutability"),
        ({"op": "replace", "path": "userName", "value": "x"}, "mutability"),
        ({"op": "replace", "path": "meta.version", "value": "x"}, "mutability"),
        ({"op": "replace", "path": "title", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": 'phoneNumbers[type eq "work"].value', "value": "1"}, "invalidPath"),
        ({"op": "replace", "path": "password", "value": ""}, "invalidValue"),
        ({"op": "remove"}, "noTarget"),
    ],
)
def test_refused_operations(operation: dict[str, Any], scim_type: str) -> None:
    with pytest.raises(ScimError) as caught:
        scim_patch_changes([operation], current_email="a@e.test")
    assert caught.value.scim_type == scim_type


def test_a_whole_resource_as_the_value_may_repeat_but_not_change_the_user_name() -> None:
    resource = {"schemas": ["x"], "id": "1", "userName": "Carol", "name": {"givenName": "C"}}
    same = scim_patch_changes([{"op": "replace", "value": resource}], current_username="carol")
    assert same.given_name == "C"
    with pytest.raises(ScimError) as caught:
        scim_patch_changes([{"op": "replace", "value": resource}], current_username="dave")
    assert caught.value.scim_type == "mutability"


def test_a_value_filter_sees_what_earlier_operations_changed() -> None:
    ops: list[dict[str, Any]] = [
        {"op": "replace", "path": "emails", "value": [{"value": "b@e.test"}]},
        {"op": "remove", "path": 'emails[value eq "a@e.test"]'},
    ]
    assert scim_patch_changes(ops, current_email="a@e.test").email == "b@e.test"
    ops[1] = {"op": "remove", "path": 'emails[value eq "b@e.test"]'}
    assert scim_patch_changes(ops, current_email="a@e.test").email == ""


def test_remove_password_makes_it_unusable() -> None:
    assert scim_patch_changes([{"op": "remove", "path": "password"}]).password == ""


def test_replace_clears_what_is_left_out_and_keeps_the_user_name() -> None:
    user = User(username="carol", given_name="Carol", email="c@e.test", external_id="X")
    changes = scim_replace_changes({"userName": "Carol", "name": {"familyName": "King"}}, user)
    assert changes.as_kwargs() == {
        "given_name": "",
        "family_name": "King",
        "email": "",
        "is_active": None,
        "external_id": "",
        "password": None,
    }
    with pytest.raises(ScimError) as caught:
        scim_replace_changes({"userName": "someone-else"}, user)
    assert caught.value.scim_type == "mutability"
