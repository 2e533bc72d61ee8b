"""ledger.sqlite_transfer below the API: what it posts, that every refusal leaves the database
as it was, and that its limits hold with writers in several threads and two processes.
(tests/api/test_sqlite_transfer.py shows what it takes and answers through the API.)
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger import idempotency, payment, sqlite_transfer
from ledger import tables as t
from ledger.core import within_limits
from ledger.db import make_engine, write_transaction
from tests.ledger.test_service import Coop

BODY = payment.body_template({"id": payment.ID, "amount": payment.AMOUNT, "unit": payment.UNIT_CODE})
assert BODY is not None

# The SQLite path only (PostgreSQL has commons_pay, tests/ledger/test_pg_transfer.py).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def coop(engine: Engine) -> Iterator[Coop]:
    yield Coop(engine)


def make_payment(
    user_id: int,
    payer_id: int,
    payee_id: int,
    amount: int,
    key: str | None = None,
    decimals: int | None = None,
) -> payment.Payment:
    key = key or uuid.uuid4().hex
    now = datetime.now(UTC)
    assert BODY is not None
    return payment.Payment(
        user_id=user_id,
        token_version=0,
        key=key,
        request_hash=key,
        lock_id=idempotency.lock_id(user_id=user_id, key=key),
        payer_id=payer_id,
        payee_id=payee_id,
        amount=amount,
        decimals=decimals,
        memo=None,
        category=None,
        occurred_on=now.date(),
        transaction_id=str(uuid.uuid4()),
        now=now,
        body=BODY,
    )


def pay(coop: Coop, who: str, payer: str, payee: str, amount: int, **kw: object) -> payment.Payment:
    return make_payment(coop.people[who].user_id, coop.accounts[payer], coop.accounts[payee], amount, **kw)  # type: ignore[arg-type]


def ledger_rows(engine: Engine) -> tuple[dict[int, sa.Row], list[sa.Row], list[sa.Row], int]:
    with engine.connect() as conn:
        accounts = {r.id: r for r in conn.execute(sa.select(t.accounts))}
        transfers = conn.execute(sa.select(t.transfers)).all()
        postings = conn.execute(
            sa.select(t.postings).order_by(t.postings.c.account_id, t.postings.c.version)
        ).all()
        keys = conn.execute(sa.select(sa.func.count()).select_from(t.idempotency_keys)).scalar_one()
    return accounts, transfers, postings, keys


def test_posts_fills_the_holes_and_replays(coop: Coop) -> None:
    first = pay(coop, "ana", "ana", "ben", 150)
    result = sqlite_transfer.attempt(coop.engine, first)
    assert result.outcome == "posted" and result.stored is not None
    _, transfers, postings, keys = ledger_rows(coop.engine)
    assert result.stored.body == {"id": str(transfers[0].id), "amount": "1.50", "unit": "HOUR"}
    assert coop.balances() == {"tess": 0, "ana": -150, "ben": 150}
    assert [(p.amount, p.balance_after, p.version) for p in postings] == [(-150, -150, 1), (150, 150, 1)]
    assert (transfers[0].status, transfers[0].initiator_id, keys) == ("posted", coop.people["ana"].user_id, 1)
    again = sqlite_transfer.attempt(coop.engine, first)
    assert again.outcome == "replayed" and again.stored is not None and again.stored.replayed
    assert again.stored.body == result.stored.body
    assert ledger_rows(coop.engine)[1:] == (transfers, postings, 1)


def test_the_rows_are_the_python_paths(coop: Coop) -> None:
    """Dates and times are written as SQLAlchemy writes them (they sort with the other rows)."""
    coop.pay("ana", "ana", "ben", 100)
    assert sqlite_transfer.attempt(coop.engine, pay(coop, "ana", "ana", "ben", 100)).outcome == "posted"
    with coop.engine.connect() as conn:
        raw = conn.exec_driver_sql(
            "SELECT typeof(created_at), length(created_at), typeof(occurred_on), length(occurred_on)"
            " FROM transfers ORDER BY id"
        ).all()
        posted = conn.exec_driver_sql("SELECT typeof(posted_at), length(posted_at) FROM postings").all()
    assert raw[0] == raw[1] and len(set(posted)) == 1


def test_a_treasurer_records_and_decimals_are_scaled(coop: Coop) -> None:
    result = sqlite_transfer.attempt(coop.engine, pay(coop, "tess", "ana", "ben", 15, decimals=1))
    assert result.outcome == "posted" and result.stored is not None
    assert result.stored.body["amount"] == "1.50"
    assert coop.balances() == {"tess": 0, "ana": -150, "ben": 150}


def test_every_refusal_writes_nothing(coop: Coop) -> None:
    coop.limits("ben", -1000, 200)
    used = pay(coop, "ana", "ana", "ben", 100)
    assert sqlite_transfer.attempt(coop.engine, used).outcome == "posted"
    before = ledger_rows(coop.engine)
    cases = [
        ("fallback:token", replace(pay(coop, "ana", "ana", "ben", 100), token_version=1)),
        ("fallback:key_reused", replace(used, request_hash="another body")),
        ("fallback:account", make_payment(coop.people["ana"].user_id, coop.accounts["ana"], 999_999, 100)),
        ("fallback:caller", pay(coop, "ana", "ben", "tess", 100)),  # another member's account
        ("fallback:caller", pay(coop, "ben", "ana", "ben", 100)),  # a claim
        ("fallback:decimals", pay(coop, "ana", "ana", "ben", 1005, decimals=3)),
        ("fallback:invalid_amount", pay(coop, "tess", "ana", "ben", 5001)),  # above the co-op's maximum
        ("fallback:same_account", pay(coop, "ana", "ana", "ana", 100)),
        ("fallback:invalid_amount", pay(coop, "ana", "ana", "ben", 0)),
        ("fallback:limit", pay(coop, "ana", "ana", "ben", 101)),  # ben's ceiling, after ana moved
        ("fallback:limit", pay(coop, "ben", "ben", "tess", 1101)),  # ben's credit limit
        ("fallback:limit", pay(coop, "ben", "ben", "ana", 1101)),  # the payer's, it goes second
    ]
    for outcome, attempt in cases:
        assert sqlite_transfer.attempt(coop.engine, attempt) == payment.Attempt(outcome, None), outcome
        assert ledger_rows(coop.engine) == before, outcome
    coop.run(lambda conn: conn.execute(sa.update(t.accounts).values(status="frozen")))
    frozen = sqlite_transfer.attempt(coop.engine, pay(coop, "ana", "ana", "ben", 1))
    assert frozen == payment.Attempt("fallback:account_frozen", None)


def _client(url: str, people: list[tuple[int, int]], seed: int, count: int) -> Counter[str]:
    """Random payments between the people (user id, account id), each by the payer."""
    engine = make_engine(url, pool_size=4)
    rnd = random.Random(seed)
    seen: Counter[str] = Counter()
    try:
        for _ in range(count):
            (user, payer), (_, payee) = rnd.sample(people, 2)
            amount = rnd.choice((100, 200, 300))
            seen[sqlite_transfer.attempt(engine, make_payment(user, payer, payee, amount)).outcome] += 1
    finally:
        engine.dispose()
    return seen


def _process(
    url: str, people: list[tuple[int, int]], seed: int, threads: int, count: int, out: object
) -> None:
    totals: Counter[str] = Counter()
    lock = threading.Lock()

    def run(n: int) -> None:
        got = _client(url, people, seed * 100 + n, count)
        with lock:
            totals.update(got)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put(dict(totals))  # type: ignore[attr-defined]


def test_concurrent_payments_in_threads_and_two_processes_keep_every_invariant(coop: Coop) -> None:
    """4 threads here and 4 in a second process, tight limits, this path alone (no Python
    fallback): every posted payment is stored once with its key and postings, none breaks a
    limit, the ledger sums to zero. Removing the limit conditions from the UPDATEs makes this
    fail (the CHECK constraints then raise)."""
    for name in coop.accounts:
        coop.limits(name, -600, 600)
    url = coop.engine.url.render_as_string(hide_password=False)
    people = [(coop.people[n].user_id, coop.accounts[n]) for n in coop.accounts]
    threads, per_thread = 4, 60
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    other = context.Process(target=_process, args=(url, people, 2, threads, per_thread, queue))
    other.start()
    _process(url, people, 1, threads, per_thread, queue)
    results = [queue.get(timeout=180), queue.get(timeout=180)]
    other.join(timeout=60)
    assert other.exitcode == 0
    seen: Counter[str] = Counter()
    for r in results:
        seen.update(r)
    assert sum(seen.values()) == 2 * threads * per_thread
    assert set(seen) <= {"posted", "fallback:limit"}, seen
    assert seen["posted"] > 50 and seen["fallback:limit"] > 50, seen

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


def test_a_writer_in_the_transaction_is_waited_for(coop: Coop) -> None:
    """The path takes the same writers' lock as every other write (ledger.db): a payment
    started while another transaction holds it posts after that one, on its balances."""
    coop.limits("ben", -1000, 500)
    done: list[payment.Attempt] = []
    with write_transaction(coop.engine) as conn:
        conn.execute(
            sa.update(t.accounts).where(t.accounts.c.id == coop.accounts["ben"]).values(max_balance=100)
        )
        racer = threading.Thread(
            target=lambda: done.append(
                sqlite_transfer.attempt(coop.engine, pay(coop, "ana", "ana", "ben", 200))
            )
        )
        racer.start()
        racer.join(timeout=0.3)
        assert racer.is_alive() and not done  # waiting for the lock
    racer.join(timeout=20)
    assert done == [payment.Attempt("fallback:limit", None)]  # judged on the committed ceiling
    assert coop.balances() == {"tess": 0, "ana": 0, "ben": 0}
