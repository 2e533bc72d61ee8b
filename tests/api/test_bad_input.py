"""Bad requests are refused with the right 4xx, a problem+json body with a stable `code`, and
nothing changes: every balance, limit, status and row count is the same before and after.

Each table is one endpoint; a row is a bad request and the outcome it must get, written as
"<status> <code>". A test walks its table on one fresh world and reports every row that differs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy.engine import Engine

from ledger import tables as t
from tests.api.conftest import PASSWORD, new_key
from tests.api.test_authorization import World, open_world, shared_client

PROBLEM_JSON = "application/problem+json"
KIB = 1024


@pytest.fixture(scope="module")
def client(sqlite_template: Path) -> Iterator[TestClient[Any]]:
    with shared_client(sqlite_template) as c:
        yield c


@pytest.fixture
def world(db_url: str, client: TestClient[Any]) -> Iterator[World]:
    with open_world(db_url, client) as w:
        yield w


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything a refused request must leave alone."""
    a = t.accounts
    with engine.connect() as conn:
        accounts = conn.execute(
            sa.select(
                a.c.id, a.c.balance, a.c.min_balance, a.c.max_balance, a.c.status, a.c.version
            ).order_by(a.c.id)
        ).all()
        counts = {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in (
                t.transfers,
                t.postings,
                t.idempotency_keys,
                t.users,
                t.memberships,
                t.coops,
                t.ledgers,
            )
        }
        coops = conn.execute(sa.select(t.coops).order_by(t.coops.c.id)).all()
    return {
        "accounts": [tuple(r) for r in accounts],
        "counts": counts,
        "coops": [tuple(r) for r in coops],
    }


@dataclass(frozen=True)
class Bad:
    name: str
    expect: str
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"


def send(w: World, method: str, path: str, person: str, case: Bad) -> Any:
    headers = w.headers(person, key=path.startswith("/transfers"))
    content = json.dumps(case.body).encode() if case.raw is None else case.raw
    headers["Content-Type"] = case.content_type
    return w.client.request(method, "/api/v1" + path, content=content, headers=headers)


def walk(w: World, method: str, path: str, person: str, cases: list[Bad]) -> None:
    """Send every case; collect the ones whose outcome, body shape or side effects are wrong."""
    wrong: dict[str, str] = {}
    for case in cases:
        before = snapshot(w.engine)
        r = send(w, method, path, person, case)
        is_problem = r.headers.get("content-type", "").startswith(PROBLEM_JSON)
        got = f"{r.status_code} {r.json().get('code') if is_problem else '(not problem+json)'}"
        if got != case.expect:
            wrong[case.name] = f"expected {case.expect!r}, got {got!r}: {r.text[:160]}"
            continue
        body = r.json()
        missing = {"type", "title", "status", "detail", "code"} - set(body)
        if missing or body["status"] != r.status_code:
            wrong[case.name] = f"problem body lacks {missing} or has the wrong status: {body}"
        elif snapshot(w.engine) != before:
            wrong[case.name] = "refused, but the database changed"
    assert not wrong, "\n".join(f"{name}: {why}" for name, why in wrong.items())


# --- POST /transfers -----------------------------------------------------------------------------


def transfer(w: World, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "payer": w.accounts["ana"],
        "payee": w.accounts["ben"],
        "amount": "1.00",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not DROP}


DROP = object()
IA = "422 invalid_amount"
VF = "422 validation_failed"


def transfer_cases(w: World) -> list[Bad]:
    return [
        Bad("float amount", IA, transfer(w, amount=1.5)),
        Bad("integer amount", IA, transfer(w, amount=1)),
        Bad("null amount", IA, transfer(w, amount=None)),
        Bad("exponent", IA, transfer(w, amount="1e3")),
        Bad("NaN", IA, transfer(w, amount="NaN")),
        Bad("Infinity", IA, transfer(w, amount="Infinity")),
        Bad("too many decimals", IA, transfer(w, amount="1.234")),
        Bad("zero", IA, transfer(w, amount="0")),
        Bad("zero with decimals", IA, transfer(w, amount="0.00")),
        Bad("negative", IA, transfer(w, amount="-1.00")),
        Bad("leading space", IA, transfer(w, amount=" 1.00")),
        Bad("decimal comma", IA, transfer(w, amount="1,00")),
        Bad("empty string", IA, transfer(w, amount="")),
        Bad("above the co-op maximum", IA, transfer(w, amount="1000.01")),
        Bad("beyond any amount", IA, transfer(w, amount="9" * 16)),
        Bad("unknown payee", "404 account_not_found", transfer(w, payee="999999")),
        Bad("payee not an id", "404 account_not_found", transfer(w, payee="ben")),
        Bad("same account", "422 same_account", transfer(w, payee=w.accounts["ana"])),
        Bad("payer as a JSON number", VF, transfer(w, payer=int(w.accounts["ana"]))),
        Bad("missing payee", VF, transfer(w, payee=DROP)),
        Bad("missing amount", VF, transfer(w, amount=DROP)),
        Bad("empty object", VF, {}),
        Bad("a JSON array", VF, [transfer(w)]),
        Bad("extra field", VF, transfer(w, fee="0.10")),
        Bad("memo too long", VF, transfer(w, memo="m" * 501)),
        Bad("occurred_on not a date", VF, transfer(w, occurred_on="yesterday")),
        Bad("malformed JSON", "400 validation_failed", raw=b'{"payer": "1", '),
        Bad("not UTF-8", "400 validation_failed", raw=b"\xff\xfe{}"),
        Bad("oversize body", "413 payload_too_large", transfer(w, memo="m" * 65 * KIB)),
        Bad("text/plain", "415 unsupported_media_type", transfer(w), content_type="text/plain"),
        Bad(
            "form-encoded",
            "415 unsupported_media_type",
            raw=b"payer=1&payee=2&amount=1.00",
            content_type="application/x-www-form-urlencoded",
        ),
    ]


def test_bad_transfers_are_refused_and_change_nothing(world: World) -> None:
    ok = world.call("POST", "/transfers", "ana", transfer(world))  # the baseline body is good
    assert ok.status_code == 201, ok.text
    walk(world, "POST", "/transfers", "ana", transfer_cases(world))


def test_a_refused_transfer_keeps_no_idempotency_key(world: World) -> None:
    """A retry with the same key is evaluated afresh once the input is fixed."""
    key = new_key()
    headers = {**world.headers("ana"), "Idempotency-Key": key}
    bad = world.client.post("/api/v1/transfers", json=transfer(world, amount="1.234"), headers=headers)
    assert bad.status_code == 422, bad.text
    good = world.client.post("/api/v1/transfers", json=transfer(world), headers=headers)
    assert good.status_code == 201, good.text


def test_a_transfer_without_an_idempotency_key_is_refused(world: World) -> None:
    before = snapshot(world.engine)
    r = world.client.post("/api/v1/transfers", json=transfer(world), headers=world.headers("ana"))
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "idempotency_key_required"
    assert snapshot(world.engine) == before


# --- POST /coops ---------------------------------------------------------------------------------


def coop(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "slug": "lakeside",
        "name": "Lakeside",
        "unit": {"code": "HOUR", "scale": 2},
        "default_min_balance": "-20.00",
        "default_max_balance": "40.00",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not DROP}


COOP_CASES = [
    Bad("slug with capitals and spaces", VF, coop(slug="Lake Side")),
    Bad("slug ending in a dash", VF, coop(slug="lakeside-")),
    Bad("slug too long", VF, coop(slug="l" * 65)),
    Bad("slug taken", "409 already_exists", coop(slug="riverside")),
    Bad("empty name", VF, coop(name=" ")),
    Bad("unit code in lowercase", VF, coop(unit={"code": "hour", "scale": 2})),
    Bad("unit scale 7", VF, coop(unit={"code": "HOUR", "scale": 7})),
    Bad("negative unit scale", VF, coop(unit={"code": "HOUR", "scale": -1})),
    Bad("missing unit", VF, coop(unit=DROP)),
    Bad("positive minimum balance", VF, coop(default_min_balance="5.00")),
    Bad("negative maximum balance", VF, coop(default_max_balance="-5.00")),
    Bad("limit as a JSON number", IA, coop(default_min_balance=-20)),
    Bad("limit with too many decimals", IA, coop(default_min_balance="-20.001")),
    Bad("zero per-transfer maximum", VF, coop(max_transfer_amount="0")),
    Bad("claim expiry of zero days", VF, coop(claim_expiry_days=0)),
    Bad("extra field", VF, coop(owner="me")),
    Bad("malformed JSON", "400 validation_failed", raw=b"{"),
]


def test_bad_coops_are_refused_and_change_nothing(world: World) -> None:
    walk(world, "POST", "/coops", "admin", COOP_CASES)


# --- POST /coops/{slug}/members ---------------------------------------------------------------


def member(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"email": "dora@riverside.example.org", "name": "Dora", "role": "member"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not DROP}


MEMBER_CASES = [
    Bad("not an email", VF, member(email="dora")),
    Bad("empty name", VF, member(name="")),
    Bad("unknown role", VF, member(role="admin")),
    Bad("short password", VF, member(password="short")),
    Bad("missing email", VF, member(email=DROP)),
    Bad("extra field", VF, member(is_admin=True)),
    Bad("already a member", "409 already_exists", member(email="ana@riverside.example.org")),
    Bad(
        "a password for an existing login",
        "409 already_exists",
        member(email="olga@hillside.example.org", password=PASSWORD),
    ),
]


def test_bad_members_are_refused_and_change_nothing(world: World) -> None:
    walk(world, "POST", "/coops/riverside/members", "tess", MEMBER_CASES)
    r = world.call("POST", "/coops/nowhere/members", "admin", member())
    assert (r.status_code, r.json()["code"]) == (404, "coop_not_found")


# --- PATCH /accounts/{id} ------------------------------------------------------------------------


def test_bad_account_changes_are_refused_and_change_nothing(world: World) -> None:
    paid = world.call("POST", "/transfers", "ana", transfer(world, amount="5.00"))
    assert paid.status_code == 201, paid.text  # Ana at -5.00, Ben at +5.00
    cases = {
        "ana": [
            Bad("positive minimum", VF, {"min_balance": "5.00"}),
            Bad("negative maximum", VF, {"max_balance": "-5.00"}),
            Bad("limit with too many decimals", IA, {"min_balance": "-1.001"}),
            Bad("limit as a JSON number", IA, {"min_balance": -10}),
            Bad("unknown status", VF, {"status": "deleted"}),
            Bad("null status", VF, {"status": None}),
            Bad("extra field", VF, {"balance": "100.00"}),
            Bad(
                "minimum above the balance",
                "409 limit_violated_by_balance",
                {"min_balance": "-4.99"},
            ),
            Bad("closing a non-empty account", "409 account_not_empty", {"status": "closed"}),
        ],
        "ben": [
            Bad(
                "maximum below the balance",
                "409 limit_violated_by_balance",
                {"max_balance": "4.99"},
            ),
            Bad("closing a non-empty account", "409 account_not_empty", {"status": "closed"}),
        ],
    }
    for person, bad in cases.items():
        walk(world, "PATCH", f"/accounts/{world.accounts[person]}", "tess", bad)
    coop_account = world.call("GET", "/coops/riverside", "tess").json()["coop_account"]
    walk(
        world,
        "PATCH",
        f"/accounts/{coop_account}",
        "tess",
        [Bad("closing the co-op account", VF, {"status": "closed"})],
    )
    # One step inside each boundary is accepted.
    ok = world.call("PATCH", f"/accounts/{world.accounts['ana']}", "tess", {"min_balance": "-5.00"})
    assert ok.status_code == 200, ok.text
    ok = world.call("PATCH", f"/accounts/{world.accounts['ben']}", "tess", {"max_balance": "5.00"})
    assert ok.status_code == 200, ok.text
