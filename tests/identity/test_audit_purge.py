"""Audit retention: `manage.py audit_purge` exports old events, then deletes exactly those, and
the chain that remains still verifies from its checkpoint."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from identity.audit.models import AuditChainHead, AuditEvent
from identity.audit.retention import audit_export_verify
from identity.audit.services import GENESIS_HASH, audit_record, audit_verify_chain
from tests.conftest import World
from tests.identity.test_audit import tampering

LATER = dt.timedelta(days=401)  # past the default retention of 400 days


def _purge(tmp_path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("audit_purge", "--export-dir", str(tmp_path), "--tenant", "acme", *args, stdout=out)
    return out.getvalue()


def _old_and_new(world: World) -> tuple[int, time_machine.travel]:
    """The world's events (and three more) are old; two more are written 401 days later."""
    for n in range(3):
        audit_record(org=world.root, action="probe.old", actor=world.admin, data={"n": n})
    old = AuditChainHead.objects.get(tenant=world.root).seq
    later = time_machine.travel(timezone.now() + LATER, tick=True)
    return old, later


def test_purge_exports_then_deletes_and_the_rest_verifies(world: World, tmp_path: Path) -> None:
    old, later = _old_and_new(world)
    exported_rows = list(AuditEvent.objects.filter(tenant=world.root).order_by("seq"))
    with later:
        for n in range(2):
            audit_record(org=world.root, action="probe.new", actor=world.admin, data={"n": n})
        out = _purge(tmp_path)

    export = tmp_path / f"audit-acme-1-{old}.jsonl"
    assert f"exported and deleted {old} events (1..{old})" in out and export.exists()
    assert not list(tmp_path.glob(".*partial"))
    # The export verifies on its own, from the genesis hash, and holds every old row as it was.
    count, last_hash = audit_export_verify(export, prev_hash=GENESIS_HASH)
    assert count == old and last_hash == exported_rows[-1].hash
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert [(r["seq"], r["hash"], r["prev_hash"], r["action"]) for r in lines] == [
        (r.seq, r.hash, r.prev_hash, r.action) for r in exported_rows
    ]
    assert {r["tenant"] for r in lines} == {"acme"}

    remaining = list(AuditEvent.objects.filter(tenant=world.root).order_by("seq"))
    assert [r.action for r in remaining] == ["probe.new", "probe.new", "audit-purged"]
    assert remaining[0].seq == old + 1 and remaining[0].prev_hash == last_hash
    head = AuditChainHead.objects.get(tenant=world.root)
    assert (head.base_seq, head.base_hash) == (old, last_hash)
    purged = remaining[-1]
    assert purged.outcome == "success" and purged.actor_id is None
    assert purged.data["count"] == old and purged.data["first_seq"] == 1
    assert purged.data["through_seq"] == old and purged.data["through_hash"] == last_hash
    assert purged.data["export_file"] == export.name
    assert purged.data["export_sha256"] == hashlib.sha256(export.read_bytes()).hexdigest()

    report = audit_verify_chain(tenant=world.root)
    assert report.ok and report.events == 3 and report.first_seq == old + 1
    verified = io.StringIO()
    call_command("audit_verify", "--tenant", "acme", stdout=verified)
    assert f"acme: intact, 3 events (events 1-{old} purged)" in verified.getvalue()


def test_a_second_purge_continues_from_the_checkpoint(world: World, tmp_path: Path) -> None:
    old, later = _old_and_new(world)
    with later:
        audit_record(org=world.root, action="probe.new", actor=world.admin)
        _purge(tmp_path)
        first_through = AuditChainHead.objects.get(tenant=world.root)
        with time_machine.travel(timezone.now() + LATER, tick=True):
            audit_record(org=world.root, action="probe.newest", actor=world.admin)
            _purge(tmp_path)
    second = tmp_path / f"audit-acme-{old + 1}-{old + 2}.jsonl"  # probe.new and the first audit-purged
    assert audit_export_verify(second, prev_hash=first_through.base_hash)[0] == 2
    with pytest.raises(ValueError, match="line 1 does not follow"):
        audit_export_verify(second, prev_hash=GENESIS_HASH)
    assert list(AuditEvent.objects.filter(tenant=world.root).values_list("action", flat=True)) == [
        "probe.newest",
        "audit-purged",
    ]
    assert audit_verify_chain(tenant=world.root).ok


def test_dry_run_and_retention_off_change_nothing(world: World, tmp_path: Path, settings: object) -> None:
    old, later = _old_and_new(world)
    before = list(AuditEvent.objects.filter(tenant=world.root).values_list("seq", "hash"))
    with later:
        out = _purge(tmp_path, "--dry-run")
        assert f"would export and delete {old} events (1..{old}" in out
        settings.ACTAS_AUDIT_RETENTION_DAYS = 0  # type: ignore[attr-defined]
        assert "nothing to purge" in _purge(tmp_path)
        settings.ACTAS_AUDIT_RETENTION_DAYS = 500  # type: ignore[attr-defined]
        assert "nothing older than" in _purge(tmp_path)
    assert list(AuditEvent.objects.filter(tenant=world.root).values_list("seq", "hash")) == before
    assert list(tmp_path.iterdir()) == []
    assert AuditChainHead.objects.get(tenant=world.root).base_seq == 0


def test_an_export_that_fails_deletes_nothing(world: World, tmp_path: Path) -> None:
    _old, later = _old_and_new(world)
    not_a_dir = tmp_path / "exports"
    not_a_dir.write_text("a file where the directory should be")
    before = AuditEvent.objects.filter(tenant=world.root).count()
    with later, pytest.raises(CommandError, match="refused"):
        call_command(
            "audit_purge", "--export-dir", str(not_a_dir), stdout=io.StringIO(), stderr=io.StringIO()
        )
    assert AuditEvent.objects.filter(tenant=world.root).count() == before
    head = AuditChainHead.objects.get(tenant=world.root)
    assert (head.base_seq, head.base_hash) == (0, GENESIS_HASH)
    assert not AuditEvent.objects.filter(action="audit-purged").exists()


def test_a_broken_chain_is_not_purged(world: World, tmp_path: Path) -> None:
    _old, later = _old_and_new(world)
    victim = AuditEvent.objects.get(tenant=world.root, seq=2)
    with tampering():
        AuditEvent.objects.filter(pk=victim.pk).update(actor_label="someone else")
    before = AuditEvent.objects.filter(tenant=world.root).count()
    err = io.StringIO()
    with later, pytest.raises(CommandError):
        call_command("audit_purge", "--export-dir", str(tmp_path), stdout=io.StringIO(), stderr=err)
    assert "broken at event 2" in err.getvalue()
    assert AuditEvent.objects.filter(tenant=world.root).count() == before
    assert [p.name for p in tmp_path.iterdir()] == []


def test_verify_catches_tampering_after_a_purge(world: World, tmp_path: Path) -> None:
    old, later = _old_and_new(world)
    with later:
        for n in range(3):
            audit_record(org=world.root, action="probe.new", actor=world.admin, data={"n": n})
        _purge(tmp_path)
    first = AuditEvent.objects.get(tenant=world.root, seq=old + 1)
    # Deleting the first remaining event breaks the link to the checkpoint...
    with tampering():
        AuditEvent.objects.filter(pk=first.pk).delete()
    report = audit_verify_chain(tenant=world.root)
    assert not report.ok and report.broken_seq == old + 1 and "missing" in report.reason
    # ...and moving the checkpoint over it by hand is caught too: no audit-purged event names it.
    AuditChainHead.objects.filter(tenant=world.root).update(base_seq=old + 1, base_hash=first.hash)
    report = audit_verify_chain(tenant=world.root)
    assert not report.ok and "was not recorded by an audit-purged event" in report.reason
    with pytest.raises(CommandError):
        call_command("audit_verify", "--tenant", "acme", stdout=io.StringIO())


@pytest.mark.skipif(connection.vendor != "postgresql", reason="database triggers are PostgreSQL's")
@pytest.mark.django_db(transaction=True)  # SET LOCAL lasts until a real transaction ends
def test_trigger_opens_only_the_purge_path(world: World) -> None:
    events = list(AuditEvent.objects.filter(tenant=world.root).order_by("seq")[:3])
    AuditChainHead.objects.filter(tenant=world.root).update(base_seq=events[1].seq)

    def delete(pk: int, *, purge: bool) -> None:
        with transaction.atomic():
            if purge:
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL actas.audit_purge = 'on'")
            AuditEvent.objects.filter(pk=pk).delete()

    # Without the transaction-local switch even an event the checkpoint covers stays.
    with pytest.raises(DatabaseError):
        delete(events[0].pk, purge=False)
    # With it, an event past the checkpoint stays, and UPDATE is still refused.
    with pytest.raises(DatabaseError):
        delete(events[2].pk, purge=True)
    with pytest.raises(DatabaseError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL actas.audit_purge = 'on'")
        AuditEvent.objects.filter(pk=events[0].pk).update(action="x")
    # The one open path: switched on, in this transaction, for a covered event.
    delete(events[0].pk, purge=True)
    assert not AuditEvent.objects.filter(pk=events[0].pk).exists()
    # The switch does not outlive its transaction.
    with pytest.raises(DatabaseError):
        delete(events[1].pk, purge=False)
    assert AuditEvent.objects.filter(pk__in=[events[1].pk, events[2].pk]).count() == 2
