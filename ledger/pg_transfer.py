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

The stored response is the caller's own rendering (`body_template`): the caller renders the
response with markers where the id, the amount, the unit code and the scale go, and the
function fills them in, so both paths store the same bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from sqlalchemy.engine import Engine

from ledger.amounts import MAX_SCALE, AmountError, parse_amount
from ledger.idempotency import StoredResponse, encode_body

# Markers for the values only the database knows; each renders as a JSON string (a control
# character no JSON encoder leaves bare) and is replaced with its quotes.
ID = "\x00commons:id\x00"
AMOUNT = "\x00commons:amount\x00"
UNIT_CODE = "\x00commons:unit_code\x00"
SCALE = "\x00commons:scale\x00"
_HOLES = {json.dumps(m): name for m, name in ((ID, "id"), (AMOUNT, "amount"), (UNIT_CODE, "unit_code"))}
_HOLES[json.dumps(SCALE)] = "scale"
_HOLE = re.compile("|".join(re.escape(m) for m in _HOLES))

# SQLSTATEs after which nothing was written and the Python path should decide: CM001 is the
# function's own (a conditional UPDATE refused after the other account had moved); 23505 a
# unique key (the idempotency key) taken by a concurrent writer, which the Python path replays.
_FALL_BACK_ON = frozenset({"CM001", "23505", "40001", "40P01"})

_PAY = (
    "SELECT o_outcome, o_status, o_body FROM commons_pay(%s::bigint, %s::bigint, %s::text, %s::text,"
    " %s::bigint, %s::bigint, %s::bigint, %s::bigint, %s::integer, %s::text, %s::text, %s::date, %s::text,"
    " %s::timestamptz, %b::text[], %b::text[])"  # binary arrays: psycopg's text form escapes with re.sub
)


@dataclass(frozen=True, slots=True)
class BodyTemplate:
    """A rendered response split at its holes: parts[0] hole[0] parts[1] … hole[-1] parts[-1]."""

    parts: tuple[str, ...]
    holes: tuple[str, ...]


def body_template(body: Any) -> BodyTemplate | None:
    """Split the response the caller rendered (with the markers above) at its holes.

    None when a marker appears twice: a memo carrying one verbatim cannot be told from the real
    hole, so that request takes the Python path."""
    text = encode_body(body)
    holes = tuple(_HOLES[m] for m in _HOLE.findall(text))
    if len(set(holes)) != len(holes):
        return None
    return BodyTemplate(tuple(_HOLE.split(text)), holes)


def decimal_amount(text: object) -> tuple[int, int] | None:
    """A positive decimal string as (digits, decimals): "1.50" → (150, 2); None when it is not
    one the Python path would accept at the finest scale (that path then explains why)."""
    try:
        parse_amount(text, scale=MAX_SCALE)
    except AmountError:
        return None
    assert isinstance(text, str)
    whole, _, frac = text.partition(".")
    return int(whole + frac), len(frac)


@dataclass(frozen=True, slots=True)
class Payment:
    """What `commons_pay` needs; `decimals` None means `amount` is in the unit's smallest step."""

    user_id: int
    token_version: int
    key: str
    request_hash: str
    lock_id: int
    payer_id: int
    payee_id: int
    amount: int
    decimals: int | None
    memo: str | None
    category: str | None
    occurred_on: date
    transaction_id: str
    now: datetime
    body: BodyTemplate


@dataclass(frozen=True, slots=True)
class Attempt:
    outcome: str  # "posted", "replayed" or "fallback:<why>"
    stored: StoredResponse | None


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
