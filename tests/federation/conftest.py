"""Federations on a fresh database per test, on both engines: API helpers and service helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher, Type
from sqlalchemy.engine import Engine

from accounts import passwords
from accounts.actor import Actor
from accounts.service import create_coop, create_user
from clearing.rates import parse_rate
from clearing.service import (
    CommandLine,
    FederationRecord,
    create_federation,
    get_federation,
    join_federation,
)
from ledger import tables as t
from ledger.db import make_engine, write_transaction
from tests.api import conftest as api_conftest
from tests.api.conftest import PASSWORD, Api

api = api_conftest.api  # the app on a fresh database, with its test client

ADMIN = "admin@example.org"
OFFICER = "olga@valley.example.org"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@dataclass
class Member:
    coop: str
    email: str  # the member's login (the treasurer's when the co-op has no member)
    account: str  # the member's account
    treasurer: str  # the treasurer's login
    coop_account: str


def make_coop(
    api: Api,
    slug: str,
    *,
    scale: int = 2,
    code: str = "HOUR",
    member: str | None = "ana",
    min_balance: str | None = "-20.00",
    max_balance: str | None = "40.00",
) -> Member:
    """A co-op with a treasurer and (unless `member` is None) one member, all logged in."""
    r = api.post(
        "/coops",
        ADMIN,
        {
            "slug": slug,
            "name": slug.title(),
            "unit": {"code": code, "scale": scale},
            "default_min_balance": min_balance,
            "default_max_balance": max_balance,
        },
    )
    assert r.status_code == 201, r.text
    coop_account = r.json()["coop_account"]
    accounts: dict[str, str] = {}
    people = [("tess", "treasurer")] + ([(member, "member")] if member else [])
    for name, role in people:
        email = f"{name}@{slug}.example.org"
        body = {"email": email, "name": name.title(), "role": role, "password": PASSWORD}
        r = api.post(f"/coops/{slug}/members", ADMIN, body)
        assert r.status_code == 201, r.text
        accounts[email] = r.json()["account_id"]
        api.login(email)
    treasurer = f"tess@{slug}.example.org"
    email = f"{member}@{slug}.example.org" if member else treasurer
    return Member(slug, email, accounts[email], treasurer, coop_account)


def add_user(db_url: str, email: str, name: str = "Olga") -> None:
    engine = make_engine(db_url, pool_size=1)
    with write_transaction(engine) as conn:
        create_user(conn, email=email, name=name, password=PASSWORD, now=NOW)
    engine.dispose()


def make_federation(
    api: Api, db_url: str, slug: str = "valley", *, scale: int = 2, officer: str = OFFICER
) -> str:
    r = api.post(
        "/federations",
        ADMIN,
        {"slug": slug, "name": slug.title(), "unit": {"code": "FED", "scale": scale}},
    )
    assert r.status_code == 201, r.text
    add_user(db_url, officer)
    r = api.post(f"/federations/{slug}/officers", ADMIN, {"email": officer})
    assert r.status_code == 201, r.text
    api.login(officer)
    return slug


def join(
    api: Api,
    federation: str,
    coop: str,
    *,
    rate: str = "1",
    min_balance: str | None = "-100.00",
    max_balance: str | None = "100.00",
    who: str = OFFICER,
) -> dict[str, Any]:
    r = api.post(
        f"/federations/{federation}/members",
        who,
        {"coop": coop, "rate": rate, "min_balance": min_balance, "max_balance": max_balance},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def balances(engine: Engine) -> dict[int, int]:
    with engine.connect() as conn:
        return {r.id: r.balance for r in conn.execute(sa.select(t.accounts.c.id, t.accounts.c.balance))}


def counts(engine: Engine) -> dict[str, int]:
    """Rows per table of everything a refused write must not leave behind."""
    with engine.connect() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()
            for name in (
                "transfers",
                "postings",
                "cross_coop_payments",
                "obligations",
                "clearing_runs",
            )
        }


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every API test here signs in half a dozen people; argon2id at its production cost would
    be most of the suite's time. Password hashing is tested in tests/accounts and tests/api."""
    monkeypatch.setattr(
        passwords,
        "_hasher",
        PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID),
    )


# --- service-level helpers (no HTTP, no passwords: fast enough for many co-ops) --------------

ADMIN_ACTOR = Actor(user_id=0, is_admin=True)


@pytest.fixture
def fed_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url, pool_size=4)
    yield engine
    engine.dispose()


def service_federation(
    engine: Engine,
    coops: dict[str, tuple[int | None, int | None]],
    *,
    slug: str = "valley",
    scale: int = 2,
) -> FederationRecord:
    """A federation whose member co-ops (slug → (min_balance, max_balance) in the federation
    ledger) join at rate 1; built through the services in one transaction."""
    with write_transaction(engine) as conn:
        federation = create_federation(
            conn,
            actor=ADMIN_ACTOR,
            slug=slug,
            name=slug.title(),
            unit_code="FED",
            scale=scale,
            now=NOW,
        )
        for coop, (low, high) in coops.items():
            create_coop(
                conn,
                actor=ADMIN_ACTOR,
                slug=coop,
                name=coop,
                unit_code="HOUR",
                scale=scale,
                default_min_balance=None,
                default_max_balance=None,
                claim_expiry_days=30,
                max_transfer_amount=10**12,
                now=NOW,
            )
            join_federation(
                conn,
                requester=CommandLine(),
                federation=federation,
                coop_slug=coop,
                rate=parse_rate("1"),
                min_balance=low,
                max_balance=high,
                now=NOW,
            )
        return get_federation(conn, slug)
