"""An administrator sets up a provisioning tool in the Console by clicking, the tool provisions
a user over SCIM with the credentials the Console showed, and the administrator finds the user
and, in Logs, the application named as the one who created and deactivated them."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from identity.audit.models import AuditEvent
from identity.models import User
from tests.conftest import World
from tests.e2e.walkthrough import app_tab, console_path, flash, nav, open_user, sign_in

pytestmark = pytest.mark.e2e

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCOPES = (
    "internal_user_mgt_list",
    "internal_user_mgt_view",
    "internal_user_mgt_create",
    "internal_user_mgt_update",
)


def create_provisioning_app(page: Any, *, shot: Any) -> tuple[str, str]:
    """Applications → New application: a confidential client with only the client-credentials
    grant, then API Authorization → User Management. The client id and secret shown once."""
    nav(page, "Applications")
    page.get_by_role("button", name="New application").click()
    page.get_by_role("heading", name="New application", level=1).wait_for()
    page.get_by_label("Name", exact=True).fill("HR Sync")
    page.get_by_label("Description").fill("Provisions employees from the HR system")
    page.get_by_label("Confidential (a server that can keep a client secret)").check()
    for grant in ("Authorization code", "Refresh token"):
        page.get_by_label(grant, exact=True).uncheck()
    page.get_by_label("Client credentials", exact=True).check()
    shot(page, "new-provisioning-application")
    page.get_by_role("button", name="Create application").click()
    page.get_by_role("heading", name="HR Sync created").wait_for()
    client_id = page.locator("#client-id").inner_text().strip()
    secret = page.get_by_label("Client secret").input_value().strip()
    page.get_by_role("button", name="Continue to the application").click()
    page.get_by_role("heading", name="General", level=2).wait_for()

    app_tab(page, "API Authorization")
    page.get_by_label("API resource", exact=True).select_option(label="User Management (system)")
    page.get_by_role("button", name="Choose scopes").click()
    page.get_by_role("group", name="Authorized scopes of User Management").wait_for()
    for scope in SCOPES:
        page.get_by_label(scope).check()
    shot(page, "user-management-scopes-chosen")
    page.get_by_role("button", name="Authorize").click()
    flash(page, "HR Sync may now request the chosen scopes of User Management.")
    shot(page, "user-management-authorized")
    return client_id, secret


def test_a_provisioning_tool_set_up_in_the_console_creates_and_deactivates_a_user(
    page: Any, live_url: str, world: World, shot: Any
) -> None:
    sign_in(page, live_url, console_path(world.root), "admin")
    client_id, secret = create_provisioning_app(page, shot=shot)

    # The tool, with what the Console showed: a token of its own, then SCIM.
    token = requests.post(
        f"{live_url}/t/acme/oauth2/token",
        data={"grant_type": "client_credentials", "scope": " ".join(SCOPES)},
        auth=(client_id, secret),
        timeout=10,
    )
    assert token.status_code == 200, token.text
    scim = requests.Session()
    scim.headers.update(
        {
            "Authorization": f"Bearer {token.json()['access_token']}",
            "Content-Type": "application/scim+json",
        }
    )
    created = scim.post(
        f"{live_url}/t/acme/scim2/Users",
        json={
            "schemas": [USER_SCHEMA],
            "userName": "dana.hr",
            "externalId": "HR-0042",
            "name": {"givenName": "Dana", "familyName": "Reyes"},
            "emails": [{"value": "dana@acme.example", "type": "work", "primary": True}],
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    found = scim.get(
        f"{live_url}/t/acme/scim2/Users", params={"filter": 'externalId eq "HR-0042"'}, timeout=10
    )
    assert [u["userName"] for u in found.json()["Resources"]] == ["dana.hr"]
    left = scim.patch(
        created.headers["Location"],
        json={"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": False}]},
        headers={"If-Match": created.headers["ETag"]},
        timeout=10,
    )
    assert left.status_code == 200 and left.json()["active"] is False, left.text
    assert not User.objects.get(username="dana.hr").is_active

    # The administrator: the user is there, and Logs name the application.
    open_user(page, "dana.hr")
    profile = page.get_by_role("region", name="Profile")
    assert "External ID" in profile.inner_text() and "HR-0042" in profile.inner_text()
    assert page.get_by_text("Disabled", exact=True).first.is_visible()
    shot(page, "provisioned-user")
    nav(page, "Logs")
    created_row = page.locator("#audit-events tbody tr", has_text="User created").first
    created_row.wait_for()
    assert "HR Sync (application)" in created_row.inner_text(), created_row.inner_text()
    status_row = page.locator("#audit-events tbody tr", has_text="Account status changed").first
    assert "HR Sync (application)" in status_row.inner_text(), status_row.inner_text()
    shot(page, "logs-name-the-application")
    events = AuditEvent.objects.filter(subject_label__startswith="dana.hr").order_by("seq")
    assert [(e.action, e.actor_id, e.client_id) for e in events] == [
        ("user-create", None, client_id),
        ("user-status-change", None, client_id),
    ]
