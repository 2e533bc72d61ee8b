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

import json
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
    "body_template",
    "decimal_amount",
    "pay",
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


def attempt(engine: Engine, payment: Payment) -> Attempt:
    """Call `commons_pay` in autocommit: one round trip, one transaction.

    On the pooled connection's driver directly (psycopg): SQLAlchemy's statement and result
    machinery cost more CPU than the rest of the call, and there is nothing here for it to do."""
    params = (
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
    pooled = engine.raw_connection()  # checkout listeners (the idle ping) run as for any use
    try:
        driver: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
        driver.autocommit = True  # the statement is its own transaction
        try:
            row = driver.execute(_PAY, params, prepare=True).fetchone()
        finally:
            if not driver.closed:
                driver.autocommit = False  # as the pool hands connections out
    except psycopg.OperationalError:
        # A dead connection; if it died while committing, the Python path replays the stored
        # response (it takes the key's lock and looks first), else it posts afresh.
        pooled.invalidate()
        return Attempt("fallback:connection", None)
    except psycopg.Error as exc:
        if exc.sqlstate in _FALL_BACK_ON:
            return Attempt(f"fallback:{exc.sqlstate}", None)
        if exc.sqlstate is None:
            # Refused by the driver before sending (e.g. a NUL in a text): the Python path
            # meets the same value and answers as it always has.
            return Attempt("fallback:driver", None)
        raise
    finally:
        pooled.close()
    assert row is not None
    outcome, status, body = row
    if outcome == "posted":
        return Attempt(outcome, StoredResponse(status, json.loads(body), replayed=False))
    if outcome == "replayed":
        return Attempt(outcome, StoredResponse(status, json.loads(body), replayed=True))
    return Attempt(outcome, None)


def pay(engine: Engine, payment: Payment) -> StoredResponse | None:
    """The stored response when `commons_pay` handled the request; None: run the Python path."""
    return attempt(engine, payment).stored
