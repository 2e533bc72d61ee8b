"""Resource limits, each at its boundary: request bodies (64 KiB; the batch import 4 MiB; the
obligations import 16 MiB), page sizes, sign-in attempts per account and per client address,
password length and hashing cost.

A refused request must be cheap for the server and leave nothing behind, so every refusal here is
also checked for "nothing written" (row counts) and, for passwords, for "nothing hashed".
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from accounts import passwords
from accounts.ratelimit import LoginLimiter
from accounts.service import create_user
from api.app import create_app
from api.settings import Settings
from ledger import tables as t
from ledger.db import make_engine, write_transaction
from ledger.queries import MAX_PAGE
from tests.api.conftest import PASSWORD, SECRET, Api, Coop, make_coop

KIB = 1024
MIB = 1024 * KIB
BODY_LIMIT = Settings.max_body_bytes  # 64 KiB
BATCH_LIMIT = Settings.batch_max_body_bytes  # 4 MiB
PROBLEM_JSON = "application/problem+json"
ANA, BEN, TESS = (
    "ana@riverside.example.org",
    "ben@riverside.example.org",
    "tess@riverside.example.org",
)
ADMIN = "admin@example.org"


def assert_problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0] == PROBLEM_JSON
    body: dict[str, Any] = r.json()
    assert body["code"] == code and body["status"] == status, body
    return body


def counts(db_url: str, *tables: str) -> dict[str, int]:
    names = tables or ("transfers", "postings", "idempotency_keys", "users", "memberships")
    engine = make_engine(db_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return {
                name: conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()
                for name in names
            }
    finally:
        engine.dispose()


def padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON of exactly `size` bytes (trailing whitespace is still valid JSON)."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def post_raw(api: Api, path: str, who: str | None, content: Any, **headers: str) -> Any:
    h = api.h(who, **{"Content-Type": "application/json", **headers})
    return api.client.post("/api/v1" + path, content=content, headers=h)


# --- request bodies -------------------------------------------------------------------------


def test_a_body_over_64_kib_is_refused_with_413_and_writes_nothing(api: Api, coop: Coop, db_url: str) -> None:
    payment = {"payer": coop.accounts[ANA], "payee": coop.accounts[BEN], "amount": "1.00"}
    before = counts(db_url)

    over = post_raw(api, "/transfers", ANA, padded(payment, BODY_LIMIT + 1), **{"Idempotency-Key": "big"})
    assert_problem(over, 413, "payload_too_large")

    def stream() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading, too
        yield padded(payment, BODY_LIMIT + 1)

    chunked = post_raw(api, "/transfers", ANA, stream(), **{"Idempotency-Key": "big"})
    assert_problem(chunked, 413, "payload_too_large")
    assert counts(db_url) == before, "a refused body wrote something"

    # The same key is still free, and a body of exactly the limit is accepted.
    exact = post_raw(api, "/transfers", ANA, padded(payment, BODY_LIMIT), **{"Idempotency-Key": "big"})
    assert exact.status_code == 201, exact.text
    assert "Idempotent-Replayed" not in exact.headers


def _batch(coop: Coop, n: int, *, memo: str = "") -> dict[str, Any]:
    a, b = coop.accounts[ANA], coop.accounts[BEN]
    items = [
        {
            "id": f"row-{i}",
            "payer": a if i % 2 else b,
            "payee": b if i % 2 else a,
            "amount": "0.01",
            "memo": memo,
        }
        for i in range(n)
    ]
    return {"transfers": items}


def test_the_batch_import_takes_more_than_64_kib_and_refuses_more_than_4_mib(
    api: Api, coop: Coop, db_url: str
) -> None:
    big = _batch(coop, 160, memo="m" * 450)  # about 90 KB: over the general limit
    assert len(json.dumps(big)) > BODY_LIMIT
    r = api.post(f"/coops/{coop.slug}/transfers/batch", TESS, big)
    assert r.status_code == 200, r.text
    assert r.json()["posted"] == 160
    before = counts(db_url)

    over = post_raw(
        api, f"/coops/{coop.slug}/transfers/batch", TESS, padded(_batch(coop, 3), BATCH_LIMIT + 1)
    )
    assert_problem(over, 413, "payload_too_large")
    assert counts(db_url) == before, "a refused batch wrote something"

    exact = post_raw(api, f"/coops/{coop.slug}/transfers/batch", TESS, padded(_batch(coop, 3), BATCH_LIMIT))
    assert exact.status_code == 200, exact.text


def test_a_batch_of_more_than_5000_transfers_is_refused(api: Api, coop: Coop, db_url: str) -> None:
    before = counts(db_url)
    r = api.post(f"/coops/{coop.slug}/transfers/batch", TESS, _batch(coop, 5001))
    assert_problem(r, 422, "validation_failed")
    assert counts(db_url) == before


# --- page sizes -----------------------------------------------------------------------------


def test_page_size_is_bounded_on_every_list(api: Api, coop: Coop) -> None:
    account = coop.accounts[ANA]
    lists = [
        ("/transfers", ANA),
        (f"/accounts/{account}/postings", ANA),
        (f"/coops/{coop.slug}/accounts", TESS),
    ]
    for path, who in lists:
        ok = api.get(path, who, params={"limit": MAX_PAGE})
        assert ok.status_code == 200, (path, ok.text)
        for bad in (MAX_PAGE + 1, 0, 10**9):
            r = api.get(path, who, params={"limit": bad})
            assert_problem(r, 422, "validation_failed")


class _NoHasher:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"argon2 {name} was called for a request that must be refused first")


def refuse_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", _NoHasher())


# --- sign-in attempts -----------------------------------------------------------------------

PER_ACCOUNT, PER_CLIENT, WINDOW = 3, 6, 300


@pytest.fixture
def strict(db_url: str) -> Iterator[tuple[TestClient[Any], Any]]:
    """An app with small sign-in limits, two users, and a way to sign in from other addresses."""
    engine = make_engine(db_url, pool_size=1)
    with write_transaction(engine) as conn:
        for email in (ANA, BEN):
            create_user(conn, email=email, name="x", password=PASSWORD, now=datetime.now(UTC))
    engine.dispose()
    settings = Settings(
        database_url=db_url,
        secret_key=SECRET,
        login_attempts_per_account=PER_ACCOUNT,
        login_attempts_per_client=PER_CLIENT,
        login_window_seconds=WINDOW,
    )
    with TestClient(app=create_app(settings, sweep_claims=False)) as client:
        yield client, client.app


def sign_in(client: TestClient[Any], email: str, password: str) -> Any:
    return client.post("/api/v1/auth/token", json={"email": email, "password": password})


def sign_in_from(app: Any, address: str, email: str, password: str) -> httpx.Response:
    """The same request from another client address (the test client always says 'testclient')."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://commons.test") as c:
            return await c.post("/api/v1/auth/token", json={"email": email, "password": password})

    return anyio.run(go)


def assert_rate_limited(r: Any) -> None:
    assert_problem(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= WINDOW


def test_failed_sign_ins_per_account_are_limited_with_429_and_retry_after(
    strict: tuple[TestClient[Any], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = strict
    for _ in range(PER_ACCOUNT):
        assert_problem(sign_in(client, ANA, "wrong password"), 401, "invalid_credentials")
    # Now even the right password is refused, before any hashing: no oracle, no lever.
    refuse_hashing(monkeypatch)
    assert_rate_limited(sign_in(client, ANA, PASSWORD))
    monkeypatch.undo()
    # Another account from the same address is not affected.
    assert sign_in(client, BEN, PASSWORD).status_code == 200


def test_sign_ins_per_client_address_are_limited_whatever_the_account(
    strict: tuple[TestClient[Any], Any],
) -> None:
    client, app = strict
    for i in range(PER_CLIENT):  # spraying many accounts from one address
        assert_problem(sign_in(client, f"guess{i}@example.org", "wrong password"), 401, "invalid_credentials")
    assert_rate_limited(sign_in(client, BEN, PASSWORD))
    # The limit is per address: another client signs in.
    assert sign_in_from(app, "198.51.100.7", BEN, PASSWORD).status_code == 200


def test_wrong_current_passwords_count_against_the_account(
    strict: tuple[TestClient[Any], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stolen access token must not buy an unthrottled password oracle (each guess is an
    argon2 verification): failed password changes share the account's sign-in limit."""
    client, _ = strict
    token = sign_in(client, ANA, PASSWORD).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}

    def change(current: str) -> Any:
        body = {"current_password": current, "new_password": "a new password"}
        return client.post("/api/v1/auth/password", json=body, headers=auth)

    for _ in range(PER_ACCOUNT):
        assert_problem(change("a guess"), 401, "invalid_credentials")
    refuse_hashing(monkeypatch)
    assert_rate_limited(change(PASSWORD))
    assert_rate_limited(sign_in(client, ANA, PASSWORD))


def test_the_limiter_keys_clients_by_address() -> None:
    limiter = LoginLimiter(per_account=100, per_client=2, window_seconds=60)
    for _ in range(2):
        limiter.record(email="a@x.org", client="10.0.0.1", success=True)
    assert limiter.check(email="b@x.org", client="10.0.0.1") is not None
    assert limiter.check(email="b@x.org", client="10.0.0.2") is None


# --- passwords and hashing cost -------------------------------------------------------------


@pytest.fixture
def no_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any argon2 work from here on fails the test."""
    refuse_hashing(monkeypatch)


def test_an_overlong_password_is_refused_without_hashing(
    api: Api, coop: Coop, db_url: str, no_hashing: None
) -> None:
    too_long = "p" * (passwords.MAX_PASSWORD_LENGTH + 1)
    before = counts(db_url)
    assert_problem(sign_in(api.client, ANA, too_long), 422, "validation_failed")
    member = {"email": "dora@riverside.example.org", "name": "Dora", "password": too_long}
    assert_problem(api.post(f"/coops/{coop.slug}/members", ADMIN, member), 422, "validation_failed")
    change = {"current_password": PASSWORD, "new_password": too_long}
    assert_problem(api.post("/auth/password", ANA, change), 422, "validation_failed")
    # Far beyond: the body limit answers before anything is parsed.
    huge = post_raw(api, "/auth/token", None, json.dumps({"email": ANA, "password": "p" * MIB}))
    assert_problem(huge, 413, "payload_too_large")
    assert counts(db_url) == before


def test_a_password_of_the_maximum_length_works(api: Api, coop: Coop) -> None:
    longest = "p" * passwords.MAX_PASSWORD_LENGTH
    member = {"email": "dora@riverside.example.org", "name": "Dora", "password": longest}
    assert api.post(f"/coops/{coop.slug}/members", ADMIN, member).status_code == 201
    assert sign_in(api.client, "dora@riverside.example.org", longest).status_code == 200


ARGON2_PARAMETERS = re.compile(r"^\$argon2id\$v=19\$m=19456,t=2,p=1\$")


def test_argon2_parameters_are_fixed_by_the_code_not_by_input(api: Api, coop: Coop, db_url: str) -> None:
    """Every hash the API writes has the same cost (m=19 MiB, t=2, p=1), whatever the password;
    the cost of a verification comes from the stored hash, and only the code writes hashes."""
    for i, password in enumerate(
        ["p" * 10, "p" * passwords.MAX_PASSWORD_LENGTH, "$argon2id$v=19$m=4194304,t=99,p=64$"]
    ):
        member = {"email": f"m{i}@riverside.example.org", "name": "M", "password": password}
        assert api.post(f"/coops/{coop.slug}/members", ADMIN, member).status_code == 201
    assert (
        api.post("/auth/password", ANA, {"current_password": PASSWORD, "new_password": "q" * 200}).status_code
        == 204
    )
    engine = make_engine(db_url, pool_size=1)
    with engine.connect() as conn:
        hashes = conn.execute(sa.select(t.users.c.email, t.users.c.password_hash)).all()
    engine.dispose()
    assert hashes
    for email, stored in hashes:
        assert ARGON2_PARAMETERS.match(stored), (email, stored)


# --- clearing input -------------------------------------------------------------------------

IMPORT_LIMIT = 16 * MIB


def test_an_oversize_obligations_import_is_refused_and_writes_nothing(api: Api, db_url: str) -> None:
    if not any(
        getattr(r, "path", "") == "/api/v1/federations/{slug:str}/obligations/import"
        for r in api.client.app.routes
    ):
        pytest.skip("the federation routes are not in this build")
    for slug in ("bakery", "farm"):
        make_coop(api, slug=slug, members=(), treasurer=f"t-{slug}")
    engine = make_engine(db_url, pool_size=1)
    with write_transaction(engine) as conn:
        create_user(
            conn,
            email="olga@valley.example.org",
            name="Olga",
            password=PASSWORD,
            now=datetime.now(UTC),
        )
    engine.dispose()
    assert (
        api.post(
            "/federations",
            ADMIN,
            {"slug": "valley", "name": "Valley", "unit": {"code": "FED", "scale": 2}},
        ).status_code
        == 201
    )
    assert (
        api.post("/federations/valley/officers", ADMIN, {"email": "olga@valley.example.org"}).status_code
        == 201
    )
    for slug in ("bakery", "farm"):
        r = api.post("/federations/valley/members", ADMIN, {"coop": slug, "rate": "1"})
        assert r.status_code == 201, r.text
    officer = "olga@valley.example.org"
    api.login(officer)

    def csv(rows: int) -> bytes:
        return (
            "id,debtor,creditor,amount\n" + "".join(f"{i},bakery,farm,1.00\n" for i in range(rows))
        ).encode()

    row = len(b"99999,bakery,farm,1.00\n")
    oversize = csv(IMPORT_LIMIT // row + 10)
    assert len(oversize) > IMPORT_LIMIT
    h = api.h(officer, **{"Content-Type": "text/csv"})
    r = api.client.post("/api/v1/federations/valley/obligations/import", content=oversize, headers=h)
    assert_problem(r, 413, "payload_too_large")
    assert counts(db_url, "obligations") == {"obligations": 0}
    # The same rows, fewer of them, are accepted: the refusal was about size.
    r = api.client.post("/api/v1/federations/valley/obligations/import", content=csv(3), headers=h)
    assert r.status_code == 200, r.text
    assert counts(db_url, "obligations") == {"obligations": 3}


# --- the durability settings docs/security.md states ----------------------------------------


def test_write_transactions_are_durable_and_take_the_write_lock_at_begin(db_url: str) -> None:
    """SQLite: WAL, synchronous=FULL, foreign keys, a busy timeout, BEGIN IMMEDIATE (another writer
    cannot start while a write transaction is open, even before its first write). PostgreSQL:
    READ COMMITTED (commit durability is the server's fsync and synchronous_commit, left on)."""
    engine = make_engine(db_url, pool_size=1)
    try:
        with write_transaction(engine) as conn:
            if engine.dialect.name == "sqlite":
                pragmas = {
                    p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                    for p in ("journal_mode", "synchronous", "foreign_keys")
                }
                assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1}
                assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 5000
                other = sqlite3.connect(engine.url.database or "", timeout=0, isolation_level=None)
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
                other.close()
            else:
                assert conn.exec_driver_sql("SHOW transaction_isolation").scalar() == "read committed"
    finally:
        engine.dispose()
