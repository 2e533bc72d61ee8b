"""The batch endpoint's per-item work, cut to what each item needs.

A batch of 5,000 transfers paid pydantic five times per item: validating the request, dumping it
again for the fingerprint, building a `TransferOut` to render the stored response, dumping it,
and validating that dump into the response model. The request is still validated once (the
edge); the rest is done here on plain values, with tests holding it equal to the pydantic path.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from json.encoder import encode_basestring_ascii as _json_str
from typing import Any

from api import present
from api import schemas as s
from ledger.amounts import format_amount
from ledger.service import TransferRecord


def item_request_hash(item: s.BatchItem) -> str:
    """`idempotency.fingerprint("POST", "batch", item.model_dump(mode="json"))`, the item's request
    fingerprint, with the canonical JSON written out in its sorted key order: `json.dumps` with
    `sort_keys` cost twice the hash itself per item. The strings go through the encoder
    `json.dumps` uses itself (ASCII escapes), so the text, and the hash, are the same byte for
    byte (a Hypothesis test holds them equal): a retry after an upgrade must still match."""
    occurred_on = "null" if item.occurred_on is None else f'"{item.occurred_on.isoformat()}"'
    canonical = (
        f'["POST","batch",{{"amount":{_json_str(item.amount)},"category":{_json_opt(item.category)},'
        f'"id":{_json_str(item.id)},"memo":{_json_opt(item.memo)},"occurred_on":{occurred_on},'
        f'"payee":{_json_str(item.payee)},"payer":{_json_str(item.payer)}}}]'
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _json_opt(value: str | None) -> str:
    return "null" if value is None else _json_str(value)


_Shared = tuple[str, int | None, int | None, datetime, datetime | None, datetime | None]


class TransferRenderer:
    """`present.transfer(record, ...).model_dump(mode="json")` for the transfers of one batch.

    The transfers a batch posts share their status, initiator, times and unit; the first is
    rendered by pydantic, and the next reuse its rendering of those members and set only their
    own (ids, amount, texts, date). A record that differs in a shared member is rendered by
    pydantic again, so the output is always what `present.transfer` gives.
    """

    def __init__(self, *, unit_code: str, scale: int) -> None:
        self.unit_code = unit_code
        self.scale = scale
        self._template: dict[str, Any] | None = None
        self._shared: _Shared | None = None

    def __call__(self, r: TransferRecord) -> dict[str, Any]:
        shared = (r.status, r.initiator_id, r.reverses_id, r.created_at, r.expires_at, r.resolved_at)
        if self._template is None or shared != self._shared:
            body = present.transfer(r, unit_code=self.unit_code, scale=self.scale).model_dump(mode="json")
            if self._template is None:
                self._template, self._shared = body, shared
            return body
        body = self._template.copy()
        body["id"] = str(r.id)
        body["payer"] = str(r.payer_id)
        body["payee"] = str(r.payee_id)
        body["amount"] = format_amount(r.amount, scale=self.scale)
        body["memo"] = r.memo
        body["category"] = r.category
        body["occurred_on"] = r.occurred_on.isoformat()
        body["transaction_id"] = r.transaction_id
        body["unit"] = body["unit"].copy()
        return body
