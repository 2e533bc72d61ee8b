"""commons_pay (migration 0005_pg_transfer) on PostgreSQL, below the API: its limit check is the
conditional UPDATE's, atomic under concurrency, and a refusal after one account moved leaves
nothing behind. (The API tests in tests/api/test_pg_transfer.py show what it takes and answers.)
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger import idempotency, pg_transfer, service
from ledger import tables as t
from ledger.core import within_limits
from ledger.db import make_engine, write_transaction
from ledger.service import TransferInput
from tests.ledger.test_service import Coop

BODY = pg_transfer.body_template({"id": pg_transfer.ID, "amount": pg_transfer.AMOUNT})
assert BODY is not None

# commons_pay exists only on PostgreSQL (SQLite runs the Python path): this module runs there only.
pytestmark = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def coop(engine: Engine) -> Iterator[Coop]:
    yield Coop(engine)


def payment(
    coop: Coop, who: str, payer: str, payee: str, amount: int, key: str | None = None
) -> pg_transfer.Payment:
    user_id = coop.people[who].user_id
    key = key or uuid.uuid4().hex
    now = datetime.now(UTC)
    return pg_transfer.Payment(
        user_id=user_id,
        token_version=0,
        key=key,
        request_hash=key,
        lock_id=idempotency.lock_id(user_id=user_id, key=key),
        payer_id=coop.accounts[payer],
        payee_id=coop.accounts[payee],
        amount=amount,
        decimals=None,
        memo=None,
        category=None,
        occurred_on=now.date(),
        transaction_id=str(uuid.uuid4()),
        now=now,
        body=BODY,  # type: ignore[arg-type]
    )


def ledger_rows(engine: Engine) -> tuple[dict[int, sa.Row], list[sa.Row], list[sa.Row], int]:
    with engine.connect() as conn:
        accounts = {r.id: r for r in conn.execute(sa.select(t.accounts))}
        transfers = conn.execute(sa.select(t.transfers)).all()
        postings = conn.execute(
            sa.select(t.postings).order_by(t.postings.c.account_id, t.postings.c.version)
        ).all()
        keys = conn.execute(sa.select(sa.func.count()).select_from(t.idempotency_keys)).scalar_one()
    return accounts, transfers, postings, keys


def test_the_stored_body_fills_its_holes(coop: Coop) -> None:
    result = pg_transfer.attempt(coop.engine, payment(coop, "ana", "ana", "ben", 150))
    assert result.outcome == "posted" and result.stored is not None
    _, transfers, _, _ = ledger_rows(coop.engine)
    assert result.stored.body == {"id": str(transfers[0].id), "amount": "1.50"}
    assert coop.balances() == {"tess": 0, "ana": -150, "ben": 150}


def test_a_value_the_driver_refuses_is_left_to_the_python_path(coop: Coop) -> None:
    nul = replace(payment(coop, "ana", "ana", "ben", 150), memo="a\x00b")
    assert pg_transfer.attempt(coop.engine, nul) == pg_transfer.Attempt("fallback:driver", None)
    assert coop.balances() == {"tess": 0, "ana": 0, "ben": 0}


def test_concurrent_payments_keep_every_invariant(coop: Coop) -> None:
    """8 threads, tight limits, the function alone (no Python fallback): every posted payment is
    stored once with its key and postings, none breaks a limit, and the ledger sums to zero.
    Removing the limit condition from the function's UPDATEs makes this fail (the CHECK
    constraints then raise, and the balances no longer match)."""
    for name in coop.accounts:
        coop.limits(name, -600, 600)
    threads, per_thread = 8, 60
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)
    engine = make_engine(str(coop.engine.url.render_as_string(hide_password=False)), pool_size=threads)
    names = list(coop.accounts)

    def client(n: int) -> None:
        rnd = random.Random(n)
        start.wait()
        for _ in range(per_thread):
            payer, payee = rnd.sample(names, 2)
            result = pg_transfer.attempt(
                engine, payment(coop, payer, payer, payee, rnd.choice((100, 200, 300)))
            )
            with lock:
                outcomes.append(result.outcome)

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    engine.dispose()
    assert not any(w.is_alive() for w in workers)
    seen = Counter(outcomes)
    assert sum(seen.values()) == threads * per_thread
    assert set(seen) <= {"posted", "fallback:limit", "fallback:CM001"}, seen
    assert seen["posted"] > 50 and seen["fallback:limit"] + seen["fallback:CM001"] > 50, seen

    accounts, transfers, postings, keys = ledger_rows(coop.engine)
    assert len(transfers) == keys == seen["posted"]
    assert sum(a.balance for a in accounts.values()) == 0
    for a in accounts.values():
        assert within_limits(a.balance, a.min_balance, a.max_balance), a
        assert a.balance == a.credits - a.debits
    history: dict[int, list[sa.Row]] = {}
    for p in postings:
        history.setdefault(p.account_id, []).append(p)
    assert sum(len(h) for h in history.values()) == 2 * len(transfers)
    for account_id, lines in history.items():
        assert [p.version for p in lines] == list(range(1, len(lines) + 1))
        running = 0
        for p in lines:
            running += p.amount
            assert p.balance_after == running
        assert running == accounts[account_id].balance
        assert accounts[account_id].version == len(lines)


def test_a_limit_reached_under_the_second_update_rolls_back_the_first(coop: Coop) -> None:
    """ana (lower id) pays ben 6.00; ben's row is held by tess paying him 5.00, which commits
    while the function waits. Its UPDATE of ben then matches nothing (ceiling 10.00) after ana
    was already debited: SQLSTATE CM001 rolls the statement back, and the caller is told to take
    the Python path, which answers ceiling_exceeded."""
    outcome: list[pg_transfer.Attempt] = []
    other = make_engine(str(coop.engine.url.render_as_string(hide_password=False)), pool_size=1)
    try:
        with write_transaction(other) as conn:
            service.create_transfer(
                conn,
                actor=coop.people["tess"],
                request=TransferInput(coop.accounts["tess"], coop.accounts["ben"], 500),
                now=datetime.now(UTC),
            )
            racer = threading.Thread(
                target=lambda: outcome.append(
                    pg_transfer.attempt(coop.engine, payment(coop, "ana", "ana", "ben", 600))
                )
            )
            racer.start()
            deadline = time.monotonic() + 20
            while not _waits_for_a_row_lock(other):
                assert time.monotonic() < deadline, "commons_pay never waited for ben's row"
                time.sleep(0.01)
        racer.join(timeout=20)
    finally:
        other.dispose()
    assert [a.outcome for a in outcome] == ["fallback:CM001"]
    assert coop.balances() == {"tess": -500, "ana": 0, "ben": 500}  # tess's payment only
    accounts, transfers, postings, keys = ledger_rows(coop.engine)
    assert (len(transfers), len(postings), keys) == (1, 2, 0)
    assert accounts[coop.accounts["ana"]].version == 0


def _waits_for_a_row_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%commons_pay%' AND datname = current_database()"
                )
            ).scalar()
        )
