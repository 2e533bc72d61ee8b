"""Races the bank test found, each made deterministic.

1. A retry that overtakes its first attempt. A client whose request timed out retries with the
same key while the server is still working on the first attempt (here: waiting for the database
write lock). The retry must be told 409
`idempotency_request_in_progress`, not run: if it ran first and was refused by a limit (a
refusal stores nothing), the first attempt could commit afterwards, and the client, told
"refused", would own a transfer it believes does not exist. The 10-minute bank run on SQLite
found exactly that twice (see docs/reliability.md).

2. A limit refusal explained after the row moved back (PostgreSQL). The conditional UPDATE
waits for another transaction's row lock, re-reads the row and refuses; by the time the refusal
is explained from a fresh read, a third transaction has brought the account back within its
limit. The answer must still be the limit's code, not a 409 "conflict" (the 10-minute bank run
on PostgreSQL got two of those).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa

from accounts.actor import Actor, CoopRole, Role
from accounts.service import get_coop
from ledger import service
from ledger.db import make_engine
from ledger.errors import DomainError
from ledger.service import TransferInput
from tests.soak.seed import fresh_database, seed_bank
from tests.soak.server import Server
from tests.soak.test_bank import ENGINES, _require_engine


@contextmanager
def writers_blocked(url: str, account_id: int) -> Iterator[None]:
    """Hold what a transfer needs first: SQLite's write lock / the payer's row lock."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    with psycopg.connect(url) as pg:
        pg.execute("SELECT id FROM accounts WHERE id = %s FOR UPDATE", (account_id,))
        yield
        pg.rollback()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_retry_while_the_first_attempt_waits_is_told_409(engine: str, tmp_path: Path) -> None:
    _require_engine(engine)
    with fresh_database(engine, tmp_path) as url:
        bank = seed_bank(url, members=2, min_balance=-500, max_balance=500)
        payer, payee = bank.accounts
        server = Server(
            database_url=url, secret_key=secrets.token_urlsafe(48), log_path=tmp_path / "server.log"
        )
        try:
            server.start()
            with httpx.Client(base_url=server.base_url, timeout=30) as http:
                token = http.post(
                    "/api/v1/auth/token",
                    json={"email": bank.treasurer_email, "password": bank.password},
                ).json()["access_token"]
                headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "retry-race"}
                body = {"payer": str(payer), "payee": str(payee), "amount": "1.00"}
                first: list[httpx.Response] = []

                def first_attempt() -> None:
                    with httpx.Client(base_url=server.base_url, timeout=30) as own:
                        first.append(own.post("/api/v1/transfers", json=body, headers=headers))

                with writers_blocked(url, payer):
                    sender = threading.Thread(target=first_attempt)
                    sender.start()
                    time.sleep(1.0)  # the first attempt is now waiting inside the server
                    began = time.monotonic()
                    retry = http.post("/api/v1/transfers", json=body, headers=headers, timeout=5)
                    waited = time.monotonic() - began
                sender.join(timeout=30)
                assert retry.status_code == 409, retry.text
                assert retry.json()["code"] == "idempotency_request_in_progress"
                assert waited < 4, f"the retry waited {waited:.1f} s for the first attempt"
                assert first and first[0].status_code == 201, first[0].text if first else "no answer"
                again = http.post("/api/v1/transfers", json=body, headers=headers)
                assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
                assert again.json()["id"] == first[0].json()["id"]
        finally:
            server.close()


def test_a_limit_refusal_keeps_its_code_when_the_row_moves_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_engine("postgres")
    with fresh_database("postgres", tmp_path) as url:
        bank = seed_bank(url, members=4, min_balance=-500, max_balance=500)
        _, p, q, r = bank.accounts
        engine = make_engine(url, pool_size=4)
        try:
            with engine.connect() as conn:
                coop = get_coop(conn, bank.slug)
            role = CoopRole(coop.id, coop.slug, coop.ledger_id, Role.TREASURER, bank.accounts[0])
            actor = Actor(user_id=bank.treasurer_user_id, is_admin=False, roles=(role,))
            now = datetime.now(UTC)

            def pay(payer: int, payee: int, amount: int) -> None:
                with engine.begin() as conn:
                    request = TransferInput(payer, payee, amount)
                    service.create_transfer(conn, actor=actor, request=request, now=now)

            reads: list[str] = []
            racer: list[sa.Connection] = []
            original = service.load_account_states

            def interleaved(conn: sa.Connection, ids: Sequence[int]) -> Any:
                """Other transactions commit between the racer's statements."""
                if conn not in racer:
                    return original(conn, ids)
                if not reads:  # the early check reads p at 0.00; then p is spent to -5.00
                    reads.append("early check")
                    states = original(conn, ids)
                    pay(p, q, 500)
                    return states
                reads.append("refusal")  # the UPDATE refused p; now q pays p back first
                pay(q, p, 500)
                return original(conn, ids)

            monkeypatch.setattr(service, "load_account_states", interleaved)
            with pytest.raises(DomainError) as refused, engine.begin() as conn:
                racer.append(conn)
                request = TransferInput(p, r, 100)
                service.create_transfer(conn, actor=actor, request=request, now=now)
            assert reads == ["early check", "refusal"]
            assert refused.value.code == "insufficient_credit", refused.value.detail
        finally:
            engine.dispose()
