"""Cross-co-op payments through POST /api/v1/transfers: three legs, one transaction, exact
conversion with half-even rounding, refused as a whole at any leg's limit."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger import tables as t
from tests.api.conftest import Api
from tests.federation.conftest import (
    ADMIN,
    OFFICER,
    balances,
    counts,
    join,
    make_coop,
    make_federation,
)


def ledger_sums(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        a = t.accounts
        return list(conn.execute(sa.select(sa.func.sum(a.c.balance)).group_by(a.c.ledger_id)).scalars())


@pytest.fixture
def pair(api: Api, db_url: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """Riverside (rate 1) and Hillside (rate 4: one Hillside hour is worth 4 federation units)."""
    make_federation(api, db_url)
    river = make_coop(api, "riverside", member="ana")
    hill = make_coop(api, "hillside", member="dan")
    x = join(api, "valley", "riverside", rate="1")
    y = join(api, "valley", "hillside", rate="4")
    return (
        "valley",
        {
            "member": river.email,
            "account": river.account,
            "fed": x["account"],
            "mirror": x["mirror_account"],
        },
        {
            "member": hill.email,
            "account": hill.account,
            "fed": y["account"],
            "mirror": y["mirror_account"],
            "treasurer": hill.treasurer,
        },
    )


def test_three_legs_convert_half_even_and_show_on_both_statements(
    api: Api, engine: Engine, pair: tuple
) -> None:
    _, x, y = pair
    # fed = riverside amount x 1; hillside = fed / 4, rounded half-even at 2 decimals.
    expected = {
        "0.10": ("0.10", "0.02"),
        "0.30": ("0.30", "0.08"),
        "0.50": ("0.50", "0.12"),
        "0.70": ("0.70", "0.18"),
        "1.00": ("1.00", "0.25"),
    }
    transactions = []
    for amount, (fed_amount, payee_amount) in expected.items():
        r = api.pay(x["member"], x["account"], y["account"], amount, memo="bread")
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["payer"], body["payee"], body["amount"], body["status"]) == (
            x["account"],
            x["mirror"],
            amount,
            "posted",
        )
        record = api.get(f"/cross-coop-payments/{body['transaction_id']}", x["member"])
        assert record.status_code == 200, record.text
        legs = record.json()["legs"]
        assert [leg["amount"] for leg in legs] == [amount, fed_amount, payee_amount]
        assert [leg["ledger"] for leg in legs] == ["payer", "federation", "payee"]
        assert record.json()["payer_rate"] == "1" and record.json()["payee_rate"] == "4"
        assert legs[0]["transfer"] == body["id"]
        # every leg is a posted transfer of the same transaction
        assert api.get(f"/cross-coop-payments/{body['transaction_id']}", y["member"]).status_code == 200
        transactions.append((body["transaction_id"], legs))

    paid = sum(int(a.replace(".", "")) for a in expected)  # in hundredths
    received = sum(int(v[1].replace(".", "")) for v in expected.values())
    assert (
        api.get(f"/accounts/{x['account']}", x["member"]).json()["balance"]
        == f"-{paid // 100}.{paid % 100:02d}"
    )
    assert (
        api.get(f"/accounts/{y['account']}", y["member"]).json()["balance"]
        == f"{received // 100}.{received % 100:02d}"
    )

    payer_lines = api.get(f"/accounts/{x['account']}/postings", x["member"]).json()["items"]
    payee_lines = api.get(f"/accounts/{y['account']}/postings", y["member"]).json()["items"]
    assert [p["amount"] for p in payer_lines] == [f"-{a}" for a in expected]
    assert [p["amount"] for p in payee_lines] == [v[1] for v in expected.values()]
    assert [p["transfer"] for p in payer_lines] == [legs[0]["transfer"] for _, legs in transactions]
    assert [p["transfer"] for p in payee_lines] == [legs[2]["transfer"] for _, legs in transactions]
    assert all(p["memo"] == "bread" for p in payer_lines + payee_lines)
    # the payee sees its leg as a transfer; the three share one transaction id
    leg3 = api.get(f"/transfers/{transactions[0][1][2]['transfer']}", y["member"]).json()
    assert leg3["transaction_id"] == transactions[0][0]

    # Each ledger still sums to zero; the federation accounts mirror each other.
    assert ledger_sums(engine) == [0] * len(ledger_sums(engine))
    member = api.get("/federations/valley/members/riverside", OFFICER).json()
    assert member["balance"] == f"-{paid // 100}.{paid % 100:02d}"
    # The federation leg is on the co-ops' federation accounts' statements.
    lines = api.get("/federations/valley/members/hillside/postings", y["treasurer"]).json()["items"]
    assert [p["amount"] for p in lines] == [v[0] for v in expected.values()]
    assert [p["transfer"] for p in lines] == [legs[1]["transfer"] for _, legs in transactions]
    assert api.get("/federations/valley/members/riverside/postings", OFFICER).status_code == 200
    assert api.get("/federations/valley/members/riverside/postings", y["treasurer"]).status_code == 403
    assert api.get("/federations/valley/members/hillside/postings", y["member"]).status_code == 403


def test_guards(api: Api, engine: Engine, pair: tuple) -> None:
    _, x, y = pair
    # A claim cannot cross co-ops: the payee's side may not move the payer's money.
    claim = api.pay(y["member"], x["account"], y["account"], "1.00")
    assert claim.status_code == 403, claim.text
    assert claim.json()["code"] == "forbidden"

    # An amount that rounds to nothing on the way is refused, and nothing is written.
    before = counts(engine)
    r = api.pay(x["member"], x["account"], y["account"], "0.01")  # 0.01 fed / 4 = 0.0025 → 0.00
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_amount"
    assert counts(engine) == before

    # The Idempotency-Key holds across co-ops: a replay posts nothing new.
    first = api.pay(x["member"], x["account"], y["account"], "2.00", key="cross-1")
    again = api.pay(x["member"], x["account"], y["account"], "2.00", key="cross-1")
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert counts(engine)["cross_coop_payments"] == 1

    # The record is for the two sides, their treasurers and the federation's officers.
    tx = first.json()["transaction_id"]
    assert api.get(f"/cross-coop-payments/{tx}", ADMIN).status_code == 404
    assert api.get(f"/cross-coop-payments/{tx}", OFFICER).status_code == 200
    assert api.get(f"/cross-coop-payments/{tx}", y["treasurer"]).status_code == 200
    assert api.get("/cross-coop-payments/not-a-payment", OFFICER).status_code == 404


def _refused(api: Api, engine: Engine, x: dict[str, str], y: dict[str, str], amount: str, code: str) -> None:
    before_balances, before_counts = balances(engine), counts(engine)
    r = api.pay(x["member"], x["account"], y["account"], amount)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.text
    assert balances(engine) == before_balances
    assert counts(engine) == before_counts


def test_refused_atomically_at_each_legs_limit(api: Api, engine: Engine, db_url: str) -> None:
    make_federation(api, db_url)
    river = make_coop(api, "riverside", member="ana")  # members: min -20, max 40
    hill = make_coop(api, "hillside", member="dan")
    x = {"member": river.email, "account": river.account}
    y = {"member": hill.email, "account": hill.account}
    xj = join(api, "valley", "riverside")
    # Until both co-ops are in one federation, their ledgers stay apart.
    _refused(api, engine, x, y, "1.00", "unit_mismatch")
    yj = join(api, "valley", "hillside")

    # leg 1: the payer's credit limit in its own co-op
    _refused(api, engine, x, y, "21.00", "insufficient_credit")

    # leg 2, payer side: the paying co-op's credit limit in the federation ledger
    assert (
        api.patch("/federations/valley/members/riverside", OFFICER, {"min_balance": "-5.00"}).status_code
        == 200
    )
    _refused(api, engine, x, y, "6.00", "insufficient_credit")
    assert api.pay(x["member"], x["account"], y["account"], "5.00").status_code == 201  # exactly at the limit
    assert api.get("/federations/valley/members/riverside", OFFICER).json()["balance"] == "-5.00"
    assert (
        api.patch("/federations/valley/members/riverside", OFFICER, {"min_balance": "-100.00"}).status_code
        == 200
    )

    # leg 2, payee side: the receiving co-op's ceiling in the federation ledger
    assert (
        api.patch("/federations/valley/members/hillside", OFFICER, {"max_balance": "8.00"}).status_code == 200
    )
    _refused(api, engine, x, y, "4.00", "ceiling_exceeded")
    assert api.pay(x["member"], x["account"], y["account"], "3.00").status_code == 201
    assert (
        api.patch("/federations/valley/members/hillside", OFFICER, {"max_balance": "100.00"}).status_code
        == 200
    )

    # leg 3: the payee's ceiling in its own co-op (dan holds 8.00 of at most 40.00)
    r = api.pay(hill.treasurer, hill.coop_account, hill.account, "30.00")
    assert r.status_code == 201, r.text
    _refused(api, engine, x, y, "2.01", "ceiling_exceeded")
    assert api.pay(x["member"], x["account"], y["account"], "2.00").status_code == 201
    assert api.get(f"/accounts/{y['account']}", y["member"]).json()["balance"] == "40.00"

    # a frozen federation account refuses too
    assert (
        api.patch("/federations/valley/members/riverside", OFFICER, {"status": "frozen"}).status_code == 200
    )
    hill_back = {"member": hill.email, "account": hill.account}
    _refused(api, engine, hill_back, {"account": river.account}, "1.00", "account_frozen")
    assert xj["account"] != yj["account"]


def test_the_mirror_account_moves_only_with_its_three_legs(api: Api, engine: Engine, pair: tuple) -> None:
    """A treasurer can neither pay into or out of the federation mirror account directly nor
    reverse one leg of a cross-co-op payment: either would break the mirror."""
    _, x, y = pair
    paid = api.pay(x["member"], x["account"], y["account"], "2.00")
    assert paid.status_code == 201, paid.text
    treasurer = y["treasurer"]
    before_balances, before_counts = balances(engine), counts(engine)
    direct = api.pay(treasurer, y["mirror"], y["account"], "1.00")
    assert direct.status_code == 422, direct.text
    assert direct.json()["code"] == "federation_account"
    legs = api.get(f"/cross-coop-payments/{paid.json()['transaction_id']}", treasurer).json()["legs"]
    reverse = api.post(f"/transfers/{legs[2]['transfer']}/reverse", treasurer, {}, key="rev-leg")
    assert reverse.status_code == 409, reverse.text
    assert reverse.json()["code"] == "not_reversible"
    batch = api.post(
        "/coops/hillside/transfers/batch",
        treasurer,
        {"transfers": [{"id": "m1", "payer": y["mirror"], "payee": y["account"], "amount": "1.00"}]},
    )
    assert batch.status_code == 200, batch.text
    assert batch.json()["items"][0]["code"] == "federation_account"
    assert balances(engine) == before_balances
    assert counts(engine) == before_counts
