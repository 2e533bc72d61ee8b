# ruff: noqa: E501  (SQL written by hand reads best on one line)
"""Fixtures for the treasurer's tests: a co-op with a history at chosen moments, and tampering.

The PostgreSQL database here is this package's own (commons_treasurer_<worker>), so these tests
can run beside other suites on the same server without truncating each other's tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from accounts import service as accounts
from accounts.actor import Actor, CoopRole, Role
from accounts.service import CoopRecord
from ledger import service
from ledger.batch import BatchEntry, post_batch
from ledger.db import is_sqlite, make_engine, normalise_url, write_transaction
from ledger.service import TransferInput, TransferRecord
from migrations import upgrade_to_head
from tests.conftest import IN_CI, PG_ADMIN_URL, _pg_reachable

SEPT = datetime(2026, 9, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def postgres_url(worker_id_safe: str) -> Iterator[str]:
    problem = _pg_reachable()
    if problem is not None:
        message = f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({problem})"
        if IN_CI:
            pytest.fail(message + "; under CI the PostgreSQL tests must run", pytrace=False)
        pytest.skip(message + "; start it to run the PostgreSQL half of the suite")
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    dbname = f"commons_treasurer_{worker_id_safe}_{os.getpid()}"
    admin = sa.create_engine(normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{dbname}"'))
    url = f"{base}/{dbname}"
    upgrade_to_head(url)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
    admin.dispose()


@dataclass
class Book:
    """A co-op on a real database, driven through the services with an explicit clock."""

    engine: Engine
    coop: CoopRecord
    admin: Actor
    treasurer: Actor
    members: list[tuple[Actor, int]] = field(default_factory=list)

    @property
    def account_ids(self) -> list[int]:
        return [account for _, account in self.members]

    def actor(self, i: int) -> Actor:
        return self.members[i][0]

    def account(self, i: int) -> int:
        return self.members[i][1]

    def pay(
        self, payer: int, payee: int, amount: int, now: datetime, memo: str | None = None
    ) -> TransferRecord:
        request = TransferInput(self.account(payer), self.account(payee), amount, memo, None, now.date())
        with write_transaction(self.engine) as conn:
            return service.create_transfer(conn, actor=self.actor(payer), request=request, now=now)

    def claim(self, payer: int, payee: int, amount: int, now: datetime) -> TransferRecord:
        request = TransferInput(self.account(payer), self.account(payee), amount, "claim", None, now.date())
        with write_transaction(self.engine) as conn:
            return service.create_transfer(conn, actor=self.actor(payee), request=request, now=now)

    def accept(self, payer: int, transfer_id: int, now: datetime) -> TransferRecord:
        with write_transaction(self.engine) as conn:
            return service.accept_claim(conn, actor=self.actor(payer), transfer_id=transfer_id, now=now)

    def reject(self, payer: int, transfer_id: int, now: datetime) -> TransferRecord:
        with write_transaction(self.engine) as conn:
            return service.reject_claim(conn, actor=self.actor(payer), transfer_id=transfer_id, now=now)

    def reverse(self, transfer_id: int, now: datetime) -> TransferRecord:
        with write_transaction(self.engine) as conn:
            return service.reverse_transfer(
                conn, actor=self.treasurer, transfer_id=transfer_id, reason="mistake", now=now
            )

    def batch(self, moves: list[tuple[int, int, int]], now: datetime, prefix: str = "b") -> int:
        """Post many (payer index, payee index, amount) at one moment; returns how many posted."""
        entries = [
            BatchEntry(
                f"{prefix}-{n}",
                f"h-{prefix}-{n}",
                TransferInput(self.account(p), self.account(q), amount, f"batch {n}", "test", now.date()),
            )
            for n, (p, q, amount) in enumerate(moves)
        ]
        with write_transaction(self.engine) as conn:
            results = post_batch(
                conn,
                actor=self.treasurer,
                ledger_id=self.coop.ledger_id,
                entries=entries,
                now=now,
                render=lambda r: {"id": r.id},
            )
        return sum(1 for r in results if r.outcome == "posted")


def make_book(
    engine: Engine,
    *,
    slug: str = "riverside",
    members: int = 4,
    start: datetime = SEPT,
    min_balance: int | None = -2000,
    max_balance: int | None = 4000,
    admin_email: str | None = None,
) -> Book:
    with write_transaction(engine) as conn:
        admin_email = admin_email or f"admin@{slug}.example.org"
        admin_id = accounts.find_user_id(conn, admin_email) or accounts.create_user(
            conn, email=admin_email, name="Admin", password=None, is_admin=True, now=start
        )
        admin = Actor(admin_id, True)
        coop = accounts.create_coop(
            conn,
            actor=admin,
            slug=slug,
            name=slug.title(),
            unit_code="HOUR",
            scale=2,
            default_min_balance=min_balance,
            default_max_balance=max_balance,
            claim_expiry_days=30,
            max_transfer_amount=2400,
            now=start,
        )
        tuser, taccount, _ = accounts.add_member(
            conn,
            actor=admin,
            slug=slug,
            email=f"tess@{slug}.example.org",
            name="Tess",
            role=Role.TREASURER,
            password=None,
            now=start,
        )
        treasurer = Actor(tuser, False, (CoopRole(coop.id, slug, coop.ledger_id, Role.TREASURER, taccount),))
        book = Book(engine, coop, admin, treasurer)
        for n in range(members):
            name = ["Ana", "Ben", "Cleo", "Dev", "Elif", "Farah", "Gus", "Hana"][n % 8] + (
                "" if n < 8 else str(n)
            )
            user_id, account_id, _ = accounts.add_member(
                conn,
                actor=admin,
                slug=slug,
                email=f"{name.lower()}@{slug}.example.org",
                name=name,
                role=Role.MEMBER,
                password=None,
                now=start,
            )
            book.members.append(
                (
                    Actor(
                        user_id,
                        False,
                        (CoopRole(coop.id, slug, coop.ledger_id, Role.MEMBER, account_id),),
                    ),
                    account_id,
                )
            )
    return book


def standard_history(book: Book) -> dict[str, Any]:
    """Two months of history: payments, a claim accepted in the next month, a rejected claim,
    a reversal and a claim still pending. Returns the interesting transfer ids."""
    t1 = book.pay(0, 1, 150, SEPT + timedelta(days=2, hours=10), memo="childcare")
    book.pay(1, 2, 200, SEPT + timedelta(days=5))
    claim = book.claim(2, 3, 100, SEPT + timedelta(days=20))
    rejected = book.claim(3, 0, 50, SEPT + timedelta(days=21))
    book.reject(3, rejected.id, SEPT + timedelta(days=22))
    book.accept(2, claim.id, datetime(2026, 10, 3, tzinfo=UTC))
    t5 = book.pay(3, 0, 300, datetime(2026, 10, 10, tzinfo=UTC), memo="=SUM(A1) repairs")
    reversal = book.reverse(t1.id, datetime(2026, 10, 11, tzinfo=UTC))
    pending = book.claim(0, 1, 75, datetime(2026, 10, 28, tzinfo=UTC))
    return {
        "paid": t1.id,
        "claim": claim.id,
        "rejected": rejected.id,
        "late": t5.id,
        "reversal": reversal.id,
        "pending": pending.id,
    }


@pytest.fixture
def book(engine: Engine) -> Book:
    return make_book(engine)


# --- tampering ------------------------------------------------------------------------------

APPEND_ONLY_TABLES = ("transfers", "postings", "seals")


@contextmanager
def triggers_off(engine: Engine) -> Iterator[Connection]:
    """One transaction in which the append-only triggers do not fire; they are back at commit.

    PostgreSQL: DISABLE TRIGGER USER (foreign keys stay on). SQLite: drop the triggers and
    create them again from their stored SQL, in the same transaction.
    """
    with write_transaction(engine) as conn:
        if is_sqlite(conn):
            saved = conn.execute(
                sa.text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ('transfers', 'postings', 'seals')"
                )
            ).all()
            assert saved, "the append-only triggers should exist"
            for name, _ in saved:
                conn.execute(sa.text(f'DROP TRIGGER "{name}"'))
            yield conn
            for _, sql in saved:
                conn.execute(sa.text(sql))
        else:
            for table in APPEND_ONLY_TABLES:
                conn.execute(sa.text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            yield conn
            for table in APPEND_ONLY_TABLES:
                conn.execute(sa.text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


def tamper(engine: Engine, sql: str, **params: Any) -> None:
    with triggers_off(engine) as conn:
        conn.execute(sa.text(sql), params)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture
def pg_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A PostgreSQL engine on a truncated database (for cross-engine tests)."""
    url: str = request.getfixturevalue("postgres_url")
    engine = make_engine(url, pool_size=4)
    from tests.conftest import _truncate_all

    _truncate_all(engine)
    yield engine
    engine.dispose()


# --- the HTTP API without password hashing ----------------------------------------------------


@pytest.fixture
def api(db_url: str) -> Iterator[Any]:
    """Like tests/api's `api` fixture, but people get no password: their tokens are minted
    directly, which spares two argon2 hashes per person and keeps this suite fast."""
    from litestar.testing import TestClient

    from api.app import create_app
    from tests.api.conftest import Api, make_settings

    engine = make_engine(db_url, pool_size=2)
    with write_transaction(engine) as conn:
        admin_id = accounts.create_user(
            conn,
            email="admin@example.org",
            name="Admin",
            password=None,
            is_admin=True,
            now=datetime.now(UTC),
        )
    engine.dispose()
    app = create_app(make_settings(db_url), sweep_claims=False)
    without_fsync(app.state.runtime.engine)
    with TestClient(app=app) as client:
        a = Api(client)
        a.tokens["admin@example.org"] = mint(admin_id)
        yield a


def mint(user_id: int) -> str:
    from accounts import tokens
    from tests.api.conftest import SECRET

    return tokens.issue_access_token(secret=SECRET, user_id=user_id, token_version=0)[0]


def make_coop(
    api: Any,
    slug: str = "riverside",
    members: tuple[str, ...] = ("ana", "ben", "cleo"),
    treasurer: str = "tess",
) -> Any:
    """A co-op with limits -20.00/+40.00 HOUR, made through the API; people added without passwords."""
    from tests.api.conftest import Coop

    r = api.post(
        "/coops",
        "admin@example.org",
        {
            "slug": slug,
            "name": slug.title(),
            "unit": {"code": "HOUR", "scale": 2},
            "default_min_balance": "-20.00",
            "default_max_balance": "40.00",
        },
    )
    assert r.status_code == 201, r.text
    found: dict[str, str] = {}
    for name, role in [(treasurer, "treasurer"), *[(m, "member") for m in members]]:
        email = f"{name}@{slug}.example.org"
        added = api.post(
            f"/coops/{slug}/members",
            "admin@example.org",
            {"email": email, "name": name.title(), "role": role},
        )
        assert added.status_code == 201, added.text
        found[email] = added.json()["account_id"]
        api.tokens[email] = mint(int(added.json()["user_id"]))
    return Coop(slug, found, str(r.json()["coop_account"]))


def without_fsync(engine: Engine) -> Engine:
    """Commits stop waiting for the disk (SQLite synchronous=OFF, PostgreSQL
    synchronous_commit=off) on this engine's connections. Test databases are thrown away, so
    durability does not matter there; locking, isolation and constraints are unchanged."""

    @sa.event.listens_for(engine, "connect")
    def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
        if engine.dialect.name == "sqlite":
            dbapi_connection.execute("PRAGMA synchronous = OFF")
        else:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit = off")
            dbapi_connection.commit()

    engine.dispose()  # connections made before the listener are not reused
    return engine


def scratch_engine(path: Path) -> Engine:
    """An engine on a throw-away SQLite file."""
    return without_fsync(make_engine(f"sqlite:///{path}", pool_size=1))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = without_fsync(make_engine(db_url, pool_size=20))
    yield eng
    eng.dispose()
