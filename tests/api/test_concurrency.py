"""Concurrent payments through a real HTTP server: the limits hold and nothing is lost or doubled.

The app runs under uvicorn in a background thread, on a real socket; eight client threads each
send 200 payments between ten accounts whose limits are tight, so many payments race for the
same rows and many are refused. Litestar runs the sync handlers in a thread pool, so the
database sees truly concurrent transactions; the test measures that and fails if it did not.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from litestar import Litestar
from sqlalchemy import event

from api.app import create_app
from ledger import tables as t
from ledger.db import make_engine
from tests.api.conftest import Api, make_coop, make_settings

THREADS = 8
PER_THREAD = 200
AMOUNTS = ("0.50", "1.00", "1.50", "2.00", "3.00")
LIMIT_CODES = {"insufficient_credit", "ceiling_exceeded"}


@contextmanager
def live_server(app: Litestar) -> Iterator[str]:
    """Serve `app` with uvicorn on a free local port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=30)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


class Overlap:
    """Counts the database connections the app holds at once (a pool checkout per transaction)."""

    def __init__(self, app: Litestar) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = 0
        pool = app.state.runtime.engine.pool
        event.listen(pool, "checkout", self.checkout)
        event.listen(pool, "checkin", self.checkin)

    def checkout(self, *_: Any) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def checkin(self, *_: Any) -> None:
        with self.lock:
            self.now -= 1


def test_concurrent_payments_keep_every_invariant(api: Api, db_url: str) -> None:
    names = tuple(f"m{i}" for i in range(9))
    coop = make_coop(api, slug="crowded", members=names, min_balance="-5.00", max_balance="5.00")
    holders = {account: email for email, account in coop.accounts.items()}  # 10 accounts
    accounts = sorted(holders, key=int)
    assert len(accounts) == 10

    app = create_app(make_settings(db_url), sweep_claims=False)
    overlap = Overlap(app)
    results: list[list[tuple[int, dict[str, Any], str, str, str]]] = [[] for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def client(n: int, base_url: str) -> None:
        rnd = random.Random(n)
        with httpx.Client(base_url=base_url + "/api/v1", timeout=60) as http:
            start.wait()
            for i in range(PER_THREAD):
                payer, payee = rnd.sample(accounts, 2)
                amount = rnd.choice(AMOUNTS)
                r = http.post(
                    "/transfers",
                    json={"payer": payer, "payee": payee, "amount": amount},
                    headers={
                        "Authorization": f"Bearer {api.tokens[holders[payer]]}",
                        "Idempotency-Key": f"load-{n}-{i}",
                    },
                )
                results[n].append((r.status_code, r.json(), r.headers.get("content-type", ""), payer, payee))

    with live_server(app) as base_url:
        threads = [threading.Thread(target=client, args=(n, base_url)) for n in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=300)
        assert not any(th.is_alive() for th in threads), "a client thread hung"

    flat = [r for rs in results for r in rs]
    assert len(flat) == THREADS * PER_THREAD
    statuses = Counter(status for status, *_ in flat)
    assert set(statuses) <= {201, 422}, statuses  # in particular no 5xx and no 409 conflict
    refusals = [(body, ctype) for status, body, ctype, *_ in flat if status == 422]
    assert all(body["code"] in LIMIT_CODES for body, _ in refusals), Counter(b["code"] for b, _ in refusals)
    assert all(ctype.startswith("application/problem+json") for _, ctype in refusals)
    acknowledged = [body for status, body, *_ in flat if status == 201]
    assert all(body["status"] == "posted" for body in acknowledged)
    # Tight limits: the run must have exercised both outcomes heavily to mean anything.
    assert len(acknowledged) > 100 and len(refusals) > 100, statuses
    # The requests really overlapped inside the app, not merely on the client side.
    assert overlap.peak >= 3, f"at most {overlap.peak} connections were in use at once"

    engine = make_engine(db_url, pool_size=1)
    try:
        with engine.connect() as conn:
            a, tr, p = t.accounts, t.transfers, t.postings
            ids = [int(x) for x in accounts]
            rows = {r.id: r for r in conn.execute(sa.select(a).where(a.c.id.in_(ids)))}
            ledger_id = rows[ids[0]].ledger_id
            total = conn.execute(
                sa.select(sa.func.sum(a.c.balance)).where(a.c.ledger_id == ledger_id)
            ).scalar()
            stored = conn.execute(
                sa.select(tr.c.id, tr.c.payer_id, tr.c.payee_id, tr.c.amount).where(
                    tr.c.ledger_id == ledger_id
                )
            ).all()
            postings = conn.execute(
                sa.select(p.c.account_id, p.c.version, p.c.amount, p.c.balance_after).order_by(
                    p.c.account_id, p.c.version
                )
            ).all()
    finally:
        engine.dispose()

    assert total == 0
    for row in rows.values():
        assert row.min_balance <= row.balance <= row.max_balance, (row.id, row.balance)
    # Every acknowledged transfer is stored exactly once, and nothing else is.
    acknowledged_ids = [int(body["id"]) for body in acknowledged]
    assert len(set(acknowledged_ids)) == len(acknowledged_ids)
    assert sorted(r.id for r in stored) == sorted(acknowledged_ids)
    # The balances are exactly what the acknowledged transfers add up to.
    expected: Counter[int] = Counter()
    for r in stored:
        expected[r.payer_id] -= r.amount
        expected[r.payee_id] += r.amount
    assert {i: rows[i].balance for i in ids} == {i: expected[i] for i in ids}
    # And each account's history is gapless, with a correct running balance.
    history: dict[int, list[Any]] = {}
    for posting in postings:
        history.setdefault(posting.account_id, []).append(posting)
    assert sum(len(h) for h in history.values()) == 2 * len(stored)
    for account_id, lines in history.items():
        assert [x.version for x in lines] == list(range(1, len(lines) + 1))
        running = 0
        for x in lines:
            running += x.amount
            assert x.balance_after == running
        assert running == rows[account_id].balance == rows[account_id].credits - rows[account_id].debits
