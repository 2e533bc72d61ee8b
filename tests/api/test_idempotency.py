"""Idempotency-Key on ledger writes (DESIGN §2.5): stored with the effect, replayed, not doubled."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import sqlalchemy as sa

from api.app import create_app
from ledger import tables as t
from ledger.db import make_engine
from tests.api.conftest import Api, Coop, make_settings
from tests.api.test_concurrency import Overlap, live_server

ANA, BEN, TESS = (
    "ana@riverside.example.org",
    "ben@riverside.example.org",
    "tess@riverside.example.org",
)
PROBLEM = "application/problem+json"


def stored(db_url: str) -> tuple[list[Any], int]:
    """Every transfer row and the number of stored idempotency keys, straight from the database."""
    engine = make_engine(db_url, pool_size=1)
    try:
        with engine.connect() as conn:
            transfers = conn.execute(
                sa.select(t.transfers.c.id, t.transfers.c.payer_id, t.transfers.c.amount).order_by(
                    t.transfers.c.id
                )
            ).all()
            keys = conn.execute(sa.select(sa.func.count()).select_from(t.idempotency_keys)).scalar_one()
    finally:
        engine.dispose()
    return transfers, keys


def balance(api: Api, who: str, account: str) -> str:
    return str(api.get(f"/accounts/{account}", who).json()["balance"])


def test_replay_returns_the_same_status_and_body(api: Api, coop: Coop, db_url: str) -> None:
    a, b = coop.accounts[ANA], coop.accounts[BEN]
    first = api.pay(ANA, a, b, "2.50", key="pay-once", memo="childcare")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = api.pay(ANA, a, b, "2.50", key="pay-once", memo="childcare")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert balance(api, ANA, a) == "-2.50"
    transfers, keys = stored(db_url)
    assert len(transfers) == 1 and keys == 1


def test_same_key_with_another_body_is_refused(api: Api, coop: Coop, db_url: str) -> None:
    a, b = coop.accounts[ANA], coop.accounts[BEN]
    first = api.pay(ANA, a, b, "1.00", key="k")
    assert first.status_code == 201, first.text
    for other in (
        {"payer": a, "payee": b, "amount": "1.50"},
        {"payer": a, "payee": b, "amount": "1.00", "memo": "changed"},
    ):
        r = api.post("/transfers", ANA, other, key="k")
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        assert r.json()["code"] == "idempotency_key_reused"
        assert r.json()["status"] == 422
    # The key names one request: the same key on another endpoint is another request too.
    r = api.post(f"/transfers/{first.json()['id']}/reverse", TESS, {"reason": "x"}, key="k")
    assert r.status_code == 201, r.text  # tess's keys are hers: no clash with ana's
    r = api.post(f"/transfers/{first.json()['id']}/reverse", ANA, None, key="k")
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused", r.text
    assert balance(api, ANA, a) == "0.00"
    transfers, _ = stored(db_url)
    assert len(transfers) == 2  # the payment and its reversal, nothing else


def test_a_missing_key_is_refused_and_nothing_happens(api: Api, coop: Coop, db_url: str) -> None:
    a, b = coop.accounts[ANA], coop.accounts[BEN]
    body = {"payer": a, "payee": b, "amount": "1.00"}
    for headers in ({}, {"Idempotency-Key": ""}, {"Idempotency-Key": "   "}):
        r = api.client.post("/api/v1/transfers", json=body, headers=api.h(ANA, **headers))
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        assert r.json()["code"] == "idempotency_key_required"
    assert stored(db_url) == ([], 0)
    assert balance(api, ANA, a) == "0.00"


def test_concurrent_requests_with_one_key_post_once(api: Api, coop: Coop, db_url: str) -> None:
    a, b = coop.accounts[ANA], coop.accounts[BEN]
    app = create_app(make_settings(db_url), sweep_claims=False)
    overlap = Overlap(app)
    n = 20
    gate = threading.Barrier(n)
    responses: list[httpx.Response | None] = [None] * n

    def send(i: int, base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as http:
            gate.wait()
            responses[i] = http.post(
                "/api/v1/transfers",
                json={"payer": a, "payee": b, "amount": "3.00"},
                headers=api.h(ANA, **{"Idempotency-Key": "one-key"}),
            )

    with live_server(app) as base_url:
        threads = [threading.Thread(target=send, args=(i, base_url)) for i in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=120)
    assert all(r is not None for r in responses)
    done = [r for r in responses if r is not None and r.status_code == 201]
    busy = [r for r in responses if r is not None and r.status_code == 409]
    assert len(done) + len(busy) == n, [r.status_code for r in responses if r is not None]
    assert all(r.json()["code"] == "idempotency_request_in_progress" for r in busy)
    assert len({r.json()["id"] for r in done}) == 1  # one transfer, the same body for everyone
    assert sum(1 for r in done if r.headers.get("Idempotent-Replayed") != "true") == 1
    # They overlapped: in the database, or refused with 409 before it (idempotency._in_flight).
    assert overlap.peak >= 2 or busy
    transfers, keys = stored(db_url)
    assert len(transfers) == 1 and keys == 1
    assert balance(api, ANA, a) == "-3.00"
    # Whoever got 409 can retry and gets the stored outcome.
    retry = api.pay(ANA, a, b, "3.00", key="one-key")
    assert retry.status_code == 201 and retry.json() == done[0].json()


def test_a_refused_request_stores_nothing_so_a_retry_can_succeed(api: Api, coop: Coop, db_url: str) -> None:
    a, b = coop.accounts[ANA], coop.accounts[BEN]
    r = api.pay(ANA, a, b, "25.00", key="big")  # ana's credit limit is -20.00
    assert r.status_code == 422 and r.json()["code"] == "insufficient_credit", r.text
    assert stored(db_url) == ([], 0)
    raised = api.patch(f"/accounts/{a}", TESS, {"min_balance": "-30.00"})
    assert raised.status_code == 200, raised.text
    retry = api.pay(ANA, a, b, "25.00", key="big")
    assert retry.status_code == 201, retry.text
    assert "idempotent-replayed" not in retry.headers
    assert balance(api, ANA, a) == "-25.00"
    transfers, keys = stored(db_url)
    assert len(transfers) == 1 and keys == 1


def test_keys_belong_to_their_user(api: Api, coop: Coop, db_url: str) -> None:
    a, b = coop.accounts[ANA], coop.accounts[BEN]
    mine = api.pay(ANA, a, b, "1.00", key="shared")
    theirs = api.pay(BEN, b, a, "2.00", key="shared")
    assert mine.status_code == theirs.status_code == 201, (mine.text, theirs.text)
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert balance(api, ANA, a) == "1.00"
    transfers, keys = stored(db_url)
    assert len(transfers) == 2 and keys == 2
