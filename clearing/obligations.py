"""Obligations between member co-ops: record, import, confirm, dispute, cancel, list.

Who may do what (issue 3, item 4; DESIGN §4):
- a treasurer of the debtor or the creditor co-op records one; entered by the debtor it is
  `confirmed` at once, entered by the creditor it waits (`pending_confirmation`) for the debtor;
- an import reads the clearing file format: a treasurer imports rows of its own co-op (same
  rule per row), an officer imports the federation's record (rows of no co-op of theirs are
  `confirmed`, entered by 'officer'); `external_id` makes both idempotent;
- the debtor's treasurer confirms (pending or disputed) or disputes (pending, or confirmed and
  untouched by clearing);
- the creditor's treasurer cancels (waives) any open obligation; whoever entered one (the
  debtor's treasurer, or an officer) may cancel it while no clearing has touched it.
Every change bumps `version`, so an apply of a run proposed before it is refused as stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from clearing import tables as ct
from clearing.obligation_csv import ObligationInput, ParsedRow, RowProblem, field_problems
from clearing.service import (
    Access,
    FederationRecord,
    Requester,
    access,
    coop_ids_by_slug,
    federation_by_id,
    user_of,
)
from ledger import tables as t
from ledger.amounts import ABSOLUTE_MAX_AMOUNT
from ledger.errors import DomainError, Problem
from ledger.service import utc

PENDING = "pending_confirmation"
CONFIRMED = "confirmed"
DISPUTED = "disputed"
CANCELLED = "cancelled"
SETTLED = "settled"
OPEN = (PENDING, CONFIRMED, DISPUTED)
MAX_NOTE = 500
MAX_REPORTED_PROBLEMS = 1000
CHUNK = 500


@dataclass(frozen=True, slots=True)
class ObligationRecord:
    id: int
    federation_id: int
    external_id: str
    debtor_coop_id: int
    debtor: str
    creditor_coop_id: int
    creditor: str
    amount: int
    remaining: int
    due_on: date | None
    reference: str | None
    status: str
    status_note: str | None
    entered_by: str
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int
    unchanged: int
    refused: int
    problems: list[RowProblem]  # at most MAX_REPORTED_PROBLEMS, in line order


def _select() -> sa.Select[Any]:
    o, dc, cc = ct.obligations, t.coops.alias("dc"), t.coops.alias("cc")
    return sa.select(
        o.c.id,
        o.c.federation_id,
        o.c.external_id,
        o.c.debtor_coop_id,
        dc.c.slug.label("debtor"),
        o.c.creditor_coop_id,
        cc.c.slug.label("creditor"),
        o.c.amount,
        o.c.remaining,
        o.c.due_on,
        o.c.reference,
        o.c.status,
        o.c.status_note,
        o.c.entered_by,
        o.c.created_at,
        o.c.updated_at,
        o.c.version,
    ).select_from(o.join(dc, dc.c.id == o.c.debtor_coop_id).join(cc, cc.c.id == o.c.creditor_coop_id))


def _record(row: Any) -> ObligationRecord:
    values = dict(row._mapping)
    values["created_at"] = utc(values["created_at"])
    values["updated_at"] = utc(values["updated_at"])
    return ObligationRecord(**values)


def _same(record: ObligationRecord, data: ObligationInput) -> bool:
    return (record.debtor, record.creditor, record.amount, record.due_on, record.reference) == (
        data.debtor,
        data.creditor,
        data.amount,
        data.due_on,
        data.reference,
    )


def _side(found: Access, debtor_id: int, creditor_id: int) -> str | None:
    """Which side the requester speaks for; the debtor's word wins (it confirms at once)."""
    if debtor_id in found.treasurer_of:
        return "debtor"
    if creditor_id in found.treasurer_of:
        return "creditor"
    if found.officer:
        return "officer"
    return None


def _by_external_ids(
    conn: Connection, federation_id: int, external_ids: list[str]
) -> dict[str, ObligationRecord]:
    o = ct.obligations
    found: dict[str, ObligationRecord] = {}
    for start in range(0, len(external_ids), CHUNK):
        chunk = external_ids[start : start + CHUNK]
        rows = conn.execute(_select().where(o.c.federation_id == federation_id, o.c.external_id.in_(chunk)))
        found.update((r.external_id, _record(r)) for r in rows)
    return found


def _row_values(
    federation: FederationRecord,
    data: ObligationInput,
    *,
    debtor_id: int,
    creditor_id: int,
    side: str,
    created_by: int | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "federation_id": federation.id,
        "external_id": data.external_id,
        "debtor_coop_id": debtor_id,
        "creditor_coop_id": creditor_id,
        "amount": data.amount,
        "remaining": data.amount,
        "due_on": data.due_on,
        "reference": data.reference,
        "status": PENDING if side == "creditor" else CONFIRMED,
        "status_note": None,
        "entered_by": side,
        "created_by": created_by,
        "created_at": now,
        "updated_at": now,
        "version": 0,
    }


def record_obligation(
    conn: Connection,
    *,
    requester: Requester,
    federation: FederationRecord,
    data: ObligationInput,
    now: datetime,
) -> tuple[ObligationRecord, bool]:
    """Record one obligation; (record, True) when created, (the existing one, False) when the
    same external_id was already recorded with the same content."""
    found = access(conn, requester, federation)
    if not found.treasurer_of:
        raise DomainError(
            "forbidden",
            "only a treasurer of the debtor or the creditor co-op may record an obligation",
        )
    problems = [
        Problem(code, message, field)
        for code, message, field in field_problems(
            external_id=data.external_id,
            debtor=data.debtor,
            creditor=data.creditor,
            reference=data.reference,
        )
    ]
    if not 0 < data.amount <= ABSOLUTE_MAX_AMOUNT:
        problems.append(Problem("invalid_amount", "the amount must be greater than zero", "amount"))
    members = coop_ids_by_slug(conn, federation)
    for field in ("debtor", "creditor"):
        if getattr(data, field) not in members:
            problems.append(
                Problem(
                    "validation_failed",
                    f"the {field} is not a member co-op of this federation",
                    field,
                )
            )
    if problems:
        raise DomainError.from_problems(problems)
    debtor_id, creditor_id = members[data.debtor], members[data.creditor]
    side = _side(found, debtor_id, creditor_id)
    if side not in ("debtor", "creditor"):
        raise DomainError("forbidden", "you may record only obligations of a co-op whose treasurer you are")
    existing = _by_external_ids(conn, federation.id, [data.external_id]).get(data.external_id)
    if existing is not None:
        return _already_recorded(existing, data, found), False
    values = _row_values(
        federation,
        data,
        debtor_id=debtor_id,
        creditor_id=creditor_id,
        side=side,
        created_by=user_of(requester),
        now=now,
    )
    # Concurrent requests with the same external_id all pass the look-up above on PostgreSQL
    # (READ COMMITTED); the unique key decides. ON CONFLICT DO NOTHING waits for the winner's
    # commit and inserts nothing, without aborting this transaction, so the loser answers with
    # the winner's obligation (or a conflict if its content differs), exactly as a later retry
    # would. On SQLite writers are serialised and the look-up already sees the winner.
    new_id = conn.execute(
        _insert_new(conn)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["federation_id", "external_id"])
        .returning(ct.obligations.c.id)
    ).scalar()
    if new_id is None:
        winner = _by_external_ids(conn, federation.id, [data.external_id])[data.external_id]
        return _already_recorded(winner, data, found), False
    return get_obligation(conn, int(new_id)), True


def _insert_new(conn: Connection) -> Any:
    """An INSERT that can skip a row whose unique key exists (both dialects spell it alike)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(ct.obligations)
    return sqlite.insert(ct.obligations)


def _already_recorded(existing: ObligationRecord, data: ObligationInput, found: Access) -> ObligationRecord:
    """The answer to recording an external_id that exists: the same obligation again when the
    content is the same and the requester may see it; otherwise a conflict."""
    if _same(existing, data) and (
        found.sees_coop(existing.debtor_coop_id) or found.sees_coop(existing.creditor_coop_id)
    ):
        return existing
    raise DomainError(
        "external_id_conflict",
        "this external_id was already used for a different obligation in this federation",
        [Problem("external_id_conflict", "already used", "external_id")],
    )


def import_obligations(
    conn: Connection,
    *,
    requester: Requester,
    federation: FederationRecord,
    rows: list[ParsedRow],
    problems: list[RowProblem],
    now: datetime,
) -> ImportResult:
    """Record every readable row that is allowed and new; report the others by line.
    Rows already recorded with the same content count as unchanged."""
    found = access(conn, requester, federation)
    if not (found.officer or found.treasurer_of):
        raise DomainError(
            "forbidden", "only an officer or a treasurer of a member co-op may import obligations"
        )
    members = coop_ids_by_slug(conn, federation)
    existing = _by_external_ids(conn, federation.id, [r.obligation.external_id for r in rows])
    refused = list(problems)
    unchanged = 0
    new_rows: list[dict[str, Any]] = []
    created_by = user_of(requester)
    for row in rows:
        data = row.obligation
        unknown = [side for side in (data.debtor, data.creditor) if side not in members]
        if unknown:
            message = f"line {row.line}: {unknown[0][:64]!r} is not a member co-op of this federation"
            refused.append(RowProblem(row.line, data.external_id, "validation_failed", message))
            continue
        debtor_id, creditor_id = members[data.debtor], members[data.creditor]
        side = _side(found, debtor_id, creditor_id)
        if side is None:
            message = f"line {row.line}: neither {data.debtor!r} nor {data.creditor!r} is your co-op"
            refused.append(RowProblem(row.line, data.external_id, "forbidden", message))
            continue
        before = existing.get(data.external_id)
        if before is not None:
            if _same(before, data):
                unchanged += 1
            else:
                message = (
                    f"line {row.line}: id {data.external_id!r} was already used for a different obligation"
                )
                refused.append(RowProblem(row.line, data.external_id, "external_id_conflict", message))
            continue
        new_rows.append(
            _row_values(
                federation,
                data,
                debtor_id=debtor_id,
                creditor_id=creditor_id,
                side=side,
                created_by=created_by,
                now=now,
            )
        )
    inserted = _insert_rows(conn, new_rows)
    if len(inserted) < len(new_rows):
        # Another import recorded some of these external_ids since the look-up above (it
        # committed while this one waited on them): answer as if it had come first.
        lines = {row.obligation.external_id: row for row in rows}
        taken = [v["external_id"] for v in new_rows if v["external_id"] not in inserted]
        winners = _by_external_ids(conn, federation.id, taken)
        for external_id in taken:
            row = lines[external_id]
            if _same(winners[external_id], row.obligation):
                unchanged += 1
            else:
                message = f"line {row.line}: id {external_id!r} was already used for a different obligation"
                refused.append(RowProblem(row.line, external_id, "external_id_conflict", message))
    refused.sort(key=lambda p: p.line)
    return ImportResult(len(inserted), unchanged, len(refused), refused[:MAX_REPORTED_PROBLEMS])


def _insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert new obligations; the external_ids actually inserted. A concurrent import may have
    recorded some of them since the look-up (see record_obligation): then, and only then, they
    are inserted again skipping those. The fast path stays a plain INSERT: ON CONFLICT DO
    NOTHING RETURNING for every row made a 60,000-row import on PostgreSQL ~2.5x slower."""
    try:
        with conn.begin_nested():
            for start in range(0, len(rows), CHUNK):
                conn.execute(sa.insert(ct.obligations), rows[start : start + CHUNK])
        return {row["external_id"] for row in rows}
    except IntegrityError as exc:
        if not _external_id_collision(exc):
            raise
    inserted: set[str] = set()
    statement = (
        _insert_new(conn)
        .on_conflict_do_nothing(index_elements=["federation_id", "external_id"])
        .returning(ct.obligations.c.external_id)
    )
    for start in range(0, len(rows), CHUNK):
        inserted.update(conn.execute(statement, rows[start : start + CHUNK]).scalars())
    return inserted


def _external_id_collision(exc: IntegrityError) -> bool:
    text = str(exc.orig)
    return (
        "uq_obligations_external_id" in text or "obligations.federation_id, obligations.external_id" in text
    )


def get_obligation(conn: Connection, obligation_id: int) -> ObligationRecord:
    row = conn.execute(_select().where(ct.obligations.c.id == obligation_id)).first()
    if row is None:
        raise DomainError("obligation_not_found", "no such obligation")
    return _record(row)


def obligation_for(
    conn: Connection, *, requester: Requester, obligation_id: int
) -> tuple[ObligationRecord, Access]:
    """The obligation and the requester's access, if they may read it: officers of its
    federation and treasurers of its two co-ops. Members of those co-ops are refused; anyone
    else learns nothing of it."""
    record = get_obligation(conn, obligation_id)
    found = access(conn, requester, federation_by_id(conn, record.federation_id))
    parties = {record.debtor_coop_id, record.creditor_coop_id}
    if found.officer or parties & found.treasurer_of:
        return record, found
    if parties & found.member_of:
        raise DomainError("forbidden", "only the treasurers of the two co-ops and officers see obligations")
    raise DomainError("obligation_not_found", "no such obligation")


def _transition(
    conn: Connection,
    record: ObligationRecord,
    *,
    to: str,
    allowed: Iterable[str],
    untouched: bool,
    note: str | None,
    now: datetime,
) -> ObligationRecord:
    """One conditional update: the status moves only from an allowed one, and only if the
    obligation is still the version the decision was made on."""
    if note is not None and len(note) > MAX_NOTE:
        raise DomainError(
            "validation_failed",
            f"the note is longer than {MAX_NOTE} characters",
            [Problem("validation_failed", "too long", "note")],
        )
    allowed = tuple(allowed)
    o = ct.obligations
    guard = [o.c.id == record.id, o.c.version == record.version, o.c.status.in_(allowed)]
    if untouched:
        guard.append(o.c.remaining == o.c.amount)
    result = conn.execute(
        sa.update(o)
        .where(*guard)
        .values(status=to, status_note=note, updated_at=now, version=o.c.version + 1)
    )
    if result.rowcount != 1:
        current = get_obligation(conn, record.id)
        if current.status in allowed and current.version != record.version:
            raise DomainError("conflict", "the obligation changed meanwhile; read it again and retry")
        touched = " and untouched by clearing" if untouched and current.status in allowed else ""
        raise DomainError(
            "invalid_obligation_state",
            f"this obligation is {current.status}; it must be {' or '.join(allowed)}{touched}",
        )
    return get_obligation(conn, record.id)


def confirm_obligation(
    conn: Connection, *, requester: Requester, obligation_id: int, now: datetime
) -> ObligationRecord:
    record, found = obligation_for(conn, requester=requester, obligation_id=obligation_id)
    if record.debtor_coop_id not in found.treasurer_of:
        raise DomainError("forbidden", "only the debtor co-op's treasurer confirms an obligation")
    return _transition(
        conn, record, to=CONFIRMED, allowed=(PENDING, DISPUTED), untouched=False, note=None, now=now
    )


def dispute_obligation(
    conn: Connection, *, requester: Requester, obligation_id: int, reason: str | None, now: datetime
) -> ObligationRecord:
    record, found = obligation_for(conn, requester=requester, obligation_id=obligation_id)
    if record.debtor_coop_id not in found.treasurer_of:
        raise DomainError("forbidden", "only the debtor co-op's treasurer disputes an obligation")
    if record.status == CONFIRMED:
        return _transition(
            conn, record, to=DISPUTED, allowed=(CONFIRMED,), untouched=True, note=reason, now=now
        )
    return _transition(conn, record, to=DISPUTED, allowed=(PENDING,), untouched=False, note=reason, now=now)


def cancel_obligation(
    conn: Connection, *, requester: Requester, obligation_id: int, reason: str | None, now: datetime
) -> ObligationRecord:
    record, found = obligation_for(conn, requester=requester, obligation_id=obligation_id)
    if record.creditor_coop_id in found.treasurer_of:
        # The creditor may always waive what it is owed.
        return _transition(conn, record, to=CANCELLED, allowed=OPEN, untouched=False, note=reason, now=now)
    entered_it = (record.entered_by == "debtor" and record.debtor_coop_id in found.treasurer_of) or (
        record.entered_by == "officer" and found.officer
    )
    if not entered_it:
        raise DomainError(
            "forbidden",
            "the creditor's treasurer cancels an obligation; whoever entered it may withdraw "
            "it before any clearing",
        )
    return _transition(conn, record, to=CANCELLED, allowed=OPEN, untouched=True, note=reason, now=now)


def list_obligations(
    conn: Connection,
    *,
    requester: Requester,
    federation: FederationRecord,
    status: str | None,
    coop_slug: str | None,
    cursor: int | None,
    limit: int,
) -> tuple[list[ObligationRecord], int | None]:
    """Officers list all; a treasurer lists its own co-op's (either side); members nothing."""
    found = access(conn, requester, federation)
    if not (found.officer or found.treasurer_of):
        raise DomainError("forbidden", "only officers and treasurers of member co-ops see obligations")
    o = ct.obligations
    query = _select().where(o.c.federation_id == federation.id).order_by(o.c.id).limit(limit + 1)
    if coop_slug is not None:
        coop_id = coop_ids_by_slug(conn, federation).get(coop_slug)
        if coop_id is None:
            raise DomainError("coop_not_found", f"{coop_slug!r} is not a member co-op of this federation")
        if not found.sees_coop(coop_id):
            raise DomainError("forbidden", "a treasurer sees only its own co-op's obligations")
        query = query.where(sa.or_(o.c.debtor_coop_id == coop_id, o.c.creditor_coop_id == coop_id))
    elif not found.officer:
        mine = sorted(found.treasurer_of)
        query = query.where(sa.or_(o.c.debtor_coop_id.in_(mine), o.c.creditor_coop_id.in_(mine)))
    if status is not None:
        query = query.where(o.c.status == status)
    if cursor is not None:
        query = query.where(o.c.id > cursor)
    records = [_record(r) for r in conn.execute(query)]
    if len(records) > limit:
        records = records[:limit]
        return records, records[-1].id
    return records, None
