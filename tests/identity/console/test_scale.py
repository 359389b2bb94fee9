"""The Console's Users and Organizations pages stay bounded as pages, subtrees and trees grow."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings

from identity.selectors.users import org_member_page
from identity.services.users import user_share
from organizations.models import Organization
from tests.conftest import World, console_url, make_user

pytestmark = pytest.mark.django_db


def _get(client: Client, url: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries), response.content.decode()


def _usernames(body: str) -> list[str]:
    return re.findall(r'<th scope="row"><a href="[^"]+/users/[0-9a-f-]{36}/">([^<]+)</a>', body)


@pytest.mark.parametrize("scope", ["", "scope=subtree"])
def test_users_page_query_count_is_the_same_for_5_and_50_rows(
    admin_client: Client, world: World, scope: str
) -> None:
    for i in range(110):
        make_user(world.eu if i % 2 else world.sales, f"u{i:03d}")
    url = console_url(world.eu, f"users/?{scope}")
    with override_settings(ACTAS_CONSOLE_PAGE_SIZE=5):
        few, body_few = _get(admin_client, url)
    with override_settings(ACTAS_CONSOLE_PAGE_SIZE=50):
        many, body_many = _get(admin_client, url)
    assert len(_usernames(body_few)) == 5 and len(_usernames(body_many)) == 50
    assert many == few
    # a later page (keyset cursor) costs the same again
    cursor = re.search(r"after=([A-Za-z0-9_-]+)", body_many)
    assert cursor is not None
    with override_settings(ACTAS_CONSOLE_PAGE_SIZE=50):
        later, _ = _get(admin_client, f"{url}&after={cursor.group(1)}")
    assert later == few


def test_subtree_pages_walk_every_member_once_in_order(admin_client: Client, world: World) -> None:
    for i in range(23):
        make_user([world.eu, world.sales][i % 2], f"w{i:02d}")
    user_share(actor=None, user=make_user(world.root, "w-shared"), org=world.eu)
    expected = sorted({u.username for u in org_member_page(org=world.eu, subtree=True, size=1000).users})
    assert "w-shared" in expected and "sales-user" in expected and "eu-user" in expected
    assert "us-user" not in expected and "admin" not in expected  # not below Acme EU
    seen: list[str] = []
    url = console_url(world.eu, "users/?scope=subtree")
    with override_settings(ACTAS_CONSOLE_PAGE_SIZE=4):
        while True:
            _, body = _get(admin_client, url)
            seen.extend(_usernames(body))
            nxt = re.search(r'href="([^"]+)" rel="next"', body)
            if nxt is None:
                break
            url = nxt.group(1).replace("&amp;", "&")
            assert "scope=subtree" in url
    assert seen == expected


def test_subtree_rows_link_to_the_residents_own_console(admin_client: Client, world: World) -> None:
    make_user(world.sales, "deep")
    _, body = _get(admin_client, console_url(world.root, "users/?scope=subtree&q=deep"))
    link = re.search(r'href="([^"]+)">deep<', body)
    assert link is not None and link.group(1).startswith(console_url(world.sales, "users/"))
    assert "Resident in Acme EU Sales" in body or f"Resident in {world.sales.name}" in body
    assert admin_client.get(link.group(1)).status_code == 200
    # without the subtree scope the root lists only its own members
    _, own = _get(admin_client, console_url(world.root, "users/?q=deep"))
    assert _usernames(own) == []


def test_search_matches_prefixes_in_the_subtree_only(admin_client: Client, world: World) -> None:
    make_user(world.sales, "zed-sales", family_name="Quartz")
    make_user(world.us, "zed-us", family_name="Quartz")
    _, body = _get(admin_client, console_url(world.eu, "users/?scope=subtree&q=quar"))
    assert _usernames(body) == ["zed-sales"]
    _, body = _get(admin_client, console_url(world.eu, "users/?scope=subtree&q=uartz"))
    assert _usernames(body) == []  # a prefix, not a substring


def test_tree_and_children_queries_do_not_grow_with_the_tree(admin_client: Client, world: World) -> None:
    from organizations.services import organization_create

    tree = console_url(world.root, "organizations/")
    children = console_url(world.root, f"organizations/{world.eu.pk}/children/")
    few_tree, _ = _get(admin_client, tree)
    few_children, _ = _get(admin_client, children)
    for i in range(12):
        parent = organization_create(actor=None, parent=world.eu, name=f"Branch {i:02d}", handle=f"b-{i}")
        organization_create(actor=None, parent=parent, name=f"Leaf {i:02d}", handle=f"l-{i}")
    many_tree, body = _get(admin_client, tree)
    many_children, fragment = _get(admin_client, children)
    assert many_tree == few_tree and many_children == few_children
    assert "Branch 00" not in body  # grandchildren are not rendered until opened
    assert "Branch 11" in fragment and "Leaf 00" not in fragment
    assert Organization.objects.filter(parent=world.eu).count() >= 12
