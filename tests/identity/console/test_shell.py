"""identity.console.shell: every Console form POST is UTF-8, or it is refused before the view."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.test import Client

from identity.audit.models import AuditEvent
from identity.models import Role
from tests.conftest import World, console_url

URLENCODED = "application/x-www-form-urlencoded"


def _create_role(client: Client, world: World, body: bytes, content_type: str = URLENCODED) -> int:
    response = client.generic("POST", console_url(world.eu, "roles/create/"), body, content_type=content_type)
    if response.status_code == 400:  # the site's 400 page says what to do
        assert b"have to arrive as UTF-8" in response.content and b"Nothing was changed" in response.content
    return response.status_code


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"name=\xed\xa0\x80&audience=organization", URLENCODED),  # raw bytes that are not UTF-8
        (b"name=%ed%a0%80&audience=organization", URLENCODED),  # the same, %-escaped
        (b"name=%ff%fe&audience=organization", URLENCODED),
        (b"name=Caf\xe9&audience=organization", URLENCODED + "; charset=latin-1"),  # another charset
    ],
)
def test_a_form_that_is_not_utf8_is_refused_and_changes_nothing(
    admin_client: Client, world: World, body: bytes, content_type: str
) -> None:
    roles, events = Role.objects.count(), AuditEvent.objects.count()
    assert _create_role(admin_client, world, body, content_type) == 400
    assert Role.objects.count() == roles
    assert AuditEvent.objects.count() == events


def test_utf8_names_are_welcome(admin_client: Client, world: World) -> None:
    name = "Ärzte – 東京"
    body = f"name={quote(name)}&audience=organization".encode()
    assert _create_role(admin_client, world, body) == 302
    assert (
        _create_role(
            admin_client,
            world,
            f"name={quote('Café')}&audience=organization".encode(),
            URLENCODED + "; charset=utf-8",
        )
        == 302
    )
    assert set(Role.objects.filter(organization=world.eu).values_list("name", flat=True)) >= {name, "Café"}
