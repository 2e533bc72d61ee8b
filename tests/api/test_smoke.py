from tests.api.conftest import Api, Coop


def test_pay_claim_accept_reverse(api: Api, coop: Coop) -> None:
    ana, ben = "ana@riverside.example.org", "ben@riverside.example.org"
    tess = "tess@riverside.example.org"
    a, b = coop.accounts[ana], coop.accounts[ben]
    r = api.pay(ana, a, b, "2.50", memo="childcare", category="childcare")
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "posted"
    assert api.get(f"/accounts/{a}", ana).json()["balance"] == "-2.50"
    assert api.get(f"/accounts/{b}", ben).json()["balance"] == "2.50"
    claim = api.pay(ben, a, b, "1.00")
    assert claim.status_code == 201, claim.text
    assert claim.json()["status"] == "pending"
    acc = api.post(f"/transfers/{claim.json()['id']}/accept", ana)
    assert acc.status_code == 200, acc.text
    assert api.get(f"/accounts/{a}", ana).json()["balance"] == "-3.50"
    rev = api.post(f"/transfers/{r.json()['id']}/reverse", tess, {"reason": "wrong person"}, key="rev-1")
    assert rev.status_code == 201, rev.text
    assert api.get(f"/accounts/{a}", ana).json()["balance"] == "-1.00"
    page = api.get(f"/accounts/{a}/postings", ana).json()
    assert [p["balance_after"] for p in page["items"]] == ["-2.50", "-3.50", "-1.00"]
