"""The writes behind My Account: "sign out everywhere else" (myaccount.services), the profile
update (identity.services.users.user_profile_update) and the misuse report
(impersonation.misuse.impersonation_report_misuse)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from identity.audit.models import AuditEvent
from identity.models import SSOSession, User
from identity.notifications.models import OutboxMessage
from identity.services.roles import role_assign
from identity.services.sessions import sso_session_start
from identity.services.users import user_profile_update
from impersonation.misuse import impersonation_report_misuse
from impersonation.models import ImpersonationSession
from myaccount.services import myaccount_sign_out_other_sessions
from organizations.models import Organization
from tests.conftest import World, make_user


def _impersonation(
    world: World, *, impersonator: User, subject: User, org: Organization
) -> ImpersonationSession:
    sso = sso_session_start(user=impersonator, org=org, amr=["BasicAuthenticator"])
    now = timezone.now()
    return ImpersonationSession.objects.create(
        tenant=world.root,
        organization=org,
        impersonator=impersonator,
        subject=subject,
        application=world.system.myaccount,
        sso_session=sso,
        channel="console",
        reason="Ticket 7",
        started_at=now,
        expires_at=now + dt.timedelta(minutes=60),
    )


# --- sign out everywhere else ---------------------------------------------------------------------


def test_sign_out_others_ends_only_the_others(world: World) -> None:
    here = sso_session_start(user=world.target, org=world.root, amr=["BasicAuthenticator"])
    there = sso_session_start(user=world.target, org=world.root, amr=["BasicAuthenticator"])
    in_eu = sso_session_start(user=world.target, org=world.eu, amr=["BasicAuthenticator"])
    someone_else = sso_session_start(user=world.admin, org=world.root, amr=["BasicAuthenticator"])
    assert myaccount_sign_out_other_sessions(actor=world.target, keep=here) == 2
    ended = {s.pk: s.ended_at is not None for s in SSOSession.objects.all()}
    assert ended == {here.pk: False, there.pk: True, in_eu.pk: True, someone_else.pk: False}
    assert AuditEvent.objects.filter(action="logout", data__reason="signed-out-elsewhere").count() == 2


# --- profile --------------------------------------------------------------------------------------


def test_profile_update_audits_only_real_changes(world: World) -> None:
    user_profile_update(
        actor=world.target,
        user=world.target,
        impersonator=None,
        given_name="  Tara   Lee ",
        family_name="Get",
        email="target@example.test",
    )
    world.target.refresh_from_db()
    assert world.target.given_name == "Tara Lee"
    event = AuditEvent.objects.get(action="user-profile-update")
    assert set(event.data["changes"]) == {"given_name", "family_name"}
    user_profile_update(
        actor=world.target,
        user=world.target,
        impersonator=None,
        given_name="Tara Lee",
        family_name="Get",
        email="target@example.test",
    )
    assert AuditEvent.objects.filter(action="user-profile-update").count() == 1


def test_email_change_is_refused_while_impersonating_and_audited(world: World) -> None:
    with pytest.raises(ValidationError) as refused:
        user_profile_update(
            actor=world.impersonator,
            user=world.target,
            impersonator=world.impersonator,
            given_name="Target",
            family_name="",
            email="attacker@example.test",
        )
    assert "email" in refused.value.message_dict
    world.target.refresh_from_db()
    assert world.target.email == "target@example.test"
    refusal = AuditEvent.objects.get(action="user-profile-update-refused")
    assert refusal.outcome == AuditEvent.Outcome.FAILURE
    assert refusal.impersonator_id == world.impersonator.pk and refusal.subject_id == world.target.pk
    # Names may change under an impersonation; the audit row names the impersonator.
    user_profile_update(
        actor=world.impersonator,
        user=world.target,
        impersonator=world.impersonator,
        given_name="Renamed",
        family_name="",
        email="target@example.test",
    )
    event = AuditEvent.objects.get(action="user-profile-update")
    assert event.impersonator_id == world.impersonator.pk and event.actor_id == world.impersonator.pk


@pytest.mark.parametrize(
    ("field", "value"),
    [("given_name", "a\x00b"), ("family_name", "x" * 151), ("email", "nope"), ("given_name", "bell\x07")],
)
def test_profile_update_refuses_bad_values(world: World, field: str, value: str) -> None:
    values = {"given_name": "Target", "family_name": "", "email": "target@example.test", field: value}
    with pytest.raises(ValidationError) as refused:
        user_profile_update(actor=world.target, user=world.target, impersonator=None, **values)
    assert field in refused.value.message_dict
    assert not AuditEvent.objects.filter(action__startswith="user-profile-update").exists()


# --- misuse report -------------------------------------------------------------------------------


def test_only_the_subject_reports_and_only_once(world: World) -> None:
    session = _impersonation(world, impersonator=world.impersonator, subject=world.target, org=world.root)
    with pytest.raises(PermissionDenied):
        impersonation_report_misuse(actor=world.admin, session=session, note="")
    assert impersonation_report_misuse(actor=world.target, session=session, note="") == 1
    with pytest.raises(ValidationError):
        impersonation_report_misuse(actor=world.target, session=session, note="again")
    assert AuditEvent.objects.filter(action="impersonation-misuse-reported").count() == 1


def test_the_reported_impersonator_is_never_told(world: World) -> None:
    # The impersonator is an administrator too: the report goes to the other administrators.
    role_assign(actor=None, role=world.system.administrator, org=world.root, user=world.impersonator)
    session = _impersonation(world, impersonator=world.impersonator, subject=world.target, org=world.root)
    impersonation_report_misuse(actor=world.target, session=session, note="who was this")
    assert list(OutboxMessage.objects.values_list("to_email", flat=True)) == ["admin@example.test"]


def test_a_child_org_report_goes_to_its_administrators(world: World) -> None:
    session = _impersonation(world, impersonator=world.eu_admin, subject=world.eu_user, org=world.eu)
    second = make_user(world.eu, "eu-admin-2")
    role_assign(actor=None, role=world.system.administrator, org=world.eu, user=second)
    assert impersonation_report_misuse(actor=world.eu_user, session=session, note="") == 1
    assert list(OutboxMessage.objects.values_list("to_email", flat=True)) == ["eu-admin-2@example.test"]
    message = OutboxMessage.objects.get()
    assert message.template == "impersonation_misuse" and message.context["org_name"] == "Acme EU"
    assert message.context["impersonator_username"] == "eu-admin"


def test_with_no_administrator_left_there_the_nearest_ancestors_are_told(world: World) -> None:
    # Acme EU's only administrator is the impersonator: Acme's administrators are told.
    session = _impersonation(world, impersonator=world.eu_admin, subject=world.eu_user, org=world.eu)
    assert impersonation_report_misuse(actor=world.eu_user, session=session, note="") == 1
    assert list(OutboxMessage.objects.values_list("to_email", flat=True)) == ["admin@example.test"]


@pytest.mark.parametrize("note", ["a\x00b", "x" * 2001])
def test_a_bad_note_is_refused(world: World, note: str) -> None:
    session = _impersonation(world, impersonator=world.impersonator, subject=world.target, org=world.root)
    with pytest.raises(ValidationError):
        impersonation_report_misuse(actor=world.target, session=session, note=note)
    assert not OutboxMessage.objects.exists()
