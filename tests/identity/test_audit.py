"""The audit trail: one linear hash chain per tenant, tamper evident, append-only."""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, connections, transaction

from identity import context
from identity.audit.models import AuditChainHead, AuditEvent
from identity.audit.services import audit_record, audit_refusal, audit_verify_chain
from organizations.services import org_insert
from tests.conftest import World
from tests.identity.audit_helpers import tampering


def test_chain_links_and_verifies(world: World) -> None:
    events = list(AuditEvent.objects.filter(tenant=world.root).order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    report = audit_verify_chain(tenant=world.root)
    assert report.ok and report.events == len(events)
    assert AuditChainHead.objects.get(tenant=world.root).hash == events[-1].hash


def test_record_carries_request_context(world: World) -> None:
    with context.bound(
        context.RequestContext(request_id="req-12345678", ip=context.normalise_ip("::ffff:10.0.0.1"))
    ):
        event = audit_record(
            org=world.eu,
            action="probe",
            actor=world.admin,
            subject=world.target,
            impersonator=world.impersonator,
            data={"n": 1},
        )
    assert (event.request_id, event.ip) == ("req-12345678", context.normalise_ip("::ffff:10.0.0.1"))
    assert context.normalise_ip("not an address") is None
    assert event.impersonator_id == world.impersonator.pk
    assert event.subject_label.startswith("target")
    assert audit_verify_chain(tenant=world.root).ok


def test_edited_row_is_caught(world: World) -> None:
    victim = AuditEvent.objects.filter(tenant=world.root).order_by("seq")[3]
    with tampering():
        AuditEvent.objects.filter(pk=victim.pk).update(action="nothing-to-see")
    report = audit_verify_chain(tenant=world.root)
    assert not report.ok and report.broken_seq == victim.seq
    assert "modified" in report.reason


def test_deleted_row_is_caught(world: World) -> None:
    victim = AuditEvent.objects.filter(tenant=world.root).order_by("seq")[5]
    with tampering():
        AuditEvent.objects.filter(pk=victim.pk).delete()
    report = audit_verify_chain(tenant=world.root)
    assert not report.ok and report.broken_seq == victim.seq
    assert "missing" in report.reason


def test_deleted_tail_is_caught(world: World) -> None:
    last = AuditEvent.objects.filter(tenant=world.root).latest("seq")
    with tampering():
        AuditEvent.objects.filter(pk=last.pk).delete()
    report = audit_verify_chain(tenant=world.root)
    assert not report.ok and report.broken_seq == last.seq


def test_reordered_rows_are_caught(world: World) -> None:
    a, b = AuditEvent.objects.filter(tenant=world.root).order_by("seq")[2:4]
    with tampering(), transaction.atomic():
        AuditEvent.objects.filter(pk=a.pk).update(seq=10_000)
        AuditEvent.objects.filter(pk=b.pk).update(seq=a.seq)
        AuditEvent.objects.filter(pk=a.pk).update(seq=b.seq)
    report = audit_verify_chain(tenant=world.root)
    assert not report.ok and report.broken_seq == a.seq
    assert "reordered" in report.reason


def test_verify_command_names_the_broken_link(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("audit_verify", "--tenant", "acme")
    assert "acme: intact" in capsys.readouterr().out
    victim = AuditEvent.objects.filter(tenant=world.root).order_by("seq")[1]
    with tampering():
        AuditEvent.objects.filter(pk=victim.pk).update(data={"forged": True})
    with pytest.raises(CommandError):
        call_command("audit_verify", "--tenant", "acme")
    assert f"BROKEN at event {victim.seq}" in capsys.readouterr().out


def test_tenants_have_separate_chains(world: World) -> None:
    other = org_insert(parent=None, name="Globex", handle="globex")
    event = audit_record(org=other, action="probe", actor=None)
    assert event.seq == 1
    assert audit_verify_chain(tenant=other).ok and audit_verify_chain(tenant=world.root).ok


def test_record_rolls_back_with_the_change(world: World) -> None:
    count = AuditEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(org=world.root, action="doomed", actor=world.admin)
        raise RuntimeError
    assert AuditEvent.objects.count() == count
    assert audit_verify_chain(tenant=world.root).ok


def test_refusal_survives_the_rollback_of_what_it_refused(world: World) -> None:
    before = AuditEvent.objects.count()
    try:
        with transaction.atomic():
            audit_record(org=world.root, action="doomed-change", actor=world.admin)
            raise PermissionError("refused half-way")
    except PermissionError:
        audit_refusal(org=world.root, action="doomed-change", actor=world.admin, target_id="mallory")
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.latest("seq")
    assert (event.action, event.outcome, event.target_id) == ("doomed-change", "failure", "mallory")
    assert audit_verify_chain(tenant=world.root).ok


def test_awkward_values_survive_the_database_round_trip(world: World) -> None:
    data = {
        "big": 1e20,
        "neg_zero": -0.0,
        "long": 1.2345678901234567e19,
        "int": 2**62,
        "text": 'naïve \u2028 ✓ "quoted"',
        "nested": [{"x": 0.1}],
        "none": None,
    }
    audit_record(org=world.root, action="probe", actor=world.admin, target_id="t" * 400, data=data)
    stored = AuditEvent.objects.latest("seq")
    assert stored.data["big"] == "1e+20" and stored.data["int"] == 2**62
    assert len(stored.target_id) == 255
    assert audit_verify_chain(tenant=world.root).ok


@pytest.mark.skipif(connection.vendor != "postgresql", reason="database triggers are PostgreSQL's")
def test_database_refuses_update_and_delete(world: World) -> None:
    event = AuditEvent.objects.latest("seq")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == event.action


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers on PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_make_one_linear_chain() -> None:
    tenant = org_insert(parent=None, name="Concurrent", handle="concurrent")
    AuditChainHead.objects.create(tenant=tenant, hash="0" * 64)
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def writer(n: int) -> None:
        try:
            barrier.wait()
            for i in range(10):
                with transaction.atomic():
                    audit_record(org=tenant, action=f"w{n}-{i}", actor=None)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = audit_verify_chain(tenant=tenant)
    assert report.ok and report.events == 60


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers on PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_verifying_while_others_write_raises_no_false_alarm() -> None:
    tenant = org_insert(parent=None, name="Busy", handle="busy")
    AuditChainHead.objects.create(tenant=tenant, hash="0" * 64)
    stop = threading.Event()

    def writer() -> None:
        try:
            while not stop.is_set():
                audit_record(org=tenant, action="tick", actor=None)
        finally:
            connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        reports = [audit_verify_chain(tenant=tenant) for _ in range(30)]
    finally:
        stop.set()
        thread.join()
    assert all(r.ok for r in reports), [r.reason for r in reports if not r.ok]
    assert audit_verify_chain(tenant=tenant).ok
