"""A member's flow in a real browser: sign in, log an exchange both ways, the other member
accepts the claim, both balances move; errors show next to the field; a double submit posts once."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.web.conftest import balance, shoot, sign_in

ANA = "ana@riverside.example"
BEN = "ben@riverside.example"


def hours(text: str) -> Decimal:
    return Decimal(text.replace("\u2212", "-").replace("+", "").split()[0])


def log_exchange(
    page: Any, *, kind: str, member: str, amount: str, category: str = "", note: str = ""
) -> None:
    page.goto("/home")
    page.get_by_role("link", name=kind).click()
    page.get_by_label(kind).check()
    page.get_by_label("Who?").fill(member)
    page.get_by_label("Hours").fill(amount)
    if category:
        page.get_by_label("Kind of help").fill(category)
    if note:
        page.get_by_label("Note").fill(note)
    page.get_by_role("button", name="Save").click()


def test_welcome_page_names_the_demo_logins(new_page: Any) -> None:
    page = new_page()
    page.goto("/")
    assert page.get_by_role("link", name="Sign in").first.is_visible()
    text = page.locator("main").inner_text()
    assert (
        "ana@riverside.example" in text and "treasurer@riverside.example" in text and "riverside-demo" in text
    )
    shoot(page, "welcome")
    page.goto("/sign-in")
    shoot(page, "sign-in")
    page.get_by_label("Email").fill(ANA)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().count("The email or the password is wrong") == 1
    # A page that needs a session sends the visitor to sign in, and back afterwards.
    page.goto("/exchanges/new")
    assert "/sign-in?next=/exchanges/new" in page.url


def test_member_logs_exchanges_both_ways_and_the_other_accepts(new_page: Any) -> None:
    ana = new_page()
    sign_in(ana, ANA)
    shoot(ana, "member-home")
    ana_start = hours(balance(ana))

    # "I helped someone": a claim, nothing moves until Ben answers.
    log_exchange(
        ana,
        kind="I helped someone",
        member="Ben Okafor",
        amount="1.5",
        category="gardening",
        note="weeded the allotment",
    )
    ana.wait_for_url(re.compile(r".*/home$"))
    assert "Ben Okafor is asked to confirm" in ana.get_by_role("status").inner_text()
    assert hours(ana.get_by_test_id("balance").inner_text()) == ana_start
    assert "You asked Ben Okafor to confirm 1.50 hours" in ana.locator("main").inner_text()

    # "Someone helped me": a payment, posted at once.
    log_exchange(ana, kind="Someone helped me", member="Cleo Martin", amount="1:00", category="rides")
    ana.wait_for_url(re.compile(r".*/home$"))
    assert hours(ana.get_by_test_id("balance").inner_text()) == ana_start - Decimal("1.00")

    ben = new_page()
    sign_in(ben, BEN)
    ben_start = hours(ben.get_by_test_id("balance").inner_text())
    claim = ben.locator("li.claim").filter(has_text="Ana Souza").filter(has_text="1.50 hours")
    assert claim.count() == 1
    shoot(ben, "member-home-claims")
    claim.get_by_role("button", name=re.compile("^Accept")).click()
    ben.wait_for_url(re.compile(r".*/home$"))
    assert "Accepted" in ben.get_by_role("status").inner_text()
    assert hours(ben.get_by_test_id("balance").inner_text()) == ben_start - Decimal("1.50")
    assert ben.locator("li.claim").filter(has_text="Ana Souza").filter(has_text="1.50 hours").count() == 0

    assert hours(balance(ana)) == ana_start - Decimal("1.00") + Decimal("1.50")
    history = ana.locator("table.history").inner_text()
    assert "You helped Ben Okafor" in history and "Cleo Martin helped you" in history

    # The statement downloads as CSV with both exchanges in it.
    with ana.expect_download() as download_info:
        ana.get_by_role("link", name=re.compile("Download your full statement")).click()
    csv_text = Path(download_info.value.path()).read_text()
    assert csv_text.startswith("date,posted_at,transfer,with,category,note,hours,balance_after")
    assert "Ben Okafor,gardening,weeded the allotment,1.50," in csv_text


def test_errors_show_next_to_the_field_and_a_double_submit_posts_once(new_page: Any) -> None:
    page = new_page()
    sign_in(page, "cleo@riverside.example")
    page.goto("/exchanges/new?kind=received")
    page.get_by_label("Who?").fill("Nobody Atall")
    page.get_by_label("Hours").fill("lots")
    page.get_by_role("button", name="Save").click()
    assert (
        page.locator("#member-error").inner_text() == "Pick a member from the list (start typing their name)"
    )
    assert page.locator("#hours-error").inner_text().startswith("Enter hours as a number")
    assert page.get_by_label("Hours").get_attribute("aria-invalid") == "true"
    assert "Traceback" not in page.content()
    shoot(page, "exchange-form-errors")

    # Beyond the spending limit: said in plain words, next to the hours.
    page.get_by_label("Who?").fill("Dev Patel")
    page.get_by_label("Hours").fill("24")
    page.get_by_role("button", name="Save").click()
    message = page.locator("#hours-error").inner_text()
    assert "more than you can spend" in message or "cannot receive that many hours" in message, message

    # The same rendered form sent twice (a double tap) posts one payment.
    start = hours(balance(page))
    page.goto("/exchanges/new?kind=received")
    form = {
        "csrf": page.locator("input[name=csrf]").first.input_value(),
        "key": page.locator("input[name=key]").input_value(),
        "kind": "received",
        "member": "Dev Patel",
        "hours": "0.25",
        "category": "",
        "date": "",
        "note": "double tap",
    }
    for _ in range(2):
        response = page.request.post("/exchanges", form=form, max_redirects=0)
        assert response.status == 303
    assert hours(balance(page)) == start - Decimal("0.25")

    # A form without this session's CSRF token is refused.
    response = page.request.post(
        "/exchanges", form={**form, "csrf": "forged", "key": "web-other"}, max_redirects=0
    )
    assert response.status == 403
    assert hours(balance(page)) == start - Decimal("0.25")
