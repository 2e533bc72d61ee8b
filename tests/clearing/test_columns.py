"""The columnar core: one algorithm behind `clear()` and file mode, exact in int64, and a CSV
reader that reads exactly what the `csv` module reads (or steps aside)."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from clearing.columns import Columns
from clearing.engine import ClearingInputError, Obligation, clear, clear_table
from clearing.fileio import _fast_table, _layout, _slow_obligations, read_table
from clearing.table import ObligationTable
from clearing.validation import MAX_TOTAL, exact_sum
from tests.clearing.strategies import obligation_lists
from tests.clearing.test_file_mode import commons

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None)


@PROPERTY_SETTINGS
@given(obligation_lists(), st.randoms(use_true_random=False))
def test_clear_and_clear_table_give_the_same_result(items: list[Obligation], rng: random.Random) -> None:
    expected = clear(items)
    rng.shuffle(items)
    result = clear_table(Columns.of(items).table())
    by_id = dict(zip((o.id for o in expected.obligations), expected.setoffs, strict=True))
    assert dict(zip(result.table.ids.tolist(), result.setoffs.tolist(), strict=True)) == by_id
    assert result.participants.reports() == expected.participants
    assert (result.total, result.total_setoff, result.net_internal_debt) == (
        expected.total,
        expected.total_setoff,
        expected.net_internal_debt,
    )
    assert result.setoffs.dtype == np.int64


def test_ids_are_ordered_as_strings_not_numbers() -> None:
    # A pair used in part: "10" comes before "9" (string order), so it is served first.
    items = [Obligation("9", "A", "B", 5), Obligation("10", "A", "B", 5), Obligation("x", "B", "A", 6)]
    assert clear(items).setoffs == (1, 5, 6)


def test_sums_never_wrap_around() -> None:
    assert exact_sum(np.array([2**62] * 8, dtype=np.int64)) == 2**65
    assert exact_sum(np.array([], dtype=np.int64)) == 0


@pytest.mark.parametrize("amount", [2**63, 2**64 + 5, MAX_TOTAL + 1])
def test_amounts_beyond_int64_are_errors_not_overflows(amount: int) -> None:
    with pytest.raises(ClearingInputError) as caught:
        clear([Obligation("1", "A", "B", amount), Obligation("2", "B", "A", 1)])
    assert [(e.index, e.code) for e in caught.value.errors] == [(0, "total_too_large")]


def test_a_total_beyond_the_exact_range_names_the_line_in_file_mode(tmp_path: Path) -> None:
    # 10**15 smallest units is the largest amount; 1,200 of them cross 2**60.
    source = tmp_path / "in.csv"
    body = "".join(f"{i},A,B,9999999999999.99\n" for i in range(1, 1201))
    source.write_text("id,debtor,creditor,amount\n" + body, encoding="utf-8")
    crossing = next(i for i in range(1, 1201) if i * (10**15 - 1) > MAX_TOTAL)
    output = tmp_path / "out.csv"
    result = CliRunner().invoke(commons(), ["clear", str(source), "-o", str(output)])
    assert result.exit_code == 2
    assert f"in.csv:{crossing + 1}: the total of all obligations exceeds" in result.stderr
    assert not output.exists()


def test_more_digits_than_int64_holds_is_refused_by_line(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,debtor,creditor,amount\n1,A,B,1\n2,B,A,9999999999999999.999999\n")
    result = CliRunner().invoke(commons(), ["clear", str(source), "--scale", "6"])
    assert result.exit_code == 2
    assert "in.csv:3: " in result.stderr


def test_a_line_of_spaces_is_named_like_any_short_row(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,debtor,creditor,amount\n1,A B,B,1\n \t\n2,B,A B,1\n")
    result = CliRunner().invoke(commons(), ["clear", str(source)])
    assert result.exit_code == 2
    assert "in.csv:3: expected 4 fields, found 1" in result.stderr


FIELD = st.text(alphabet='ab ,"\n\t\r', max_size=4) | st.sampled_from(["", "a", "b", '"a,b"'])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(FIELD, min_size=2, max_size=5), max_size=6), st.booleans())
def test_the_fast_reader_reads_what_the_csv_module_reads(
    tmp_path: Path, rows: list[list[str]], quote_all: bool
) -> None:
    """Whatever the C reader accepts, the row-by-row `csv` pass reads the same way."""
    stream = io.StringIO()
    writer = csv.writer(stream, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(["id", "debtor", "creditor", "amount"])
    for i, row in enumerate(rows):
        # A valid amount, so that only the layout of the line decides.
        writer.writerow([str(i), *row[:2], "1.50", *row[2:]] if len(row) <= 3 else row)
    text = stream.getvalue()
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8", newline="")
    layout = _layout(path, next(csv.reader(io.StringIO(text, newline=""))))
    fast = _fast_table(text.encode(), text, layout, 2)
    if fast is None:
        return
    obligations, errors = _slow_obligations(path, layout, 2)
    assert errors == []
    assert fast.obligations() == obligations


def test_quoted_fields_keep_the_fast_reader(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text('id,debtor,creditor,amount\n1,"Bakery, The",Farm,2.00\n2,Farm,"Bakery, The",2.00\n')
    table = read_table(path, scale=2)
    assert isinstance(table, ObligationTable)
    assert table.names.tolist() == ["Bakery, The", "Farm"]
    assert table.amounts.tolist() == [200, 200]
