"""Period seals: compute, store, list and verify (the rules and the encoding are in seal_core).

Sealing never holds the write lock while it hashes: the digest is computed in a read
transaction over a month that is already over (nothing in it can change), and only the insert
of the one seal row is a write, a few milliseconds long. Ordinary transfers never wait for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from accounts import service as accounts
from accounts.actor import Actor
from accounts.service import CoopRecord
from ledger import tables as t
from ledger.core import TransferStatus
from ledger.db import read_transaction, write_transaction
from ledger.errors import DomainError
from ledger.seal_core import (
    GENESIS,
    Finding,
    Period,
    SealDigest,
    SealHeader,
    SealPosting,
    SealTransfer,
    StoredSeal,
    as_utc,
    chain_findings,
    compute_digest,
    seal_findings,
    sealing_problems,
)
from ledger.seal_models import seals as seal_table

CHUNK = 2000


@dataclass(frozen=True, slots=True)
class SealView:
    coop: str
    period: str
    period_start: datetime
    period_end: datetime
    digest: str
    previous_digest: str
    transfer_count: int
    posting_count: int
    created_at: datetime


def effective_at() -> sa.ColumnElement[Any]:
    """When a transfer became final: its resolution for a claim, its creation otherwise."""
    tr = t.transfers
    return sa.func.coalesce(tr.c.resolved_at, tr.c.created_at)


def _final_facts(ledger_id: int, start: datetime | None, end: datetime | None) -> list[Any]:
    tr = t.transfers
    conditions: list[Any] = [
        tr.c.ledger_id == ledger_id,
        tr.c.status != TransferStatus.PENDING.value,
    ]
    if start is not None:
        conditions.append(effective_at() >= start)
    if end is not None:
        conditions.append(effective_at() < end)
    return conditions


def load_facts(conn: Connection, *, ledger_id: int, start: datetime, end: datetime) -> Iterator[SealTransfer]:
    """The final facts of [start, end) in ascending id, each with its postings, chunk by chunk."""
    tr, p = t.transfers, t.postings
    last_id = 0
    while True:
        rows = conn.execute(
            sa.select(tr)
            .where(*_final_facts(ledger_id, start, end), tr.c.id > last_id)
            .order_by(tr.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return
        first, last_id = rows[0].id, rows[-1].id
        postings: dict[int, list[SealPosting]] = {}
        for r in conn.execute(
            sa.select(p)
            .where(p.c.transfer_id >= first, p.c.transfer_id <= last_id)
            .order_by(p.c.transfer_id, p.c.account_id, p.c.version)
        ):
            postings.setdefault(r.transfer_id, []).append(
                SealPosting(
                    r.account_id,
                    r.version,
                    r.transfer_id,
                    r.amount,
                    r.balance_after,
                    as_utc(r.posted_at),
                )
            )
        for r in rows:
            yield SealTransfer(
                id=r.id,
                ledger_id=r.ledger_id,
                transaction_id=r.transaction_id,
                payer_id=r.payer_id,
                payee_id=r.payee_id,
                amount=r.amount,
                memo=r.memo,
                category=r.category,
                occurred_on=r.occurred_on,
                initiator_id=r.initiator_id,
                status=r.status,
                reverses_id=r.reverses_id,
                created_at=as_utc(r.created_at),
                expires_at=None if r.expires_at is None else as_utc(r.expires_at),
                resolved_at=None if r.resolved_at is None else as_utc(r.resolved_at),
                resolved_by_id=r.resolved_by_id,
                postings=tuple(postings.get(r.id, ())),
            )


def compute_seal(conn: Connection, *, coop: CoopRecord, period: Period, previous_digest: str) -> SealDigest:
    header = SealHeader(coop.slug, period, coop.unit_code, coop.scale)
    facts = load_facts(conn, ledger_id=coop.ledger_id, start=period.start, end=period.end)
    return compute_digest(header, previous_digest, facts)


def stored_seals(conn: Connection, coop_id: int) -> list[StoredSeal]:
    s = seal_table
    return [
        StoredSeal(
            Period.parse(r.period),
            r.previous_digest,
            r.digest,
            r.transfer_count,
            r.posting_count,
            as_utc(r.created_at),
        )
        for r in conn.execute(sa.select(s).where(s.c.coop_id == coop_id).order_by(s.c.period))
    ]


def seal_for(conn: Connection, *, coop_id: int, period: Period) -> StoredSeal | None:
    s = seal_table
    r = conn.execute(sa.select(s).where(s.c.coop_id == coop_id, s.c.period == period.label)).first()
    if r is None:
        return None
    return StoredSeal(
        period, r.previous_digest, r.digest, r.transfer_count, r.posting_count, as_utc(r.created_at)
    )


def coop_opened(conn: Connection, coop_id: int) -> Period:
    created = conn.execute(sa.select(t.coops.c.created_at).where(t.coops.c.id == coop_id)).scalar_one()
    return Period.of(created)


def earliest_fact(
    conn: Connection, *, ledger_id: int, start: datetime | None, end: datetime | None
) -> tuple[datetime, int, int] | None:
    """(first effective moment, lowest id, count) of the final facts in [start, end), or None."""
    tr = t.transfers
    row = conn.execute(
        sa.select(sa.func.min(effective_at()), sa.func.min(tr.c.id), sa.func.count()).where(
            *_final_facts(ledger_id, start, end)
        )
    ).one()
    if not row[2]:
        return None
    return (
        as_utc(row[0]) if isinstance(row[0], datetime) else _parse_moment(row[0]),
        int(row[1]),
        int(row[2]),
    )


def _parse_moment(value: Any) -> datetime:
    # SQLite returns COALESCE(...) over two datetime columns as its stored text.
    return as_utc(datetime.fromisoformat(str(value)))


def _require_treasurer(actor: Actor, coop: CoopRecord) -> None:
    accounts.require_coop_reader(actor, coop)
    if not actor.is_treasurer_of_coop(coop.id):
        raise DomainError("forbidden", "only a treasurer of this co-op may seal a period")


def _view(coop: CoopRecord, seal: StoredSeal) -> SealView:
    return SealView(
        coop.slug,
        seal.period.label,
        seal.period.start,
        seal.period.end,
        seal.digest,
        seal.previous_digest,
        seal.transfer_count,
        seal.posting_count,
        seal.created_at,
    )


def seal_period(engine: Engine, *, actor: Actor | None, slug: str, period: Period, now: datetime) -> SealView:
    """Seal one month of a co-op (treasurer; `actor=None` is the operator's CLI).

    Refused with `period_not_over`, `already_sealed` or `seal_out_of_order` (see
    seal_core.sealing_problems), and with `conflict` when another seal was made meanwhile.
    """
    with read_transaction(engine) as conn:
        coop = accounts.get_coop(conn, slug)
        if actor is not None:
            _require_treasurer(actor, coop)
        sealed = stored_seals(conn, coop.id)
        latest = sealed[-1] if sealed else None
        after = latest.period.end if latest else None
        first = earliest_fact(conn, ledger_id=coop.ledger_id, start=after, end=period.start)
        problems = sealing_problems(
            period,
            now=now,
            opened=coop_opened(conn, coop.id),
            sealed=[s.period for s in sealed],
            earliest_unsealed_with_facts=None if first is None else Period.of(first[0]),
        )
        if problems:
            raise DomainError.from_problems(problems)
        digest = compute_seal(
            conn, coop=coop, period=period, previous_digest=latest.digest if latest else GENESIS
        )
    try:
        with write_transaction(engine) as conn:
            s = seal_table
            current = conn.execute(
                sa.select(s.c.digest).where(s.c.coop_id == coop.id).order_by(s.c.period.desc()).limit(1)
            ).scalar()
            if current != (latest.digest if latest else None):
                raise DomainError(
                    "conflict", "another seal was made meanwhile; look at the seals and try again"
                )
            conn.execute(
                sa.insert(s).values(
                    coop_id=coop.id,
                    period=period.label,
                    period_start=period.start,
                    period_end=period.end,
                    digest=digest.digest,
                    previous_digest=digest.previous_digest,
                    transfer_count=digest.transfer_count,
                    posting_count=digest.posting_count,
                    created_at=now,
                    created_by_id=None if actor is None else actor.user_id,
                )
            )
    except IntegrityError as exc:  # the unique keys: a concurrent sealer won the race
        raise DomainError(
            "conflict", "another seal was made meanwhile; look at the seals and try again"
        ) from exc
    stored = StoredSeal(
        period,
        digest.previous_digest,
        digest.digest,
        digest.transfer_count,
        digest.posting_count,
        now,
    )
    return _view(coop, stored)


def closed_unsealed_periods(conn: Connection, *, coop: CoopRecord, now: datetime) -> list[Period]:
    """The months after the last seal that are over, oldest first (for `commons seal`)."""
    sealed = stored_seals(conn, coop.id)
    first = sealed[-1].period.next() if sealed else coop_opened(conn, coop.id)
    out: list[Period] = []
    current = first
    while current.is_over(now):
        out.append(current)
        current = current.next()
    return out


def list_seals(conn: Connection, *, actor: Actor, slug: str) -> list[SealView]:
    """Every seal of a co-op, oldest first. Members may read them: the digests are for everyone."""
    coop = accounts.get_coop(conn, slug)
    accounts.require_coop_reader(actor, coop)
    return [_view(coop, s) for s in stored_seals(conn, coop.id)]


def verify_coop_seals(conn: Connection, coop: CoopRecord) -> list[Finding]:
    """Recompute every seal of the co-op; name each one that differs, each broken link, and any
    final fact that sits in an unsealed month before the last seal (where none can appear)."""
    sealed = stored_seals(conn, coop.id)
    findings = chain_findings(coop.slug, sealed)
    for seal in sealed:
        findings += seal_findings(
            coop.slug,
            seal,
            compute_seal(conn, coop=coop, period=seal.period, previous_digest=seal.previous_digest),
        )
    gap_start: datetime | None = None
    for seal in sealed:
        if gap_start is None or gap_start < seal.period.start:
            found = earliest_fact(conn, ledger_id=coop.ledger_id, start=gap_start, end=seal.period.start)
            if found is not None:
                moment, first_id, count = found
                findings.append(
                    Finding(
                        "unsealed_history",
                        f"{coop.slug} {Period.of(moment)}",
                        f"{count} transfer(s) (first: transfer {first_id}) sit in a month before "
                        f"the seal of {seal.period} that was never sealed: history was added",
                    )
                )
        gap_start = seal.period.end
    return findings
