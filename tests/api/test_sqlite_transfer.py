"""`POST /transfers` on SQLite's fast path (ledger.sqlite_transfer): which requests it takes,
that what it stores and answers is byte for byte what the Python path renders, and that each
refusal gets the Python path's precise answer with nothing written by the fast path. The
SQLite counterpart of tests/api/test_pg_transfer.py (whose helpers it shares).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ledger import idempotency, payment, sqlite_transfer
from ledger.db import make_engine
from tests.api.conftest import Api, Coop, new_key
from tests.api.test_pg_transfer import ANA, BEN, TESS, counts, python_rendering, revoke, stored_body

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

CLEO = "cleo@riverside.example.org"


@pytest.fixture
def outcomes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every answer of the SQLite fast path during the test, in order."""
    seen: list[str] = []
    real, real_async = sqlite_transfer.attempt, sqlite_transfer.attempt_async

    def spy(engine: Any, prepared: payment.Payment) -> payment.Attempt:
        result = real(engine, prepared)
        seen.append(result.outcome)
        return result

    async def spy_async(engine: Any, prepared: payment.Payment) -> payment.Attempt:
        result = await real_async(engine, prepared)
        seen.append(result.outcome)
        return result

    monkeypatch.setattr(sqlite_transfer, "attempt", spy)
    monkeypatch.setattr(sqlite_transfer, "attempt_async", spy_async)
    return seen


@pytest.fixture
def db(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url, pool_size=1)
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"memo": 'Kinderbetreuung für "Ana" \\ 👶\n', "category": "care", "occurred_on": "2026-11-01"},
        {"memo": "", "category": None},
        {"memo": "\u2028 \x7f \ud7ff", "category": "</script>"},
    ],
    ids=["plain", "unicode-and-escapes", "empty-memo", "odd-characters"],
)
def test_the_stored_response_is_the_python_rendering(
    api: Api, coop: Coop, db: sa.Engine, outcomes: list[str], extra: dict[str, Any]
) -> None:
    key = new_key()
    r = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "1.5", key=key, **extra)
    assert r.status_code == 201, r.text
    assert outcomes == ["posted"]
    body = r.json()
    assert body["amount"] == "1.50" and body["unit"] == {"code": "HOUR", "scale": 2}
    stored = stored_body(db, key)
    # Byte for byte: what was stored, what GET renders and what the Python path renders.
    assert stored == python_rendering(db, int(body["id"]))
    assert stored == idempotency.encode_body(api.get(f"/transfers/{body['id']}", ANA).json())
    assert r.json() == api.get(f"/transfers/{body['id']}", ANA).json()
    again = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "1.5", key=key, **extra)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == body
    assert outcomes == ["posted", "replayed"]
    assert counts(db) == (1, 2, 1)


@pytest.mark.parametrize(
    ("scale", "text", "shown"), [(0, "7", "7"), (3, "0.5", "0.500"), (6, "12.000001", "12.000001")]
)
def test_every_scale_and_unit_is_rendered_exactly(
    api: Api, db: sa.Engine, outcomes: list[str], scale: int, text: str, shown: str
) -> None:
    r = api.post(
        "/coops",
        "admin@example.org",
        {"slug": "scaled", "name": "Scaled", "unit": {"code": "CREDIT_2", "scale": scale}},
    )
    assert r.status_code == 201, r.text
    holders = {}
    for name in ("ann", "bob"):
        email = f"{name}@scaled.example.org"
        r = api.post(
            "/coops/scaled/members",
            "admin@example.org",
            {"email": email, "name": name, "role": "member", "password": "correct horse battery"},
        )
        assert r.status_code == 201, r.text
        holders[name] = r.json()["account_id"]
        api.login(email)
    key = new_key()
    r = api.pay("ann@scaled.example.org", holders["ann"], holders["bob"], text, key=key)
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == shown and r.json()["unit"] == {"code": "CREDIT_2", "scale": scale}
    assert stored_body(db, key) == python_rendering(db, int(r.json()["id"]))
    assert outcomes == ["posted"]


def test_a_treasurer_records_between_two_members(
    api: Api, coop: Coop, db: sa.Engine, outcomes: list[str]
) -> None:
    key = new_key()
    r = api.pay(TESS, coop.accounts[ANA], coop.accounts[BEN], "2.00", key=key)
    assert r.status_code == 201 and r.json()["status"] == "posted", r.text
    assert stored_body(db, key) == python_rendering(db, int(r.json()["id"]))
    assert outcomes == ["posted"]


def test_each_refusal_is_the_python_paths_and_the_fast_path_writes_nothing(
    api: Api, coop: Coop, db: sa.Engine, outcomes: list[str]
) -> None:
    ana, ben, cleo = coop.accounts[ANA], coop.accounts[BEN], coop.accounts[CLEO]
    cases = [
        ("over the credit limit", (ANA, ana, ben, "20.01"), 422, "insufficient_credit", "fallback:limit"),
        (
            "over the ceiling",
            (TESS, coop.coop_account, ben, "40.01"),
            422,
            "ceiling_exceeded",
            "fallback:limit",
        ),
        ("too many decimals", (ANA, ana, ben, "1.005"), 422, "invalid_amount", "fallback:decimals"),
        ("another member's account", (ANA, ben, cleo, "1.00"), 403, "forbidden", "fallback:caller"),
        ("a claim (payee initiates)", (BEN, ana, ben, "1.00"), 201, None, "fallback:caller"),
        ("an unknown account", (ANA, ana, "999999", "1.00"), 404, "account_not_found", "fallback:account"),
        ("the same account", (ANA, ana, ana, "1.00"), 422, "same_account", "fallback:same_account"),
        (
            "above the maximum",
            (TESS, ana, ben, "100000.00"),
            422,
            "invalid_amount",
            "fallback:invalid_amount",
        ),
    ]
    for what, (who, payer, payee, amount), status, code, reason in cases:
        before = counts(db)
        outcomes.clear()
        r = api.pay(who, payer, payee, amount)
        assert r.status_code == status, (what, r.text)
        if code is not None:
            assert r.json()["code"] == code, (what, r.text)
            assert counts(db) == before, what  # nothing written, by either path
        assert outcomes == [reason], what


def test_a_frozen_account_and_a_revoked_token(
    api: Api, coop: Coop, db: sa.Engine, outcomes: list[str]
) -> None:
    r = api.patch(f"/accounts/{coop.accounts[BEN]}", TESS, {"status": "frozen"})
    assert r.status_code == 200, r.text
    r = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "1.00")
    assert r.status_code == 422 and r.json()["code"] == "account_frozen", r.text
    assert outcomes == ["fallback:account_frozen"]
    outcomes.clear()
    revoke(api, ANA)
    r = api.pay(ANA, coop.accounts[ANA], coop.accounts[CLEO], "1.00")
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated", r.text
    assert outcomes == ["fallback:token"]
    assert counts(db) == (0, 0, 0)


def test_a_reused_key_with_another_body(api: Api, coop: Coop, db: sa.Engine, outcomes: list[str]) -> None:
    key = new_key()
    assert api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "1.00", key=key).status_code == 201
    r = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "2.00", key=key)
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused", r.text
    assert outcomes == ["posted", "fallback:key_reused"]
    assert counts(db) == (1, 2, 1)


def test_a_key_stored_by_the_python_path_is_replayed_by_the_fast_path(
    api: Api, coop: Coop, db: sa.Engine, outcomes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = new_key()
    with monkeypatch.context() as m:

        async def fallback(*_: object) -> payment.Attempt:
            return payment.Attempt("fallback:test", None)

        m.setattr(sqlite_transfer, "attempt_async", fallback)
        first = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "1.00", key=key)
    assert first.status_code == 201 and outcomes == []
    stored = stored_body(db, key)
    again = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "1.00", key=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert outcomes == ["replayed"] and again.json() == first.json()
    assert stored == python_rendering(db, int(first.json()["id"]))
    assert counts(db) == (1, 2, 1)
