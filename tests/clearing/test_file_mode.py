"""`commons clear FILE.csv`: the file format, bad lines, atomic outputs and the summary."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from clearing.cli import clear_command
from clearing.fileio import ObligationFileError, _format_column, _parse_amount, read_obligations
from ledger.amounts import AmountError, format_amount

REPO = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = [
    "obligations",
    "participants",
    "total",
    "net_internal_debt",
    "setoff",
    "remainder",
    "setoff_fraction",
    "seconds",
]


def commons() -> typer.Typer:
    """The command registered the way the main CLI registers it."""
    app = typer.Typer()
    app.command("clear")(clear_command)

    @app.callback()
    def main() -> None:  # a group, so `clear` is a subcommand as in `commons clear`
        """commons"""

    return app


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(commons(), ["clear", *map(str, args)])


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


TRIANGLE = "id,debtor,creditor,amount\nt1,A,B,5.00\nt2,B,C,9\nt3,C,A,4.5\nt4,C,D,1.25\n"


def test_clears_a_file_and_writes_result_and_summary(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", TRIANGLE)
    result = run(source, "-o", tmp_path / "out.csv", "--summary", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    assert rows(tmp_path / "out.csv") == [
        {
            "id": "t1",
            "debtor": "A",
            "creditor": "B",
            "amount": "5.00",
            "setoff": "4.50",
            "remainder": "0.50",
        },
        {
            "id": "t2",
            "debtor": "B",
            "creditor": "C",
            "amount": "9.00",
            "setoff": "4.50",
            "remainder": "4.50",
        },
        {
            "id": "t3",
            "debtor": "C",
            "creditor": "A",
            "amount": "4.50",
            "setoff": "4.50",
            "remainder": "0.00",
        },
        {
            "id": "t4",
            "debtor": "C",
            "creditor": "D",
            "amount": "1.25",
            "setoff": "0.00",
            "remainder": "1.25",
        },
    ]
    figures = json.loads((tmp_path / "s.json").read_text())
    assert list(figures) == SUMMARY_KEYS
    assert {k: v for k, v in figures.items() if k != "seconds"} == {
        "obligations": 4,
        "participants": 4,
        "total": "19.75",
        "net_internal_debt": "4.50",  # C is owed 3.25 net, D 1.25
        "setoff": "13.50",
        "remainder": "6.25",
        "setoff_fraction": "0.6835",
    }
    assert isinstance(figures["seconds"], float | int)
    # Not a terminal: the summary goes to stdout as JSON too.
    assert json.loads(result.stdout)["setoff"] == "13.50"


def test_without_output_only_the_summary_is_printed(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", TRIANGLE)
    result = run(source)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["setoff"] == "13.50"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_ids_are_row_numbers_without_an_id_column(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", "debtor,creditor,amount\nA,B,3\n\nB,A,2\n")
    assert run(source, "-o", tmp_path / "out.csv").exit_code == 0
    assert [(r["id"], r["setoff"]) for r in rows(tmp_path / "out.csv")] == [
        ("1", "2.00"),
        ("2", "2.00"),
    ]


def test_due_on_orders_the_allocation_and_reference_is_ignored(tmp_path: Path) -> None:
    source = write(
        tmp_path / "in.csv",
        "Reference, ID ,debtor,creditor,amount,due_on\n"
        "inv 7,a1,A,B,10,2026-03-01\n"
        "inv 8,a2,A,B,10,\n"
        "inv 9,a3,A,B,10,2026-01-01\n"
        "inv 10,b1,B,A,15,\n",
    )
    assert run(source, "-o", tmp_path / "out.csv").exit_code == 0
    setoffs = {r["id"]: r["setoff"] for r in rows(tmp_path / "out.csv")}
    assert setoffs == {"a1": "5.00", "a2": "0.00", "a3": "10.00", "b1": "15.00"}


@pytest.mark.parametrize(
    ("scale", "amounts", "expected"),
    [
        (0, ("7", "3"), ("7", "3", "3", "3")),
        (3, ("7.5", "3.125"), ("7.500", "3.125", "3.125", "3.125")),
    ],
)
def test_scale(tmp_path: Path, scale: int, amounts: tuple[str, str], expected: tuple[str, ...]) -> None:
    source = write(
        tmp_path / "in.csv", f"id,debtor,creditor,amount\n1,A,B,{amounts[0]}\n2,B,A,{amounts[1]}\n"
    )
    assert run(source, "-o", tmp_path / "out.csv", "--scale", str(scale)).exit_code == 0
    out = rows(tmp_path / "out.csv")
    assert (out[0]["amount"], out[1]["amount"], out[0]["setoff"], out[1]["setoff"]) == expected


def test_names_that_need_quotes_survive(tmp_path: Path) -> None:
    source = write(
        tmp_path / "in.csv",
        'id,debtor,creditor,amount\n1,"Bakery, The",Farm,2\n2,Farm,"Bakery, The",2\n',
    )
    assert run(source, "-o", tmp_path / "out.csv").exit_code == 0
    assert [r["debtor"] for r in rows(tmp_path / "out.csv")] == ["Bakery, The", "Farm"]


BAD_AMOUNTS = [
    "1.001",
    "1e3",
    "NaN",
    "-1.00",
    "0",
    "0.00",
    " 1.00",
    "+1",
    "1.",
    ".5",
    "",
    "١٢",
    "1_000",
    "inf",
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_bad_amounts_name_the_line_and_write_nothing(tmp_path: Path, amount: str) -> None:
    source = write(tmp_path / "in.csv", f'id,debtor,creditor,amount\n1,A,B,1.00\n2,B,A,"{amount}"\n')
    output = write(tmp_path / "out.csv", "previous result\n")
    result = run(source, "-o", output, "--summary", tmp_path / "s.json")
    assert result.exit_code == 2
    assert "in.csv:3: " in result.stderr
    assert output.read_text() == "previous result\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("1,A,B,1\n2,A,A,1\n", 3, "cannot owe itself"),
        ("1,A,B,1\n1,B,A,1\n", 3, "also used"),
        ("1,A,B,1\n2,,A,1\n", 3, "debtor is empty"),
        ("1,A,B,1\n2,A,B\n", 3, "expected 4 fields, found 3"),
        ('1,"A\nA",B,1\n2,A,A,1\n', 4, "cannot owe itself"),  # a quoted field spans lines 2-3
        ("1,A,B,1\n2,A,B,1,x\n", 3, "found 5"),
        ("1,A,B,1,\n", 2, "found 5"),
    ],
)
def test_bad_rows_name_their_physical_line(tmp_path: Path, body: str, line: int, words: str) -> None:
    source = write(tmp_path / "in.csv", "id,debtor,creditor,amount\n" + body)
    result = run(source, "-o", tmp_path / "out.csv")
    assert result.exit_code == 2
    assert f"in.csv:{line}: " in result.stderr
    assert words in result.stderr
    assert not (tmp_path / "out.csv").exists()


def test_many_bad_lines_are_listed_up_to_a_limit(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", "debtor,creditor,amount\n" + "A,B,-1\n" * 30)
    result = run(source)
    assert result.exit_code == 2
    assert "in.csv:2: " in result.stderr and "in.csv:21: " in result.stderr
    assert "in.csv:22: " not in result.stderr
    assert "and 10 more" in result.stderr


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("id,debtor,amount", "missing column 'creditor'"),
        ("id,debtor,creditor,amount,memo", "unknown column 'memo'"),
        ("id,debtor,creditor,amount,amount", "appears twice"),
    ],
)
def test_bad_header_is_line_one(tmp_path: Path, header: str, words: str) -> None:
    result = run(write(tmp_path / "in.csv", header + "\n"))
    assert result.exit_code == 2
    assert "in.csv:1: " in result.stderr and words in result.stderr


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    assert run(write(tmp_path / "empty.csv", "")).exit_code == 2
    result = run(write(tmp_path / "in.csv", "id,debtor,creditor,amount\n"), "-o", tmp_path / "out.csv")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["setoff_fraction"] == "0.0000"
    assert (tmp_path / "out.csv").read_text() == "id,debtor,creditor,amount,setoff,remainder\n"


@pytest.mark.parametrize(
    "args",
    [
        ("missing.csv",),
        ("in.csv", "--scale", "7"),
        ("in.csv", "-o", "no/such/dir/out.csv"),
        ("in.csv", "-o", "in.csv"),
    ],
)
def test_bad_arguments_exit_2_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "in.csv", TRIANGLE)
    result = run(*args)
    assert result.exit_code == 2
    assert (tmp_path / "in.csv").read_text() == TRIANGLE


def test_python_dash_m_clearing(tmp_path: Path) -> None:
    source = write(tmp_path / "in.csv", TRIANGLE)
    done = subprocess.run(
        [sys.executable, "-m", "clearing", str(source), "--summary", str(tmp_path / "s.json")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress display when stderr is not a terminal
    assert json.loads(done.stdout)["setoff"] == "13.50"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="0123456789.-+eE ,_\n", max_size=8) | st.sampled_from(BAD_AMOUNTS))
def test_fast_and_row_by_row_reading_accept_the_same_amounts(tmp_path: Path, amount: str) -> None:
    """The column-wise reader never accepts what the row-by-row checks would refuse."""
    source = tmp_path / "in.csv"
    with source.open("w", newline="", encoding="utf-8") as stream:
        csv.writer(stream).writerows([["debtor", "creditor", "amount"], ["A", "B", "1"], ["B", "A", amount]])
    try:
        expected: int | None = _parse_amount(amount, 2)
    except AmountError:
        expected = None
    try:
        read = read_obligations(source, scale=2)
    except ObligationFileError as exc:
        assert expected is None
        assert [e.line for e in exc.errors] == [3]
    else:
        assert [o.amount for o in read] == [100, expected]


@pytest.mark.parametrize("scale", [0, 1, 2, 6])
def test_column_formatting_matches_format_amount(scale: int) -> None:
    values = [1, 7, 10, 99, 100, 101, 123_456_789, 10**15]
    assert _format_column(values, scale) == [format_amount(v, scale=scale) for v in values]
