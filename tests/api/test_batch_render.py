"""The batch endpoint's plain-value rendering equals the pydantic path it replaces (api/batch.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from api import present
from api import schemas as s
from api.batch import TransferRenderer, item_request_hash
from ledger import idempotency
from ledger.service import TransferRecord

NOW = datetime(2026, 11, 25, 18, 23, 32, 610295, tzinfo=UTC)
BASE = TransferRecord(
    id=1,
    ledger_id=3,
    transaction_id="8947a55b-7a6e-43c5-979c-4e7b9f3d2d3a",
    payer_id=62,
    payee_id=35,
    amount=82,
    memo=None,
    category=None,
    occurred_on=date(2026, 11, 25),
    initiator_id=2,
    status="posted",
    reverses_id=None,
    created_at=NOW,
    expires_at=None,
    resolved_at=None,
    resolved_by_id=None,
)
texts = st.none() | st.text(max_size=40)
records = st.builds(
    lambda i, payer, payee, amount, memo, category, day, initiator, when, tx: replace(
        BASE,
        id=i,
        payer_id=payer,
        payee_id=payee,
        amount=amount,
        memo=memo,
        category=category,
        occurred_on=day,
        initiator_id=initiator,
        created_at=when,
        transaction_id=tx,
    ),
    st.integers(1, 10**12),
    st.integers(1, 10**9),
    st.integers(1, 10**9),
    st.integers(1, 10**15),
    texts,
    texts,
    st.dates(),
    st.sampled_from([2, 7]),
    st.sampled_from([NOW, NOW.replace(microsecond=0), NOW + timedelta(seconds=1)]),
    st.uuids().map(str),
)


def pydantic_render(r: TransferRecord, *, scale: int) -> str:
    body = present.transfer(r, unit_code="HOUR", scale=scale).model_dump(mode="json")
    return json.dumps(body, separators=(",", ":"))


@given(st.lists(records, min_size=1, max_size=20), st.integers(0, 6))
def test_the_batch_renderer_gives_what_present_transfer_gives(
    batch: list[TransferRecord], scale: int
) -> None:
    render = TransferRenderer(unit_code="HOUR", scale=scale)
    for r in batch:
        assert json.dumps(render(r), separators=(",", ":")) == pydantic_render(r, scale=scale)


def test_rendered_bodies_do_not_share_what_they_contain() -> None:
    render = TransferRenderer(unit_code="HOUR", scale=2)
    first, second = render(BASE), render(replace(BASE, id=2))
    second["unit"]["code"] = "changed"
    assert first["unit"]["code"] == "HOUR"


# Any text a BatchItem can hold: pydantic refuses lone surrogates, the edge refuses NUL.
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20).filter(lambda x: "\x00" not in x)


@given(
    st.builds(
        s.BatchItem,
        id=any_text.filter(bool),
        payer=st.from_regex(r"\A[0-9]{1,5}\Z") | any_text,
        payee=st.from_regex(r"\A[0-9]{1,5}\Z") | any_text,
        amount=st.from_regex(r"\A[0-9]{1,4}\.[0-9]{2}\Z") | any_text,
        memo=st.none() | any_text,
        category=st.none() | st.just("garden") | any_text,
        occurred_on=st.none() | st.dates(),
    )
)
def test_the_item_request_hash_is_the_fingerprint_of_its_json_dump(item: s.BatchItem) -> None:
    """Byte for byte: keys stored before this code must still match a retried item."""
    expected = idempotency.fingerprint("POST", "batch", item.model_dump(mode="json"))
    assert item_request_hash(item) == expected
