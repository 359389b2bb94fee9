"""The audit trail core: an append-only, per-tenant hash chain.

Every service calls :func:`audit_record` inside its own transaction, so the record commits or
rolls back with the change it describes. Refusals are recorded with :func:`audit_refusal`,
which must be called outside any transaction that is about to roll back.

Each event's ``hash`` is SHA-256 over the previous event's hash and the canonical JSON of the
event's fields. Writers lock the tenant's :class:`AuditChainHead` row, so concurrent writers
still produce one linear chain. :func:`audit_verify_chain` recomputes the chain and names the
first broken link: an edited row (hash mismatch), a deleted row (sequence gap, or a head that
is ahead of the last row) and a reordered row (``prev_hash`` mismatch) are all caught.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, transaction
from django.utils import timezone

from identity import context
from identity.audit.models import AuditChainHead, AuditEvent
from organizations.models import Organization

if TYPE_CHECKING:  # the audit trail records people by id and label; it needs no User at run time
    from identity.models import Application, User

GENESIS_HASH = "0" * 64
LABEL_MAX = 255  # AuditEvent's label and target columns

# Fields covered by the hash, in a fixed order (the canonical JSON sorts keys anyway).
HASHED_FIELDS = (
    "seq",
    "created_at",
    "org_id",
    "action",
    "outcome",
    "actor_id",
    "actor_label",
    "impersonator_id",
    "impersonator_label",
    "subject_id",
    "subject_label",
    "target_type",
    "target_id",
    "client_id",
    "scopes",
    "request_id",
    "ip",
    "data",
)


UUID_FIELDS = ("org_id", "actor_id", "impersonator_id", "subject_id")


def _scalar(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    if value is None or isinstance(value, (str, int, bool, dict, list)):
        return value
    return str(value)


def canonical_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    body = canonical_json({k: _scalar(fields[k]) for k in HASHED_FIELDS})
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _is_application(actor: object) -> bool:
    """An application acting with its own client-credentials token (it has a client id and no
    username)."""
    return actor is not None and hasattr(actor, "client_id") and not hasattr(actor, "username")


def _label(actor: User | Application | None) -> str:
    if actor is None:
        return ""
    if _is_application(actor):
        # No person: the application's name, said to be one (the Logs page shows it whole).
        return _clip(f"{getattr(actor, 'name', '')} (application)", LABEL_MAX)
    user = cast("User", actor)
    label = f"{user.username} ({user.display_name})" if user.display_name != user.username else user.username
    return _clip(label, LABEL_MAX)


def _no_floats(value: Any) -> Any:
    """Floats become their repr: PostgreSQL's jsonb gives some back in another spelling
    (1e20, -0.0), which would change the hash of a correct event."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _no_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_floats(v) for v in value]
    return value


def _plain(data: dict[str, Any] | None) -> dict[str, Any]:
    # Round-trip through JSON so what we hash is exactly what the database gives back.
    plain = json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder, sort_keys=True))
    return _no_floats(plain)


def audit_chain_head_create(*, tenant: Organization) -> AuditChainHead:
    head, _ = AuditChainHead.objects.get_or_create(tenant=tenant, defaults={"hash": GENESIS_HASH})
    return head


def audit_record(
    *,
    tenant: Organization | None = None,
    action: str,
    actor: User | Application | None,
    org: Organization | None = None,
    subject: User | None = None,
    impersonator: User | None = None,
    target_type: str = "",
    target_id: object = "",
    outcome: str = AuditEvent.Outcome.SUCCESS,
    client_id: str = "",
    scopes: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the tenant's chain, in the caller's transaction."""
    if tenant is None:
        if org is None:
            raise ValueError("audit_record needs a tenant or an organization")
        tenant_id = org.tenant_id or org.pk
    else:
        tenant_id = tenant.pk
    if not isinstance(tenant_id, uuid.UUID):
        tenant_id = uuid.UUID(str(tenant_id))
    ctx = context.current()
    # An application acting on its own (a client-credentials token) has no person's id: it is
    # named by its label and client id.
    application = _is_application(actor)
    # No savepoint inside the caller's transaction: the event stands or falls with the change.
    with transaction.atomic(savepoint=False):
        head = _locked_head(tenant_id)
        if head is None:
            AuditChainHead.objects.get_or_create(tenant_id=tenant_id, defaults={"hash": GENESIS_HASH})
            head = AuditChainHead.objects.select_for_update().get(tenant_id=tenant_id)
        fields: dict[str, Any] = {
            "seq": head.seq + 1,
            "created_at": timezone.now(),
            "org_id": str(org.pk) if org is not None else None,
            "action": _clip(action, 100),
            "outcome": str(outcome),
            "actor_id": str(actor.pk) if actor is not None and not application else None,
            "actor_label": _label(actor),
            "impersonator_id": str(impersonator.pk) if impersonator is not None else None,
            "impersonator_label": _label(impersonator),
            "subject_id": str(subject.pk) if subject is not None else None,
            "subject_label": _label(subject),
            "target_type": _clip(target_type, 64),
            "target_id": _clip(str(target_id), LABEL_MAX) if target_id not in (None, "") else "",
            "client_id": _clip(
                client_id or (str(getattr(actor, "client_id", "")) if application else ""), LABEL_MAX
            ),
            "scopes": scopes,
            "request_id": ctx.request_id,
            "ip": ctx.ip,
            "data": _plain(data),
        }
        digest = event_hash(head.hash, fields)
        stored = dict(fields)
        for key in UUID_FIELDS:
            stored[key] = uuid.UUID(fields[key]) if fields[key] else None
        event = AuditEvent(tenant_id=tenant_id, prev_hash=head.hash, hash=digest, **stored)
        head.seq = fields["seq"]
        head.hash = digest
        _append(event, tenant_id=tenant_id, seq=head.seq, digest=digest)
    return event


def _locked_head(tenant_id: uuid.UUID) -> AuditChainHead | None:
    """The tenant's chain head (its sequence and hash), row-locked until commit: plain SQL,
    every audited write reads it."""
    connection = connections[AuditChainHead.objects.db]
    table = AuditChainHead._meta.db_table
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    tenant_db = AuditChainHead._meta.get_field("tenant").get_db_prep_value(tenant_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT seq, hash FROM {table} WHERE tenant_id = %s{lock}", [tenant_db])  # noqa: S608
        found = cursor.fetchone()
    if found is None:
        return None
    return AuditChainHead(tenant_id=tenant_id, seq=found[0], hash=found[1])


def _append(event: AuditEvent, *, tenant_id: uuid.UUID, seq: int, digest: str) -> None:
    """Insert ``event`` and move the chain head to it: one statement on PostgreSQL (a
    data-modifying WITH), two elsewhere."""
    connection = connections[AuditEvent.objects.db]
    if connection.vendor != "postgresql":
        event.save(force_insert=True)
        AuditChainHead.objects.filter(tenant_id=tenant_id).update(seq=seq, hash=digest)
        return
    meta = event._meta
    columns: list[str] = []
    values: list[Any] = []
    for f in meta.local_concrete_fields:
        if f is meta.auto_field:
            continue
        columns.append(f'"{f.column}"')
        values.append(f.get_db_prep_save(f.pre_save(event, add=True), connection))
    head_table = AuditChainHead._meta.db_table
    tenant_db = AuditChainHead._meta.get_field("tenant").get_db_prep_value(tenant_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH e AS (INSERT INTO {meta.db_table} ({', '.join(columns)}) "  # noqa: S608 (model metadata)
            f"VALUES ({', '.join(['%s'] * len(values))}) RETURNING id) "
            f"UPDATE {head_table} SET seq = %s, hash = %s WHERE tenant_id = %s RETURNING (SELECT id FROM e)",
            [*values, seq, digest, tenant_db],
        )
        returned = cursor.fetchone()
    assert returned is not None
    event.pk = returned[0]
    event._state.adding, event._state.db = False, connection.alias


def audit_refusal(**kwargs: Any) -> AuditEvent:
    """Record a refused action in a transaction of its own.

    Call it after the refused change has rolled back, outside any transaction that is about
    to roll back (inside one it is only a savepoint and would be lost with it)."""
    kwargs.setdefault("outcome", AuditEvent.Outcome.FAILURE)
    with transaction.atomic():
        return audit_record(**kwargs)


@dataclass(frozen=True)
class ChainReport:
    tenant_handle: str
    ok: bool
    events: int
    broken_seq: int | None = None
    reason: str = ""
    head_hash: str = GENESIS_HASH
    first_seq: int = 1  # the first event the chain still holds (after a purge, > 1)


def _row_fields(row: AuditEvent) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in HASHED_FIELDS}
    for key in UUID_FIELDS:
        values[key] = str(values[key]) if values[key] is not None else None
    return values


PURGE_ACTION = "audit-purged"


def _checkpoint_problem(tenant: Organization, base_seq: int, base_hash: str, head_seq: int) -> str:
    """A purged chain starts at its checkpoint; the checkpoint itself must be the one the last
    ``audit-purged`` event recorded (an event inside the verified chain), so moving it by hand
    to hide deleted events is caught."""
    if base_seq == 0:
        return "" if base_hash == GENESIS_HASH else "the chain checkpoint is not the genesis hash"
    last = (
        AuditEvent.objects.filter(tenant=tenant, action=PURGE_ACTION, seq__gt=base_seq, seq__lte=head_seq)
        .order_by("-seq")
        .first()
    )
    if last is None or last.data.get("through_seq") != base_seq or last.data.get("through_hash") != base_hash:
        return f"the chain checkpoint (event {base_seq}) was not recorded by an {PURGE_ACTION} event"
    return ""


def _verify_once(tenant: Organization) -> tuple[ChainReport, int]:
    head = AuditChainHead.objects.filter(tenant=tenant).first()
    head_seq = head.seq if head else 0
    head_hash = head.hash if head else GENESIS_HASH
    base_seq = head.base_seq if head else 0
    base_hash = head.base_hash if head else GENESIS_HASH
    prev = base_hash
    expected_seq = base_seq + 1
    count = 0
    rows = AuditEvent.objects.filter(tenant=tenant, seq__gt=base_seq, seq__lte=head_seq).order_by("seq", "id")
    for row in rows.iterator(chunk_size=2000):
        if row.seq != expected_seq:
            return ChainReport(
                tenant.handle,
                False,
                count,
                expected_seq,
                f"event {expected_seq} is missing (next stored event is {row.seq})",
                first_seq=base_seq + 1,
            ), base_seq
        if row.prev_hash != prev:
            follows = f"event {row.seq - 1}" if row.seq - 1 > base_seq else "the chain checkpoint"
            return ChainReport(
                tenant.handle,
                False,
                count,
                row.seq,
                f"event {row.seq} does not follow {follows} (rows deleted or reordered)",
                first_seq=base_seq + 1,
            ), base_seq
        if event_hash(prev, _row_fields(row)) != row.hash:
            return ChainReport(
                tenant.handle,
                False,
                count,
                row.seq,
                f"event {row.seq} was modified after it was written",
                first_seq=base_seq + 1,
            ), base_seq
        prev = row.hash
        expected_seq += 1
        count += 1
    if head_seq != base_seq + count or head_hash != prev:
        return ChainReport(
            tenant.handle,
            False,
            count,
            base_seq + count + 1,
            f"the chain head records {head_seq} events but {base_seq + count} remain "
            "(events deleted from the end)",
            first_seq=base_seq + 1,
        ), base_seq
    problem = _checkpoint_problem(tenant, base_seq, base_hash, head_seq)
    if problem:
        return ChainReport(
            tenant.handle, False, count, base_seq, problem, head_hash=prev, first_seq=base_seq + 1
        ), base_seq
    return ChainReport(tenant.handle, True, count, head_hash=prev, first_seq=base_seq + 1), base_seq


def audit_verify_chain(*, tenant: Organization) -> ChainReport:
    """Recompute the tenant's chain from its checkpoint; report the first broken link.

    The chain starts at the genesis hash, or after a purge (``audit_purge``) at the checkpoint
    the chain head records (the first remaining event must follow it, and the last
    ``audit-purged`` event must name it). The head is read first and only events up to it are
    checked, so writers appending while the check runs cause no false alarm (a head and its
    event commit together); a purge that moved the checkpoint meanwhile gets one re-check.
    """
    report, base_seq = _verify_once(tenant)
    if not report.ok:
        head = AuditChainHead.objects.filter(tenant=tenant).first()
        if head is not None and head.base_seq != base_seq:
            report, _ = _verify_once(tenant)
    return report


def audit_verify_all_chains() -> list[ChainReport]:
    return [
        audit_verify_chain(tenant=tenant)
        for tenant in Organization.objects.filter(parent__isnull=True).order_by("handle")
    ]
