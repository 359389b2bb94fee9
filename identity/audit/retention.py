"""Audit retention: export old events to JSON Lines, then delete exactly those.

:func:`audit_purge_tenant` takes the oldest events of a tenant's chain — the longest run from
the chain's start whose every event is older than the cutoff — checks that run links up
(refusing to destroy a broken one), writes it to ``<export_dir>/audit-<tenant>-<first>-<last>
.jsonl`` (one event a line with the hashed fields as hashed, ``prev_hash`` and ``hash``, so the
file verifies on its own with :func:`audit_export_verify`), fsyncs it, and only then, in one
transaction: moves the chain head's checkpoint past the run, deletes the run (on PostgreSQL
through the trigger's one open path, ``SET LOCAL actas.audit_purge = 'on'``, for events the
checkpoint covers) and appends an ``audit-purged`` event naming the count, the range and the
file's SHA-256. If the export fails nothing is deleted; if the transaction fails the export
stays behind, harmless.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection, transaction

from identity.audit.models import AuditChainHead, AuditEvent
from identity.audit.services import (
    GENESIS_HASH,
    HASHED_FIELDS,
    PURGE_ACTION,
    _row_fields,
    _scalar,
    audit_record,
    event_hash,
)
from organizations.models import Organization


class PurgeRefused(Exception):
    """The purge of a tenant was refused; nothing was deleted."""


@dataclass(frozen=True)
class PurgeResult:
    tenant_handle: str
    count: int
    first_seq: int = 0
    last_seq: int = 0
    first_at: dt.datetime | None = None
    last_at: dt.datetime | None = None
    export_path: Path | None = None
    export_sha256: str = ""
    dry_run: bool = False


@dataclass(frozen=True)
class _Export:
    path: Path
    sha256: str
    first: AuditEvent
    last: AuditEvent
    count: int


def _purge_range(tenant: Organization, base_seq: int, cutoff: dt.datetime) -> int:
    """The last seq of the run from the chain's start whose events are all older than cutoff."""
    first_young = (
        AuditEvent.objects.filter(tenant=tenant, seq__gt=base_seq, created_at__gte=cutoff)
        .order_by("seq")
        .values_list("seq", flat=True)
        .first()
    )
    if first_young is not None:
        return first_young - 1
    last = (
        AuditEvent.objects.filter(tenant=tenant, seq__gt=base_seq)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    return last if last is not None else base_seq


def export_line(tenant: Organization, row: AuditEvent) -> str:
    fields = _row_fields(row)
    record: dict[str, Any] = {"tenant": tenant.handle, "tenant_id": str(tenant.pk)}
    record.update({name: _scalar(fields[name]) for name in HASHED_FIELDS})
    record["prev_hash"] = row.prev_hash
    record["hash"] = row.hash
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _export(
    tenant: Organization, rows: Iterator[AuditEvent], *, base_seq: int, base_hash: str, export_dir: Path
) -> _Export:
    """Write the run to a file (checking that it links up as it goes), fsync it, and only then
    give it its final name. Raises PurgeRefused (and leaves no file) when the run is broken."""
    export_dir.mkdir(parents=True, exist_ok=True)
    partial = export_dir / f".audit-{tenant.handle}-{base_seq + 1}.jsonl.partial"
    digest = hashlib.sha256()
    prev, expected = base_hash, base_seq + 1
    first: AuditEvent | None = None
    last: AuditEvent | None = None
    try:
        with partial.open("w", encoding="utf-8") as out:
            for row in rows:
                if (
                    row.seq != expected
                    or row.prev_hash != prev
                    or event_hash(prev, _row_fields(row)) != row.hash
                ):
                    raise PurgeRefused(
                        f"{tenant.handle}: the chain is broken at event {expected}; "
                        "run audit_verify (nothing deleted)"
                    )
                line = export_line(tenant, row) + "\n"
                out.write(line)
                digest.update(line.encode("utf-8"))
                first = first or row
                last, prev, expected = row, row.hash, expected + 1
            out.flush()
            os.fsync(out.fileno())
        assert first is not None and last is not None
        path = export_dir / f"audit-{tenant.handle}-{first.seq}-{last.seq}.jsonl"
        os.replace(partial, path)
        _fsync_dir(export_dir)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return _Export(path, digest.hexdigest(), first, last, expected - base_seq - 1)


def audit_export_verify(path: Path, *, prev_hash: str | None = None) -> tuple[int, str]:
    """Check an export on its own: every line's hash is recomputed and each line follows the
    one before. Returns (events, hash of the last). Raises ValueError at the first bad line."""
    count, last = 0, prev_hash
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            record = json.loads(line)
            if last is not None and record["prev_hash"] != last:
                raise ValueError(f"line {number} does not follow line {number - 1}")
            if event_hash(record["prev_hash"], record) != record["hash"]:
                raise ValueError(f"line {number}: the hash does not match the event")
            last, count = record["hash"], count + 1
    return count, last or GENESIS_HASH


def audit_purge_tenant(
    *, tenant: Organization, cutoff: dt.datetime, export_dir: Path, dry_run: bool = False
) -> PurgeResult:
    """Export, then delete, the tenant's events older than ``cutoff`` (see the module doc)."""
    head = AuditChainHead.objects.filter(tenant=tenant).first()
    if head is None:
        return PurgeResult(tenant.handle, 0, dry_run=dry_run)
    base_seq, base_hash = head.base_seq, head.base_hash
    last_seq = _purge_range(tenant, base_seq, cutoff)
    if last_seq <= base_seq:
        return PurgeResult(tenant.handle, 0, dry_run=dry_run)
    in_range = AuditEvent.objects.filter(tenant=tenant, seq__gt=base_seq, seq__lte=last_seq)
    if dry_run:
        span = in_range.order_by("seq")
        first_row, last_row = span.first(), span.last()
        assert first_row is not None and last_row is not None
        return PurgeResult(
            tenant.handle,
            in_range.count(),
            first_row.seq,
            last_row.seq,
            first_row.created_at,
            last_row.created_at,
            dry_run=True,
        )
    # Events are immutable and the range is behind the head: it is read outside any lock.
    try:
        export = _export(
            tenant,
            in_range.order_by("seq").iterator(chunk_size=2000),
            base_seq=base_seq,
            base_hash=base_hash,
            export_dir=export_dir,
        )
    except OSError as exc:
        raise PurgeRefused(f"{tenant.handle}: the export failed ({exc}); nothing deleted") from exc
    path, sha256, count = export.path, export.sha256, export.count
    if export.last.seq != last_seq:  # events missing at the end of the run
        path.unlink(missing_ok=True)
        raise PurgeRefused(f"{tenant.handle}: the chain is broken at event {last_seq}; nothing deleted")
    through_hash = export.last.hash
    with transaction.atomic():
        moved = AuditChainHead.objects.filter(tenant=tenant, base_seq=base_seq, base_hash=base_hash).update(
            base_seq=last_seq, base_hash=through_hash
        )
        if moved != 1:
            raise PurgeRefused(f"{tenant.handle}: another purge ran meanwhile; nothing deleted")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL actas.audit_purge = 'on'")
        deleted, _ = AuditEvent.objects.filter(tenant=tenant, seq__gt=base_seq, seq__lte=last_seq).delete()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL actas.audit_purge = 'off'")
        if deleted != count:
            raise PurgeRefused(f"{tenant.handle}: {deleted} events matched, {count} exported")
        audit_record(
            tenant=tenant,
            org=tenant,
            action=PURGE_ACTION,
            actor=None,
            target_type="audit-chain",
            target_id=tenant.pk,
            data={
                "count": count,
                "first_seq": export.first.seq,
                "through_seq": last_seq,
                "through_hash": through_hash,
                "first_at": _scalar(export.first.created_at),
                "last_at": _scalar(export.last.created_at),
                "cutoff": _scalar(cutoff),
                "export_file": path.name,
                "export_sha256": sha256,
            },
        )
    return PurgeResult(
        tenant.handle,
        count,
        export.first.seq,
        export.last.seq,
        export.first.created_at,
        export.last.created_at,
        path,
        sha256,
    )
