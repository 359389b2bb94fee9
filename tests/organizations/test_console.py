"""Console → Organizations: the tree, lazy children, creating a child, switching."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from identity.audit.models import AuditEvent
from organizations.models import Organization
from organizations.services import org_insert, organization_create
from tests.conftest import World, console_url, sign_in


def test_tree_shows_children_and_switch_links(admin_client: Client, world: World) -> None:
    body = admin_client.get(console_url(world.root, "organizations/")).content.decode()
    assert "Acme EU" in body and "Acme US" in body
    assert "Acme EU Sales" not in body  # grandchildren load lazily
    assert console_url(world.eu) in body  # switch into its Console
    assert f"?node={world.eu.pk}" in body  # the no-JavaScript way down


def test_children_fragment(admin_client: Client, world: World) -> None:
    response = admin_client.get(console_url(world.root, f"organizations/{world.eu.pk}/children/"))
    assert response.status_code == 200
    assert b"Acme EU Sales" in response.content and b"<html" not in response.content


def test_node_outside_subtree_is_404(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    assert client.get(console_url(world.eu, f"organizations/?node={world.us.pk}")).status_code == 404
    assert client.get(console_url(world.eu, f"organizations/{world.root.pk}/children/")).status_code == 404
    assert client.get(console_url(world.eu, f"organizations/?node={world.sales.pk}")).status_code == 200


def test_create_child(admin_client: Client, world: World) -> None:
    response = admin_client.post(
        console_url(world.root, "organizations/create/"),
        {"parent": world.eu.pk, "name": "EU North", "handle": "acme-eu-north"},
    )
    assert response.status_code == 302
    org = Organization.objects.get(handle="acme-eu-north")
    assert org.parent == world.eu and org.tenant == world.root


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "Dup", "handle": "acme-us"}, b"already exists"),
        ({"name": "", "handle": "fine-handle"}, b"required"),
        ({"name": "Bad", "handle": "Bad Handle"}, b"lowercase"),
    ],
)
def test_create_errors_are_form_errors(
    admin_client: Client, world: World, data: dict, message: bytes
) -> None:
    before = Organization.objects.count()
    response = admin_client.post(
        console_url(world.root, "organizations/create/"), {"parent": world.root.pk, **data}
    )
    assert response.status_code == 400 and message in response.content
    assert Organization.objects.count() == before


def test_parent_from_another_tenant_refused(admin_client: Client, world: World) -> None:
    other = org_insert(parent=None, name="Globex", handle="globex")
    response = admin_client.post(
        console_url(world.root, "organizations/create/"),
        {"parent": other.pk, "name": "Sneaky", "handle": "sneaky"},
    )
    assert response.status_code == 400 and b"not one you administer" in response.content
    assert not Organization.objects.filter(handle="sneaky").exists()


def test_child_admin_cannot_create_beside_itself(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    response = client.post(
        console_url(world.eu, "organizations/create/"),
        {"parent": world.root.pk, "name": "Sideways", "handle": "sideways"},
    )
    assert response.status_code == 400
    response = client.post(
        console_url(world.root, "organizations/create/"),
        {"parent": world.root.pk, "name": "Sideways", "handle": "sideways"},
    )
    assert response.status_code == 403
    assert not Organization.objects.filter(handle="sideways").exists()


def test_tree_query_count_does_not_grow(admin_client: Client, world: World) -> None:
    url = console_url(world.us, "organizations/")
    organization_create(actor=None, parent=world.us, name="Branch", handle="branch")
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    for i in range(25):
        organization_create(actor=None, parent=world.us, name=f"Branch {i:02d}", handle=f"branch-{i:02d}")
    with CaptureQueriesContext(connection) as many:
        assert admin_client.get(url).status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


def test_disable_and_enable_a_child(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    url = console_url(world.eu, f"organizations/{world.sales.pk}/status/")
    assert client.get(url).status_code == 405
    response = client.post(url, {"status": "disabled"})
    assert response.status_code == 302
    world.sales.refresh_from_db()
    assert world.sales.status == "disabled"
    assert AuditEvent.objects.filter(
        action="organization-status-change", target_id=str(world.sales.pk)
    ).exists()
    client.post(url, {"status": "active"})
    world.sales.refresh_from_db()
    assert world.sales.status == "active"
    assert client.post(url, {"status": "bogus"}).status_code == 302  # refused with a message
    world.sales.refresh_from_db()
    assert world.sales.status == "active"


def test_cannot_disable_own_or_outside_org(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    own = client.post(console_url(world.eu, f"organizations/{world.eu.pk}/status/"), {"status": "disabled"})
    sibling = client.post(
        console_url(world.eu, f"organizations/{world.us.pk}/status/"), {"status": "disabled"}
    )
    assert own.status_code == 404 and sibling.status_code == 404
    world.eu.refresh_from_db()
    world.us.refresh_from_db()
    assert world.eu.status == world.us.status == "active"
