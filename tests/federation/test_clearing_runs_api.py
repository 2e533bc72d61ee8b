"""Clearing runs through the API: propose, read (officer: all; treasurer: its part; member:
nothing), report, apply (once, atomically, refused when stale), cancel; settling with credit."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from clearing import tables as ct
from ledger import tables as t
from tests.api.conftest import Api
from tests.federation.conftest import (
    ADMIN,
    OFFICER,
    Member,
    balances,
    join,
    make_coop,
    make_federation,
)


def record(api: Api, who: str, external_id: str, debtor: str, creditor: str, amount: str) -> str:
    body = {"external_id": external_id, "debtor": debtor, "creditor": creditor, "amount": amount}
    r = api.post("/federations/valley/obligations", who, body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def obligations(engine: Engine) -> dict[str, tuple[int, str, int]]:
    """external_id → (remaining, status, version)."""
    o = ct.obligations
    with engine.connect() as conn:
        rows = conn.execute(sa.select(o.c.external_id, o.c.remaining, o.c.status, o.c.version))
        return {r.external_id: (r.remaining, r.status, r.version) for r in rows}


@pytest.fixture
def valley(api: Api, db_url: str) -> dict[str, Member]:
    """bakery → farm 100, farm → energy 60, energy → bakery 80, farm → bakery 10 (all
    confirmed: entered by the debtor), and a pending farm → energy 5 that must stay out."""
    make_federation(api, db_url)
    coops = {
        slug: make_coop(api, slug, member="mb" if slug == "bakery" else None)
        for slug in ("bakery", "farm", "energy")
    }
    for slug in coops:
        join(api, "valley", slug)
    t = {slug: c.treasurer for slug, c in coops.items()}
    record(api, t["bakery"], "inv-1", "bakery", "farm", "100.00")
    record(api, t["farm"], "inv-2", "farm", "energy", "60.00")
    record(api, t["energy"], "inv-3", "energy", "bakery", "80.00")
    record(api, t["farm"], "inv-4", "farm", "bakery", "10.00")
    record(api, t["energy"], "inv-5", "farm", "energy", "5.00")  # entered by the creditor: pending
    return coops


def propose(api: Api, who: str = OFFICER, **body: Any) -> Any:
    return api.post("/federations/valley/clearing-runs", who, {"period": "2026-11", **body})


def test_run_lifecycle(api: Api, engine: Engine, valley: dict[str, Member]) -> None:
    r = propose(api)
    assert r.status_code == 201, r.text
    run = r.json()
    assert (run["status"], run["view"], run["period"]) == ("proposed", "federation", "2026-11")
    # The 3-cycle carries 60, the 2-cycle bakery ⇄ farm 10: 3 x 60 + 2 x 10.
    totals = run["totals"]
    assert (totals["obligations"], totals["total"], totals["setoff"], totals["remainder"]) == (
        4,
        "250.00",
        "200.00",
        "50.00",
    )
    assert totals["setoff_fraction"] == "0.8000" and totals["credit_paid"] == "0.00"
    by_coop = {p["coop"]: p for p in run["participants"]}
    assert by_coop["bakery"] == {
        "coop": "bakery",
        "owes_before": "100.00",
        "owed_before": "90.00",
        "net_position": "-10.00",
        "setoff": "70.00",
        "credit_paid": "0.00",
        "credit_received": "0.00",
        "owes_after": "30.00",
        "owed_after": "20.00",
        "credit_balance_change": "0.00",
    }
    assert sorted((c["description"], c["amount"]) for c in run["cycles"]) == [
        ("bakery → farm → bakery", "10.00"),
        ("bakery → farm → energy → bakery", "60.00"),
    ]
    items = api.get(f"/clearing-runs/{run['id']}/items", OFFICER).json()["items"]
    assert [(i["external_id"], i["setoff"], i["remaining_after"]) for i in items] == [
        ("inv-1", "70.00", "30.00"),
        ("inv-2", "60.00", "0.00"),
        ("inv-3", "60.00", "20.00"),
        ("inv-4", "10.00", "0.00"),
    ]
    before = obligations(engine)  # proposing changes nothing

    applied = api.post(f"/clearing-runs/{run['id']}/apply", OFFICER)
    assert applied.status_code == 200, applied.text
    assert applied.json()["status"] == "applied" and applied.json()["applied_at"]
    after = obligations(engine)
    assert {k: v[:2] for k, v in after.items()} == {
        "inv-1": (3000, "confirmed"),
        "inv-2": (0, "settled"),
        "inv-3": (2000, "confirmed"),
        "inv-4": (0, "settled"),
        "inv-5": (500, "pending_confirmation"),
    }
    assert all(after[k][2] == before[k][2] + 1 for k in ("inv-1", "inv-2", "inv-3", "inv-4"))

    # Applying again changes nothing and answers the same.
    again = api.post(f"/clearing-runs/{run['id']}/apply", OFFICER)
    assert again.status_code == 200 and again.json() == applied.json()
    assert obligations(engine) == after
    assert api.post(f"/clearing-runs/{run['id']}/cancel", OFFICER).json()["code"] == "clearing_run_closed"

    # Clearing the remainders again sets off nothing.
    second = propose(api).json()
    assert (second["totals"]["obligations"], second["totals"]["setoff"]) == (2, "0.00")
    cancelled = api.post(f"/clearing-runs/{second['id']}/cancel", OFFICER)
    assert cancelled.json()["status"] == "cancelled"
    assert api.post(f"/clearing-runs/{second['id']}/apply", OFFICER).json()["code"] == "clearing_run_closed"
    listed = api.get("/federations/valley/clearing-runs", OFFICER).json()["items"]
    assert [(x["id"], x["status"]) for x in listed] == [
        (second["id"], "cancelled"),
        (run["id"], "applied"),
    ]


def test_who_sees_what(api: Api, db_url: str, valley: dict[str, Member]) -> None:
    run = propose(api).json()
    rid = run["id"]
    # A treasurer sees its own co-op's part only: its report line, the cycles through it, no totals.
    energy = api.get(f"/clearing-runs/{rid}", valley["energy"].treasurer).json()
    assert energy["view"] == "coop" and energy["totals"] is None
    assert [p["coop"] for p in energy["participants"]] == ["energy"]
    assert [c["description"] for c in energy["cycles"]] == ["bakery → farm → energy → bakery"]
    items = api.get(f"/clearing-runs/{rid}/items", valley["energy"].treasurer).json()["items"]
    assert sorted(i["external_id"] for i in items) == ["inv-2", "inv-3"]
    assert api.get(f"/clearing-runs/{rid}/items?coop=farm", valley["energy"].treasurer).status_code == 403
    report = api.get(f"/clearing-runs/{rid}/report.csv", valley["energy"].treasurer)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert [(row["coop"], row["setoff"], row["owes_after"]) for row in rows] == [("energy", "60.00", "20.00")]
    full = list(csv.DictReader(io.StringIO(api.get(f"/clearing-runs/{rid}/report.csv", OFFICER).text)))
    assert [row["coop"] for row in full] == ["bakery", "energy", "farm"]
    assert sum(int(row["net_position"].replace(".", "")) for row in full) == 0
    summary = api.get("/federations/valley/clearing-runs", valley["farm"].treasurer).json()["items"]
    assert summary[0]["totals"] is None

    # Members, admins who are not officers, and another federation's officer see nothing.
    make_federation(api, db_url, "coast", officer="oscar@coast.example.org")
    for who in (valley["bakery"].email, ADMIN, "oscar@coast.example.org"):
        for path in (
            f"/clearing-runs/{rid}",
            f"/clearing-runs/{rid}/report.csv",
            f"/clearing-runs/{rid}/items",
        ):
            r = api.get(path, who)
            assert r.status_code == 403, (who, path, r.text)
            assert r.json()["code"] == "forbidden"
        assert api.post(f"/clearing-runs/{rid}/apply", who).status_code == 403
    assert api.get("/federations/valley/clearing-runs", valley["bakery"].email).status_code == 403
    # Only officers propose and apply.
    assert propose(api, valley["farm"].treasurer).status_code == 403
    assert api.post(f"/clearing-runs/{rid}/apply", valley["farm"].treasurer).status_code == 403
    assert api.get("/clearing-runs/999999", OFFICER).json()["code"] == "clearing_run_not_found"
    assert propose(api, period="2026-13").status_code == 422


def test_stale_apply_is_refused_and_changes_nothing(
    api: Api, engine: Engine, valley: dict[str, Member]
) -> None:
    run = propose(api).json()
    # The creditor waives inv-4 after the proposal.
    listed = api.get("/federations/valley/obligations", OFFICER).json()["items"]
    inv4 = next(o for o in listed if o["external_id"] == "inv-4")
    assert api.post(f"/obligations/{inv4['id']}/cancel", valley["bakery"].treasurer).status_code == 200
    before, accounts = obligations(engine), balances(engine)

    r = api.post(f"/clearing-runs/{run['id']}/apply", OFFICER)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "stale_clearing_run" and "inv-4" in r.json()["detail"]
    assert obligations(engine) == before and balances(engine) == accounts
    assert api.get(f"/clearing-runs/{run['id']}", OFFICER).json()["status"] == "proposed"

    # A fresh proposal over what is there now applies.
    fresh = propose(api).json()
    assert fresh["totals"]["setoff"] == "180.00"  # only the 3-cycle is left
    assert api.post(f"/clearing-runs/{fresh['id']}/apply", OFFICER).status_code == 200
    assert api.post(f"/clearing-runs/{run['id']}/apply", OFFICER).json()["code"] == "stale_clearing_run"


def fed_balances(engine: Engine) -> dict[str, int]:
    a, fm, c = t.accounts, ct.federation_members, t.coops
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.c.slug, a.c.balance)
            .join(fm, fm.c.coop_id == c.c.id)
            .join(a, a.c.id == fm.c.account_id)
        )
        return {r.slug: r.balance for r in rows}


def test_settling_with_credit_passes_credit_through_a_coop_at_its_ceiling(
    api: Api, engine: Engine, valley: dict[str, Member]
) -> None:
    # Federation credit lines (min, max): bakery may pay out 15 but receive nothing more.
    limits = {
        "bakery": ("-15.00", "0.00"),
        "farm": ("0.00", "30.00"),
        "energy": ("-20.00", "10.00"),
    }
    for slug, (low, high) in limits.items():
        r = api.patch(
            f"/federations/valley/members/{slug}",
            OFFICER,
            {"min_balance": low, "max_balance": high},
        )
        assert r.status_code == 200, r.text
    plain = propose(api).json()
    run = propose(api, settle_with_credit=True).json()
    totals = run["totals"]
    assert (totals["setoff"], totals["credit_paid"], totals["discharged"], totals["remainder"]) == (
        "200.00",
        "50.00",
        "250.00",
        "0.00",
    )
    assert totals["setoff_only_optimum"] == plain["totals"]["setoff"] == "200.00"
    assert totals["extra_cleared_by_credit"] == "50.00"
    parts = {p["coop"]: p for p in run["participants"]}
    # Credit flows energy → bakery → farm: bakery receives 20 and pays 30, a net -10 it can afford,
    # although it could not take the 20 in on its own (its ceiling is 0).
    assert {
        c: (p["credit_paid"], p["credit_received"], p["credit_balance_change"]) for c, p in parts.items()
    } == {
        "bakery": ("30.00", "20.00", "-10.00"),
        "energy": ("20.00", "0.00", "-20.00"),
        "farm": ("0.00", "30.00", "30.00"),
    }
    assert api.post(f"/clearing-runs/{plain['id']}/cancel", OFFICER).status_code == 200
    applied = api.post(f"/clearing-runs/{run['id']}/apply", OFFICER)
    assert applied.status_code == 200, applied.text
    after = fed_balances(engine)
    assert after == {"bakery": -1000, "energy": -2000, "farm": 3000}
    assert sum(after.values()) == 0
    for slug, (low, high) in limits.items():
        assert int(low.replace(".", "")) <= after[slug] <= int(high.replace(".", ""))
    assert {k: v[1] for k, v in obligations(engine).items()} == {
        "inv-1": "settled",
        "inv-2": "settled",
        "inv-3": "settled",
        "inv-4": "settled",
        "inv-5": "pending_confirmation",
    }


def test_credit_clears_more_than_set_off_and_stays_within_limits(
    api: Api, engine: Engine, db_url: str
) -> None:
    make_federation(api, db_url)
    bakery, farm = make_coop(api, "bakery", member=None), make_coop(api, "farm", member=None)
    join(api, "valley", "bakery", min_balance="-50.00", max_balance="0.00")
    join(api, "valley", "farm", min_balance="0.00", max_balance="80.00")
    record(api, bakery.treasurer, "inv-1", "bakery", "farm", "100.00")  # a chain: set-off alone clears 0

    run = propose(api, settle_with_credit=True).json()
    totals = run["totals"]
    assert (
        totals["setoff"],
        totals["credit_paid"],
        totals["setoff_only_optimum"],
        totals["extra_cleared_by_credit"],
    ) == (
        "0.00",
        "50.00",
        "0.00",
        "50.00",
    )
    parts = {p["coop"]: p for p in run["participants"]}
    assert (parts["bakery"]["credit_paid"], parts["farm"]["credit_received"]) == ("50.00", "50.00")

    # Someone else uses bakery's credit line meanwhile: the run no longer fits, nothing moves.
    api.patch("/federations/valley/members/bakery", OFFICER, {"min_balance": "-40.00"})
    before, accounts = obligations(engine), balances(engine)
    stale = api.post(f"/clearing-runs/{run['id']}/apply", OFFICER)
    assert stale.status_code == 409 and stale.json()["code"] == "stale_clearing_run", stale.text
    assert obligations(engine) == before and balances(engine) == accounts
    api.patch("/federations/valley/members/bakery", OFFICER, {"min_balance": "-50.00"})

    applied = api.post(f"/clearing-runs/{run['id']}/apply", OFFICER)
    assert applied.status_code == 200, applied.text
    assert applied.json()["transaction_id"]
    assert fed_balances(engine) == {"bakery": -5000, "farm": 5000}
    assert obligations(engine)["inv-1"][:2] == (5000, "confirmed")
    members = {m["coop"]: m for m in api.get("/federations/valley/members", OFFICER).json()["items"]}
    assert (members["bakery"]["balance"], members["farm"]["balance"]) == ("-50.00", "50.00")
    clearing = api.get("/federations/valley", OFFICER).json()["clearing_account"]
    with engine.connect() as conn:
        a = t.accounts
        assert conn.execute(sa.select(a.c.balance).where(a.c.id == int(clearing))).scalar_one() == 0
        ledger = conn.execute(sa.select(a.c.ledger_id).where(a.c.id == int(clearing))).scalar_one()
        assert (
            conn.execute(sa.select(sa.func.sum(a.c.balance)).where(a.c.ledger_id == ledger)).scalar_one() == 0
        )
        transfers = conn.execute(
            sa.select(t.transfers.c.payer_id, t.transfers.c.payee_id, t.transfers.c.amount).where(
                t.transfers.c.ledger_id == ledger
            )
        ).all()
    assert sorted(tr.amount for tr in transfers) == [5000, 5000]  # bakery → clearing → farm
    again = api.post(f"/clearing-runs/{run['id']}/apply", OFFICER)
    assert again.json() == applied.json() and fed_balances(engine) == {
        "bakery": -5000,
        "farm": 5000,
    }
    # A treasurer sees its own credit movement.
    mine = api.get(f"/clearing-runs/{run['id']}", farm.treasurer).json()
    assert [(p["coop"], p["credit_balance_change"]) for p in mine["participants"]] == [("farm", "50.00")]
