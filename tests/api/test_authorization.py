"""Who may call what: every endpoint against every kind of caller, as one table.

Callers (columns):
- anon      no token at all;
- other     a member of another co-op (Hillside) acting on Riverside's co-op, accounts, transfers;
- member    Ana, a member of Riverside, acting on her own account unless the row says otherwise;
- treasurer Tess, treasurer of Riverside;
- admin     the instance admin, who holds no membership anywhere.

Decisions (DESIGN §3 "every endpoint checks ownership", §6 problem codes):
- anon gets 401 `unauthenticated` everywhere except /health and the two sign-in endpoints.
- A member of another co-op gets 403 on co-op endpoints (the slug is public knowledge) but 404
  `account_not_found` / `transfer_not_found` on Riverside's account and transfer ids, exactly as for
  ids that do not exist, so ids cannot be probed.
- A member reads their own account and the directory (no balances), pays from their own account
  (posted) and claims into it (pending); may not change accounts, reverse, or import (403); may not
  read another member's account (404: not found and not yours look alike).
- A treasurer does everything inside their co-op, except answering a claim for the payer (the payer
  consents to being charged; a treasurer records a transfer directly instead).
- The admin creates co-ops, adds members and may adjust a co-op's policy, but is not a treasurer:
  403 `forbidden` on accounts and transfers (the admin already lists every co-op's directory, so
  a 404 would hide nothing).

The whole table runs on one world per engine (building it per row would cost more than the
table). Cells cannot disturb one another: each prepares its own transfer or claim, amounts are a
cent, tokens are minted afresh for every request (so a logout or a password change in one cell
does not leak into the next), and nothing a cell creates is reused. A cell reads "<status>
<problem code>" for errors and "<status> <transfer status>" for transfers.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

from accounts import service as accounts
from accounts import tokens
from api.app import create_app
from api.runtime import Runtime
from ledger import tables as t
from ledger.db import make_engine, write_transaction
from tests.api.conftest import PASSWORD, SECRET, make_settings, new_key
from tests.conftest import _truncate_all as truncate_all

ROLES = ("anon", "other", "member", "treasurer", "admin")
PERSON = {"other": "olga", "member": "ana", "treasurer": "tess", "admin": "admin"}
TRANSFER_STATUSES = {"posted", "pending", "rejected", "cancelled", "expired"}


@dataclass
class World:
    """Riverside (Tess treasurer; Ana, Ben, Cleo members) and Hillside (Olga), built fast: no
    passwords unless a cell needs one, access tokens minted directly with the app's secret."""

    client: TestClient[Any]
    engine: Engine
    users: dict[str, int]
    accounts: dict[str, str]
    serial: Callable[[], int]
    with_password: dict[str, str] = field(default_factory=dict)

    def token(self, person: str) -> str:
        with self.engine.connect() as conn:
            version = conn.execute(
                sa.select(t.users.c.token_version).where(t.users.c.id == self.users[person])
            ).scalar_one()
        token, _ = tokens.issue_access_token(secret=SECRET, user_id=self.users[person], token_version=version)
        return token

    def headers(self, person: str | None, *, key: bool = False) -> dict[str, str]:
        headers = {"Idempotency-Key": new_key()} if key else {}
        if person is not None:
            headers["Authorization"] = f"Bearer {self.token(person)}"
        return headers

    def call(self, method: str, path: str, person: str | None, body: Any = None) -> Any:
        key = method == "POST" and path.startswith("/transfers")
        return self.client.request(method, "/api/v1" + path, json=body, headers=self.headers(person, key=key))

    def set_password(self, person: str, *, again: bool = True) -> str:
        """Give `person` the test password (argon2: only for the cells that sign in)."""
        if not again and person in self.with_password:
            return self.with_password[person]
        with write_transaction(self.engine) as conn:
            accounts.set_password(conn, user_id=self.users[person], password=PASSWORD, now=datetime.now(UTC))
            email = conn.execute(
                sa.select(t.users.c.email).where(t.users.c.id == self.users[person])
            ).scalar_one()
        self.with_password[person] = str(email)
        return str(email)

    def join(self, name: str, slug: str = "riverside") -> str:
        """A new member with a clean history (the admin adds them; no password)."""
        person = f"{name}{self.serial()}"
        body = {"email": f"{person}@{slug}.example.org", "name": name.title()}
        r = self.call("POST", f"/coops/{slug}/members", "admin", body)
        assert r.status_code == 201, r.text
        self.users[person], self.accounts[person] = int(r.json()["user_id"]), r.json()["account_id"]
        return person

    def transfer(self, person: str, payer: str, payee: str) -> str:
        body = {"payer": self.accounts[payer], "payee": self.accounts[payee], "amount": "0.01"}
        r = self.call("POST", "/transfers", person, body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world per engine for this module (see the module docstring); other modules open
    their own per test with `open_world(db_url)`."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("authorization") / "commons.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_url")
        engine = make_engine(url, pool_size=1)
        truncate_all(engine)  # the same clean start `db_url` gives each test
        engine.dispose()
    with open_world(url) as w:
        yield w


@contextmanager
def shared_client(template: Path) -> Iterator[TestClient[Any]]:
    """One app for a whole module. Building a Litestar app costs more than most tests, so each
    test points this one at its own database instead (`open_world(db_url, client)`)."""
    url = f"sqlite:///{template}"  # migrated, so the app starts; no test writes to it
    with TestClient(app=create_app(make_settings(url), sweep_claims=False)) as client:
        yield client


@contextmanager
def open_world(db_url: str, client: TestClient[Any] | None = None) -> Iterator[World]:
    """Riverside and Hillside on the database at `db_url`, behind a new app or `client`'s app.

    Cheaper than the shared `api` fixture: the admin has no password (no argon2 per test)."""
    engine = make_engine(db_url, pool_size=2)
    with write_transaction(engine) as conn:
        admin = accounts.create_user(
            conn,
            email="admin@example.org",
            name="Admin",
            password=None,
            is_admin=True,
            now=datetime.now(UTC),
        )
    with ExitStack() as stack:
        if client is None:
            app = create_app(make_settings(db_url), sweep_claims=False)
            client = stack.enter_context(TestClient(app=app))
        else:
            # A fresh Runtime (engine, settings, clock, sign-in limiter) for this test only.
            previous = client.app.state.runtime
            client.app.state.runtime = Runtime(settings=make_settings(db_url), engine=engine)
            stack.callback(setattr, client.app.state, "runtime", previous)
        w = World(client, engine, {"admin": admin}, {}, count(1).__next__)
        for slug, people in [
            (
                "riverside",
                [("tess", "treasurer"), ("ana", "member"), ("ben", "member"), ("cleo", "member")],
            ),
            ("hillside", [("olga", "member")]),
        ]:
            coop = {
                "slug": slug,
                "name": slug.title(),
                "unit": {"code": "HOUR", "scale": 2},
                "default_min_balance": "-20.00",
                "default_max_balance": "40.00",
            }
            r = w.call("POST", "/coops", "admin", coop)
            assert r.status_code == 201, r.text
            for name, role in people:
                member = {"email": f"{name}@{slug}.example.org", "name": name.title(), "role": role}
                r = w.call("POST", f"/coops/{slug}/members", "admin", member)
                assert r.status_code == 201, r.text
                w.users[name], w.accounts[name] = int(r.json()["user_id"]), r.json()["account_id"]
        yield w
    engine.dispose()


# --- what each cell needs before its request: (path placeholders, body) ---------------------

Prep = Callable[[World, str], tuple[dict[str, str], Any]]


def nothing(w: World, role: str) -> tuple[dict[str, str], Any]:
    return {"slug": "riverside", "own": w.accounts["ana"], "other": w.accounts["ben"]}, None


def with_body(body: Callable[[World, str], Any]) -> Prep:
    def prep(w: World, role: str) -> tuple[dict[str, str], Any]:
        return nothing(w, role)[0], body(w, role)

    prep.__doc__ = body.__doc__
    return prep


def ana_signs_in(w: World, role: str) -> dict[str, str]:
    return {"email": w.set_password("ana", again=False), "password": PASSWORD}


def ana_refresh_token(w: World, role: str) -> dict[str, str]:
    r = w.client.post("/api/v1/auth/token", json=ana_signs_in(w, role))
    assert r.status_code == 200, r.text
    return {"refresh_token": r.json()["refresh_token"]}


def own_password_change(w: World, role: str) -> dict[str, str]:
    if role != "anon":
        w.set_password(PERSON[role])
    return {"current_password": PASSWORD, "new_password": "another long password"}


def new_coop(w: World, role: str) -> dict[str, Any]:
    return {"slug": f"new-{w.serial()}", "name": "New", "unit": {"code": "HOUR", "scale": 2}}


def new_member(w: World, role: str) -> dict[str, str]:
    return {"email": f"new{w.serial()}@example.org", "name": "Newcomer"}


def movement(payer: str, payee: str, doc: str = "") -> Callable[[World, str], dict[str, str]]:
    def body(w: World, role: str) -> dict[str, str]:
        return {"payer": w.accounts[payer], "payee": w.accounts[payee], "amount": "0.01"}

    body.__doc__ = doc
    return body


def batch(w: World, role: str) -> dict[str, Any]:
    item = {"id": f"line-{w.serial()}", **movement("ana", "ben")(w, role)}
    return {"transfers": [item]}


def on_transfer(make: Callable[[World], str]) -> Prep:
    def prep(w: World, role: str) -> tuple[dict[str, str], Any]:
        return {**nothing(w, role)[0], "id": make(w)}, None

    return prep


def posted_payment(w: World) -> str:
    """Ana paid Ben 1.00 (recorded by the treasurer)."""
    return w.transfer("tess", "ana", "ben")


def claim_on_ana(w: World) -> str:
    """Ben claims 1.00 from Ana: Ana is the payer who may accept or reject."""
    return w.transfer("ben", "ana", "ben")


def claim_by_ana(w: World) -> str:
    """Ana claims 1.00 from Ben: Ana is the initiator who may cancel."""
    return w.transfer("ana", "ben", "ana")


def policy_change(w: World, role: str) -> dict[str, int]:
    return {"claim_expiry_days": 14}


def limit_change(w: World, role: str) -> dict[str, str]:
    return {"min_balance": "-10.00"}


SIGN_IN = with_body(ana_signs_in)
REFRESH = with_body(ana_refresh_token)
NEW_PW = with_body(own_password_change)
NEW_COOP = with_body(new_coop)
POLICY = with_body(policy_change)
NEW_MEMBER = with_body(new_member)
BATCH = with_body(batch)
LIMITS = with_body(limit_change)
PAY = with_body(movement("ana", "ben", "pay from own"))
CLAIM = with_body(movement("ben", "ana", "claim into own"))
OTHERS = with_body(movement("ben", "cleo", "between two others"))
POSTED = on_transfer(posted_payment)
ANA_OWES = on_transfer(claim_on_ana)
ANA_CLAIMS = on_transfer(claim_by_ana)

# --- the table ---------------------------------------------------------------------------------

UN = "401 unauthenticated"
NO = "403 forbidden"
NA = "404 account_not_found"
NT = "404 transfer_not_found"
POSTED_ = "201 posted"
PENDING_ = "201 pending"
ACCEPTED = "200 posted"
REJECTED = "200 rejected"
CANCELED = "200 cancelled"

Row = tuple[str, str, Prep, str, str, str, str, str]
MATRIX: list[Row] = [
    # method   path                             prepare     anon   other  member    treasurer admin
    ("POST",  "/auth/token",                   SIGN_IN,    "200", "200", "200",    "200",    "200"),
    ("POST",  "/auth/refresh",                 REFRESH,    "200", "200", "200",    "200",    "200"),
    ("POST",  "/auth/logout",                  nothing,    UN,    "204", "204",    "204",    "204"),
    ("POST",  "/auth/password",                NEW_PW,     UN,    "204", "204",    "204",    "204"),
    ("GET",   "/me",                           nothing,    UN,    "200", "200",    "200",    "200"),
    ("POST",  "/coops",                        NEW_COOP,   UN,    NO,    NO,       NO,       "201"),
    ("GET",   "/coops/{slug}",                 nothing,    UN,    NO,    "200",    "200",    "200"),
    ("PATCH", "/coops/{slug}",                 POLICY,     UN,    NO,    NO,       "200",    "200"),
    ("POST",  "/coops/{slug}/members",         NEW_MEMBER, UN,    NO,    NO,       "201",    "201"),
    ("GET",   "/coops/{slug}/accounts",        nothing,    UN,    NO,    "200",    "200",    "200"),
    ("POST",  "/coops/{slug}/transfers/batch", BATCH,      UN,    NO,    NO,       "200",    NO),
    ("GET",   "/accounts/{own}",               nothing,    UN,    NA,    "200",    "200",    NO),
    ("GET",   "/accounts/{other}",             nothing,    UN,    NA,    NA,       "200",    NO),
    ("PATCH", "/accounts/{own}",               LIMITS,     UN,    NA,    NO,       "200",    NO),
    ("GET",   "/accounts/{own}/postings",      nothing,    UN,    NA,    "200",    "200",    NO),
    ("GET",   "/accounts/{own}/balance",       nothing,    UN,    NA,    "200",    "200",    NO),
    ("POST",  "/transfers",                    PAY,        UN,    NA,    POSTED_,  POSTED_,  NO),
    ("POST",  "/transfers",                    CLAIM,      UN,    NA,    PENDING_, POSTED_,  NO),
    ("POST",  "/transfers",                    OTHERS,     UN,    NA,    NO,       POSTED_,  NO),
    ("GET",   "/transfers",                    nothing,    UN,    "200", "200",    "200",    "200"),
    ("GET",   "/transfers/{id}",               POSTED,     UN,    NT,    "200",    "200",    NO),
    ("POST",  "/transfers/{id}/accept",        ANA_OWES,   UN,    NT,    ACCEPTED, NO,       NO),
    ("POST",  "/transfers/{id}/reject",        ANA_OWES,   UN,    NT,    REJECTED, NO,       NO),
    ("POST",  "/transfers/{id}/cancel",        ANA_CLAIMS, UN,    NT,    CANCELED, NO,       NO),
    ("POST",  "/transfers/{id}/reverse",       POSTED,     UN,    NT,    NO,       POSTED_,  NO),
    ("GET",   "/health",                       nothing,    "200", "200", "200",    "200",    "200"),
]  # fmt: skip


def _row_id(row: Row) -> str:
    method, path, prep = row[:3]
    if (method, path) == ("POST", "/transfers"):
        return f"{method} {path} ({prep.__doc__})"
    return f"{method} {path}"


def outcome(r: Any) -> str:
    """'<status> <problem code>' for errors, '<status> <new status>' for transfer writes."""
    if r.headers.get("content-type", "").startswith("application/problem+json"):
        return f"{r.status_code} {r.json().get('code')}"
    if r.request.method == "POST" and r.status_code in (200, 201):
        body = r.json()
        if isinstance(body, dict) and body.get("status") in TRANSFER_STATUSES:
            return f"{r.status_code} {body['status']}"
    return str(r.status_code)


@pytest.mark.parametrize("row", MATRIX, ids=[_row_id(r) for r in MATRIX])
def test_authorization_matrix(world: World, row: Row) -> None:
    method, path, prep, *expected = row
    got = {}
    for role in ROLES:
        params, body = prep(world, role)
        person = None if role == "anon" else PERSON[role]
        got[role] = outcome(world.call(method, path.format(**params), person, body))
    wrong = {
        role: f"expected {want!r}, got {got[role]!r}"
        for role, want in zip(ROLES, expected, strict=True)
        if got[role] != want
    }
    assert not wrong, f"{method} {path}: {wrong}"


# --- what a permitted caller sees -------------------------------------------------------------


def test_members_see_a_directory_without_balances_treasurers_see_balances(world: World) -> None:
    for person, full in [("ana", False), ("admin", False), ("tess", True)]:
        r = world.call("GET", "/coops/riverside/accounts", person)
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert {i["id"] for i in items} >= {world.accounts[p] for p in ("ana", "ben", "cleo", "tess")}
        for item in items:
            for secret in (
                "balance",
                "min_balance",
                "max_balance",
                "total_given",
                "total_received",
            ):
                assert (secret in item) is full, (person, item)


def test_transfer_lists_show_only_what_the_caller_may_see(world: World) -> None:
    vic, wes, xia = world.join("vic"), world.join("wes"), world.join("xia")
    stranger = world.join("yan", "hillside")
    mine = world.transfer(vic, vic, wes)
    others = world.transfer(wes, wes, xia)

    def listed(person: str, query: str = "") -> set[str]:
        r = world.call("GET", "/transfers" + query, person)
        assert r.status_code == 200, r.text
        return {i["id"] for i in r.json()["items"]}

    assert listed(vic) == {mine}
    assert listed(wes) == {mine, others}
    assert {mine, others} <= listed("tess")  # the newest, so on the first page
    assert listed(stranger) == set()
    assert listed("admin") == set()
    r = world.call("GET", f"/transfers?account={world.accounts[wes]}", vic)
    assert outcome(r) == NA  # filtering by someone else's account reveals nothing


def strip(r: Any) -> dict[str, Any]:
    """A problem body without `instance` (the path, which differs by construction)."""
    return {k: v for k, v in r.json().items() if k != "instance"}


def test_an_outsider_cannot_tell_foreign_ids_from_missing_ones(world: World) -> None:
    """Same status, code and detail for Riverside's ids and for ids that exist nowhere."""
    tid = posted_payment(world)
    missing_account, missing_transfer = "999999", "999999"
    pairs = [
        ("GET", f"/accounts/{world.accounts['ana']}", f"/accounts/{missing_account}", None),
        ("GET", f"/transfers/{tid}", f"/transfers/{missing_transfer}", None),
        ("POST", f"/transfers/{tid}/reverse", f"/transfers/{missing_transfer}/reverse", None),
        ("POST", f"/transfers/{tid}/accept", f"/transfers/{missing_transfer}/accept", None),
    ]
    for method, foreign, missing, body in pairs:
        a = world.call(method, foreign, "olga", body)
        b = world.call(method, missing, "olga", body)
        assert a.status_code == 404, a.text
        assert strip(a) == strip(b), foreign
    foreign_pay = world.call("POST", "/transfers", "olga", movement("ana", "ben")(world, "other"))
    missing_pay = world.call(
        "POST", "/transfers", "olga", {"payer": "999998", "payee": "999999", "amount": "0.01"}
    )
    assert outcome(foreign_pay) == NA
    assert strip(foreign_pay) == strip(missing_pay)
    # Not even an amount the foreign unit cannot hold tells them apart.
    bad_amount = {**movement("ana", "ben")(world, "other"), "amount": "0.001"}
    foreign_bad = world.call("POST", "/transfers", "olga", bad_amount)
    missing_bad = world.call(
        "POST", "/transfers", "olga", {**bad_amount, "payer": "999998", "payee": "999999"}
    )
    assert strip(foreign_bad) == strip(missing_bad)
