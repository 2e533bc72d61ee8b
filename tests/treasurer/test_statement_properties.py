"""Statements add up, for every account and every month, over random histories.

Each example builds a co-op on a fresh SQLite database and drives the real services through
payments, claims (accepted or rejected, sometimes in a later month) and reversals at random
moments over four months. Sometimes the moments are shuffled, as when two concurrent writers
stamp `posted_at` in the other order than they take their versions; statements must still add
up then (they sum postings by moment), while the stored balance_after chain is compared only for
histories in time order.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import statements
from ledger.errors import DomainError
from ledger.reconcile import snapshot
from ledger.seal_core import Period, periods_between
from tests.treasurer.conftest import SEPT, make_book, scratch_engine

MEMBERS = 4
KINDS = ("pay", "pay", "claim_accept", "claim_reject", "reverse")
operation = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, MEMBERS - 1),
    st.integers(0, MEMBERS - 1),
    st.integers(1, 900),
    # Hours after 1 September, to the end of December; month boundaries drawn often on purpose.
    st.one_of(st.integers(0, 122 * 24 - 1), st.sampled_from([30 * 24, 61 * 24, 91 * 24])),
    st.integers(0, 40 * 24),  # how long a claim waits for its answer
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations=st.lists(operation, min_size=1, max_size=30), in_time_order=st.booleans())
def test_opening_plus_lines_is_closing(
    operations: list[tuple[str, int, int, int, int, int]],
    in_time_order: bool,
    sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    path = tmp_path_factory.mktemp("history") / "commons.db"
    shutil.copyfile(sqlite_template, path)
    engine = scratch_engine(path)
    try:
        book = make_book(engine, members=MEMBERS, min_balance=-1500, max_balance=2500)
        # Each operation becomes events; a claim's answer is its own event, `wait` hours later.
        # In time order, events run sorted by moment (as a real clock would run them);
        # otherwise in the drawn order with shuffled moments, and answers come at once.
        events: list[tuple[datetime, int, str, tuple[int, int, int]]] = []
        for n, (kind, payer, payee, amount, hours, wait) in enumerate(operations):
            moment = SEPT + timedelta(hours=hours)
            events.append((moment, n, kind, (payer, payee, amount)))
            if kind.startswith("claim"):
                events.append(
                    (
                        moment + timedelta(hours=wait) if in_time_order else moment,
                        n,
                        "answer",
                        (payer, payee, amount),
                    )
                )
        if in_time_order:
            events.sort(key=lambda e: (e[0], e[1], e[2] == "answer"))
        posted: list[int] = []
        claims: dict[int, tuple[int, str]] = {}
        for now, n, kind, (payer, payee, amount) in events:
            try:
                if kind == "pay":
                    posted.append(book.pay(payer, payee, amount, now).id)
                elif kind == "reverse" and posted:
                    book.reverse(posted.pop(0), now)
                elif kind.startswith("claim"):
                    claims[n] = (book.claim(payer, payee, amount, now).id, kind)
                elif kind == "answer" and n in claims:
                    claim_id, claim_kind = claims[n]
                    if claim_kind == "claim_accept":
                        book.accept(payer, claim_id, now)
                    else:
                        book.reject(payer, claim_id, now)
            except DomainError:
                continue  # a limit, a same-account pair, an already reversed transfer: refused
        months = periods_between(Period(2026, 8), Period(2027, 3))
        end = datetime(2027, 4, 1, tzinfo=UTC)
        with snapshot(engine) as conn:
            cached = {a: b for a, b in conn.exec_driver_sql("SELECT id, balance FROM accounts").all()}
            by_month = {
                m: {
                    s.account_id: s
                    for s in statements.coop_statements(conn, actor=None, slug="riverside", period=m, now=end)
                }
                for m in months
            }
            for account in book.account_ids[:2]:
                single = statements.account_statement(
                    conn, actor=book.treasurer, account_id=account, period=Period(2026, 10), now=end
                )
                assert single == by_month[Period(2026, 10)][account]
            for m in months:
                tb = statements.trial_balance(
                    conn, actor=None, slug="riverside", at=m.end - timedelta(microseconds=1)
                )
                closings = {a: s.closing for a, s in by_month[m].items()}
                assert {r.account_id: r.balance for r in tb.rows} == {
                    a: closings[a] for a in (r.account_id for r in tb.rows)
                }
                assert all(closings[a] == 0 for a in closings.keys() - {r.account_id for r in tb.rows})
                assert tb.total == 0
        for account in cached:
            previous_closing = 0
            for m in months:
                s = by_month[m][account]
                assert s.opening == previous_closing, (account, m)
                assert s.opening + sum(line.amount for line in s.lines) == s.closing, (account, m)
                running = s.opening
                for line in s.lines:
                    running += line.amount
                    assert line.balance == running
                    if in_time_order:
                        assert line.balance == line.balance_after, (account, m, line)
                    assert m.start <= line.posted_at < m.end
                assert s.total_in - s.total_out == s.closing - s.opening
                previous_closing = s.closing
            assert previous_closing == cached[account]
    finally:
        engine.dispose()
