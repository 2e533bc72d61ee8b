# ruff: noqa: RUF001  (names in other scripts, on purpose)
"""The treasurer's reports over HTTP: statements, trial balance, reconciliation and seals, as
JSON, CSV and zip; and who may see what."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.seal_core import Period
from tests.api.conftest import Api, Coop
from tests.treasurer.conftest import make_coop

ANA, BEN, CLEO = (
    "ana@riverside.example.org",
    "ben@riverside.example.org",
    "cleo@riverside.example.org",
)
TESS = "tess@riverside.example.org"


def set_clock(api: Api, clock: Callable[[], datetime]) -> None:
    api.client.app.state.runtime.clock = clock


def this_month() -> Period:
    return Period.of(datetime.now(UTC))


def parse_csv(body: bytes) -> list[dict[str, str]]:
    assert body.startswith("\ufeff".encode()), "a BOM, so spreadsheets read UTF-8"
    text = body.decode("utf-8-sig")
    assert "\r\n" in text
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def riverside(api: Api) -> Coop:
    coop = make_coop(api)
    a, b, c = coop.accounts[ANA], coop.accounts[BEN], coop.accounts[CLEO]
    assert (
        api.pay(ANA, a, b, "2.50", memo='=HYPERLINK("x") childcare', category="childcare").status_code == 201
    )
    assert api.pay(BEN, b, c, "1.25").status_code == 201
    assert api.pay(CLEO, c, a, "0.75", memo="Elif Yılmaz taught guitar").status_code == 201
    claim = api.pay(BEN, a, b, "1.00")  # Ben claims from Ana: pending
    assert claim.json()["status"] == "pending"
    return coop


def test_a_statement_as_json_adds_up(api: Api, riverside: Coop) -> None:
    a = riverside.accounts[ANA]
    r = api.get(f"/accounts/{a}/statement?period={this_month()}", ANA)
    assert r.status_code == 200, r.text
    s = r.json()
    assert (s["opening_balance"], s["closing_balance"]) == ("0.00", "-1.75")
    assert (s["total_in"], s["total_out"]) == ("0.75", "2.50")
    assert [line["amount"] for line in s["lines"]] == ["-2.50", "0.75"]
    assert [line["balance"] for line in s["lines"]] == ["-2.50", "-1.75"]
    assert s["lines"][0]["counterparty_name"] == "Ben"
    assert s["final"] is False and s["seal"] is None
    assert s["unit"] == {"code": "HOUR", "scale": 2}
    last_month = api.get(f"/accounts/{a}/statement?period={this_month().previous()}", ANA).json()
    assert (last_month["opening_balance"], last_month["lines"], last_month["closing_balance"]) == (
        "0.00",
        [],
        "0.00",
    )


def test_a_statement_as_csv_opens_cleanly_in_a_spreadsheet(api: Api, riverside: Coop) -> None:
    a = riverside.accounts[ANA]
    by_header = api.client.get(
        f"/api/v1/accounts/{a}/statement?period={this_month()}",
        headers={**api.h(ANA), "Accept": "text/csv"},
    )
    by_suffix = api.get(f"/accounts/{a}/statement.csv?period={this_month()}", ANA)
    for r in (by_header, by_suffix):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
    assert by_header.content == by_suffix.content
    rows = parse_csv(by_suffix.content)
    assert [row["entry"] for row in rows] == ["opening", "line", "line", "closing"]
    assert [row["balance"] for row in rows] == ["0.00", "-2.50", "-1.75", "-1.75"]
    line = rows[1]
    assert line["amount"] == "-2.50" and line["memo"].startswith("'=HYPERLINK")  # never a formula
    assert datetime.fromisoformat(line["posted_at"].replace("Z", "+00:00")).tzinfo is not None
    assert line["date"] == line["posted_at"][:10] and len(line["occurred_on"]) == 10
    assert rows[2]["memo"] == "Elif Yılmaz taught guitar"
    assert rows[0]["date"] == this_month().first_day.isoformat()
    assert rows[-1]["date"] == this_month().last_day.isoformat()


def test_a_sealed_month_shows_its_digest_on_statements(api: Api, riverside: Coop) -> None:
    month = this_month()
    early = api.post("/coops/riverside/seals", TESS, {"period": month.label})
    assert early.status_code == 409 and early.json()["code"] == "period_not_over"
    assert early.headers["content-type"].startswith("application/problem+json")
    bad = api.post("/coops/riverside/seals", TESS, {"period": "2026-13"})
    assert bad.status_code in (400, 422)
    set_clock(api, lambda: month.end + timedelta(days=2))
    sealed = api.post("/coops/riverside/seals", TESS, {"period": month.label})
    assert sealed.status_code == 201, sealed.text
    seal = sealed.json()
    assert seal["transfer_count"] == 3 and len(seal["digest"]) == 64  # the pending claim is not sealed
    again = api.post("/coops/riverside/seals", TESS, {"period": month.label})
    assert again.status_code == 409 and again.json()["code"] == "already_sealed"
    s = api.get(f"/accounts/{riverside.accounts[BEN]}/statement?period={month}", BEN).json()
    assert s["final"] is True and s["seal"]["digest"] == seal["digest"]
    listed = api.get("/coops/riverside/seals", BEN).json()  # members may read the seals
    assert [x["digest"] for x in listed["items"]] == [seal["digest"]]
    assert listed["encoding"] == "commons-seal/1"


def test_the_trial_balance_sums_to_zero(api: Api, riverside: Coop) -> None:
    r = api.get("/coops/riverside/trial-balance", TESS)
    assert r.status_code == 200, r.text
    tb = r.json()
    assert tb["balanced"] is True and tb["total"] == "0.00"
    assert tb["total_debits"] == tb["total_credits"] == "4.50"
    by_holder = {row["holder"]: row for row in tb["accounts"]}
    assert by_holder["Ana"]["balance"] == "-1.75" and by_holder["Ana"]["min_balance"] == "-20.00"
    before = api.get("/coops/riverside/trial-balance?at=2020-01-01T00:00:00Z", TESS).json()
    assert before["accounts"] == [] and before["total"] == "0.00"
    as_csv = api.client.get(
        "/api/v1/coops/riverside/trial-balance", headers={**api.h(TESS), "Accept": "text/csv"}
    )
    rows = parse_csv(as_csv.content)
    assert rows[-1]["account"] == "total" and rows[-1]["balance"] == "0.00"
    assert {row["holder"]: row["balance"] for row in rows[:-1]}["Ben"] == "1.25"
    assert api.get("/coops/riverside/trial-balance.csv", TESS).content == as_csv.content


def test_a_whole_coop_as_one_csv_or_a_zip(api: Api, riverside: Coop) -> None:
    month = this_month()
    as_json = api.get(f"/coops/riverside/statements?period={month}", TESS).json()
    assert len(as_json["statements"]) == 5  # the co-op's own account, Tess, Ana, Ben, Cleo
    one = parse_csv(api.get(f"/coops/riverside/statements.csv?period={month}", TESS).content)
    assert {row["account"] for row in one} == {s["account"]["id"] for s in as_json["statements"]}
    for statement in as_json["statements"]:
        rows = [row for row in one if row["account"] == statement["account"]["id"]]
        assert (
            rows[0]["balance"] == statement["opening_balance"]
            and rows[-1]["balance"] == statement["closing_balance"]
        )
    by_accept = api.client.get(
        f"/api/v1/coops/riverside/statements?period={month}",
        headers={**api.h(TESS), "Accept": "application/zip"},
    )
    assert by_accept.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(by_accept.content))
    names = archive.namelist()
    assert f"{month}/summary.csv" in names and len(names) == 6
    summary = parse_csv(archive.read(f"{month}/summary.csv"))
    assert {row["holder"]: row["closing"] for row in summary}["Cleo"] == "0.50"
    ana = next(n for n in names if n.endswith("-ana.csv"))
    assert parse_csv(archive.read(ana))[-1]["balance"] == "-1.75"


def test_the_reconciliation_report(api: Api, riverside: Coop) -> None:
    r = api.get("/coops/riverside/reconciliation", TESS)
    assert r.status_code == 200, r.text
    report: dict[str, Any] = r.json()
    assert report["ok"] is True and report["findings"] == []
    assert report["ledger_sum"] == report["postings_sum"] == "0.00"
    assert report["mismatched_accounts"] == [] and report["beyond_limits"] == []
    (claim,) = report["pending_claims"]
    assert (claim["payer_name"], claim["payee_name"], claim["amount"], claim["overdue"]) == (
        "Ana",
        "Ben",
        "1.00",
        False,
    )
    assert claim["age_days"] >= 0
    assert report["federation"] is None


# --- who may see what ---------------------------------------------------------------------


@pytest.fixture
def two_coops(api: Api, riverside: Coop) -> tuple[Coop, Coop]:
    hillside = make_coop(api, slug="hillside", members=("dora",), treasurer="hugo")
    return riverside, hillside


def test_a_member_gets_only_their_own_statement(api: Api, two_coops: tuple[Coop, Coop]) -> None:
    riverside, hillside = two_coops
    month = this_month()
    assert api.get(f"/accounts/{riverside.accounts[ANA]}/statement?period={month}", ANA).status_code == 200
    for other in (
        riverside.accounts[BEN],
        riverside.coop_account,
        hillside.accounts["dora@hillside.example.org"],
    ):
        for path in (
            f"/accounts/{other}/statement?period={month}",
            f"/accounts/{other}/statement.csv",
        ):
            r = api.get(path, ANA)
            assert r.status_code == 404 and r.json()["code"] == "account_not_found", path
    for path in (
        "/reconciliation",
        "/trial-balance",
        "/trial-balance.csv",
        "/statements",
        "/statements.zip",
        "/statements.csv",
    ):
        r = api.get("/coops/riverside" + path, ANA)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", path
    assert api.post("/coops/riverside/seals", ANA, {"period": "2020-01"}).status_code == 403
    assert api.get("/accounts/1/statement", None).status_code == 401


def test_a_treasurer_gets_only_their_own_coops(api: Api, two_coops: tuple[Coop, Coop]) -> None:
    riverside, hillside = two_coops
    hugo = "hugo@hillside.example.org"
    for account in (riverside.accounts[ANA], riverside.accounts[BEN], riverside.coop_account):
        assert api.get(f"/accounts/{account}/statement", TESS).status_code == 200
        r = api.get(f"/accounts/{account}/statement", hugo)
        assert r.status_code == 404 and r.json()["code"] == "account_not_found"
    assert (
        api.get(f"/accounts/{hillside.accounts['dora@hillside.example.org']}/statement", hugo).status_code
        == 200
    )
    for path in ("/reconciliation", "/trial-balance", "/statements", "/statements.zip", "/seals"):
        assert api.get("/coops/hillside" + path, hugo).status_code == 200, path
        r = api.get("/coops/riverside" + path, hugo)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", path
    assert api.post("/coops/riverside/seals", hugo, {"period": "2020-01"}).status_code == 403
    # The instance admin runs the server, not the co-ops' books.
    assert api.get("/coops/riverside/reconciliation", "admin@example.org").status_code == 403
    assert api.get("/coops/nowhere/reconciliation", TESS).status_code == 404
