"""What My Account shows: launchable applications under impersonation, and the history of
impersonations of an account."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from identity import context
from identity.audit.services import audit_record
from identity.models import APIResource, RoleAssignment
from identity.services.applications import application_authorize_api
from identity.services.roles import role_assign, role_create
from identity.services.sessions import sso_session_start
from impersonation.models import ImpersonationSession
from myaccount import selectors
from tests.conftest import World
from tests.identity.oauth_helpers import App, make_app
from tests.impersonation.helpers import impersonation_app


@pytest.fixture
def pickup(world: World) -> App:
    return impersonation_app(world, discoverable=True, access_url="http://127.0.0.1:8765/")


def _names(items: list[selectors.Launchable]) -> list[str]:
    return [i.application.client_id for i in items]


def test_launchable_needs_discoverable_authorized_available_and_permission(world: World, pickup: App) -> None:
    impersonation_app(world, client_id="norole", discoverable=True, access_url="https://norole.example/")
    RoleAssignment.objects.filter(role__name="norole impersonator").delete()
    impersonation_app(world, client_id="hidden")  # the permission, but not discoverable
    make_app(world, client_id="plain", discoverable=True, access_url="https://plain.example/")
    unshared = impersonation_app(
        world, client_id="unshared", share=False, discoverable=True, access_url="https://u.example/"
    )
    assert unshared.app.shared_access == "none"
    found = selectors.impersonation_applications(
        impersonator=world.impersonator, subject=world.target, org=world.root
    )
    assert sorted(_names(found)) == ["pickup", "unshared"]  # owned by the root: available there
    # In a child org: only what is shared there and authorizes *Organization* User Impersonation.
    assert (
        _names(
            selectors.impersonation_applications(
                impersonator=world.impersonator, subject=world.eu_user, org=world.eu
            )
        )
        == []
    )


def test_launchable_in_a_child_org_uses_the_org_impersonation_scope(world: World) -> None:
    app = make_app(world, client_id="eu-app", discoverable=True, access_url="https://eu.example/")
    users = APIResource.objects.get(tenant=world.root, identifier="system:impersonation")
    # Authorized only for User Impersonation (root): not enough in Acme EU.
    application_authorize_api(
        actor=None, application=app.app, resource=users, scopes=["internal_user_impersonate"]
    )
    role = role_create(
        actor=None,
        org=world.root,
        name="eu-app impersonator",
        audience_application=app.app,
        permissions=["internal_user_impersonate"],
    )
    role_assign(actor=None, role=role, org=world.eu, user=world.eu_admin)
    assert (
        selectors.impersonation_applications(impersonator=world.eu_admin, subject=world.eu_user, org=world.eu)
        == []
    )
    org_resource = APIResource.objects.get(tenant=world.root, identifier="org:impersonation")
    application_authorize_api(
        actor=None, application=app.app, resource=org_resource, scopes=["internal_org_user_impersonate"]
    )
    role.permissions.add(*org_resource.scopes.all())
    found = selectors.impersonation_applications(
        impersonator=world.eu_admin, subject=world.eu_user, org=world.eu
    )
    assert _names(found) == ["eu-app"]


def test_an_app_asking_consent_is_listed_as_blocked(world: World) -> None:
    impersonation_app(
        world,
        client_id="asks",
        discoverable=True,
        access_url="https://asks.example/",
        skip_login_consent=False,
    )
    found = selectors.impersonation_applications(
        impersonator=world.impersonator, subject=world.target, org=world.root
    )
    assert _names(found) == ["asks"] and "consent" in found[0].blocked


def test_history_shows_changes_only_within_the_impersonation(world: World, pickup: App) -> None:
    sso = sso_session_start(user=world.impersonator, org=world.root, amr=["BasicAuthenticator"])
    start = timezone.now()

    def change(action: str, at: dt.datetime, impersonator: object = world.impersonator) -> None:
        with time_machine.travel(at, tick=False):
            audit_record(
                org=world.root,
                action=action,
                actor=world.impersonator,
                impersonator=impersonator,  # type: ignore[arg-type]
                subject=world.target,
            )

    change("before", start - dt.timedelta(minutes=1))
    session = ImpersonationSession.objects.create(
        tenant=world.root,
        organization=world.root,
        impersonator=world.impersonator,
        subject=world.target,
        application=pickup.app,
        sso_session=sso,
        channel="console",
        reason="r",
        started_at=start,
        expires_at=start + dt.timedelta(minutes=60),
        ended_at=start + dt.timedelta(minutes=10),
        end_reason="ended",
    )
    change("during", start + dt.timedelta(minutes=5))
    change("impersonation-end", start + dt.timedelta(minutes=10))
    change("by-someone-else", start + dt.timedelta(minutes=6), impersonator=world.admin)
    change("after", start + dt.timedelta(minutes=11))
    page = selectors.access_history(user=world.target, tenant=world.root, before=None)
    (entry,) = page.entries
    assert entry.session.pk == session.pk and not entry.active
    assert [v.event.action for v in entry.changes] == ["during"]
    assert entry.duration_label == "10 min" and entry.end_label == "Ended by the impersonator"
    assert [a.client_id for a in entry.applications] == ["pickup"]


def test_an_impersonation_past_its_cap_reads_as_ended(world: World, pickup: App) -> None:
    sso = sso_session_start(user=world.impersonator, org=world.root, amr=["BasicAuthenticator"])
    start = timezone.now() - dt.timedelta(hours=2)
    ImpersonationSession.objects.create(
        tenant=world.root,
        organization=world.root,
        impersonator=world.impersonator,
        subject=world.target,
        application=pickup.app,
        sso_session=sso,
        channel="console",
        started_at=start,
        expires_at=start + dt.timedelta(minutes=60),
    )
    (entry,) = selectors.access_history(user=world.target, tenant=world.root, before=None).entries
    assert not entry.active and entry.end_label == "Time limit reached" and entry.duration_label == "1 h"


@pytest.mark.parametrize("raw", ["", "x", "%%%", "bm90LWEtZGF0ZXx4", "MjAzMC0wMS0wMVQwMDowMDowMHw1"])
def test_garbage_cursors_are_refused(raw: str) -> None:
    assert selectors.decode_cursor(raw) is None


def _impersonation(world: World, pickup: App, start: dt.datetime) -> ImpersonationSession:
    sso = sso_session_start(user=world.impersonator, org=world.root, amr=["BasicAuthenticator"])
    return ImpersonationSession.objects.create(
        tenant=world.root,
        organization=world.root,
        impersonator=world.impersonator,
        subject=world.target,
        application=pickup.app,
        sso_session=sso,
        channel="console",
        reason="r",
        started_at=start,
        expires_at=start + dt.timedelta(minutes=60),
    )


def _api_write(world: World, request_id: str, *, change: bool, outcome: str = "success") -> None:
    """What an API write with an impersonated token records: the change the service made
    (when it made one) and the call, in one request."""
    with context.bound(context.RequestContext(request_id=request_id)):
        if change:
            audit_record(
                org=world.root,
                action="user-profile-update",
                actor=world.target,
                impersonator=world.impersonator,
                subject=world.target,
                data={"changes": {"given_name": {"from": "Target", "to": request_id}}},
            )
        audit_record(
            org=world.root,
            action="resource-modification-via-impersonation",
            actor=world.impersonator,
            impersonator=world.impersonator,
            subject=world.target,
            outcome=outcome,
            data={
                "httpMethod": "PATCH",
                "ResourcePath": "/t/acme/scim2/Me",
                "status": 200 if outcome == "success" else 403,
            },
        )


def test_one_entry_per_change_made_through_the_api(world: World, pickup: App) -> None:
    _impersonation(world, pickup, timezone.now() - dt.timedelta(minutes=5))
    _api_write(world, "req-change-0001", change=True)
    _api_write(world, "req-change-0002", change=True)
    _api_write(world, "req-refused-001", change=False, outcome="failure")  # refused: nothing changed
    (entry,) = selectors.access_history(user=world.target, tenant=world.root, before=None).entries
    assert [(v.event.action, v.event.request_id) for v in entry.changes] == [
        ("user-profile-update", "req-change-0001"),
        ("user-profile-update", "req-change-0002"),
        ("resource-modification-via-impersonation", "req-refused-001"),
    ]
    first = entry.changes[0]
    assert first.label == "Profile updated while impersonating"
    assert first.initiator == "impersonator as target"
    assert [(c.field, c.before, c.after) for c in first.changes] == [
        ("Given name", "Target", "req-change-0001")
    ]
    assert entry.changes[2].sentence == (
        "impersonator as target changed /t/acme/scim2/Me (PATCH). It was refused (403)."
    )
    assert entry.more_changes == 0


def test_more_changes_counts_one_per_change(
    world: World, pickup: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "CHANGES_SHOWN", 2)
    _impersonation(world, pickup, timezone.now() - dt.timedelta(minutes=5))
    for i in range(5):
        _api_write(world, f"req-many-{i:05d}", change=True)
    (entry,) = selectors.access_history(user=world.target, tenant=world.root, before=None).entries
    assert len(entry.changes) == 2 and entry.more_changes == 3
