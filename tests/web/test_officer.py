"""A federation officer in a real browser: uploads obligations as CSV, proposes a clearing run,
reads the report (summary, per co-op, network before and after, cycles) and applies it."""

from __future__ import annotations

import re
from typing import Any

from tests.web.conftest import OFFICER, shoot, sign_in

OBLIGATIONS = b"""id,debtor,creditor,amount
inv-1,bakery,farm,100.00
inv-2,farm,energy,80.00
inv-3,energy,bakery,60.00
inv-4,riverside,bakery,30.00
inv-5,bakery,riverside,20.00
inv-6,bakery,nowhere,5.00
"""


def test_officer_uploads_obligations_proposes_and_applies_a_clearing_run(new_page: Any) -> None:
    page = new_page()
    sign_in(page, OFFICER)
    page.get_by_role("link", name="Federation", exact=True).click()
    page.wait_for_url(re.compile(r".*/officer/valley$"))
    assert "Bakery Co-op" in page.locator("main").inner_text()

    # Upload without a file: told next to the field.
    page.get_by_role("button", name="Upload", exact=True).click()
    assert page.locator("#file-error").inner_text() == "Choose a CSV file of obligations"
    page.get_by_label("Upload obligations (CSV)").set_input_files(
        {"name": "obligations.csv", "mimeType": "text/csv", "buffer": OBLIGATIONS}
    )
    page.get_by_role("button", name="Upload", exact=True).click()
    page.wait_for_url(re.compile(r".*/officer/valley$"))
    flash = page.get_by_role("status").first.inner_text()
    assert "5 recorded" in flash and "1 refused" in flash and "line 7" in flash, flash
    # Only this upload's rows (other browser tests may add obligations of their own).
    assert page.locator("table.obligations tbody tr", has_text=re.compile(r"\binv-\d")).count() == 5
    shoot(page, "officer-federation")

    # Propose: the cycle bakery → farm → energy clears 60 on each leg, riverside ↔ bakery 20.
    page.get_by_label("Month").fill("2026-11")
    page.get_by_role("button", name="Propose").click()
    page.wait_for_url(re.compile(r".*/officer/runs/\d+$"))
    summary = page.get_by_test_id("summary").inner_text()
    assert "290.00" in summary and "220.00" in summary and "70.00" in summary, summary
    assert page.locator("svg.network").count() == 2
    cycles = page.locator("ol.cycles").inner_text()
    assert "60.00" in cycles and "20.00" in cycles
    assert "bakery" in page.locator("table.participants").inner_text()
    shoot(page, "officer-run-proposed")

    # Apply needs an explicit confirmation.
    page.get_by_role("button", name="Apply the run").click()
    assert "Tick the box" in page.locator("#confirm-error").inner_text()
    page.get_by_label("The delegates have seen this run and agree to apply it").check()
    page.get_by_role("button", name="Apply the run").click()
    page.wait_for_url(re.compile(r".*/officer/runs/\d+$"))
    assert "is applied" in page.get_by_role("status").first.inner_text()
    assert "applied" in page.get_by_role("heading", level=1).inner_text()
    shoot(page, "officer-run-applied")

    page.get_by_role("link", name=re.compile("Valley Federation")).click()
    remaining = page.locator("table.obligations tbody").inner_text()
    assert "40.00" in remaining and "0.00" in remaining  # inv-1: 100 - 60 left; inv-3 cleared
