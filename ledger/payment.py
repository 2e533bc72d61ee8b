"""A posted payment's fast path, shared by both engines (issue 6).

`POST /transfers` in its common case (a member paying from their own account, or a treasurer
recording, between two active non-federation accounts of one co-op ledger, posted at once) is
tried first by a path that writes everything with the least work each engine allows:
`ledger.pg_transfer` (one statement, `commons_pay`) and `ledger.sqlite_transfer` (a few plain
statements on the driver, under the writers' lock). Both share the contract below:

- `Payment` holds everything decided before the database is touched: the caller, the key and
  request hash, the accounts, the amount as written (`decimals`), the texts, the transaction id,
  the clock and the response template;
- the response is the Python path's own rendering (`api.present.transfer`) with holes where the
  id, the amount, the unit code and the scale go (`body_template`), filled in by the fast path,
  so both paths store the same bytes;
- an `Attempt` is "posted", "replayed" or "fallback:<why>"; a fallback wrote nothing, and the
  Python path (`ledger.idempotency.run_idempotent` with `ledger.service.create_transfer`) then
  gives the precise answer. The fast paths refuse nothing themselves: they are only ever
  stricter than the rules in Python.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ledger.amounts import MAX_SCALE, AmountError, format_amount, parse_amount
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


def fill(template: BodyTemplate, *, transfer_id: int, amount: int, unit_code: str, scale: int) -> str:
    """The stored response: the template with its holes filled in (as commons_pay does)."""
    values = {
        "id": f'"{transfer_id}"',
        "amount": f'"{format_amount(amount, scale=scale)}"',
        "unit_code": json.dumps(unit_code),
        "scale": str(scale),
    }
    out = [template.parts[0]]
    for hole, part in zip(template.holes, template.parts[1:], strict=True):
        out.append(values[hole])
        out.append(part)
    return "".join(out)


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


def in_steps(payment: Payment, scale: int) -> int | None:
    """The payment's amount in the unit's smallest step; None when it has more decimals than
    the unit (the Python path answers invalid_amount)."""
    if payment.decimals is None:
        return payment.amount
    if payment.decimals > scale:
        return None
    return payment.amount * 10 ** (scale - payment.decimals)


@dataclass(frozen=True, slots=True)
class Payment:
    """What a fast path needs; `decimals` None means `amount` is in the unit's smallest step."""

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
