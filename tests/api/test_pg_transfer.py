"""`POST /transfers` in one statement on PostgreSQL (ledger.pg_transfer, migration 0005_pg_transfer).

The function handles the common payment and answers "fallback" for everything else; these tests
show which requests it takes, that what it stores and answers is byte for byte what the Python
path renders, and that each refusal still gets the Python path's precise answer with nothing
written by the function. On SQLite commons_pay is never called (checked too): ledger.sqlite_transfer
answers there (tests/api/test_sqlite_transfer.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from api import present
from ledger import idempotency, pg_transfer, queries, service
from ledger import tables as t
from ledger.db import make_engine
from tests.api.conftest import Api, Coop, make_coop, new_key, serve

TESS, ANA, BEN = "tess@riverside.example.org", "ana@riverside.example.org", "ben@riverside.example.org"


@pytest.fixture
def outcomes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every answer of commons_pay during the test, in order."""
    seen: list[str] = []
    real, real_async = pg_transfer.attempt, pg_transfer.attempt_async

    def spy(engine: Any, payment: pg_transfer.Payment) -> pg_transfer.Attempt:
        result = real(engine, payment)
        seen.append(result.outcome)
        return result

    async def spy_async(engine: Any, payment: pg_transfer.Payment) -> pg_transfer.Attempt:
        result = await real_async(engine, payment)
        seen.append(result.outcome)
        return result

    monkeypatch.setattr(pg_transfer, "attempt", spy)
    monkeypatch.setattr(pg_transfer, "attempt_async", spy_async)
    return seen


@pytest.fixture
def db(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url, pool_size=1)
    yield engine
    engine.dispose()


def stored_body(db: sa.Engine, key: str) -> str:
    with db.connect() as conn:
        return str(
            conn.execute(
                sa.select(t.idempotency_keys.c.response_body).where(t.idempotency_keys.c.key == key)
            ).scalar_one()
        )


def python_rendering(db: sa.Engine, transfer_id: int) -> str:
    with db.connect() as conn:
        record = service.get_transfer(conn, transfer_id)
        code, scale = queries.ledger_unit(conn, record.ledger_id)
    return idempotency.encode_body(
        present.transfer(record, unit_code=code, scale=scale).model_dump(mode="json")
    )


def counts(db: sa.Engine) -> tuple[int, int, int]:
    with db.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in (t.transfers, t.postings, t.idempotency_keys)
        )


def is_pg(db: sa.Engine) -> bool:
    return db.dialect.name == "postgresql"


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"memo": 'Kinderbetreuung für "Ana" \\ 👶\n', "category": "care", "occurred_on": "2026-11-01"},
        {"memo": "", "category": None},
    ],
    ids=["plain", "unicode-and-escapes", "empty-memo"],
)
def test_the_stored_response_is_the_python_rendering(
    api: Api, coop: Coop, db: sa.Engine, outcomes: list[str], extra: dict[str, Any]
) -> None:
    key = new_key()
    r = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "1.5", key=key, **extra)
    assert r.status_code == 201, r.text
    assert outcomes == (["posted"] if is_pg(db) else [])
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
    assert outcomes == (["posted", "replayed"] if is_pg(db) else [])
    assert counts(db) == (1, 2, 1)


@pytest.mark.parametrize(
    ("scale", "text", "shown"), [(0, "7", "7"), (3, "0.5", "0.500"), (6, "12.000001", "12.000001")]
)
def test_every_scale_is_rendered_exactly(
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
    assert outcomes == (["posted"] if is_pg(db) else [])


def test_a_treasurer_records_between_two_members(
    api: Api, coop: Coop, db: sa.Engine, outcomes: list[str]
) -> None:
    key = new_key()
    r = api.pay(TESS, coop.accounts[ANA], coop.accounts[BEN], "2.00", key=key)
    assert r.status_code == 201 and r.json()["status"] == "posted", r.text
    assert stored_body(db, key) == python_rendering(db, int(r.json()["id"]))
    assert outcomes == (["posted"] if is_pg(db) else [])


def revoke(api: Api, who: str) -> None:
    r = api.post("/auth/logout", who)
    assert r.status_code in (200, 204), r.text


# (what, request, Python's answer, the function's reason)
def refusal_cases(coop: Coop) -> list[tuple[str, Any, int, str | None, str]]:
    ana, ben, cleo = coop.accounts[ANA], coop.accounts[BEN], coop.accounts["cleo@riverside.example.org"]
    return [
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
        (
            "above the co-op's maximum",
            (TESS, ana, ben, "100000.00"),
            422,
            "invalid_amount",
            "fallback:amount",
        ),
    ]


def test_each_refusal_is_the_python_paths_and_the_function_writes_nothing(
    api: Api, coop: Coop, db: sa.Engine, outcomes: list[str]
) -> None:
    for what, (who, payer, payee, amount), status, code, reason in refusal_cases(coop):
        before = counts(db)
        outcomes.clear()
        r = api.pay(who, payer, payee, amount)
        assert r.status_code == status, (what, r.text)
        if code is not None:
            assert r.json()["code"] == code, (what, r.text)
            assert counts(db) == before, what  # nothing written, by either path
        assert outcomes == ([reason] if is_pg(db) else []), what


def test_a_frozen_account_and_a_revoked_token(
    api: Api, coop: Coop, db: sa.Engine, outcomes: list[str]
) -> None:
    r = api.patch(f"/accounts/{coop.accounts[BEN]}", TESS, {"status": "frozen"})
    assert r.status_code == 200, r.text
    r = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "1.00")
    assert r.status_code == 422 and r.json()["code"] == "account_frozen", r.text
    assert outcomes == (["fallback:account_state"] if is_pg(db) else [])
    outcomes.clear()
    revoke(api, ANA)
    r = api.pay(ANA, coop.accounts[ANA], coop.accounts["cleo@riverside.example.org"], "1.00")
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated", r.text
    assert outcomes == (["fallback:token"] if is_pg(db) else [])
    assert counts(db) == (0, 0, 0)


def test_a_reused_key_with_another_body(api: Api, coop: Coop, db: sa.Engine, outcomes: list[str]) -> None:
    key = new_key()
    assert api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "1.00", key=key).status_code == 201
    r = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "2.00", key=key)
    assert r.status_code == 422 and r.json()["code"] == "idempotency_key_reused", r.text
    assert outcomes == (["posted", "fallback:key_reused"] if is_pg(db) else [])
    assert counts(db) == (1, 2, 1)


def test_a_memo_equal_to_a_marker_leaves_no_template() -> None:
    """Such a memo could not be told from the hole: that request takes the Python path."""
    assert pg_transfer.body_template({"id": pg_transfer.ID, "memo": pg_transfer.ID}) is None
    lookalike = pg_transfer.body_template({"id": pg_transfer.ID, "memo": "\\u0000commons:id\\u0000"})
    assert lookalike is not None and lookalike.holes == ("id",)
    assert lookalike.parts == ('{"id":', ',"memo":"\\\\u0000commons:id\\\\u0000"}')


def test_the_amount_is_read_as_the_python_path_reads_it() -> None:
    assert pg_transfer.decimal_amount("1.50") == (150, 2)
    assert pg_transfer.decimal_amount("007") == (7, 0)
    assert pg_transfer.decimal_amount("0.000001") == (1, 6)
    for refused in ("-1", "1.", ".5", "1e3", " 1", "1.0000001", 1.5, "NaN", "\u0661"):
        assert pg_transfer.decimal_amount(refused) is None, refused
    assert pg_transfer.decimal_amount("0") == (0, 0)  # the function's amount check sends it back


def test_a_nul_never_reaches_the_function(api: Api, coop: Coop, db: sa.Engine, outcomes: list[str]) -> None:
    """The schema refuses it (PostgreSQL text cannot hold it); see also the driver fallback in
    tests/ledger/test_pg_transfer.py."""
    r = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "1.00", memo="a\x00b")
    assert r.status_code == 422 and r.json()["code"] == "validation_failed", r.text
    assert outcomes == []
    assert counts(db) == (0, 0, 0)


def _transfer_connections(db: sa.Engine) -> list[int]:
    with db.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = :name"
                    " AND datname = current_database()"
                ),
                {"name": pg_transfer.APPLICATION_NAME},
            ).scalars()
        )


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_dead_transfer_connection_falls_back_and_is_replaced(
    api: Api, coop: Coop, db: sa.Engine, outcomes: list[str]
) -> None:
    """POST /transfers' own asyncio connection killed between requests (a restarted database, an
    idle timeout): that request is answered by the Python path, the next one by a new connection."""
    first = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "1.00", key=new_key())
    assert first.status_code == 201, first.text
    (pid,) = _transfer_connections(db)
    with db.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    second = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "2.00", key=new_key())
    assert second.status_code == 201, second.text
    third = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "3.00", key=new_key())
    assert third.status_code == 201, third.text
    assert outcomes == ["posted", "fallback:connection", "posted"]
    assert _transfer_connections(db) not in ([], [pid])
    assert counts(db) == (3, 6, 3)


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_the_server_closes_its_transfer_connections_when_it_stops(db_url: str, db: sa.Engine) -> None:
    with serve(db_url) as api:
        coop = make_coop(api)
        r = api.pay(ANA, coop.accounts[ANA], coop.accounts[BEN], "1.00", key=new_key())
        assert r.status_code == 201, r.text
        assert len(_transfer_connections(db)) == 1
    deadline = time.monotonic() + 10
    while _transfer_connections(db):  # the backend ends a moment after the client closed
        assert time.monotonic() < deadline, "the server left its transfer connections open"
        time.sleep(0.05)
