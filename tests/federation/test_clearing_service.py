"""Clearing runs through the services on a real database (both engines): the README's known
answers, and random federations settled with credit (Hypothesis) checked against an
independent optimum and the ledger's invariants."""

from __future__ import annotations

import uuid
from collections import defaultdict
from itertools import count

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine

from clearing import tables as ct
from clearing.engine import CreditLine, Obligation
from clearing.obligation_csv import ObligationInput, ParsedRow
from clearing.obligations import import_obligations
from clearing.runs import UNLIMITED, apply_run, propose_run
from clearing.service import CommandLine, FederationRecord, list_members
from ledger import tables as t
from ledger.core import Movement, limit_problems
from ledger.db import write_transaction
from ledger.service import apply_movement, load_account_states
from tests.clearing.oracle import optimum_discharge, optimum_setoff
from tests.federation.conftest import NOW, service_federation

OPERATOR = CommandLine()

# README known answers, amounts in whole units: (obligations, optimum, set-off per obligation).
KNOWN = {
    "bilateral": ([("a", "b", 70), ("b", "a", 30)], 60, None),
    "simple cycle": ([("a", "b", 5), ("b", "c", 9), ("c", "d", 4), ("d", "a", 7)], 16, None),
    "chain": ([("a", "b", 10), ("b", "c", 10)], 0, None),
    "set-offs per edge": (
        [("a", "b", 100), ("b", "c", 100), ("c", "a", 200), ("d", "c", 100)],
        300,
        [100, 100, 100, 0],
    ),
    "greedy trap": ([("a", "b", 1), ("b", "a", 1), ("b", "c", 1), ("c", "a", 1)], 3, None),
    "overlapping cycles": (
        [
            ("a", "b", 100),
            ("b", "e", 70),
            ("e", "a", 100),
            ("c", "d", 100),
            ("d", "e", 100),
            ("e", "c", 70),
            ("b", "c", 100),
        ],
        570,
        None,
    ),
}


def add_obligations(conn: Connection, federation: FederationRecord, rows: list[tuple[str, str, int]]) -> None:
    parsed = [
        ParsedRow(i + 2, ObligationInput(f"o-{i}", d, c, amount)) for i, (d, c, amount) in enumerate(rows)
    ]
    result = import_obligations(
        conn, requester=OPERATOR, federation=federation, rows=parsed, problems=[], now=NOW
    )
    assert (result.created, result.refused) == (len(rows), 0), result.problems


@pytest.mark.parametrize("case", list(KNOWN))
def test_known_answers_through_a_clearing_run(fed_engine: Engine, case: str) -> None:
    rows, optimum, per_obligation = KNOWN[case]
    coops = sorted({name for d, c, _ in rows for name in (d, c)})
    federation = service_federation(fed_engine, dict.fromkeys(coops, (0, 0)), scale=0)
    with write_transaction(fed_engine) as conn:
        add_obligations(conn, federation, rows)
        run = propose_run(
            conn,
            requester=OPERATOR,
            federation=federation,
            period="2026-11",
            settle_with_credit=False,
            now=NOW,
        )
        assert run.total_setoff == run.setoff_only_optimum == optimum
        applied = apply_run(conn, requester=OPERATOR, run_id=run.id, now=NOW)
        assert applied.status == "applied"
        o = ct.obligations
        remaining = list(conn.execute(sa.select(o.c.remaining).order_by(o.c.id)).scalars())
    assert sum(a for _, _, a in rows) - sum(remaining) == optimum
    if per_obligation is not None:
        assert [a - r for (_, _, a), r in zip(rows, remaining, strict=True)] == per_obligation


# --- random federations settled with credit ----------------------------------------------

NAMES = "abcdef"
_federations = count()


@st.composite
def federations(
    draw: st.DrawFn,
) -> tuple[dict[str, tuple[int | None, int | None]], list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    size = draw(st.integers(3, 6))
    names = NAMES[:size]
    limit = st.one_of(st.none(), st.integers(0, 60))
    limits = {n: (None if (low := draw(limit)) is None else -low, draw(limit)) for n in names}
    pair = st.tuples(st.sampled_from(names), st.sampled_from(names)).filter(lambda p: p[0] != p[1])
    obligations = draw(st.lists(st.tuples(pair, st.integers(1, 50)), min_size=1, max_size=14))
    payments = draw(st.lists(st.tuples(pair, st.integers(1, 30)), max_size=5))
    return (
        limits,
        [(d, c, a) for (d, c), a in obligations],
        [(p, q, a) for (p, q), a in payments],
    )


def pay_in_federation(
    conn: Connection,
    federation: FederationRecord,
    accounts: dict[str, int],
    payments: list[tuple[str, str, int]],
) -> None:
    """Earlier federation-ledger traffic (as cross-co-op payments leave it), within limits."""
    for payer, payee, amount in payments:
        movement = Movement(accounts[payer], accounts[payee], amount)
        states = load_account_states(conn, [movement.payer, movement.payee])
        if limit_problems(states[movement.payer], states[movement.payee], amount):
            continue
        transfer_id = conn.execute(
            sa.insert(t.transfers)
            .values(
                ledger_id=federation.ledger_id,
                transaction_id=str(uuid.uuid4()),
                payer_id=movement.payer,
                payee_id=movement.payee,
                amount=amount,
                occurred_on=NOW.date(),
                status="posted",
                created_at=NOW,
            )
            .returning(t.transfers.c.id)
        ).scalar_one()
        apply_movement(conn, movement, transfer_id=transfer_id, now=NOW)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=federations())
def test_credit_keeps_every_coop_within_its_limits_and_the_ledger_at_zero(
    fed_engine: Engine, data: tuple
) -> None:
    limits, rows, payments = data
    tag = f"x{next(_federations)}"  # co-op slugs are unique across federations
    federation = service_federation(
        fed_engine, {f"{tag}{n}": v for n, v in limits.items()}, slug=tag, scale=0
    )
    rows = [(f"{tag}{d}", f"{tag}{c}", a) for d, c, a in rows]
    with write_transaction(fed_engine) as conn:
        members = {m.slug: m for m in list_members(conn, federation)}
        pay_in_federation(
            conn,
            federation,
            {s: m.account_id for s, m in members.items()},
            [(f"{tag}{p}", f"{tag}{q}", a) for p, q, a in payments],
        )
        add_obligations(conn, federation, rows)
        before = {m.slug: m.balance for m in list_members(conn, federation)}
        credit = {
            s: CreditLine(
                UNLIMITED if m.min_balance is None else before[s] - m.min_balance,
                UNLIMITED if m.max_balance is None else m.max_balance - before[s],
            )
            for s, m in members.items()
        }
        plain = propose_run(
            conn,
            requester=OPERATOR,
            federation=federation,
            period="2026-11",
            settle_with_credit=False,
            now=NOW,
        )
        run = propose_run(
            conn,
            requester=OPERATOR,
            federation=federation,
            period="2026-11",
            settle_with_credit=True,
            now=NOW,
        )
        engine_rows = [Obligation(str(i), d, c, a) for i, (d, c, a) in enumerate(rows)]
        assert plain.total_setoff == run.setoff_only_optimum == optimum_setoff(engine_rows)
        assert run.total_discharged == optimum_discharge(engine_rows, credit)
        assert run.total_discharged >= plain.total_setoff  # credit never clears less
        applied = apply_run(conn, requester=OPERATOR, run_id=run.id, now=NOW)
        assert applied.status == "applied"

        after = {m.slug: m for m in list_members(conn, federation)}
        for m in after.values():  # every co-op within its limits
            assert m.min_balance is None or m.balance >= m.min_balance
            assert m.max_balance is None or m.balance <= m.max_balance
        a = t.accounts
        total = conn.execute(
            sa.select(sa.func.sum(a.c.balance)).where(a.c.ledger_id == federation.ledger_id)
        ).scalar_one()
        clearing = conn.execute(
            sa.select(a.c.balance).where(a.c.id == federation.clearing_account_id)
        ).scalar_one()
        assert (total, clearing) == (0, 0)
        # Every co-op's position is unchanged: what it is owed net, plus its credit balance.
        o, c = ct.obligations, t.coops
        slug = {r.id: r.slug for r in conn.execute(sa.select(c.c.id, c.c.slug))}
        net_after: dict[str, int] = defaultdict(int)
        for r in conn.execute(
            sa.select(o.c.debtor_coop_id, o.c.creditor_coop_id, o.c.remaining).where(
                o.c.federation_id == federation.id
            )
        ):
            net_after[slug[r.creditor_coop_id]] += r.remaining
            net_after[slug[r.debtor_coop_id]] -= r.remaining
        net_before: dict[str, int] = defaultdict(int)
        for d, cr, amount in rows:
            net_before[cr] += amount
            net_before[d] -= amount
        for s in after:
            assert net_after[s] + after[s].balance - before[s] == net_before[s]
