"""ledger.sqlite_transfer below the API: what it posts, that every refusal leaves the database
as it was, and that its limits hold with writers in several threads and two processes.
(tests/api/test_sqlite_transfer.py shows what it takes and answers through the API.)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

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


def test_group_commit_keeps_each_payment_its_own(coop: Coop, monkeypatch: pytest.MonkeyPatch) -> None:
    """Payments queued while the writers' lock is held are written by one holder in one
    transaction (group commit), each in its own savepoint: one that fails after all its writes
    leaves nothing behind and its caller gets the error, one that falls back writes nothing,
    and the others commit. Without the savepoints the failed payment's writes would be
    committed (or, rolled back whole, take the others with it)."""
    coop.limits("ben", -1000, 250)
    doomed = pay(coop, "ana", "ana", "ben", 7)
    real_pay = sqlite_transfer._pay

    def failing_after_its_writes(driver: object, p: payment.Payment, when: object) -> object:
        written = real_pay(driver, p, when)  # type: ignore[arg-type]
        if p is doomed:
            raise RuntimeError("failed after its writes")
        return written

    batches: list[int] = []
    real_transaction = sqlite_transfer._transaction

    def counting(driver: object, batch: list[object]) -> object:
        batches.append(len(batch))
        return real_transaction(driver, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_transfer, "_pay", failing_after_its_writes)
    monkeypatch.setattr(sqlite_transfer, "_transaction", counting)
    payments = [
        pay(coop, "ana", "ana", "ben", 100),
        doomed,
        pay(coop, "ana", "ana", "ben", 200),  # over ben's ceiling once the first is in: falls back
        pay(coop, "ben", "ben", "tess", 50),
    ]
    results: dict[int, payment.Attempt | BaseException] = {}

    def run(n: int) -> None:
        try:
            results[n] = sqlite_transfer.attempt(coop.engine, payments[n])
        except RuntimeError as exc:
            results[n] = exc

    group = sqlite_transfer._group(coop.engine)
    with write_transaction(coop.engine):
        threads = [threading.Thread(target=run, args=(n,)) for n in range(len(payments))]
        for th in threads:
            th.start()
        for _ in range(200):
            if len(group.waiting) == len(payments):
                break
            threading.Event().wait(0.01)
        assert len(group.waiting) == len(payments)
    for th in threads:
        th.join(timeout=20)
    assert batches == [4]
    assert [getattr(r, "outcome", None) for r in (results[0], results[2], results[3])] == [
        "posted",
        "fallback:limit",
        "posted",
    ]
    assert isinstance(results[1], RuntimeError)
    assert coop.balances() == {"tess": 50, "ana": -100, "ben": 50}
    accounts, transfers, postings, keys = ledger_rows(coop.engine)
    assert len(transfers) == keys == 2 and len(postings) == 4
    assert sorted(t.amount for t in transfers) == [50, 100]
    for a in accounts.values():
        assert a.balance == a.credits - a.debits


def _held_writers(engine: Engine) -> Any:
    """The writers' lock of this process held by another thread until the returned event is set."""
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with write_transaction(engine):
            held.set()
            release.wait(20)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    return release, holder


def test_payments_from_an_event_loop_share_one_commit_and_each_gets_its_answer(coop: Coop) -> None:
    """attempt_async: the loop goes on while payments wait (they are queued for the group's
    writer thread); those queued while the lock is held are written in one transaction."""
    coop.limits("ben", -1000, 1000)
    payments = [pay(coop, "ana", "ana", "ben", 10 * (n + 1)) for n in range(12)]
    payments.append(pay(coop, "ana", "ana", "ben", 5000))  # over ben's ceiling: falls back
    release, holder = _held_writers(coop.engine)
    group = sqlite_transfer._group(coop.engine)

    async def main() -> list[payment.Attempt]:
        tasks = [asyncio.ensure_future(sqlite_transfer.attempt_async(coop.engine, p)) for p in payments]
        for _ in range(500):  # the loop is free while they wait
            await asyncio.sleep(0.005)
            if len(group.waiting) == len(payments):
                break
        assert len(group.waiting) == len(payments) and not any(t.done() for t in tasks)
        release.set()
        return list(await asyncio.gather(*tasks))

    results = asyncio.run(main())
    holder.join()
    assert [r.outcome for r in results] == ["posted"] * 12 + ["fallback:limit"]
    assert all(r.stored is not None and r.stored.body["amount"] for r in results[:12])
    assert coop.balances()["ben"] == sum(10 * (n + 1) for n in range(12))
    _, transfers, postings, keys = ledger_rows(coop.engine)
    assert len(transfers) == keys == 12 and len(postings) == 24


def test_a_cancelled_async_caller_waits_for_its_payment_before_it_is_cancelled(coop: Coop) -> None:
    """Its key's guard (ledger.idempotency.key_guard) must hold until the payment's outcome is
    known, or a retry could overtake it: cancellation is let through only after the write."""
    release, holder = _held_writers(coop.engine)

    async def main() -> None:
        task = asyncio.ensure_future(
            sqlite_transfer.attempt_async(coop.engine, pay(coop, "ana", "ana", "ben", 30))
        )
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.sleep(0.2)
        assert not task.done()  # still waiting for the write
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    holder.join()
    assert coop.balances()["ben"] == 30  # written, as the caller's retry will be told


def test_the_writer_thread_stops_when_the_engine_is_disposed_and_comes_back(coop: Coop) -> None:
    async def one(amount: int) -> str:
        return (
            await sqlite_transfer.attempt_async(coop.engine, pay(coop, "ana", "ana", "ben", amount))
        ).outcome

    assert asyncio.run(one(1)) == "posted"
    group = sqlite_transfer._group(coop.engine)
    first = group._thread
    assert first is not None and first.is_alive()
    coop.engine.dispose()
    first.join(timeout=10)
    assert not first.is_alive()
    assert asyncio.run(one(2)) == "posted"
    assert group._thread is not first and group._thread is not None and group._thread.is_alive()
    assert coop.balances()["ben"] == 3
