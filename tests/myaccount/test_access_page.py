"""Access to my account, as the impersonated person reads it: one entry per change, in words,
with what changed; and the misuse report's count in correct English."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client

from identity.audit.models import AuditEvent
from identity.models import APIResource
from identity.services.applications import application_authorize_api
from identity.services.roles import role_assign, role_create
from impersonation.models import ImpersonationSession
from tests.conftest import World, make_user, sign_in
from tests.identity.oauth_helpers import App
from tests.impersonation.helpers import impersonation_app
from tests.myaccount.helpers import ROOT, open_myaccount, start_impersonation

WRITE_SCOPES = ["internal_user_mgt_view", "internal_user_mgt_update"]
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
def pickup(world: World) -> App:
    """Pickup, allowed to update users; the target and the impersonator (who must still hold
    all the target holds) may."""
    app = impersonation_app(world)
    users = APIResource.objects.get(tenant=world.root, identifier="system:users")
    application_authorize_api(actor=None, application=app.app, resource=users, scopes=WRITE_SCOPES)
    login = APIResource.objects.get(tenant=world.root, identifier="system:login")
    application_authorize_api(
        actor=None,
        application=app.app,
        resource=login,
        scopes=list(login.scopes.values_list("name", flat=True)),
    )
    writer = role_create(
        actor=None,
        org=world.root,
        name="pickup writer",
        audience_application=app.app,
        permissions=WRITE_SCOPES,
    )
    for user in (world.target, world.impersonator):
        role_assign(actor=None, role=writer, org=world.root, user=user)
    return app


def _patch_me(token: str, given_name: str) -> Any:
    body = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "name.givenName", "value": given_name}],
    }
    return Client().patch(
        "/t/acme/scim2/Me",
        data=json.dumps(body),
        content_type="application/scim+json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def _text(html: str) -> str:
    spaced = re.sub(r"<(/?(?:li|ul|dt|dd|br|p|h\d|small)\b)", r" <\1", html)
    return " ".join(re.sub(r"<[^>]+>", "", spaced).split())


def _access_page(client: Client, world: World) -> str:
    sign_in(client, world.target)
    page, _chain = open_myaccount(client, f"{ROOT}access/")
    assert page.status_code == 200
    return str(page.content.decode())


def test_a_change_through_the_api_is_listed_once_in_words(client: Client, world: World, pickup: App) -> None:
    support = Client()
    tokens = start_impersonation(
        support,
        world,
        pickup,
        scope="openid internal_user_impersonate internal_login " + " ".join(WRITE_SCOPES),
    )
    assert _patch_me(tokens["access_token"], "Changed").status_code == 200
    # The request recorded two events: the API call and the change it made.
    assert (
        AuditEvent.objects.filter(subject_id=world.target.pk, impersonator_id=world.impersonator.pk)
        .filter(action__in=["user-profile-update", "resource-modification-via-impersonation"])
        .count()
        == 2
    )
    assert support.post("/t/acme/impersonation/end").status_code == 200

    body = _access_page(client, world)
    changes = body.split("What was changed", 1)[1].split("</ul>", 1)[0]
    entries = re.findall(r'<li data-action="([^"]+)">', changes)
    assert entries == ["user-profile-update"]  # one entry per change
    text = _text(changes)
    assert "Profile updated while impersonating" in text
    assert "impersonator as target updated the profile of target." in text
    assert "Given name: from Target → to Changed" in text
    assert "resource-modification-via-impersonation" not in text


@pytest.mark.parametrize(
    ("administrators", "said"), [(1, "1 administrator has been told"), (2, "2 administrators have been told")]
)
def test_the_report_counts_the_administrators_told(
    client: Client, world: World, pickup: App, administrators: int, said: str
) -> None:
    for i in range(administrators - 1):
        role_assign(
            actor=None,
            role=world.system.administrator,
            org=world.root,
            user=make_user(world.root, f"extra-admin-{i}"),
        )
    start_impersonation(Client(), world, pickup)
    session = ImpersonationSession.objects.get()
    _access_page(client, world)
    response = client.post(f"{ROOT}access/{session.pk}/report", {"note": "Not me"}, follow=True)
    assert f"Thank you. Your report is recorded and {said}." in response.content.decode()
