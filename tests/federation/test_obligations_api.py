"""Obligations: who records, confirms, disputes and cancels; idempotent external ids; CSV import."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api
from tests.federation.conftest import ADMIN, OFFICER, Member, join, make_coop, make_federation


@pytest.fixture
def valley(api: Api, db_url: str) -> dict[str, Member]:
    make_federation(api, db_url)
    coops = {
        "bakery": make_coop(api, "bakery", member="mb"),
        "farm": make_coop(api, "farm", member="mf"),
    }
    for slug in coops:
        join(api, "valley", slug)
    return coops


def record(
    api: Api, who: str, external_id: str, debtor: str, creditor: str, amount: str, **extra: Any
) -> Any:
    body = {
        "external_id": external_id,
        "debtor": debtor,
        "creditor": creditor,
        "amount": amount,
        **extra,
    }
    return api.post("/federations/valley/obligations", who, body)


def test_lifecycle(api: Api, valley: dict[str, Member]) -> None:
    bakery, farm = valley["bakery"].treasurer, valley["farm"].treasurer

    # Entered by the creditor: waits for the debtor.
    r = record(api, farm, "inv-1", "bakery", "farm", "100.00", due_on="2026-11-15", reference="flour")
    assert r.status_code == 201, r.text
    inv1 = r.json()
    assert (inv1["status"], inv1["entered_by"], inv1["remaining"], inv1["version"]) == (
        "pending_confirmation",
        "creditor",
        "100.00",
        0,
    )
    # The same external_id and content again: the same obligation, nothing new.
    again = record(api, farm, "inv-1", "bakery", "farm", "100.00", due_on="2026-11-15", reference="flour")
    assert again.status_code == 200 and again.json()["id"] == inv1["id"]
    clash = record(api, farm, "inv-1", "bakery", "farm", "101.00", due_on="2026-11-15", reference="flour")
    assert clash.status_code == 409 and clash.json()["code"] == "external_id_conflict"

    # Only the debtor's treasurer confirms; members see nothing; outsiders learn nothing.
    oid = inv1["id"]
    assert api.post(f"/obligations/{oid}/confirm", farm).status_code == 403
    assert api.get(f"/obligations/{oid}", valley["bakery"].email).status_code == 403
    assert api.get(f"/obligations/{oid}", ADMIN).status_code == 404
    assert api.get(f"/obligations/{oid}", OFFICER).status_code == 200
    r = api.post(f"/obligations/{oid}/confirm", bakery)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["version"]) == ("confirmed", 1)
    assert api.post(f"/obligations/{oid}/confirm", bakery).json()["code"] == "invalid_obligation_state"
    # The debtor did not enter it: it cannot withdraw it; the creditor could waive it.
    assert api.post(f"/obligations/{oid}/cancel", bakery).status_code == 403

    # Entered by the debtor: confirmed at once; disputed and confirmed again; withdrawn.
    r = record(api, bakery, "inv-2", "bakery", "farm", "50.00")
    assert (r.status_code, r.json()["status"], r.json()["entered_by"]) == (
        201,
        "confirmed",
        "debtor",
    )
    inv2 = r.json()["id"]
    r = api.post(f"/obligations/{inv2}/dispute", bakery, {"reason": "short delivery"})
    assert (r.json()["status"], r.json()["note"]) == ("disputed", "short delivery")
    assert api.post(f"/obligations/{inv2}/confirm", bakery).json()["status"] == "confirmed"
    r = api.post(f"/obligations/{inv2}/cancel", bakery, {"reason": "entered twice"})
    assert (r.status_code, r.json()["status"]) == (200, "cancelled")
    assert api.post(f"/obligations/{inv2}/dispute", bakery).json()["code"] == "invalid_obligation_state"

    # The creditor waives a disputed one.
    inv3 = record(api, farm, "inv-3", "bakery", "farm", "10.00").json()["id"]
    assert api.post(f"/obligations/{inv3}/dispute", bakery).json()["status"] == "disputed"
    assert api.post(f"/obligations/{inv3}/cancel", farm).json()["status"] == "cancelled"

    # A treasurer records only its own co-op's obligations; an officer none by hand.
    assert record(api, OFFICER, "inv-4", "bakery", "farm", "1.00").status_code == 403
    bad = record(api, bakery, "inv-5", "bakery", "nowhere", "1.00")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "creditor"
    assert record(api, bakery, "inv-6", "bakery", "bakery", "1.00").status_code == 422
    assert record(api, bakery, "inv-7", "bakery", "farm", "1.001").json()["code"] == "invalid_amount"

    # Lists: officers all, treasurers their co-op's, members nothing.
    page = api.get("/federations/valley/obligations", OFFICER).json()
    assert [o["external_id"] for o in page["items"]] == ["inv-1", "inv-2", "inv-3"]
    confirmed = api.get("/federations/valley/obligations?status=confirmed", farm).json()["items"]
    assert [o["external_id"] for o in confirmed] == ["inv-1"]
    assert api.get("/federations/valley/obligations", valley["farm"].email).status_code == 403
    two = api.get("/federations/valley/obligations?limit=2", OFFICER).json()
    rest = api.get(f"/federations/valley/obligations?limit=2&cursor={two['next_cursor']}", OFFICER).json()
    assert [o["external_id"] for o in two["items"] + rest["items"]] == ["inv-1", "inv-2", "inv-3"]
    assert rest["next_cursor"] is None


CSV = """id,debtor,creditor,amount,due_on,reference
a-1,bakery,farm,10.00,2026-11-01,ok
a-2,farm,bakery,5.50,,ok too
a-3,bakery,nowhere,1.00,,unknown co-op
a-4,bakery,farm,1.234,,too many decimals
a-5,farm,farm,1.00,,owes itself
a-1,farm,bakery,2.00,,duplicate id
a-7,bakery,farm,3.00,2026-13-01,bad date
a-8,bakery,farm
a-9,farm,bakery,-4.00,,negative
"""


def post_csv(api: Api, who: str, text: str) -> Any:
    return api.client.post(
        "/api/v1/federations/valley/obligations/import",
        content=text.encode(),
        headers={**api.h(who), "Content-Type": "text/csv"},
    )


def test_csv_import_reports_bad_rows_by_line_and_is_idempotent(api: Api, valley: dict[str, Member]) -> None:
    r = post_csv(api, OFFICER, CSV)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["created"], body["unchanged"], body["refused"]) == (2, 0, 7)
    assert [(p["line"], p["code"]) for p in body["problems"]] == [
        (4, "validation_failed"),
        (5, "invalid_amount"),
        (6, "validation_failed"),
        (7, "duplicate_id"),
        (8, "validation_failed"),
        (9, "validation_failed"),
        (10, "invalid_amount"),
    ]
    assert all(p["message"].startswith(f"line {p['line']}:") for p in body["problems"])
    items = api.get("/federations/valley/obligations", OFFICER).json()["items"]
    assert [(o["external_id"], o["amount"], o["status"], o["entered_by"]) for o in items] == [
        ("a-1", "10.00", "confirmed", "officer"),
        ("a-2", "5.50", "confirmed", "officer"),
    ]
    assert items[0]["due_on"] == "2026-11-01" and items[1]["reference"] == "ok too"

    again = post_csv(api, OFFICER, CSV).json()
    assert (again["created"], again["unchanged"], again["refused"]) == (0, 2, 7)

    # A treasurer imports rows of its own co-op: as creditor they wait for confirmation.
    farm = valley["farm"].treasurer
    mine = post_csv(api, farm, "debtor,creditor,amount\nbakery,farm,7.00\nfarm,bakery,1.00\n").json()
    assert (mine["created"], mine["refused"]) == (2, 0)
    items = api.get("/federations/valley/obligations?coop=farm", farm).json()["items"]
    assert [(o["external_id"], o["status"]) for o in items[2:]] == [
        ("1", "pending_confirmation"),
        ("2", "confirmed"),
    ]
    assert post_csv(api, valley["farm"].email, "debtor,creditor,amount\n").status_code == 403

    header = post_csv(api, OFFICER, "who,owes,what\nbakery,farm,1.00\n")
    assert header.status_code == 422 and "header" in header.json()["detail"]
