"""Co-ops, members and accounts through the API: policy, membership, limits and freezing,
statement pagination, the balance at past moments, and who am I."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient

from api.runtime import Runtime
from ledger import tables as t
from tests.api.conftest import PASSWORD
from tests.api.test_authorization import World, open_world, shared_client


@pytest.fixture(scope="module")
def client(sqlite_template: Path) -> Iterator[TestClient[Any]]:
    with shared_client(sqlite_template) as c:
        yield c


@pytest.fixture
def world(db_url: str, client: TestClient[Any]) -> Iterator[World]:
    with open_world(db_url, client) as w:
        yield w


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def refused(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.text


def pay(w: World, who: str, payer: str, payee: str, amount: str) -> Any:
    body = {"payer": w.accounts[payer], "payee": w.accounts[payee], "amount": amount}
    return w.call("POST", "/transfers", who, body)


def balance(w: World, person: str) -> str:
    return str(ok(w.call("GET", f"/accounts/{w.accounts[person]}", "tess"))["balance"])


def balances(w: World) -> dict[str, str]:
    return {p: balance(w, p) for p in ("ana", "ben", "cleo", "tess")}


# --- co-ops --------------------------------------------------------------------------------------


def test_a_coop_is_created_read_and_patched(world: World) -> None:
    created = ok(
        world.call(
            "POST",
            "/coops",
            "admin",
            {
                "slug": "lakeside",
                "name": " Lakeside Time Bank ",
                "unit": {"code": "CREDIT", "scale": 0},
                "default_min_balance": "-50",
                "claim_expiry_days": 7,
            },
        ),
        201,
    )
    assert created == {
        "slug": "lakeside",
        "name": "Lakeside Time Bank",
        "unit": {"code": "CREDIT", "scale": 0},
        "default_min_balance": "-50",
        "default_max_balance": None,
        "claim_expiry_days": 7,
        "max_transfer_amount": "1000",
        "coop_account": created["coop_account"],
    }
    assert created["coop_account"] is not None
    assert ok(world.call("GET", "/coops/lakeside", "admin")) == created

    treasurer = ok(
        world.call(
            "POST",
            "/coops/lakeside/members",
            "admin",
            {"email": "lena@lakeside.example.org", "name": "Lena", "role": "treasurer"},
        ),
        201,
    )
    world.users["lena"], world.accounts["lena"] = int(treasurer["user_id"]), treasurer["account_id"]
    patch = {
        "name": "Lakeside",
        "default_max_balance": "80",
        "max_transfer_amount": "25",
        "claim_expiry_days": 14,
    }
    patched = ok(world.call("PATCH", "/coops/lakeside", "lena", patch))
    assert {k: patched[k] for k in patch} == patch
    assert patched["default_min_balance"] == "-50"  # untouched fields stay
    assert ok(world.call("GET", "/coops/lakeside", "lena")) == patched
    removed = ok(world.call("PATCH", "/coops/lakeside", "lena", {"default_min_balance": None}))
    assert removed["default_min_balance"] is None
    refused(
        world.call("PATCH", "/coops/lakeside", "lena", {"max_transfer_amount": None}),
        422,
        "validation_failed",
    )
    refused(
        world.call("PATCH", "/coops/lakeside", "lena", {"max_transfer_amount": "2.5"}),
        422,
        "invalid_amount",
    )


def test_new_members_and_transfers_follow_the_policy_in_force(world: World) -> None:
    ok(
        world.call(
            "PATCH",
            "/coops/riverside",
            "tess",
            {"default_min_balance": "-5.00", "default_max_balance": "9.00"},
        )
    )
    ok(world.call("PATCH", "/coops/riverside", "tess", {"max_transfer_amount": "2.00"}))
    refused(pay(world, "ana", "ana", "ben", "2.01"), 422, "invalid_amount")
    ok(pay(world, "ana", "ana", "ben", "2.00"), 201)
    dora = ok(
        world.call(
            "POST",
            "/coops/riverside/members",
            "tess",
            {"email": "dora@riverside.example.org", "name": "Dora"},
        ),
        201,
    )
    assert dora["role"] == "member"
    account = ok(world.call("GET", f"/accounts/{dora['account_id']}", "tess"))
    assert (account["min_balance"], account["max_balance"], account["balance"]) == (
        "-5.00",
        "9.00",
        "0.00",
    )
    ana = ok(world.call("GET", f"/accounts/{world.accounts['ana']}", "tess"))
    assert (ana["min_balance"], ana["max_balance"]) == (
        "-20.00",
        "40.00",
    )  # existing accounts keep theirs


# --- members -------------------------------------------------------------------------------------


def test_an_existing_user_joins_a_second_coop_and_cannot_join_twice(world: World) -> None:
    olga = {"email": "OLGA@hillside.example.org", "name": "Olga"}
    joined = ok(world.call("POST", "/coops/riverside/members", "tess", olga), 201)
    assert int(joined["user_id"]) == world.users["olga"]  # the same person, a new account
    assert joined["account_id"] != world.accounts["olga"]
    memberships = ok(world.call("GET", "/me", "olga"))["memberships"]
    assert sorted((m["coop"], m["role"]) for m in memberships) == [
        ("hillside", "member"),
        ("riverside", "member"),
    ]
    refused(world.call("POST", "/coops/riverside/members", "tess", olga), 409, "already_exists")
    refused(world.call("POST", "/coops/riverside/members", "admin", olga), 409, "already_exists")
    # Olga now pays from her Riverside account, inside Riverside.
    body = {"payer": joined["account_id"], "payee": world.accounts["ana"], "amount": "1.00"}
    assert ok(world.call("POST", "/transfers", "olga", body), 201)["status"] == "posted"


def test_members_sign_in_only_with_a_password_and_treasurers_add_treasurers(world: World) -> None:
    with_pw = {"email": "dora@riverside.example.org", "name": "Dora", "password": PASSWORD}
    ok(world.call("POST", "/coops/riverside/members", "tess", with_pw), 201)
    ok(
        world.call(
            "POST",
            "/coops/riverside/members",
            "tess",
            {"email": "eli@riverside.example.org", "name": "Eli"},
        ),
        201,
    )
    ok(
        world.client.post(
            "/api/v1/auth/token", json={"email": "dora@riverside.example.org", "password": PASSWORD}
        )
    )
    r = world.client.post(
        "/api/v1/auth/token", json={"email": "eli@riverside.example.org", "password": PASSWORD}
    )
    refused(r, 401, "invalid_credentials")
    added = {"email": "tom@riverside.example.org", "name": "Tom", "role": "treasurer"}
    tom = ok(world.call("POST", "/coops/riverside/members", "tess", added), 201)
    world.users["tom"] = int(tom["user_id"])  # a treasurer made by a treasurer reads every account
    assert ok(world.call("GET", f"/accounts/{world.accounts['ana']}", "tom"))["holder"] == "Ana"


# --- accounts: limits, freezing, closing ---------------------------------------------------------


def test_patched_limits_bind_the_next_transfer(world: World) -> None:
    ana, ben = world.accounts["ana"], world.accounts["ben"]
    ok(world.call("PATCH", f"/accounts/{ana}", "tess", {"min_balance": "-1.00"}))
    refused(pay(world, "ana", "ana", "ben", "1.01"), 422, "insufficient_credit")
    ok(world.call("PATCH", f"/accounts/{ben}", "tess", {"max_balance": "0.50"}))
    refused(pay(world, "ana", "ana", "ben", "0.51"), 422, "ceiling_exceeded")
    assert balances(world)["ana"] == "0.00"
    patched = ok(world.call("PATCH", f"/accounts/{ben}", "tess", {"max_balance": None}))
    assert patched["max_balance"] is None
    ok(pay(world, "ana", "ana", "ben", "1.00"), 201)
    assert (balance(world, "ana"), balance(world, "ben")) == ("-1.00", "1.00")


def test_a_frozen_account_can_neither_pay_nor_be_paid(world: World) -> None:
    ok(pay(world, "ana", "ana", "ben", "3.00"), 201)
    frozen = ok(world.call("PATCH", f"/accounts/{world.accounts['ana']}", "tess", {"status": "frozen"}))
    assert frozen["status"] == "frozen"
    before = balances(world)
    refused(pay(world, "ana", "ana", "ben", "1.00"), 422, "account_frozen")  # pay
    refused(pay(world, "ben", "ben", "ana", "1.00"), 422, "account_frozen")  # be paid
    refused(pay(world, "tess", "cleo", "ana", "1.00"), 422, "account_frozen")  # recorded by the treasurer
    refused(pay(world, "ben", "ana", "ben", "1.00"), 422, "account_frozen")  # claimed from
    assert balances(world) == before
    ok(world.call("PATCH", f"/accounts/{world.accounts['ana']}", "tess", {"status": "active"}))
    ok(pay(world, "ana", "ana", "ben", "1.00"), 201)
    assert balance(world, "ana") == "-4.00"


def test_a_claim_on_an_account_frozen_since_cannot_be_accepted(world: World) -> None:
    claim = ok(pay(world, "ben", "ana", "ben", "1.00"), 201)
    assert claim["status"] == "pending"
    ok(world.call("PATCH", f"/accounts/{world.accounts['ana']}", "tess", {"status": "frozen"}))
    refused(world.call("POST", f"/transfers/{claim['id']}/accept", "ana"), 422, "account_frozen")
    assert ok(world.call("GET", f"/transfers/{claim['id']}", "ana"))["status"] == "pending"


def test_only_an_empty_account_can_be_closed_and_then_takes_nothing(world: World) -> None:
    cleo = world.accounts["cleo"]
    ok(pay(world, "cleo", "cleo", "ben", "1.00"), 201)
    refused(
        world.call("PATCH", f"/accounts/{cleo}", "tess", {"status": "closed"}),
        409,
        "account_not_empty",
    )
    ok(pay(world, "ben", "ben", "cleo", "1.00"), 201)
    assert ok(world.call("PATCH", f"/accounts/{cleo}", "tess", {"status": "closed"}))["status"] == "closed"
    refused(pay(world, "ben", "ben", "cleo", "1.00"), 422, "account_closed")


# --- statements ----------------------------------------------------------------------------------


def batch_of_transfers(w: World, n: int) -> None:
    """n transfers alternating between Ana and Ben, in one request."""
    items = [
        {
            "id": f"t{i}",
            "payer": w.accounts["ana" if i % 2 else "ben"],
            "payee": w.accounts["ben" if i % 2 else "ana"],
            "amount": f"{i % 7 + 1}.00",
        }
        for i in range(1, n + 1)
    ]
    result = ok(w.call("POST", "/coops/riverside/transfers/batch", "tess", {"transfers": items}))
    assert result["posted"] == n, result


def walk_pages(w: World, path: str, *, limit: int, **params: str) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        query = {"limit": str(limit), **params, **({"cursor": cursor} if cursor else {})}
        page = ok(w.client.get("/api/v1" + path, params=query, headers=w.headers("ana")))
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor never ends"


def test_postings_pages_chain_without_gaps_or_duplicates(world: World) -> None:
    batch_of_transfers(world, 25)
    path = f"/accounts/{world.accounts['ana']}/postings"
    for limit in (5, 7, 25, 200):  # 5 and 25 divide the 25 postings exactly
        pages = walk_pages(world, path, limit=limit)
        assert all(len(p) == limit for p in pages[:-1])
        assert 0 < len(pages[-1]) <= limit, limit  # no empty page at the end of an exact multiple
        versions = [p["version"] for page in pages for p in page]
        assert versions == list(range(1, 26)), limit
        newest_first = walk_pages(world, path, limit=limit, order="desc")
        assert [p["version"] for page in newest_first for p in page] == list(range(25, 0, -1))
    running = 0
    for item in walk_pages(world, path, limit=200)[0]:
        running += round(float(item["amount"]) * 100)
        assert round(float(item["balance_after"]) * 100) == running
        assert item["counterparty"] == world.accounts["ben"]


def test_transfer_lists_and_the_directory_page_the_same_way(world: World) -> None:
    batch_of_transfers(world, 12)
    pages = walk_pages(world, "/transfers", limit=5)
    ids = [int(t["id"]) for page in pages for t in page]
    assert len(ids) == len(set(ids)) == 12
    assert ids == sorted(ids, reverse=True)
    pages = walk_pages(world, "/coops/riverside/accounts", limit=2)
    accounts = [a["id"] for page in pages for a in page]
    assert len(accounts) == len(set(accounts)) == 5  # the co-op account and four members


def test_bad_paging_parameters_are_refused(world: World) -> None:
    postings = f"/api/v1/accounts/{world.accounts['ana']}/postings"
    for query in ("limit=201", "limit=0", "limit=many", "cursor=%%%", "order=sideways"):
        r = world.client.get(f"{postings}?{query}", headers=world.headers("ana"))
        assert r.status_code == 422, (query, r.text)
        assert r.json()["code"] == "validation_failed", query
    r = world.client.get("/api/v1/transfers?limit=201", headers=world.headers("ana"))
    assert (r.status_code, r.json()["code"]) == (422, "validation_failed")


# --- balance at a moment -------------------------------------------------------------------------


def test_the_balance_at_a_past_moment_is_the_balance_after_then(world: World) -> None:
    runtime = world.client.app.state.runtime
    assert isinstance(runtime, Runtime)
    start = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    for minute, (payer, payee, amount) in enumerate(
        [
            ("ana", "ben", "2.00"),
            ("ben", "ana", "0.50"),
            ("ana", "cleo", "3.25"),
            ("cleo", "ana", "1.00"),
        ]
    ):
        runtime.clock = lambda m=minute: start + timedelta(minutes=m)
        ok(pay(world, "tess", payer, payee, amount), 201)
    runtime.clock = lambda: start + timedelta(hours=1)
    ana = world.accounts["ana"]
    statement = ok(world.call("GET", f"/accounts/{ana}/postings", "ana"))["items"]
    assert [p["balance_after"] for p in statement] == ["-2.00", "-1.50", "-4.75", "-3.75"]

    def at(moment: str) -> str:
        r = world.client.get(
            f"/api/v1/accounts/{ana}/balance", params={"at": moment}, headers=world.headers("ana")
        )
        return str(ok(r)["balance"])

    assert at((start - timedelta(seconds=1)).isoformat()) == "0.00"
    for minute, posting in enumerate(statement):
        moment = start + timedelta(minutes=minute)
        assert at(moment.isoformat()) == posting["balance_after"]  # at the instant itself
        assert at((moment + timedelta(seconds=59)).isoformat()) == posting["balance_after"]
    assert at("2026-05-01T11:01:30+02:00") == "-1.50"  # an offset is converted to UTC
    assert at("2026-05-01T09:01:30") == "-1.50"  # no offset reads as UTC
    assert ok(world.call("GET", f"/accounts/{ana}/balance", "ana"))["balance"] == "-3.75"  # now
    r = world.client.get(
        f"/api/v1/accounts/{ana}/balance", params={"at": "yesterday"}, headers=world.headers("ana")
    )
    refused(r, 422, "validation_failed")


# --- who am I ------------------------------------------------------------------------------------


def test_me_lists_memberships_and_roles(world: World) -> None:
    tess = ok(world.call("GET", "/me", "tess"))
    assert tess["email"] == "tess@riverside.example.org"
    assert tess["is_admin"] is False
    assert tess["memberships"] == [
        {"coop": "riverside", "role": "treasurer", "account_id": world.accounts["tess"]}
    ]
    admin = ok(world.call("GET", "/me", "admin"))
    assert (admin["is_admin"], admin["memberships"]) == (True, [])
    assert ok(world.call("GET", "/me", "ana"))["id"] == str(world.users["ana"])


def test_every_account_row_still_balances(world: World) -> None:
    """After a busy day the ledger sums to zero and each balance equals its postings."""
    batch_of_transfers(world, 10)
    ok(pay(world, "ana", "ana", "cleo", "1.25"), 201)
    with world.engine.connect() as conn:
        rows = conn.execute(sa.select(t.accounts.c.id, t.accounts.c.balance, t.accounts.c.ledger_id)).all()
        sums = dict(
            conn.execute(
                sa.select(t.postings.c.account_id, sa.func.sum(t.postings.c.amount)).group_by(
                    t.postings.c.account_id
                )
            ).all()
        )
    by_ledger: dict[int, int] = {}
    for account_id, bal, ledger_id in rows:
        assert bal == sums.get(account_id, 0)
        by_ledger[ledger_id] = by_ledger.get(ledger_id, 0) + bal
    assert set(by_ledger.values()) == {0}
