"""Federations: creation (admin), officers (appointed by the admin), member co-ops joining at
a fixed rate, federation-ledger limits set by officers, and who sees which account."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.federation.conftest import ADMIN, OFFICER, add_user, join, make_coop


def test_federation_membership_and_limits(api: Api, db_url: str) -> None:
    river = make_coop(api, "riverside", member="ana")
    hill = make_coop(api, "hillside", member="dan")
    island = make_coop(api, "island", member="ivy")  # never joins

    # Only the admin creates federations; slugs and units are checked; slugs are unique.
    body = {"slug": "valley", "name": "Valley", "unit": {"code": "FED", "scale": 2}}
    assert api.post("/federations", river.treasurer, body).status_code == 403
    bad = api.post("/federations", ADMIN, {**body, "slug": "Not A Slug"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "slug"
    created = api.post("/federations", ADMIN, body)
    assert created.status_code == 201, created.text
    assert created.json()["unit"] == {"code": "FED", "scale": 2}
    assert api.post("/federations", ADMIN, body).json()["code"] == "already_exists"

    # Officers are appointed by the admin, from existing users.
    assert (
        api.post("/federations/valley/officers", ADMIN, {"email": OFFICER}).json()["code"] == "user_not_found"
    )
    add_user(db_url, OFFICER)
    assert api.post("/federations/valley/officers", river.treasurer, {"email": OFFICER}).status_code == 403
    assert api.post("/federations/valley/officers", ADMIN, {"email": OFFICER}).status_code == 201
    assert api.post("/federations/valley/officers", ADMIN, {"email": OFFICER}).status_code == 409
    api.login(OFFICER)
    assert (
        api.post("/federations/nowhere/officers", ADMIN, {"email": OFFICER}).json()["code"]
        == "federation_not_found"
    )

    # Joining: admin or officer, a decimal-string rate, once, into one federation.
    assert (
        api.post(
            "/federations/valley/members", river.treasurer, {"coop": "riverside", "rate": "1"}
        ).status_code
        == 403
    )
    for rate in ("0", "-1", "1e2", "1.0000000001"):
        r = api.post("/federations/valley/members", OFFICER, {"coop": "riverside", "rate": rate})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "rate", (rate, r.text)
    assert (
        api.post("/federations/valley/members", OFFICER, {"coop": "riverside", "rate": 1.5}).status_code
        == 422
    )
    assert (
        api.post("/federations/valley/members", OFFICER, {"coop": "atlantis", "rate": "1"}).json()["code"]
        == "coop_not_found"
    )
    joined = api.post("/federations/valley/members", OFFICER, {"coop": "riverside", "rate": "1.25"})
    assert joined.status_code == 201, joined.text
    member = joined.json()
    # Default: no credit in the federation ledger until an officer extends it.
    assert (member["rate"], member["balance"], member["min_balance"], member["max_balance"]) == (
        "1.25",
        "0.00",
        "0.00",
        None,
    )
    assert member["coop_unit"] == {"code": "HOUR", "scale": 2} and member["unit"] == {
        "code": "FED",
        "scale": 2,
    }
    assert (
        api.post("/federations/valley/members", ADMIN, {"coop": "riverside", "rate": "1"}).json()["code"]
        == "already_exists"
    )
    join(api, "valley", "hillside", who=ADMIN, min_balance="-10.00", max_balance=None)

    # The co-op's mirror account lives in its own ledger, kind federation, without limits.
    mirror = api.get(f"/accounts/{member['mirror_account']}", river.treasurer).json()
    assert (mirror["kind"], mirror["coop"], mirror["min_balance"], mirror["max_balance"]) == (
        "federation",
        "riverside",
        None,
        None,
    )

    # Who sees what: officers and admins every account; a treasurer its own; members rates only.
    page = api.get("/federations/valley/members", OFFICER).json()
    assert [(m["coop"], m["balance"]) for m in page["items"]] == [
        ("riverside", "0.00"),
        ("hillside", "0.00"),
    ]
    seen = {
        m["coop"]: m["account"]
        for m in api.get("/federations/valley/members", hill.treasurer).json()["items"]
    }
    assert seen["riverside"] is None and seen["hillside"] is not None
    assert all(
        m["account"] is None for m in api.get("/federations/valley/members", river.email).json()["items"]
    )
    assert api.get("/federations/valley/members?limit=1", ADMIN).json()["next_cursor"] is not None
    for outsider in (island.treasurer, island.email):
        assert api.get("/federations/valley", outsider).status_code == 403
        assert api.get("/federations/valley/members", outsider).status_code == 403
    assert api.get("/federations/valley", river.email).status_code == 200
    assert api.get("/federations/nowhere", ADMIN).status_code == 404

    # Limits are the officer's, and never put the current balance outside them.
    assert (
        api.patch(
            "/federations/valley/members/riverside", river.treasurer, {"min_balance": "-50.00"}
        ).status_code
        == 403
    )
    r = api.patch(
        "/federations/valley/members/riverside",
        OFFICER,
        {"min_balance": "-50.00", "max_balance": "50.00"},
    )
    assert r.status_code == 200 and (r.json()["min_balance"], r.json()["max_balance"]) == (
        "-50.00",
        "50.00",
    )
    assert (
        api.patch("/federations/valley/members/riverside", OFFICER, {"min_balance": "5.00"}).status_code
        == 422
    )
    paid = api.pay(river.email, river.account, hill.account, "8.00")  # 8.00 HOUR x 1.25 = 10.00 FED
    assert paid.status_code == 201, paid.text
    assert api.get("/federations/valley/members/riverside", OFFICER).json()["balance"] == "-10.00"
    refused = api.patch("/federations/valley/members/riverside", OFFICER, {"min_balance": "-9.99"})
    assert refused.status_code == 409 and refused.json()["code"] == "limit_violated_by_balance"
    assert (
        api.patch("/federations/valley/members/atlantis", OFFICER, {"min_balance": "-1.00"}).status_code
        == 404
    )
