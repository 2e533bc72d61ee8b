"""A treasurer's flow in a real browser: the members table (sort, search), add a member, change
limits, record an exchange for someone offline, reverse it with a reason."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.web.conftest import LAPTOP, PHONE, balance, shoot, sign_in

TREASURER = "treasurer@riverside.example"


def test_treasurer_adds_a_member_records_and_reverses_an_exchange(new_page: Any) -> None:
    page = new_page()
    sign_in(page, TREASURER)
    page.get_by_role("link", name="Treasurer").click()
    page.wait_for_url(re.compile(r".*/treasurer$"))
    assert page.locator("table.members tbody tr").count() >= 30
    shoot(page, "treasurer-members")

    # Sorting by balance, highest first; then searching by name.
    page.get_by_role("link", name="Balance").click()  # numbers sort highest first
    assert page.locator("th[aria-sort]").get_attribute("aria-sort") == "descending"
    shown = [
        float(t.replace("\u2212", "-").replace("+", ""))
        for t in page.locator("table.members tbody tr td:nth-child(2)").all_inner_texts()
    ]
    assert shown == sorted(shown, reverse=True)
    # Last activity (a laptop-width column), most recent first; members who never moved last.
    page.set_viewport_size(LAPTOP)
    page.get_by_role("link", name="Last activity").click()
    dates = page.locator("table.members tbody tr td:nth-child(8)").all_inner_texts()
    moved = [d for d in dates if d != "never"]
    assert moved and moved == sorted(moved, reverse=True)
    assert dates == moved + ["never"] * (len(dates) - len(moved))
    page.set_viewport_size(PHONE)
    page.get_by_label("Search by name or account number").fill("okafor")
    page.get_by_role("button", name="Search").click()
    assert page.locator("table.members tbody tr").count() == 1
    assert "Ben Okafor" in page.locator("table.members tbody").inner_text()

    # Reconciliation: the books balance, and the trial balance downloads as CSV.
    page.get_by_role("link", name="Reconciliation").click()
    assert "Every check passed" in page.get_by_test_id("reconciliation-verdict").inner_text()
    shoot(page, "treasurer-reconciliation")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the trial balance (CSV)").click()
    assert "Ana Souza" in Path(download_info.value.path()).read_text()
    page.goto("/treasurer")

    # Add a member: first with nothing filled in, then properly.
    page.get_by_role("link", name="Add a member").click()
    page.get_by_role("button", name="Add the member").click()
    assert page.locator("#name-error").inner_text() == "Enter the member's name"
    assert page.locator("#email-error").is_visible()
    page.get_by_label("Name").fill("Zoe Example")
    page.get_by_label("Email").fill("zoe@riverside.example")
    page.get_by_label("First password").fill("short")
    page.get_by_role("button", name="Add the member").click()
    assert "at least" in page.locator("#password-error").inner_text()
    shoot(page, "treasurer-add-member-errors")
    page.get_by_label("First password").fill("zoe-first-password")
    page.get_by_role("button", name="Add the member").click()
    page.wait_for_url(re.compile(r".*/treasurer\?q=\d+$"))
    assert "Zoe Example is now a member" in page.get_by_role("status").first.inner_text()
    row = page.locator("table.members tbody tr").filter(has_text="Zoe Example")
    assert row.count() == 1

    # Change her limits.
    row.get_by_role("link", name="Zoe Example").click()
    page.get_by_label("Spending limit").fill("5")
    page.get_by_label("Most hours they may hold").fill("-3")
    page.get_by_role("button", name="Save").click()
    assert page.locator("#max_balance-error").inner_text().startswith("The most a member may hold")
    page.get_by_label("Most hours they may hold").fill("10")
    page.get_by_role("button", name="Save").click()
    assert "Saved the limits" in page.get_by_role("status").first.inner_text()
    assert page.get_by_label("Spending limit").input_value() == "5.00"
    shoot(page, "treasurer-account")

    # Record an exchange for two members who are offline: Zoe helped Ben for 2 hours.
    page.goto("/treasurer/exchanges/new")
    page.get_by_label("Who gave the help?").fill("Zoe Example")
    page.get_by_label("Who was helped?").fill("Ben Okafor")
    page.get_by_label("Hours").fill("12")
    page.get_by_role("button", name="Record").click()
    # Beyond Zoe's new ceiling of 10: refused, in words, next to the hours.
    assert "Zoe Example cannot receive that many hours" in page.locator("#hours-error").inner_text()
    shoot(page, "treasurer-record-errors")
    page.get_by_label("Hours").fill("2")
    page.get_by_label("Note").fill("moved the piano")
    page.get_by_role("button", name="Record").click()
    page.wait_for_url(re.compile(r".*/treasurer/transfers$"))
    flash = page.get_by_role("status").first.inner_text()
    transfer_id = re.search(r"transfer no\. (\d+)", flash).group(1)  # type: ignore[union-attr]
    shoot(page, "treasurer-transfers")

    # Reverse it, with a reason.
    page.get_by_role("link", name=f"Reverse transfer {transfer_id}", exact=True).click()
    page.get_by_role("button", name=re.compile("^Reverse 2.00 hours")).click()
    assert page.locator("#reason-error").is_visible()
    page.get_by_label("Reason").fill("it was Cleo who moved the piano")
    shoot(page, "treasurer-reverse")
    page.get_by_role("button", name=re.compile("^Reverse 2.00 hours")).click()
    page.wait_for_url(re.compile(r".*/treasurer/transfers$"))
    assert f"Transfer no. {transfer_id} is reversed" in page.get_by_role("status").first.inner_text()
    row = page.get_by_test_id(f"transfer-{transfer_id}")
    assert "reversed" in row.inner_text()
    assert row.get_by_role("link", name=re.compile("Reverse")).count() == 0

    # The new member signs in and sees the whole story on her own home page.
    zoe = new_page()
    sign_in(zoe, "zoe@riverside.example", "zoe-first-password")
    assert balance(zoe).startswith("0.00")
    history = zoe.locator("table.history").inner_text()
    assert "You helped Ben Okafor" in history and "Reversal of transfer" in history


def test_a_member_cannot_open_the_treasurer_pages(new_page: Any) -> None:
    page = new_page()
    sign_in(page, "cleo@riverside.example")
    assert page.get_by_role("link", name="Treasurer").count() == 0
    response = page.goto("/treasurer")
    assert response is not None and response.status == 403
    assert page.get_by_role("heading", level=1).inner_text() == "You cannot open this page"


def _bakery_invoices(web_db_url: str) -> tuple[Any, Any, dict[str, int]]:
    """Bakery (a co-op of Valley Federation) gets a treasurer, who invoices Riverside twice;
    both wait for Riverside's confirmation. Returns (engine, bakery's treasurer, ids)."""
    from datetime import UTC, datetime

    from accounts import service as accounts
    from accounts.actor import Actor, CoopRole, Role
    from clearing import obligations as ob
    from clearing import service as fed
    from clearing.obligation_csv import ObligationInput
    from ledger.db import make_engine, write_transaction

    engine = make_engine(web_db_url, pool_size=1)
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        admin_id = accounts.find_user_id(conn, "admin@riverside.example")
        assert admin_id is not None
        coop = accounts.get_coop(conn, "bakery")
        user_id, account_id, _ = accounts.add_member(
            conn,
            actor=Actor(admin_id, True),
            slug="bakery",
            email="treasurer@bakery.example",
            name="Bea Baker",
            role=Role.TREASURER,
            password=None,
            now=now,
        )
        bakery = Actor(
            user_id, False, (CoopRole(coop.id, "bakery", coop.ledger_id, Role.TREASURER, account_id),)
        )
        federation = fed.get_federation(conn, "valley")
        ids = {}
        for external_id, amount, reference in (("bk-101", 1500, "bread, October"), ("bk-102", 400, "cakes")):
            record, _ = ob.record_obligation(
                conn,
                requester=bakery,
                federation=federation,
                data=ObligationInput(external_id, "riverside", "bakery", amount, None, reference),
                now=now,
            )
            ids[external_id] = record.id
    return engine, bakery, ids


def test_treasurer_confirms_and_disputes_the_coops_obligations(new_page: Any, web_db_url: str) -> None:
    from datetime import UTC, datetime

    from clearing import obligations as ob
    from ledger.db import read_transaction, write_transaction

    engine, bakery, ids = _bakery_invoices(web_db_url)
    try:
        page = new_page()
        sign_in(page, TREASURER)
        page.get_by_role("link", name="Treasurer").click()
        page.get_by_role("link", name="Obligations").click()
        page.wait_for_url(re.compile(r".*/treasurer/obligations$"))
        waiting = page.get_by_test_id("waiting-bk-101")
        assert "bakery says riverside owes it 15.00 VAL" in waiting.inner_text()
        assert page.get_by_test_id("waiting-bk-102").count() == 1
        shoot(page, "treasurer-obligations")

        waiting.get_by_role("button", name="Confirm").click()
        page.wait_for_url(re.compile(r".*/treasurer/obligations$"))
        assert "You confirmed obligation bk-101" in page.get_by_role("status").first.inner_text()
        assert page.get_by_test_id("waiting-bk-101").count() == 0
        assert "confirmed" in page.get_by_test_id("obligation-bk-101").inner_text()

        waiting = page.get_by_test_id("waiting-bk-102")
        waiting.get_by_label(re.compile("Reason to dispute")).fill("we ordered no cakes")
        waiting.get_by_role("button", name="Dispute").click()
        page.wait_for_url(re.compile(r".*/treasurer/obligations$"))
        assert "You disputed obligation bk-102" in page.get_by_role("status").first.inner_text()
        row = page.get_by_test_id("obligation-bk-102").inner_text()
        assert "disputed" in row and "we ordered no cakes" in row
        shoot(page, "treasurer-obligations-answered")

        with read_transaction(engine) as conn:
            assert ob.get_obligation(conn, ids["bk-101"]).status == ob.CONFIRMED
            assert ob.get_obligation(conn, ids["bk-102"]).status == ob.DISPUTED
    finally:
        # Bakery waives both, so no other browser test's clearing run sees them.
        with write_transaction(engine) as conn:
            for oid in ids.values():
                ob.cancel_obligation(
                    conn, requester=bakery, obligation_id=oid, reason="test over", now=datetime.now(UTC)
                )
        engine.dispose()
