"""Reading an obligations CSV: the clearing file format plus due_on and reference."""

from __future__ import annotations

from datetime import date

import pytest

from clearing.obligation_csv import CsvHeaderError, ObligationInput, parse_obligations_csv


def test_with_ids_and_optional_columns_in_any_order() -> None:
    text = (
        "\ufeffreference,amount,creditor,debtor,id,due_on\n"
        "flour,1.50,farm,bakery,inv-1,2026-11-30\n"
        ",2,energy,farm,inv-2,\n"
    )
    rows, problems = parse_obligations_csv(text, scale=2)
    assert problems == []
    assert [(r.line, r.obligation) for r in rows] == [
        (2, ObligationInput("inv-1", "bakery", "farm", 150, date(2026, 11, 30), "flour")),
        (3, ObligationInput("inv-2", "farm", "energy", 200, None, None)),
    ]


def test_without_ids_rows_are_numbered_and_blank_lines_skipped() -> None:
    rows, problems = parse_obligations_csv("debtor,creditor,amount\r\na,b,1\r\n\r\nb,c,2\r\n", scale=0)
    assert problems == []
    assert [(r.line, r.obligation.external_id, r.obligation.amount) for r in rows] == [
        (2, "1", 1),
        (4, "2", 2),
    ]


def test_bad_rows_are_reported_by_line() -> None:
    text = (
        "id,debtor,creditor,amount\nx,a,b,1.5\ny,a,b,1e3\nz,a,a,1\nw,a,b\n"
        '"v\nv",a,b,2\nx,b,a,1\n,a,b,1\nu,a,b,0\n'
    )
    rows, problems = parse_obligations_csv(text, scale=2)
    assert [r.obligation.external_id for r in rows] == ["x"]
    assert [(p.line, p.code) for p in problems] == [
        (3, "invalid_amount"),
        (4, "validation_failed"),
        (5, "validation_failed"),
        (6, "validation_failed"),  # an id must be printable; the quoted field spans lines 6-7
        (8, "duplicate_id"),
        (9, "validation_failed"),
        (10, "invalid_amount"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "debtor,creditor\n",
        "id,debtor,creditor,amount,colour\n",
        "debtor,debtor,creditor,amount\n",
    ],
)
def test_a_bad_header_refuses_the_file(text: str) -> None:
    with pytest.raises(CsvHeaderError):
        parse_obligations_csv(text, scale=2)
