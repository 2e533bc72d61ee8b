"""The clearing file format: obligations CSV in, result CSV and summary JSON out.

Input header `id,debtor,creditor,amount` (or `debtor,creditor,amount`: ids are then the 1-based
data row numbers), optionally with `due_on` (YYYY-MM-DD) and `reference` (ignored) columns, in
any order. Amounts are plain decimal strings with at most `scale` decimals ("12", "12.5",
"12.50"); signs, exponents, spaces, NaN and zero are refused. Fields are taken exactly as
written: "coop-a" and " coop-a" are different names, so stray spaces show up as errors or as
extra participants, never silently merged.

A million rows is the monthly scale, so valid files take a column-wise fast path; anything the
fast path doubts is re-read row by row to name each bad line.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import islice, repeat
from operator import attrgetter, itemgetter, methodcaller, sub
from pathlib import Path
from typing import Any, TextIO

from clearing.model import ClearingResult, Obligation, ObligationError
from ledger.amounts import ABSOLUTE_MAX_AMOUNT, MAX_SCALE, AmountError, format_amount, parse_amount

REQUIRED_COLUMNS = ("debtor", "creditor", "amount")
OPTIONAL_COLUMNS = ("id", "due_on", "reference")
OUTPUT_HEADER = ("id", "debtor", "creditor", "amount", "setoff", "remainder")
FRACTION_PLACES = 4  # setoff_fraction is a string rounded half-even to this many places
MAX_REPORTED_ERRORS = 20
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')  # what csv.writer (QUOTE_MINIMAL) would quote
PROGRESS_EVERY = 65536  # rows between progress reports: keeps the callback off the hot path
BATCH_ROWS = 65536

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class LineError:
    """A problem on 1-based physical `line` of the input file (1 is the header)."""

    line: int
    message: str


class ObligationFileError(Exception):
    """The file cannot be cleared; `errors` names every bad line found (in line order)."""

    def __init__(self, path: Path, errors: Sequence[LineError]) -> None:
        self.path = path
        self.errors = tuple(errors)
        super().__init__(self.describe())

    def describe(self, limit: int = MAX_REPORTED_ERRORS) -> str:
        shown = [f"{self.path}:{e.line}: {e.message}" for e in self.errors[:limit]]
        hidden = len(self.errors) - limit
        if hidden > 0:
            shown.append(f"… and {hidden} more")
        return "\n".join(shown)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each column sits in a row."""

    width: int
    id: int | None
    debtor: int
    creditor: int
    amount: int
    due_on: int | None


def check_scale(scale: int) -> None:
    if not 0 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be between 0 and {MAX_SCALE}, not {scale}")


def read_obligations(
    path: Path, *, scale: int, on_progress: ProgressCallback | None = None
) -> list[Obligation]:
    """All obligations of the file, in file order; raises ObligationFileError naming bad lines.

    `on_progress(bytes_read)` is called now and then while reading.
    """
    check_scale(scale)
    with _open_text(path, on_progress) as stream:
        reader = csv.reader(stream)
        layout = _layout(path, next(reader, None))
        obligations: list[Obligation] = []
        # In batches: only one batch of raw rows is alive at a time, which keeps the peak
        # memory down and the rows warm in cache while their columns are taken.
        for rows in iter(lambda: list(islice(reader, BATCH_ROWS)), []):
            blank_free = [row for row in rows if row]  # blank lines carry nothing
            batch = _fast_obligations(blank_free, layout, scale, numbered=len(obligations))
            if batch is None:
                break
            obligations += batch
        else:
            return obligations
    del obligations
    obligations, errors = _slow_obligations(path, layout, scale)
    if errors:
        raise ObligationFileError(path, errors)
    return obligations


def line_errors(path: Path, errors: Sequence[ObligationError]) -> list[LineError]:
    """Engine validation errors (by obligation position) as errors on file lines."""
    lines = _data_line_numbers(path)
    return [LineError(lines[e.index], e.message) for e in errors]


def write_result_csv(
    path: Path, result: ClearingResult, *, scale: int, on_progress: ProgressCallback | None = None
) -> None:
    """`id,debtor,creditor,amount,setoff,remainder`, all amounts at `scale`, atomically.

    `on_progress(rows_written)` is called now and then while writing.
    """
    rows = _result_rows(result, scale)
    # csv.writer inspects every field for quoting; when no id or name needs quotes (amounts
    # never do), joining is three times faster and writes the same bytes.
    plain = _NEEDS_QUOTES.search("".join(_texts(result))) is None
    with atomic_writer(path) as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(OUTPUT_HEADER)
        for written in range(0, len(result.obligations), PROGRESS_EVERY):
            chunk = islice(rows, PROGRESS_EVERY)
            if plain:
                stream.write("\n".join(map(",".join, chunk)) + "\n")
            else:
                writer.writerows(chunk)
            if on_progress is not None:
                on_progress(min(written + PROGRESS_EVERY, len(result.obligations)))


def summary_figures(result: ClearingResult, *, scale: int, seconds: float) -> dict[str, Any]:
    """The run in figures. Amounts are decimal strings at `scale`; `setoff_fraction` is
    setoff / total as a decimal string rounded half-even to FRACTION_PLACES places (exact
    integer arithmetic, no float); `seconds` is a number rounded to milliseconds."""
    return {
        "obligations": len(result.obligations),
        "participants": len(result.participants),
        "total": format_amount(result.total, scale=scale),
        "net_internal_debt": format_amount(result.net_internal_debt, scale=scale),
        "setoff": format_amount(result.total_setoff, scale=scale),
        "remainder": format_amount(result.total_remainder, scale=scale),
        "setoff_fraction": fraction(result.total_setoff, result.total),
        "seconds": round(seconds, 3),
    }


def fraction(part: int, whole: int) -> str:
    if whole == 0:
        return f"{0:.{FRACTION_PLACES}f}"
    exact = Decimal(part) / Decimal(whole)  # 28 significant digits: plenty before rounding
    return str(exact.quantize(Decimal(1).scaleb(-FRACTION_PLACES), rounding=ROUND_HALF_EVEN))


def write_summary_json(path: Path, figures: dict[str, Any]) -> None:
    with atomic_writer(path) as stream:
        json.dump(figures, stream, indent=2)
        stream.write("\n")


@contextmanager
def atomic_writer(path: Path) -> Iterator[TextIO]:
    """Write to a temporary file beside `path`; rename it over `path` only on success, so a
    failed run never leaves a half-written or stale-looking result behind."""
    directory = path.resolve().parent
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


# --- reading -------------------------------------------------------------------------------


@contextmanager
def _open_text(path: Path, on_progress: ProgressCallback | None) -> Iterator[Iterable[str]]:
    # utf-8-sig: spreadsheets often start CSV files with a byte-order mark.
    with open(path, encoding="utf-8-sig", newline="") as stream:
        yield stream if on_progress is None else _reporting_lines(stream, on_progress)


def _reporting_lines(stream: TextIO, on_progress: ProgressCallback) -> Iterator[str]:
    """The stream's lines, telling `on_progress` now and then how many bytes were read."""
    raw = stream.buffer
    for count, line in enumerate(stream, 1):
        if count % PROGRESS_EVERY == 0:
            on_progress(raw.tell())
        yield line
    on_progress(raw.tell())


def _layout(path: Path, header: list[str] | None) -> _Layout:
    if header is None:
        raise ObligationFileError(path, [LineError(1, "the file is empty; expected a header")])
    names = [name.strip().lower() for name in header]
    problems = [f"unknown column {n!r}" for n in names if n not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)]
    problems += [f"column {n!r} appears twice" for n in sorted(set(names)) if names.count(n) > 1]
    problems += [f"missing column {n!r}" for n in REQUIRED_COLUMNS if n not in names]
    if problems:
        expected = "expected id,debtor,creditor,amount[,due_on][,reference]"
        raise ObligationFileError(path, [LineError(1, f"{'; '.join(problems)} ({expected})")])
    position = {name: i for i, name in enumerate(names)}
    return _Layout(
        width=len(names),
        id=position.get("id"),
        debtor=position["debtor"],
        creditor=position["creditor"],
        amount=position["amount"],
        due_on=position.get("due_on"),
    )


def _amount_pattern(scale: int, *, exact: bool) -> re.Pattern[str]:
    """Amounts joined by newlines. Possessive quantifiers: no backtracking over 10 MB."""
    fraction_part = (
        "" if scale == 0 else (rf"\.[0-9]{{{scale}}}" if exact else rf"(?:\.[0-9]{{1,{scale}}})?+")
    )
    one = rf"[0-9]{{1,16}}+{fraction_part}"
    return re.compile(rf"(?:{one}\n)*+{one}")


def _fast_obligations(
    rows: list[list[str]], layout: _Layout, scale: int, *, numbered: int
) -> list[Obligation] | None:
    """Column-wise parse at C speed; None when any row might be wrong (then the row-by-row
    pass names the lines). Accepts exactly what `_parse_amount` accepts. `numbered`: data
    rows before these (their ids start after it when the file has no id column)."""
    if not rows:
        return []
    if set(map(len, rows)) != {layout.width}:
        return None
    texts = list(map(itemgetter(layout.amount), rows))
    joined = "\n".join(texts)
    # A quoted field may itself hold a newline; then the joined text has extra lines.
    if joined.count("\n") != len(texts) - 1 or not _amount_pattern(scale, exact=False).fullmatch(joined):
        return None
    if scale and _amount_pattern(scale, exact=True).fullmatch(joined):
        amounts = list(map(int, map(methodcaller("replace", ".", ""), texts)))
    else:
        amounts = list(map(_units, texts, repeat(scale)))
    del joined, texts
    if min(amounts) <= 0 or max(amounts) > ABSOLUTE_MAX_AMOUNT:
        return None
    ids = (
        list(map(itemgetter(layout.id), rows))
        if layout.id is not None
        else list(map(str, range(numbered + 1, numbered + len(rows) + 1)))
    )
    # Not interned: one string per participant would save memory after reading, but the
    # peak is reached while the rows are held anyway, and interning costs more time than
    # the identity hits in later lookups win back (measured).
    debtors = list(map(itemgetter(layout.debtor), rows))
    creditors = list(map(itemgetter(layout.creditor), rows))
    if layout.due_on is None:
        return list(map(Obligation, ids, debtors, creditors, amounts))
    due = [text or None for text in map(itemgetter(layout.due_on), rows)]
    return list(map(Obligation, ids, debtors, creditors, amounts, due))


def _units(text: str, scale: int) -> int:
    whole, _, fraction_part = text.partition(".")
    return int(whole + fraction_part.ljust(scale, "0"))


def _parse_amount(text: str, scale: int) -> int:
    """One amount, with a message that says what is wrong with it."""
    if not text.isascii() or text != text.strip():
        raise AmountError(f'{text[:40]!r} is not a plain decimal amount such as "1.50"')
    value = parse_amount(text, scale=scale)
    if value == 0:
        raise AmountError(f"{text!r} is zero; obligations must be positive")
    return value


def _slow_obligations(path: Path, layout: _Layout, scale: int) -> tuple[list[Obligation], list[LineError]]:
    """The row-by-row pass: each data line parsed on its own, errors with its line number."""
    obligations: list[Obligation] = []
    errors: list[LineError] = []
    for line, row in _data_rows(path):
        if len(row) != layout.width:
            errors.append(LineError(line, f"expected {layout.width} fields, found {len(row)}"))
            continue
        try:
            amount = _parse_amount(row[layout.amount], scale)
        except AmountError as exc:
            errors.append(LineError(line, str(exc)))
            continue
        ident = str(len(obligations) + 1) if layout.id is None else row[layout.id]
        due = None if layout.due_on is None else row[layout.due_on] or None
        debtor, creditor = row[layout.debtor], row[layout.creditor]
        obligations.append(Obligation(ident, debtor, creditor, amount, due))
    return obligations, errors


def _data_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, row) for each non-blank data row; a quoted field may span
    several physical lines, so the line is counted, not derived from the row's position."""
    with _open_text(path, None) as stream:
        reader = csv.reader(stream)
        next(reader, None)
        end_of_previous = reader.line_num
        for row in reader:
            start, end_of_previous = end_of_previous + 1, reader.line_num
            if row:
                yield start, row


def _data_line_numbers(path: Path) -> list[int]:
    """Line where each data row starts."""
    return [line for line, _ in _data_rows(path)]


# --- writing -------------------------------------------------------------------------------


def _result_rows(result: ClearingResult, scale: int) -> Iterator[tuple[str, ...]]:
    """Output rows, built column by column (a million rows per run)."""
    obligations = result.obligations
    amounts = list(map(attrgetter("amount"), obligations))
    return zip(
        map(attrgetter("id"), obligations),
        map(attrgetter("debtor"), obligations),
        map(attrgetter("creditor"), obligations),
        _format_column(amounts, scale),
        _format_column(result.setoffs, scale),
        _format_column(map(sub, amounts, result.setoffs), scale),
        strict=True,
    )


def _texts(result: ClearingResult) -> Iterator[str]:
    """Every id and each distinct participant name."""
    yield from map(attrgetter("id"), result.obligations)
    yield from (participant.name for participant in result.participants)


def _format_column(amounts: Iterable[int], scale: int) -> list[str]:
    """`format_amount` for a column of nonnegative amounts, at C speed."""
    if scale == 0:
        return list(map(str, amounts))
    template = f"%d.%0{scale}d"
    return list(map(template.__mod__, map(divmod, amounts, repeat(10**scale))))
