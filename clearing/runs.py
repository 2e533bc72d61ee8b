"""Clearing runs: the thin runner around the pure engine (`clearing.engine.clear`).

propose: load the federation's confirmed obligations with remaining > 0 (and, with credit,
  each member co-op's headroom in the federation ledger), call the engine, store the run with
  per-obligation set-offs (and the obligation version each was computed on), the per-co-op
  report and the cycles.
apply: one transaction. Every obligation of the run must still be at the version it had at the
  proposal, else 409 `stale_clearing_run` and nothing is written; remaining falls by what was
  discharged (settled at 0); with credit, each co-op's net credit change is posted in the
  federation ledger through the federation's clearing account (co-ops that pay first, then
  those that receive: every balance moves once and only in one direction, so no co-op passes
  a limit on the way even when credit flows through it). Applying an applied run returns it.
cancel: a proposed run is dropped; an applied one cannot be.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearing import tables as ct
from clearing.engine import ClearingPolicy, CreditLine, Obligation, clear
from clearing.model import ClearingResult
from clearing.service import (
    Access,
    FederationRecord,
    Requester,
    access,
    coop_ids_by_slug,
    federation_by_id,
    list_members,
    lock_accounts,
    require_officer,
    user_of,
)
from ledger import tables as t
from ledger.core import AccountStatus, Movement, TransferStatus
from ledger.db import is_sqlite
from ledger.errors import DomainError, Problem
from ledger.service import apply_movement, utc

PROPOSED, APPLIED, CANCELLED = "proposed", "applied", "cancelled"
PERIOD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
# Headroom of a federation account without a limit; the engine caps every headroom at what
# the co-op owes or is owed, so this only has to be larger than any total.
UNLIMITED = 2**62
CHUNK = 1000
# A limit refusal while applying means the federation ledger moved since the proposal.
_LEDGER_MOVED = {"insufficient_credit", "ceiling_exceeded", "account_frozen", "account_closed"}


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    federation_id: int
    period: str
    status: str
    settle_with_credit: bool
    obligation_count: int
    total: int
    net_internal_debt: int
    total_setoff: int
    total_credit_paid: int
    setoff_only_optimum: int
    transaction_id: str | None
    created_by: int | None
    created_at: datetime
    applied_by: int | None
    applied_at: datetime | None
    cancelled_at: datetime | None

    @property
    def total_discharged(self) -> int:
        return self.total_setoff + self.total_credit_paid

    @property
    def extra_cleared_by_credit(self) -> int:
        return self.total_discharged - self.setoff_only_optimum


@dataclass(frozen=True, slots=True)
class ParticipantRow:
    coop_id: int
    coop: str
    owes_before: int
    owed_before: int
    setoff: int
    credit_paid: int
    credit_received: int
    credit_transfer_id: int | None

    @property
    def net_position(self) -> int:
        return self.owed_before - self.owes_before

    @property
    def owes_after(self) -> int:
        return self.owes_before - self.setoff - self.credit_paid

    @property
    def owed_after(self) -> int:
        return self.owed_before - self.setoff - self.credit_received

    @property
    def credit_balance_change(self) -> int:
        return self.credit_received - self.credit_paid


@dataclass(frozen=True, slots=True)
class CycleRow:
    position: int
    coops: tuple[str, ...]
    amount: int


@dataclass(frozen=True, slots=True)
class ItemRow:
    obligation_id: int
    external_id: str
    debtor: str
    creditor: str
    obligation_version: int
    remaining_before: int
    setoff: int
    credit_paid: int

    @property
    def remaining_after(self) -> int:
        return self.remaining_before - self.setoff - self.credit_paid


@dataclass(frozen=True, slots=True)
class RunView:
    """A run as one requester may see it: `scope` None is everything (an officer); otherwise
    the co-ops (ids) whose part is shown."""

    run: RunRecord
    federation: FederationRecord
    scope: frozenset[int] | None
    participants: list[ParticipantRow]
    cycles: list[CycleRow]


# --- proposing ----------------------------------------------------------------------------


def propose_run(
    conn: Connection,
    *,
    requester: Requester,
    federation: FederationRecord,
    period: str,
    settle_with_credit: bool,
    now: datetime,
) -> RunRecord:
    require_officer(conn, requester, federation)
    if not PERIOD.fullmatch(period):
        raise DomainError(
            "validation_failed",
            "period is a month: YYYY-MM",
            [Problem("validation_failed", "not YYYY-MM", "period")],
        )
    loaded = _load_obligations(conn, federation)
    policy = ClearingPolicy(
        settle_with_credit=settle_with_credit,
        credit=_credit_lines(conn, federation) if settle_with_credit else {},
    )
    result = clear([ob for ob, _ in loaded], policy=policy)
    run_id = _store(conn, federation, period, settle_with_credit, result, loaded, user_of(requester), now)
    return get_run(conn, run_id)


def _engine_id(obligation_id: int) -> str:
    # Zero-padded so that the engine's tie-break "then by id" follows the order of recording.
    return f"{obligation_id:019d}"


def _load_obligations(
    conn: Connection, federation: FederationRecord
) -> list[tuple[Obligation, tuple[int, int]]]:
    """(engine obligation, (obligation id, version)) for every confirmed obligation with
    something remaining, in id order."""
    o, dc, cc = ct.obligations, t.coops.alias("dc"), t.coops.alias("cc")
    rows = conn.execute(
        sa.select(
            o.c.id,
            o.c.version,
            o.c.remaining,
            o.c.due_on,
            dc.c.slug.label("debtor"),
            cc.c.slug.label("creditor"),
        )
        .select_from(o.join(dc, dc.c.id == o.c.debtor_coop_id).join(cc, cc.c.id == o.c.creditor_coop_id))
        .where(o.c.federation_id == federation.id, o.c.status == "confirmed", o.c.remaining > 0)
        .order_by(o.c.id)
    )
    return [
        (
            Obligation(
                _engine_id(r.id),
                r.debtor,
                r.creditor,
                r.remaining,
                None if r.due_on is None else r.due_on.isoformat(),
            ),
            (r.id, r.version),
        )
        for r in rows
    ]


def _credit_lines(conn: Connection, federation: FederationRecord) -> dict[str, CreditLine]:
    """Each member's headroom in the federation ledger now: how far its balance may fall
    (to min_balance) and rise (to max_balance); a frozen account has none."""
    lines: dict[str, CreditLine] = {}
    for m in list_members(conn, federation):
        if m.status != AccountStatus.ACTIVE.value:
            lines[m.slug] = CreditLine(0, 0)
            continue
        pay = UNLIMITED if m.min_balance is None else max(0, m.balance - m.min_balance)
        receive = UNLIMITED if m.max_balance is None else max(0, m.max_balance - m.balance)
        lines[m.slug] = CreditLine(pay, receive)
    return lines


def _store(
    conn: Connection,
    federation: FederationRecord,
    period: str,
    settle_with_credit: bool,
    result: ClearingResult,
    loaded: list[tuple[Obligation, tuple[int, int]]],
    created_by: int | None,
    now: datetime,
) -> int:
    r = ct.clearing_runs
    run_id = int(
        conn.execute(
            sa.insert(r)
            .values(
                federation_id=federation.id,
                period=period,
                status=PROPOSED,
                settle_with_credit=settle_with_credit,
                obligation_count=len(result.obligations),
                total=result.total,
                net_internal_debt=result.net_internal_debt,
                total_setoff=result.total_setoff,
                total_credit_paid=result.total_credit_paid,
                setoff_only_optimum=result.setoff_only_optimum,
                created_by=created_by,
                created_at=now,
            )
            .returning(r.c.id)
        ).scalar_one()
    )
    items = [
        {
            "run_id": run_id,
            "obligation_id": ids[0],
            "obligation_version": ids[1],
            "remaining_before": ob.amount,
            "setoff": setoff,
            "credit_paid": credit,
        }
        for (ob, ids), setoff, credit in zip(loaded, result.setoffs, result.credit_payments, strict=True)
    ]
    for start in range(0, len(items), CHUNK):
        conn.execute(sa.insert(ct.clearing_run_items), items[start : start + CHUNK])
    coop_ids = coop_ids_by_slug(conn, federation)
    participants = [
        {
            "run_id": run_id,
            "coop_id": coop_ids[p.name],
            "owes_before": p.owes_before,
            "owed_before": p.owed_before,
            "setoff": p.setoff,
            "credit_paid": p.credit_paid,
            "credit_received": p.credit_received,
        }
        for p in result.participants
    ]
    for start in range(0, len(participants), CHUNK):
        conn.execute(sa.insert(ct.clearing_run_participants), participants[start : start + CHUNK])
    cycles = [
        {"run_id": run_id, "position": i, "path": " ".join(c.participants), "amount": c.amount}
        for i, c in enumerate(result.cycles or ())
        if c.amount > 0
    ]
    for start in range(0, len(cycles), CHUNK):
        conn.execute(sa.insert(ct.clearing_run_cycles), cycles[start : start + CHUNK])
    return run_id


# --- reading ------------------------------------------------------------------------------


def _run(row: Any) -> RunRecord:
    values = dict(row._mapping)
    for name in ("created_at", "applied_at", "cancelled_at"):
        values[name] = utc(values[name])
    values["settle_with_credit"] = bool(values["settle_with_credit"])
    return RunRecord(**values)


def get_run(conn: Connection, run_id: int) -> RunRecord:
    row = conn.execute(sa.select(ct.clearing_runs).where(ct.clearing_runs.c.id == run_id)).first()
    if row is None:
        raise DomainError("clearing_run_not_found", "no such clearing run")
    return _run(row)


def _scope(found: Access) -> frozenset[int] | None:
    """None: everything (an officer); else the co-ops whose part a treasurer may see."""
    if found.officer:
        return None
    if found.treasurer_of:
        return found.treasurer_of
    raise DomainError(
        "forbidden",
        "only the federation's officers and the treasurers of its co-ops see clearing runs",
    )


def run_for(
    conn: Connection, *, requester: Requester, run_id: int
) -> tuple[RunRecord, FederationRecord, frozenset[int] | None]:
    run = get_run(conn, run_id)
    federation = federation_by_id(conn, run.federation_id)
    return run, federation, _scope(access(conn, requester, federation))


def participants(conn: Connection, run_id: int, scope: frozenset[int] | None) -> list[ParticipantRow]:
    p, c = ct.clearing_run_participants, t.coops
    query = (
        sa.select(
            p.c.coop_id,
            c.c.slug.label("coop"),
            p.c.owes_before,
            p.c.owed_before,
            p.c.setoff,
            p.c.credit_paid,
            p.c.credit_received,
            p.c.credit_transfer_id,
        )
        .join(c, c.c.id == p.c.coop_id)
        .where(p.c.run_id == run_id)
        .order_by(c.c.slug)
    )
    if scope is not None:
        query = query.where(p.c.coop_id.in_(sorted(scope)))
    return [ParticipantRow(**r._mapping) for r in conn.execute(query)]


def cycles(conn: Connection, run_id: int, scope_slugs: frozenset[str] | None) -> list[CycleRow]:
    cy = ct.clearing_run_cycles
    rows = conn.execute(
        sa.select(cy.c.position, cy.c.path, cy.c.amount).where(cy.c.run_id == run_id).order_by(cy.c.position)
    )
    found = [CycleRow(r.position, tuple(r.path.split(" ")), r.amount) for r in rows]
    if scope_slugs is None:
        return found
    return [c for c in found if scope_slugs.intersection(c.coops)]


def view_run(conn: Connection, *, requester: Requester, run_id: int) -> RunView:
    run, federation, scope = run_for(conn, requester=requester, run_id=run_id)
    rows = participants(conn, run.id, scope)
    slugs = None if scope is None else _slugs(conn, scope)
    return RunView(run, federation, scope, rows, cycles(conn, run.id, slugs))


def _slugs(conn: Connection, coop_ids: frozenset[int]) -> frozenset[str]:
    c = t.coops
    return frozenset(conn.execute(sa.select(c.c.slug).where(c.c.id.in_(sorted(coop_ids)))).scalars())


def list_runs(
    conn: Connection,
    *,
    requester: Requester,
    federation: FederationRecord,
    cursor: int | None,
    limit: int,
) -> tuple[list[RunRecord], frozenset[int] | None, int | None]:
    """Newest first."""
    scope = _scope(access(conn, requester, federation))
    r = ct.clearing_runs
    query = sa.select(r).where(r.c.federation_id == federation.id).order_by(r.c.id.desc()).limit(limit + 1)
    if cursor is not None:
        query = query.where(r.c.id < cursor)
    runs = [_run(row) for row in conn.execute(query)]
    if len(runs) > limit:
        runs = runs[:limit]
        return runs, scope, runs[-1].id
    return runs, scope, None


def run_items(
    conn: Connection,
    *,
    requester: Requester,
    run_id: int,
    coop_slug: str | None,
    cursor: int | None,
    limit: int,
) -> tuple[RunRecord, FederationRecord, list[ItemRow], int | None]:
    """The run's obligations with what it discharges of each, by obligation id. A treasurer
    sees those of its own co-op (as debtor or creditor)."""
    run, federation, scope = run_for(conn, requester=requester, run_id=run_id)
    i, o, dc, cc = ct.clearing_run_items, ct.obligations, t.coops.alias("dc"), t.coops.alias("cc")
    query = (
        sa.select(
            i.c.obligation_id,
            o.c.external_id,
            dc.c.slug.label("debtor"),
            cc.c.slug.label("creditor"),
            i.c.obligation_version,
            i.c.remaining_before,
            i.c.setoff,
            i.c.credit_paid,
        )
        .select_from(
            i.join(o, o.c.id == i.c.obligation_id)
            .join(dc, dc.c.id == o.c.debtor_coop_id)
            .join(cc, cc.c.id == o.c.creditor_coop_id)
        )
        .where(i.c.run_id == run.id)
        .order_by(i.c.obligation_id)
        .limit(limit + 1)
    )
    wanted: list[int] | None = None if scope is None else sorted(scope)
    if coop_slug is not None:
        coop_id = coop_ids_by_slug(conn, federation).get(coop_slug)
        if coop_id is None:
            raise DomainError("coop_not_found", f"{coop_slug!r} is not a member co-op of this federation")
        if scope is not None and coop_id not in scope:
            raise DomainError("forbidden", "a treasurer sees only its own co-op's part of a run")
        wanted = [coop_id]
    if wanted is not None:
        query = query.where(sa.or_(o.c.debtor_coop_id.in_(wanted), o.c.creditor_coop_id.in_(wanted)))
    if cursor is not None:
        query = query.where(i.c.obligation_id > cursor)
    rows = [ItemRow(**r._mapping) for r in conn.execute(query)]
    if len(rows) > limit:
        rows = rows[:limit]
        return run, federation, rows, rows[-1].obligation_id
    return run, federation, rows, None


# --- applying and cancelling --------------------------------------------------------------


def apply_run(conn: Connection, *, requester: Requester, run_id: int, now: datetime) -> RunRecord:
    run = get_run(conn, run_id)
    federation = federation_by_id(conn, run.federation_id)
    require_officer(conn, requester, federation)
    if run.status == APPLIED:
        return run
    if run.status == CANCELLED:
        raise DomainError("clearing_run_closed", "this clearing run was cancelled; propose a new one")
    r = ct.clearing_runs
    # Claim the run first: a concurrent apply waits here (row lock) and then finds it applied.
    claimed = conn.execute(
        sa.update(r)
        .where(r.c.id == run.id, r.c.status == PROPOSED)
        .values(status=APPLIED, applied_at=now, applied_by=user_of(requester))
    )
    if claimed.rowcount != 1:
        current = get_run(conn, run.id)
        if current.status == APPLIED:
            return current
        raise DomainError("clearing_run_closed", "this clearing run was cancelled; propose a new one")
    _refuse_if_stale(conn, run.id)
    _reduce_obligations(conn, run.id, now)
    if run.settle_with_credit and run.total_credit_paid > 0:
        transaction_id = _settle_credit(conn, run, federation, requester, now)
        conn.execute(sa.update(r).where(r.c.id == run.id).values(transaction_id=transaction_id))
    return get_run(conn, run.id)


def _refuse_if_stale(conn: Connection, run_id: int) -> None:
    """Lock the run's obligations (PostgreSQL; in id order) and refuse if any of them is no
    longer the version the run was computed on."""
    i, o = ct.clearing_run_items, ct.obligations
    members = sa.select(i.c.obligation_id).where(i.c.run_id == run_id)
    if not is_sqlite(conn):
        conn.execute(sa.select(o.c.id).where(o.c.id.in_(members)).order_by(o.c.id).with_for_update()).all()
    changed = conn.execute(
        sa.select(o.c.id, o.c.external_id)
        .join(i, i.c.obligation_id == o.c.id)
        .where(i.c.run_id == run_id, o.c.version != i.c.obligation_version)
        .order_by(o.c.id)
    ).all()
    if changed:
        examples = ", ".join(repr(row.external_id) for row in changed[:5])
        raise DomainError(
            "stale_clearing_run",
            f"{len(changed)} obligation(s) changed since this run was proposed ({examples}); "
            "propose a new run",
        )


def _reduce_obligations(conn: Connection, run_id: int, now: datetime) -> None:
    i, o = ct.clearing_run_items, ct.obligations
    items = conn.execute(
        sa.select(
            i.c.obligation_id,
            i.c.obligation_version,
            (i.c.setoff + i.c.credit_paid).label("discharged"),
        )
        .where(i.c.run_id == run_id, i.c.setoff + i.c.credit_paid > 0)
        .order_by(i.c.obligation_id)
    ).all()
    if not items:
        return
    statement = (
        sa.update(o)
        .where(o.c.id == sa.bindparam("_id"), o.c.version == sa.bindparam("_version"))
        .values(
            remaining=o.c.remaining - sa.bindparam("_discharged"),
            status=sa.case((o.c.remaining == sa.bindparam("_discharged"), "settled"), else_=o.c.status),
            version=o.c.version + 1,
            updated_at=now,
        )
    )
    params = [
        {
            "_id": row.obligation_id,
            "_version": row.obligation_version,
            "_discharged": row.discharged,
        }
        for row in items
    ]
    updated = 0
    for start in range(0, len(params), CHUNK):
        updated += conn.execute(statement, params[start : start + CHUNK]).rowcount
    if updated != len(params):  # cannot happen with the rows locked; refuse rather than guess
        raise DomainError(
            "stale_clearing_run", "obligations changed while the run was applied; propose a new run"
        )


def _settle_credit(
    conn: Connection,
    run: RunRecord,
    federation: FederationRecord,
    requester: Requester,
    now: datetime,
) -> str:
    """Post each co-op's net credit change against the federation's clearing account."""
    accounts = {m.coop_id: m.account_id for m in list_members(conn, federation)}
    rows = [p for p in participants(conn, run.id, None) if p.credit_balance_change != 0]
    payers = sorted((p for p in rows if p.credit_balance_change < 0), key=lambda p: p.coop)
    receivers = sorted((p for p in rows if p.credit_balance_change > 0), key=lambda p: p.coop)
    clearing = federation.clearing_account_id
    movements = [Movement(accounts[p.coop_id], clearing, -p.credit_balance_change) for p in payers] + [
        Movement(clearing, accounts[p.coop_id], p.credit_balance_change) for p in receivers
    ]
    lock_accounts(conn, [clearing, *accounts.values()])
    transaction_id = str(uuid.uuid4())
    memo = f"Clearing run {run.id} ({run.period}): obligations settled in mutual credit"
    inserted = (
        conn.execute(
            sa.insert(t.transfers).returning(t.transfers.c.id, sort_by_parameter_order=True),
            [
                {
                    "ledger_id": federation.ledger_id,
                    "transaction_id": transaction_id,
                    "payer_id": m.payer,
                    "payee_id": m.payee,
                    "amount": m.amount,
                    "memo": memo,
                    "category": "clearing",
                    "occurred_on": now.date(),
                    "initiator_id": user_of(requester),
                    "status": TransferStatus.POSTED.value,
                    "created_at": now,
                }
                for m in movements
            ],
        )
        .scalars()
        .all()
    )
    for movement, transfer_id, p in zip(movements, inserted, [*payers, *receivers], strict=True):
        try:
            apply_movement(conn, movement, transfer_id=transfer_id, now=now)
        except DomainError as exc:
            if exc.code not in _LEDGER_MOVED:
                raise
            raise DomainError(
                "stale_clearing_run",
                f"the federation ledger changed since this run was proposed: {p.coop}: "
                f"{exc.detail}; propose a new run",
                exc.problems,
            ) from exc
    p_table = ct.clearing_run_participants
    conn.execute(
        sa.update(p_table)
        .where(p_table.c.run_id == run.id, p_table.c.coop_id == sa.bindparam("_coop"))
        .values(credit_transfer_id=sa.bindparam("_transfer")),
        [
            {"_coop": p.coop_id, "_transfer": tid}
            for p, tid in zip([*payers, *receivers], inserted, strict=True)
        ],
    )
    balance = conn.execute(sa.select(t.accounts.c.balance).where(t.accounts.c.id == clearing)).scalar_one()
    if balance != 0:  # what co-ops paid in is exactly what others received
        raise DomainError(
            "internal_error", "the clearing account did not return to zero; nothing was applied"
        )
    return transaction_id


def cancel_run(conn: Connection, *, requester: Requester, run_id: int, now: datetime) -> RunRecord:
    run = get_run(conn, run_id)
    require_officer(conn, requester, federation_by_id(conn, run.federation_id))
    r = ct.clearing_runs
    conn.execute(
        sa.update(r)
        .where(r.c.id == run.id, r.c.status == PROPOSED)
        .values(status=CANCELLED, cancelled_at=now)
    )
    current = get_run(conn, run.id)
    if current.status == APPLIED:
        raise DomainError("clearing_run_closed", "an applied clearing run cannot be cancelled")
    return current
