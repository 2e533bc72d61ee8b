"""PostgreSQL: a posted transfer in one statement and one round trip (issue 6).

`commons_pay(...)` (migration 0005_pg_transfer) takes the key's advisory lock, checks the
caller's token version, replays a stored response, checks the accounts, the caller's right to
pay from the payer account, the unit and the co-op's maximum, moves both accounts with the
conditional limit-checked UPDATEs in account id order, inserts the transfer, its postings and
the stored response. It runs in autocommit, so the statement is its own transaction: the
request costs one round trip instead of thirteen.

It handles only the common case and refuses nothing itself: anything else, and every refusal,
comes back as "fallback" with nothing written, and the caller runs the Python path
(`ledger.idempotency.run_idempotent` with `ledger.service.create_transfer`), which gives the
precise answer. The rules thus stay in Python; the function is only ever stricter.

The stored response is the caller's own rendering (`ledger.payment.body_template`, shared with
ledger.sqlite_transfer): the caller renders the response with markers where the id, the amount,
the unit code and the scale go, and the function fills them in, so both paths store the same
bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from sqlalchemy.engine import Engine

from ledger.idempotency import StoredResponse
from ledger.payment import (
    AMOUNT,
    ID,
    SCALE,
    UNIT_CODE,
    Attempt,
    BodyTemplate,
    Payment,
    body_template,
    decimal_amount,
)

# What the callers and tests use from here (shared with ledger.sqlite_transfer).
__all__ = [
    "AMOUNT",
    "ID",
    "SCALE",
    "UNIT_CODE",
    "Attempt",
    "BodyTemplate",
    "Payment",
    "attempt",
    "attempt_async",
    "body_template",
    "close_async",
    "decimal_amount",
    "pay",
    "pay_async",
]

# SQLSTATEs after which nothing was written and the Python path should decide: CM001 is the
# function's own (a conditional UPDATE refused after the other account had moved); 23505 a
# unique key (the idempotency key) taken by a concurrent writer, which the Python path replays.
_FALL_BACK_ON = frozenset({"CM001", "23505", "40001", "40P01"})

_PAY = (
    "SELECT o_outcome, o_status, o_body FROM commons_pay(%s::bigint, %s::bigint, %s::text, %s::text,"
    " %s::bigint, %s::bigint, %s::bigint, %s::bigint, %s::integer, %s::text, %s::text, %s::date, %s::text,"
    " %s::timestamptz, %b::text[], %b::text[])"  # binary arrays: psycopg's text form escapes with re.sub
)


def _params(payment: Payment) -> tuple[Any, ...]:
    return (
        payment.user_id,
        payment.token_version,
        payment.key,
        payment.request_hash,
        payment.lock_id,
        payment.payer_id,
        payment.payee_id,
        payment.amount,
        payment.decimals,
        payment.memo,
        payment.category,
        payment.occurred_on,
        payment.transaction_id,
        payment.now,
        list(payment.body.parts),
        list(payment.body.holes),
    )


def _fallback_for(exc: psycopg.Error) -> Attempt:
    """What a driver error means for the caller: the Python path decides, or it is a bug."""
    if isinstance(exc, psycopg.OperationalError):
        # A dead connection; if it died while committing, the Python path replays the stored
        # response (it takes the key's lock and looks first), else it posts afresh.
        return Attempt("fallback:connection", None)
    if exc.sqlstate in _FALL_BACK_ON:
        return Attempt(f"fallback:{exc.sqlstate}", None)
    if exc.sqlstate is None:
        # Refused by the driver before sending (e.g. a NUL in a text): the Python path meets the
        # same value and answers as it always has.
        return Attempt("fallback:driver", None)
    raise exc


def _answer(row: tuple[Any, ...] | None) -> Attempt:
    assert row is not None
    outcome, status, body = row
    if outcome == "posted":
        return Attempt(outcome, StoredResponse(status, json.loads(body), replayed=False))
    if outcome == "replayed":
        return Attempt(outcome, StoredResponse(status, json.loads(body), replayed=True))
    return Attempt(outcome, None)


def attempt(engine: Engine, payment: Payment) -> Attempt:
    """Call `commons_pay` in autocommit: one round trip, one transaction.

    On the pooled connection's driver directly (psycopg): SQLAlchemy's statement and result
    machinery cost more CPU than the rest of the call, and there is nothing here for it to do."""
    params = _params(payment)
    pooled = engine.raw_connection()  # checkout listeners (the idle ping) run as for any use
    try:
        driver: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
        driver.autocommit = True  # the statement is its own transaction
        try:
            row = driver.execute(_PAY, params, prepare=True).fetchone()
        finally:
            if not driver.closed:
                driver.autocommit = False  # as the pool hands connections out
    except psycopg.Error as exc:
        if isinstance(exc, psycopg.OperationalError):
            pooled.invalidate()
        return _fallback_for(exc)
    finally:
        pooled.close()
    return _answer(row)


async def attempt_async(engine: Engine, payment: Payment) -> Attempt:
    """`attempt` on an event loop, on an asyncio connection of this loop's own (`_Connections`):
    no hand-over to a worker thread and back for the one round trip (~10% of a worker's GIL time
    on the thread pool; docs/benchmarks.md, Ledger, item 22)."""
    try:
        async with _Connections.of(engine).one() as conn:
            cursor = await conn.execute(_PAY, _params(payment), prepare=True)
            row = await cursor.fetchone()
    except psycopg.Error as exc:
        return _fallback_for(exc)
    return _answer(row)


async def pay_async(engine: Engine, payment: Payment) -> StoredResponse | None:
    """`pay` on an event loop (see `attempt_async`)."""
    return (await attempt_async(engine, payment)).stored


async def close_async(engine: Engine) -> None:
    """Close this loop's connections of `engine` (the server's shutdown)."""
    connections = _CONNECTIONS.pop(engine, None)
    if connections is not None and connections.loop is asyncio.get_running_loop():
        await connections.close()


APPLICATION_NAME = "commons-transfers"  # how these connections show in pg_stat_activity


class _Connections:
    """Autocommit asyncio connections for `commons_pay`, per engine and event loop, at most the
    engine's pool size, opened on first use and reused; one that fails is discarded, and the
    request it failed falls back to the Python path on the engine's own pool, which answers."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.slots = asyncio.Semaphore(engine.pool.size())  # type: ignore[attr-defined]

    @classmethod
    def of(cls, engine: Engine) -> _Connections:
        loop = asyncio.get_running_loop()
        connections = _CONNECTIONS.get(engine)
        if connections is None or connections.loop is not loop:
            # First use, or a new loop (a test client's): the old loop's connections are freed
            # with it (psycopg closes a connection that is garbage collected).
            connections = _CONNECTIONS[engine] = cls(engine, loop)
        return connections

    @contextlib.asynccontextmanager
    async def one(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self.slots:
            conn = self.idle.pop() if self.idle else None
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name=APPLICATION_NAME
                )
            try:
                yield conn
            except psycopg.OperationalError:
                await conn.close()  # dead, or in a state no one should inherit
                raise
            except psycopg.Error:
                raise  # a refusal (autocommit: nothing is left open); the connection stays good
            except BaseException:
                await conn.close()  # cancelled mid-statement: its result is still on the wire
                raise
            finally:
                if not conn.closed:
                    self.idle.append(conn)

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            await conn.close()


_CONNECTIONS: weakref.WeakKeyDictionary[Engine, _Connections] = weakref.WeakKeyDictionary()


def pay(engine: Engine, payment: Payment) -> StoredResponse | None:
    """The stored response when `commons_pay` handled the request; None: run the Python path."""
    return attempt(engine, payment).stored
