"""The web app's pure helpers (no browser): hours as people write them, limits, plain-language
errors, CSV cells, the network picture."""

from __future__ import annotations

from datetime import date

from api.web.forms import FormErrors, explain, parse_day, parse_hours, parse_limit
from api.web.member import csv_cell
from api.web.network import network_svg
from api.web.views import Entry, find_entry
from ledger.errors import DomainError, Problem


def test_hours_as_people_write_them() -> None:
    errors = FormErrors()
    assert parse_hours("1.5", scale=2, errors=errors) == 150
    assert parse_hours("1,5", scale=2, errors=errors) == 150
    assert parse_hours("1:30", scale=2, errors=errors) == 150
    assert parse_hours("0:20", scale=2, errors=errors) == 33
    assert not errors
    for bad in ("", "lots", "1:75", "-2", "0", "1.234", "1e3"):
        errors = FormErrors()
        assert parse_hours(bad, scale=2, errors=errors) is None, bad
        assert "hours" in errors.fields, bad


def test_limits_and_dates() -> None:
    errors = FormErrors()
    assert parse_limit("20", scale=2, errors=errors, name="min_balance", negative=True) == -2000
    assert parse_limit("\u221220", scale=2, errors=errors, name="min_balance", negative=True) == -2000
    assert parse_limit("", scale=2, errors=errors, name="max_balance", negative=False) is None
    assert not errors
    assert parse_limit("-5", scale=2, errors=errors, name="max_balance", negative=False) is None
    assert "max_balance" in errors.fields
    today = date(2026, 11, 25)
    assert parse_day("", today=today, errors=errors) == today
    assert parse_day("2026-12-01", today=today, errors=errors) is None
    assert errors.fields["date"] == "The exchange cannot be in the future"


def test_domain_errors_become_sentences_next_to_the_field() -> None:
    exc = DomainError.from_problems(
        [Problem("insufficient_credit", "this would take the payer below its credit limit", "amount")]
    )
    errors = explain(exc, FormErrors(), words={"payer": "you"})
    assert errors.fields == {
        "hours": "That is more than you can spend right now (it would go below the spending limit)."
    }
    unknown = explain(DomainError("something_new", "the ledger said no"), FormErrors())
    assert unknown.general == ["The ledger said no"]


def test_member_names_resolve_only_when_unambiguous() -> None:
    entries = [
        Entry(3, "Ana Souza", "Ana Souza", "member", "active"),
        Entry(7, "Sam Lee (no. 7)", "Sam Lee", "member", "active"),
        Entry(8, "Sam Lee (no. 8)", "Sam Lee", "member", "active"),
    ]
    assert find_entry(entries, "  ana   souza ") == entries[0]
    assert find_entry(entries, "Sam Lee") is None
    assert find_entry(entries, "Sam Lee (no. 8)") == entries[2]


def test_csv_cells_never_start_a_formula() -> None:
    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_cell("@sum") == "'@sum"
    assert csv_cell("fixed a tap") == "fixed a tap"
    assert csv_cell(None) == ""


def test_network_picture_escapes_names_and_scales_widths() -> None:
    svg = network_svg(
        {("a<b", "farm"): 100, ("farm", "a<b"): 0},
        ["a<b", "farm"],
        scale=2,
        widest=100,
        title="Before",
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "a&lt;b owes farm 1.00" in svg and "a<b" not in svg
    assert svg.count("marker-end=") == 1  # the zero debt is not drawn
