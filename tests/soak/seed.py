"""A fresh, migrated database for one bank run, seeded with a co-op of tightly limited accounts.

SQLite: a file in the run's work directory. PostgreSQL: a database `commons_soak_<pid>` created
next to the test database (COMMONS_TEST_PG_URL) and dropped afterwards; databases left by killed
runs (their pid is gone) are dropped on the next run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from accounts.actor import Actor, Role
from accounts.service import add_member, create_coop, create_user
from ledger.db import make_engine, write_transaction
from migrations import upgrade_to_head

PG_ADMIN_URL = os.environ.get("COMMONS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SOAK_DB_PREFIX = "commons_soak_"
SLUG = "soak"
SCALE = 2
TREASURER_EMAIL = "treasurer@soak.example.org"
PASSWORD = "soak test password 1"


@dataclass(frozen=True, slots=True)
class Bank:
    """What the clients need to know about the seeded co-op."""

    database_url: str
    slug: str
    treasurer_email: str
    password: str
    treasurer_user_id: int
    ledger_id: int
    accounts: tuple[int, ...]  # the limited member accounts transfers move between
    min_balance: int
    max_balance: int


def _pg_admin_engine() -> sa.Engine:
    return sa.create_engine(
        "postgresql+psycopg://" + PG_ADMIN_URL.split("://", 1)[1], isolation_level="AUTOCOMMIT"
    )


def _drop_orphans(conn: sa.Connection) -> None:
    names = conn.execute(
        sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
        {"p": SOAK_DB_PREFIX + "%"},
    )
    for (name,) in list(names):
        pid = name.rsplit("_", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def fresh_database(engine_name: str, workdir: Path, *, keep: bool = False) -> Iterator[str]:
    """Yield the URL of a new, migrated, empty database; drop it afterwards (unless `keep`)."""
    if engine_name == "sqlite":
        path = workdir / "bank.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
        upgrade_to_head(url)
        yield url
        return
    if engine_name != "postgres":
        raise ValueError(f"unknown engine {engine_name!r} (sqlite or postgres)")
    dbname = f"{SOAK_DB_PREFIX}{os.getpid()}"
    url = f"{PG_ADMIN_URL.rpartition('/')[0]}/{dbname}"
    admin = _pg_admin_engine()
    try:
        with admin.connect() as conn:
            _drop_orphans(conn)
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{dbname}"'))
        upgrade_to_head(url)
        yield url
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        admin.dispose()


def seed_bank(url: str, *, members: int, min_balance: int, max_balance: int) -> Bank:
    """An admin, a co-op whose accounts all have the limits given, one treasurer who may record
    a transfer between any two of its accounts, and `members` members without logins."""
    now = datetime.now(UTC)
    engine = make_engine(url, pool_size=1)
    try:
        with write_transaction(engine) as conn:
            admin_id = create_user(
                conn,
                email="admin@soak.example.org",
                name="Admin",
                password=None,
                is_admin=True,
                now=now,
            )
            admin = Actor(user_id=admin_id, is_admin=True)
            coop = create_coop(
                conn,
                actor=admin,
                slug=SLUG,
                name="Soak Time Bank",
                unit_code="HOUR",
                scale=SCALE,
                default_min_balance=min_balance,
                default_max_balance=max_balance,
                claim_expiry_days=30,
                max_transfer_amount=1000 * 10**SCALE,
                now=now,
            )
            treasurer_id, treasurer_account, _ = add_member(
                conn,
                actor=admin,
                slug=SLUG,
                email=TREASURER_EMAIL,
                name="Treasurer",
                role=Role.TREASURER,
                password=PASSWORD,
                now=now,
            )
            accounts = [treasurer_account]
            for n in range(members - 1):
                _, account_id, _ = add_member(
                    conn,
                    actor=admin,
                    slug=SLUG,
                    email=f"member{n}@soak.example.org",
                    name=f"Member {n}",
                    role=Role.MEMBER,
                    password=None,
                    now=now,
                )
                accounts.append(account_id)
    finally:
        engine.dispose()
    return Bank(
        database_url=url,
        slug=SLUG,
        treasurer_email=TREASURER_EMAIL,
        password=PASSWORD,
        treasurer_user_id=treasurer_id,
        ledger_id=coop.ledger_id,
        accounts=tuple(accounts),
        min_balance=min_balance,
        max_balance=max_balance,
    )
