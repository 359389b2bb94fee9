"""SCIM filters over users (identity/selectors/scim_filter.py): the grammar of RFC 7644
§3.4.2.2 through scim2-filter-parser, on the attributes actas keeps."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from identity.models import User
from identity.selectors.scim_filter import ScimFilterError, user_filter_q, user_ordering, value_matcher
from tests.conftest import World, make_user


def names(raw: str, world: World) -> set[str]:
    members = User.objects.filter(organization=world.root)
    return set(members.filter(user_filter_q(raw)).values_list("username", flat=True))


@pytest.fixture
def crew(world: World) -> World:
    make_user(world.root, "grace")
    make_user(world.root, "ada")
    User.objects.filter(username="grace").update(family_name="Hopper", email="grace@navy.test")
    User.objects.filter(username="ada").update(
        family_name="Lovelace", email="", external_id="EXT-1", is_active=False
    )
    return world


@pytest.mark.django_db
def test_every_operator_on_strings(crew: World) -> None:
    assert names('userName eq "GRACE"', crew) == {"grace"}  # userName is not case-exact
    assert "grace" not in names('userName ne "grace"', crew)
    assert names('name.familyName co "ove"', crew) == {"ada"}
    assert names('name.givenName sw "gr"', crew) == {"grace"}
    assert names('emails.value ew "@navy.test"', crew) == {"grace"}
    assert names('emails ew "@NAVY.test"', crew) == {"grace"}
    assert names('externalId eq "EXT-1"', crew) == {"ada"}
    assert names('externalId eq "ext-1"', crew) == set()  # externalId is case-exact
    assert names("externalId pr", crew) == {"ada"}
    assert "ada" not in names("emails pr", crew)  # an empty address is not present
    assert names('userName gt "gr" and userName lt "gs"', crew) == {"grace"}
    assert names('userName ge "grace" and userName le "grace"', crew) == {"grace"}


@pytest.mark.django_db
def test_logic_grouping_and_value_paths(crew: World) -> None:
    assert names('userName eq "ada" or userName eq "grace"', crew) == {"ada", "grace"}
    assert names('not (userName eq "ada") and (name.givenName pr)', crew) >= {"grace"}
    assert "ada" not in names('not (userName eq "ada") and (name.givenName pr)', crew)
    assert names("active eq false", crew) == {"ada"}
    assert names('emails[value co "navy" and primary eq true]', crew) == {"grace"}
    assert names('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ada"', crew) == {"ada"}
    grace = User.objects.get(username="grace")
    assert names(f'id eq "{grace.pk}"', crew) == {"grace"}
    assert names('id eq "not-a-uuid"', crew) == set()


@pytest.mark.django_db
def test_and_binds_tighter_than_or(crew: World) -> None:
    # RFC 7644 §3.4.2.2: a or (b and c), not (a or b) and c; parentheses still group.
    assert names('userName eq "grace" or userName eq "ada" and active eq true', crew) == {"grace"}
    assert names('(userName eq "grace" or userName eq "ada") and active eq false', crew) == {"ada"}
    assert names('userName eq "ada" and active eq false or userName eq "grace"', crew) == {"ada", "grace"}
    match = value_matcher('value eq "x@e.test" or value eq "y@e.test" and primary eq false')
    assert match({"value": "x@e.test", "primary": True})


@pytest.mark.django_db
def test_dates(crew: World) -> None:
    User.objects.filter(username="ada").update(updated_at=timezone.now() - dt.timedelta(days=3))
    since = (timezone.now() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "ada" not in names(f'meta.lastModified gt "{since}"', crew)
    assert "grace" in names(f'meta.lastModified gt "{since}"', crew)
    assert "grace" in names('meta.created ge "2000-01-01T00:00:00Z"', crew)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "userName eq",
        'userName xx "a"',
        'title eq "a"',  # not an attribute actas keeps
        'emails[type eq "work"].value eq "a"',
        'active gt "true"',
        'active eq "maybe"',
        'meta.created gt "yesterday"',
        'meta.created gt "2024-02-30T00:00:00Z"',
        'userName eq "\\ud800"',
        'userName eq "\\q"',
        'userName eq "\x00"',
        'userName eq "' + "a" * 1200 + '"',
        "(" * 500 + 'userName eq "a"' + ")" * 500,
    ],
)
def test_bad_filters_are_refused(bad: str) -> None:
    with pytest.raises(ScimFilterError):
        user_filter_q(bad)


def test_deep_nesting_within_the_length_limit_parses() -> None:
    assert str(user_filter_q("(" * 200 + 'userName eq "a"' + ")" * 200)) == str(
        user_filter_q('userName eq "a"')
    )


def test_json_escapes_are_decoded() -> None:
    assert str(user_filter_q('userName eq "caf\\u00e9"')) == str(user_filter_q('userName eq "café"'))


def test_ordering() -> None:
    assert user_ordering(None, None) == ["username", "pk"]
    assert user_ordering("name.familyName", "descending") == ["-family_name", "-pk"]
    assert user_ordering("meta.lastModified", "ASCENDING") == ["updated_at", "pk"]
    for by, order in (("emails", None), ("title", None), ("userName", "sideways")):
        with pytest.raises(ScimFilterError):
            user_ordering(by, order)


def test_value_matcher_for_patch_paths() -> None:
    match = value_matcher('value eq "A@x.test" and primary eq true')
    assert match({"value": "a@x.test", "primary": True})
    assert not match({"value": "b@x.test", "primary": True})
    assert value_matcher("value pr")({"value": "a@x.test", "primary": True})
    assert not value_matcher('not (value ew "x.test")')({"value": "a@x.test", "primary": True})
    with pytest.raises(ScimFilterError):
        value_matcher('type eq "work"')({"value": "a@x.test", "primary": True})
