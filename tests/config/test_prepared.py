"""config.prepared: a queryset compiled once per connection gives what the queryset gives."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.prepared import Prepared, PreparedUpdate
from identity.models import Application, AuditChainHead, SSOSession, User
from identity.services.sessions import _live_session_by_sid, sso_session_end, sso_session_start
from organizations.models import Organization
from tests.conftest import World

pytestmark = pytest.mark.django_db

# The SSO session look-up every signed-in request makes (select_related, a JSON field, a time).
live_session = _live_session_by_sid

users_of_org = Prepared(
    lambda org_id: User.objects.filter(organization_id=org_id).order_by("username"),
    org_id=uuid.UUID,
)


def _fields(obj: Any) -> dict[str, Any]:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def test_rows_match_the_queryset_with_related_objects_and_converted_values(world: World) -> None:
    session = sso_session_start(user=world.admin, org=world.eu, amr=["pwd", "totp"], ip="127.0.0.1")
    now = timezone.now()
    expected = live_session.queryset(sid=session.sid, now=now).get()

    with CaptureQueriesContext(connection) as queries:
        got = live_session.first(sid=session.sid, now=now)
        assert got is not None
        # select_related objects come with the row: no further query.
        related = (got.user.username, got.organization.handle, got.tenant.handle)

    assert len(queries.captured_queries) == 1
    assert related == ("admin", "acme-eu", "acme")
    assert _fields(got) == _fields(expected)
    assert got.amr == ["pwd", "totp"]  # the JSON field decoded, as the ORM does
    assert _fields(got.user) == _fields(expected.user)
    assert _fields(got.tenant) == _fields(expected.tenant)
    assert got._state.adding is False and got._state.db == "default"


def test_each_call_runs_with_its_own_values(world: World) -> None:
    first = sso_session_start(user=world.admin, org=world.root, amr=["pwd"])
    second = sso_session_start(user=world.target, org=world.root, amr=["pwd"])
    now = timezone.now()

    assert live_session.first(sid=first.sid, now=now).user_id == world.admin.pk  # type: ignore[union-attr]
    assert live_session.first(sid=second.sid, now=now).user_id == world.target.pk  # type: ignore[union-attr]
    # The time is a parameter too: past the session's expiry it is not live any more.
    assert live_session.first(sid=first.sid, now=first.expires_at + dt.timedelta(seconds=1)) is None
    sso_session_end(actor=world.admin, session=second, reason="sign-out")
    assert live_session.first(sid=second.sid, now=now) is None
    assert live_session.first(sid="no-such-session", now=now) is None


def test_many_rows_in_the_queryset_order(world: World) -> None:
    got = users_of_org.all(org_id=world.root.pk)
    assert [u.username for u in got] == list(
        User.objects.filter(organization=world.root).order_by("username").values_list("username", flat=True)
    )
    assert [u.username for u in users_of_org.all(org_id=world.us.pk)] == ["us-user"]
    assert users_of_org.all(org_id=uuid.uuid4()) == []


def test_compiled_once_per_connection(world: World) -> None:
    calls: list[str] = []

    def build(handle: str) -> Any:
        calls.append(handle)
        return Organization.objects.filter(handle=handle, parent__isnull=True)[:1]

    tenant_by_handle = Prepared(build, handle=str)
    assert tenant_by_handle.first(handle="acme") == world.root
    assert tenant_by_handle.first(handle="acme") == world.root
    assert tenant_by_handle.first(handle="acme-eu") is None  # not a root
    assert len(calls) == 1 and calls[0].startswith("prepared-sample-")


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL passes datetimes as such and locks rows"
)


@postgresql_only
def test_a_time_built_into_the_query_is_refused(world: World) -> None:
    frozen = Prepared(lambda sid: SSOSession.objects.filter(sid=sid, expires_at__gt=timezone.now()), sid=str)
    with pytest.raises(ImproperlyConfigured, match="date or time"):
        frozen.first(sid="x")


def test_a_parameter_that_does_not_reach_the_sql_is_refused(world: World) -> None:
    transformed = Prepared(lambda handle: Organization.objects.filter(handle=handle.upper()), handle=str)
    with pytest.raises(ImproperlyConfigured, match="does not reach the SQL"):
        transformed.first(handle="acme")
    unused = Prepared(lambda handle: Organization.objects.filter(parent__isnull=True), handle=str)
    with pytest.raises(ImproperlyConfigured, match="does not reach the SQL"):
        unused.first(handle="acme")


def test_only_model_querysets() -> None:
    with pytest.raises(ImproperlyConfigured, match="type"):
        Prepared(lambda flag: Organization.objects.filter(status=flag), flag=bool)
    values = Prepared(lambda handle: Organization.objects.filter(handle=handle).values("pk"), handle=str)
    with pytest.raises(ImproperlyConfigured, match="model queryset"):
        values.first(handle="acme")
    prefetching = Prepared(
        lambda client_id: Application.objects.filter(client_id=client_id).prefetch_related("roles"),
        client_id=str,
    )
    with pytest.raises(ImproperlyConfigured, match="prefetch"):
        prefetching.first(client_id="x")


def test_wrong_or_missing_values_are_refused(world: World) -> None:
    with pytest.raises(TypeError, match="must be UUID"):
        users_of_org.all(org_id=str(world.root.pk))
    with pytest.raises(TypeError, match="expected the parameters"):
        users_of_org.all()
    with pytest.raises(TypeError, match="expected the parameters"):
        users_of_org.all(org_id=world.root.pk, extra=1)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_select_for_update_needs_a_transaction_at_every_call(world: World) -> None:
    session = sso_session_start(user=world.admin, org=world.root, amr=["pwd"])
    locking = Prepared(lambda pk: SSOSession.objects.select_for_update().filter(pk=pk), pk=int)
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            assert locking.first(pk=session.pk) == session
        assert queries.captured_queries[-1]["sql"].rstrip().endswith("FOR UPDATE")
    # Compiled inside a transaction, the lock is still refused outside one, as Django does.
    assert connection.get_autocommit()
    with pytest.raises(TransactionManagementError):
        locking.first(pk=session.pk)


sessions_end_at = PreparedUpdate(
    lambda user_id, now: (
        SSOSession.objects.filter(user_id=user_id, ended_at__isnull=True),
        {"ended_at": now, "end_reason": "test"},
    ),
    user_id=uuid.UUID,
    now=dt.datetime,
)


def test_update_changes_the_rows_of_its_own_values(world: World) -> None:
    admin_sessions = [sso_session_start(user=world.admin, org=world.root, amr=["pwd"]) for _ in range(2)]
    target_session = sso_session_start(user=world.target, org=world.root, amr=["pwd"])
    now = timezone.now()

    assert sessions_end_at.run(user_id=world.admin.pk, now=now) == 2
    assert sessions_end_at.run(user_id=world.admin.pk, now=now) == 0  # the filter is applied again
    for session in admin_sessions:
        session.refresh_from_db()
        assert (session.ended_at, session.end_reason) == (now, "test")
    target_session.refresh_from_db()
    assert target_session.ended_at is None
    assert sessions_end_at.run(user_id=world.target.pk, now=now) == 1


def test_update_of_a_big_integer_keeps_the_backends_wrapper(world: World) -> None:
    # PostgreSQL with server-side binding gets big integers as psycopg Int8: the new value is
    # wrapped the same way, and stored.
    advance = PreparedUpdate(
        lambda tenant_id, seq: (AuditChainHead.objects.filter(tenant_id=tenant_id), {"seq": seq}),
        tenant_id=uuid.UUID,
        seq=int,
    )
    assert advance.run(tenant_id=world.root.pk, seq=2**40 + 5) == 1
    assert AuditChainHead.objects.get(tenant_id=world.root.pk).seq == 2**40 + 5


def test_update_across_tables_or_of_a_slice_is_refused(world: World) -> None:
    joined = PreparedUpdate(
        lambda handle, now: (SSOSession.objects.filter(user__organization__handle=handle), {"ended_at": now}),
        handle=str,
        now=dt.datetime,
    )
    with pytest.raises(ImproperlyConfigured, match="one table"):
        joined.run(handle="acme", now=timezone.now())
    sliced = PreparedUpdate(
        lambda user_id, now: (SSOSession.objects.filter(user_id=user_id)[:1], {"ended_at": now}),
        user_id=uuid.UUID,
        now=dt.datetime,
    )
    with pytest.raises(ImproperlyConfigured, match="plain queryset"):
        sliced.run(user_id=world.admin.pk, now=timezone.now())
