"""The treasurer's batch import: each item posted or refused on its own, idempotent per item id."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from ledger import tables as t
from ledger.db import make_engine
from tests.api.conftest import Api, Coop

ANA, BEN, CLEO = (
    "ana@riverside.example.org",
    "ben@riverside.example.org",
    "cleo@riverside.example.org",
)
TESS = "tess@riverside.example.org"
PROBLEM = "application/problem+json"


def post_batch(api: Api, coop: Coop, items: list[dict[str, Any]], who: str = TESS) -> Any:
    return api.post(f"/coops/{coop.slug}/transfers/batch", who, {"transfers": items})


def item(id: str, payer: str, payee: str, amount: str, **extra: Any) -> dict[str, Any]:
    return {"id": id, "payer": payer, "payee": payee, "amount": amount, **extra}


def balances(api: Api, coop: Coop) -> dict[str, str]:
    page = api.get(f"/coops/{coop.slug}/accounts", TESS).json()
    return {a["id"]: a["balance"] for a in page["items"]}


def transfer_count(db_url: str) -> int:
    engine = make_engine(db_url, pool_size=1)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.transfers)).scalar_one())
    finally:
        engine.dispose()


def outcomes(body: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(i["id"], i["outcome"], i["code"]) for i in body["items"]]


def test_mixed_batch_reports_each_item_and_moves_only_the_good_ones(
    api: Api, coop: Coop, db_url: str
) -> None:
    a, b, c, t_ = (coop.accounts[x] for x in (ANA, BEN, CLEO, TESS))
    items = [
        item("1", a, b, "5.00", memo="garden"),
        item("2", a, c, "15.00"),  # ana reaches exactly -20.00, her credit limit
        item("3", a, b, "0.01"),  # one step past it: refused, on the running balance
        item("4", b, c, "1.00"),
        item("5", b, b, "1.00"),
        item("6", b, "999999", "1.00"),
        item("7", c, b, "1.234"),
        item("8", c, t_, "0"),
        item("9", coop.coop_account, c, "30.00"),  # cleo would pass her 40.00 ceiling: 15 + 1 + 30
        item("4", c, b, "2.00"),  # an id twice in one batch
        item("10", coop.coop_account, c, "24.00"),  # cleo at exactly 40.00
    ]
    r = post_batch(api, coop, items)
    assert r.status_code == 200, r.text
    body = r.json()
    assert outcomes(body) == [
        ("1", "posted", None),
        ("2", "posted", None),
        ("3", "refused", "insufficient_credit"),
        ("4", "posted", None),
        ("5", "refused", "same_account"),
        ("6", "refused", "account_not_found"),
        ("7", "refused", "invalid_amount"),
        ("8", "refused", "invalid_amount"),
        ("9", "refused", "ceiling_exceeded"),
        ("4", "refused", "validation_failed"),
        ("10", "posted", None),
    ]
    assert (body["posted"], body["replayed"], body["refused"]) == (4, 0, 7)
    posted = {i["id"]: i["transfer"] for i in body["items"] if i["outcome"] == "posted"}
    assert posted["1"]["memo"] == "garden" and posted["1"]["amount"] == "5.00"
    assert all(tr["status"] == "posted" for tr in posted.values())
    assert all(i["detail"] for i in body["items"] if i["outcome"] == "refused")
    assert balances(api, coop) == {
        a: "-20.00",
        b: "4.00",
        c: "40.00",
        t_: "0.00",
        coop.coop_account: "-24.00",
    }
    assert transfer_count(db_url) == 4
    # The statement of each account has one line per posted item, in order.
    lines = api.get(f"/accounts/{a}/postings", ANA).json()["items"]
    assert [x["balance_after"] for x in lines] == ["-5.00", "-20.00"]


def test_reposting_a_batch_replays_it_and_changes_nothing(api: Api, coop: Coop, db_url: str) -> None:
    a, b = coop.accounts[ANA], coop.accounts[BEN]
    items = [
        item("x1", a, b, "2.00"),
        item("x2", b, a, "0.50"),
        item("x3", a, b, "1000.01"),
    ]  # above the per-transfer maximum
    first = post_batch(api, coop, items)
    assert first.status_code == 200, first.text
    assert outcomes(first.json()) == [
        ("x1", "posted", None),
        ("x2", "posted", None),
        ("x3", "refused", "invalid_amount"),
    ]
    before = balances(api, coop)
    again = post_batch(api, coop, items)
    assert again.status_code == 200, again.text
    body = again.json()
    assert outcomes(body) == [
        ("x1", "replayed", None),
        ("x2", "replayed", None),
        ("x3", "refused", "invalid_amount"),
    ]
    assert (body["posted"], body["replayed"], body["refused"]) == (0, 2, 1)
    assert [i["transfer"] for i in body["items"][:2]] == [i["transfer"] for i in first.json()["items"][:2]]
    assert balances(api, coop) == before
    assert transfer_count(db_url) == 2


def test_an_item_id_reused_for_another_transfer_is_refused(api: Api, coop: Coop, db_url: str) -> None:
    a, b, c = coop.accounts[ANA], coop.accounts[BEN], coop.accounts[CLEO]
    assert post_batch(api, coop, [item("inv-7", a, b, "1.00")]).status_code == 200
    r = post_batch(api, coop, [item("inv-7", a, c, "1.00"), item("inv-8", a, c, "1.00")])
    assert r.status_code == 200, r.text
    assert outcomes(r.json()) == [
        ("inv-7", "refused", "idempotency_key_reused"),
        ("inv-8", "posted", None),
    ]
    assert balances(api, coop)[a] == "-2.00"
    assert transfer_count(db_url) == 2


def test_a_refused_item_may_be_sent_again_and_post(api: Api, coop: Coop) -> None:
    a, b = coop.accounts[ANA], coop.accounts[BEN]
    r = post_batch(api, coop, [item("late", a, b, "25.00")])
    assert outcomes(r.json()) == [("late", "refused", "insufficient_credit")]
    assert api.patch(f"/accounts/{a}", TESS, {"min_balance": "-30.00"}).status_code == 200
    r = post_batch(api, coop, [item("late", a, b, "25.00")])
    assert outcomes(r.json()) == [("late", "posted", None)]


def test_a_member_may_not_post_a_batch(api: Api, coop: Coop, db_url: str) -> None:
    a, b = coop.accounts[ANA], coop.accounts[BEN]
    r = post_batch(api, coop, [item("m1", a, b, "1.00")], who=ANA)
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == "forbidden"
    assert transfer_count(db_url) == 0


def test_a_bad_amount_refuses_only_its_item(api: Api, coop: Coop) -> None:
    a, b = coop.accounts[ANA], coop.accounts[BEN]
    items = [
        item("g1", a, b, "1.00"),
        item("bad", a, b, "1e3"),
        item("g2", a, b, "2.00"),
    ]
    r = post_batch(api, coop, items)
    assert r.status_code == 200, r.text
    assert outcomes(r.json()) == [
        ("g1", "posted", None),
        ("bad", "refused", "invalid_amount"),
        ("g2", "posted", None),
    ]
    assert balances(api, coop)[b] == "3.00"


def test_a_batch_of_another_coops_accounts_is_refused_item_by_item(api: Api, coop: Coop) -> None:
    from tests.api.conftest import make_coop

    other = make_coop(api, slug="hillside", members=("dan",), treasurer="tom")
    d = other.accounts["dan@hillside.example.org"]
    a = coop.accounts[ANA]
    r = post_batch(api, coop, [item("c1", a, d, "1.00"), item("c2", d, a, "1.00")])
    assert outcomes(r.json()) == [
        ("c1", "refused", "account_not_found"),
        ("c2", "refused", "account_not_found"),
    ]
    # Tom is a treasurer, but not of riverside.
    r = post_batch(api, coop, [item("c3", a, a, "1.00")], who="tom@hillside.example.org")
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert balances(api, coop)[a] == "0.00"


def test_a_batch_transfer_reads_back_as_the_batch_answered_it(api: Api, coop: Coop, db_url: str) -> None:
    """The batch writes its rows with the driver (SQLite: executemany with SQLAlchemy's own
    conversions; PostgreSQL: COPY): what GET /transfers/{id} and the statement read back from
    those rows must be what the batch answered, to the microsecond and the day."""
    a, b = coop.accounts[ANA], coop.accounts[BEN]
    items = [
        item("r1", a, b, "1.25", memo="café ☕", category="garden", occurred_on="2026-01-31"),
        item("r2", b, a, "0.50"),
    ]
    r = post_batch(api, coop, items)
    assert r.status_code == 200, r.text
    answered = [i["transfer"] for i in r.json()["items"]]
    for body in answered:
        assert api.get(f"/transfers/{body['id']}", TESS).json() == body
    transaction_ids = [uuid.UUID(body["transaction_id"]) for body in answered]
    assert len(set(transaction_ids)) == 2
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 for u in transaction_ids)
    lines = api.get(f"/accounts/{a}/postings", ANA).json()["items"]
    assert {line["transfer"]: line["occurred_on"] for line in lines} == {
        answered[0]["id"]: "2026-01-31",
        answered[1]["id"]: answered[1]["occurred_on"],
    }
    replayed = post_batch(api, coop, items).json()
    assert [i["transfer"] for i in replayed["items"]] == answered
