"""An app on a fresh database per test, with a test client and a small co-op to work with."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest
from litestar.testing import TestClient

from accounts.service import create_user
from api.app import create_app
from api.settings import Settings
from ledger.db import make_engine, write_transaction

SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"
_keys = count()


def new_key() -> str:
    return f"key-{next(_keys)}-{datetime.now(UTC).timestamp()}"


@dataclass
class Api:
    client: TestClient[Any]
    tokens: dict[str, str] = field(default_factory=dict)

    def login(self, email: str, password: str = PASSWORD) -> str:
        r = self.client.post("/api/v1/auth/token", json={"email": email, "password": password})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        self.tokens[email] = token
        return str(token)

    def h(self, who: str | None, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return headers

    def get(self, path: str, who: str | None, **kw: Any) -> Any:
        return self.client.get("/api/v1" + path, headers=self.h(who), **kw)

    def post(self, path: str, who: str | None, json: Any = None, key: str | None = None, **kw: Any) -> Any:
        extra = {"Idempotency-Key": key} if key else {}
        return self.client.post("/api/v1" + path, json=json, headers=self.h(who, **extra), **kw)

    def patch(self, path: str, who: str | None, json: Any = None) -> Any:
        return self.client.patch("/api/v1" + path, json=json, headers=self.h(who))

    def pay(self, who: str, payer: str, payee: str, amount: str, key: str | None = None, **extra: Any) -> Any:
        body = {"payer": payer, "payee": payee, "amount": amount, **extra}
        return self.post("/transfers", who, body, key=key or new_key())


@dataclass
class Coop:
    slug: str
    accounts: dict[str, str]  # email -> account id
    coop_account: str


def make_settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, secret_key=SECRET)


@pytest.fixture
def api(db_url: str) -> Iterator[Api]:
    with serve(db_url) as a:
        yield a


@contextmanager
def serve(db_url: str) -> Iterator[Api]:
    """The app on `db_url` with an admin signed in, started and, on leaving, stopped."""
    engine = make_engine(db_url, pool_size=2)
    with write_transaction(engine) as conn:
        create_user(
            conn,
            email="admin@example.org",
            name="Admin",
            password=PASSWORD,
            is_admin=True,
            now=datetime.now(UTC),
        )
    engine.dispose()
    app = create_app(make_settings(db_url), sweep_claims=False)
    with TestClient(app=app) as client:
        a = Api(client)
        a.login("admin@example.org")
        yield a


def make_coop(
    api: Api,
    slug: str = "riverside",
    members: tuple[str, ...] = ("ana", "ben", "cleo"),
    treasurer: str = "tess",
    min_balance: str | None = "-20.00",
    max_balance: str | None = "40.00",
) -> Coop:
    r = api.post(
        "/coops",
        "admin@example.org",
        {
            "slug": slug,
            "name": slug.title(),
            "unit": {"code": "HOUR", "scale": 2},
            "default_min_balance": min_balance,
            "default_max_balance": max_balance,
            "claim_expiry_days": 30,
        },
    )
    assert r.status_code == 201, r.text
    accounts: dict[str, str] = {}
    for name, role in [(treasurer, "treasurer"), *[(m, "member") for m in members]]:
        email = f"{name}@{slug}.example.org"
        r = api.post(
            f"/coops/{slug}/members",
            "admin@example.org",
            {"email": email, "name": name.title(), "role": role, "password": PASSWORD},
        )
        assert r.status_code == 201, r.text
        accounts[email] = r.json()["account_id"]
        api.login(email)
    return Coop(slug, accounts, r.json()["account_id"] if False else _coop_account(api, slug))


def _coop_account(api: Api, slug: str) -> str:
    r = api.get(f"/coops/{slug}", "admin@example.org")
    assert r.status_code == 200, r.text
    return str(r.json()["coop_account"])


@pytest.fixture
def coop(api: Api) -> Coop:
    return make_coop(api)
