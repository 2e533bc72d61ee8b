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
import io
import json
import os
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import repeat
from operator import add, attrgetter
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from clearing.model import Obligation, ObligationError
from clearing.table import Ints, Objects, ObligationTable, TableResult
from ledger.amounts import ABSOLUTE_MAX_AMOUNT, MAX_SCALE, AmountError, format_amount, parse_amount

REQUIRED_COLUMNS = ("debtor", "creditor", "amount")
OPTIONAL_COLUMNS = ("id", "due_on", "reference")
OUTPUT_HEADER = ("id", "debtor", "creditor", "amount", "setoff", "remainder")
FRACTION_PLACES = 4  # setoff_fraction is a string rounded half-even to this many places
MAX_REPORTED_ERRORS = 20
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')  # what csv.writer (QUOTE_MINIMAL) would quote
_BLANKS = (b" ", b"\t", b"\f", b"\v")
# After a line break: a leading ^| alternative makes the search five times slower.
_BLANKISH_LINE = re.compile(rb"[\r\n][ \t\f\v]+(?:[\r\n]|\Z)")
PROGRESS_EVERY = 65536  # rows between progress reports: keeps the callback off the hot path

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


def read_table(path: Path, *, scale: int, on_progress: ProgressCallback | None = None) -> ObligationTable:
    """All obligations of the file as columns, in file order; raises ObligationFileError
    naming bad lines.

    `on_progress(bytes_read)` is called as the reading goes on.
    """
    check_scale(scale)
    data = path.read_bytes()
    if on_progress is not None:
        on_progress(len(data))
    text = data.decode("utf-8-sig")  # spreadsheets often start CSV files with a byte-order mark
    layout = _layout(path, next(csv.reader(io.StringIO(text, newline="")), None))
    table = _fast_table(data, text, layout, scale)
    if table is not None:
        return table
    obligations, errors = _slow_obligations(path, layout, scale)
    if errors:
        raise ObligationFileError(path, errors)
    ids, debtors, creditors, amounts = (
        list(map(attrgetter(name), obligations)) for name in ("id", "debtor", "creditor", "amount")
    )
    due = list(map(attrgetter("due_on"), obligations)) if layout.due_on is not None else None
    return ObligationTable.of(ids, debtors, creditors, amounts, due)


def read_obligations(
    path: Path, *, scale: int, on_progress: ProgressCallback | None = None
) -> list[Obligation]:
    """`read_table` as `Obligation` values (for `clear()` and tests)."""
    return read_table(path, scale=scale, on_progress=on_progress).obligations()


def line_errors(path: Path, errors: Sequence[ObligationError]) -> list[LineError]:
    """Engine validation errors (by obligation position) as errors on file lines."""
    lines = _data_line_numbers(path)
    return [LineError(lines[e.index], e.message) for e in errors]


def write_result_csv(
    path: Path, result: TableResult, *, scale: int, on_progress: ProgressCallback | None = None
) -> None:
    """`id,debtor,creditor,amount,setoff,remainder`, all amounts at `scale`, atomically.

    `on_progress(rows_written)` is called now and then while writing.
    """
    table = result.table
    ids = table.ids.tolist()
    names = table.names.tolist()
    # csv.writer inspects every field for quoting; when no id or name needs quotes (amounts
    # never do), joining is three times faster and writes the same bytes.
    plain = _NEEDS_QUOTES.search("".join(ids) + "".join(names)) is None
    amount_texts = _objects_column(table.amounts, scale)
    columns = (
        ids,
        table.names[table.debtors].tolist(),
        table.names[table.creditors].tolist(),
        amount_texts.tolist(),
        _part_column(result.setoffs, table.amounts, amount_texts, scale),
        _part_column(result.remainders(), table.amounts, amount_texts, scale),
    )
    with atomic_writer(path) as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(OUTPUT_HEADER)
        # Without a progress display the rows go out in one piece (slicing costs copies).
        step = PROGRESS_EVERY if on_progress is not None else max(len(ids), 1)
        for start in range(0, len(ids), step):
            chunk = columns if step >= len(ids) else [column[start : start + step] for column in columns]
            rows = zip(*chunk, strict=True)
            if plain:
                stream.write("\n".join(map(",".join, rows)) + "\n")
            else:
                writer.writerows(rows)
            if on_progress is not None:
                on_progress(min(start + step, len(ids)))


def summary_figures(result: TableResult, *, scale: int, seconds: float) -> dict[str, Any]:
    """The run in figures. Amounts are decimal strings at `scale`; `setoff_fraction` is
    setoff / total as a decimal string rounded half-even to FRACTION_PLACES places (exact
    integer arithmetic, no float); `seconds` is a number rounded to milliseconds."""
    return {
        "obligations": len(result.table),
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


def _fast_table(data: bytes, text: str, layout: _Layout, scale: int) -> ObligationTable | None:
    """Column-wise parse at C speed (pandas' C reader); None when any row might be wrong or
    read differently from the `csv` module (then the row-by-row pass names the lines).
    Accepts exactly what `_parse_amount` accepts."""
    frame = _frame(data, text, layout)
    if frame is None:
        return None
    columns = frame.columns
    amounts = _exact_amounts(frame[columns[layout.amount]].tolist(), scale)
    if amounts is None:
        return None
    debtors = frame[columns[layout.debtor]].to_numpy()
    creditors = frame[columns[layout.creditor]].to_numpy()
    # Participants: hashed once (pandas.factorize), then numbered in name order.
    codes, uniques = pd.factorize(np.concatenate([debtors, creditors]), sort=False)
    by_name = np.argsort(uniques, kind="stable")
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[by_name] = np.arange(len(uniques))
    codes = rank[codes]
    n = len(frame)
    if layout.id is not None:
        ids = frame[columns[layout.id]].to_numpy(dtype=object)
    else:
        ids = np.array(list(map(str, range(1, n + 1))), dtype=object)
    due: Objects | None = None
    if layout.due_on is not None:
        written = frame[columns[layout.due_on]].to_numpy(dtype=object)
        if np.any(written != ""):
            due = written.copy()
            due[written == ""] = None
    return ObligationTable(
        ids=ids,
        names=np.asarray(uniques, dtype=object)[by_name],
        debtors=codes[:n],
        creditors=codes[n:],
        amounts=amounts,
        due_on=due,
    )


def _frame(data: bytes, text: str, layout: _Layout) -> pd.DataFrame | None:
    """Every field as the `csv` module would read it, or None when unsure: every row must
    have the header's width (pandas fills short rows in silently and skips blank-looking
    lines that `csv` reads as one field, so both are checked here)."""
    try:
        with warnings.catch_warnings():
            # pandas warns where it drops or shifts fields; that is doubt, not data.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.BytesIO(data),
                encoding="utf-8-sig",
                dtype=object,
                na_filter=False,
                index_col=False,
                skip_blank_lines=True,
                engine="c",
            )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, pd.errors.ParserWarning, ValueError):
        return None
    if frame.shape[1] != layout.width:
        return None
    if b'"' not in data:
        # Unquoted: every line that is a row holds exactly width - 1 commas (pandas refuses
        # longer rows), and no line is only spaces or tabs.
        if data.count(b",") != (layout.width - 1) * (len(frame) + 1) or _blankish_line(data):
            return None
        return frame
    rows = filter(None, csv.reader(io.StringIO(text, newline="")))
    widths = Counter(map(len, rows))
    return frame if widths == {layout.width: len(frame) + 1} else None


def _blankish_line(data: bytes) -> bool:
    """Whether some line holds only spaces or tabs (usually there is no space or tab at all)."""
    if not any(blank in data for blank in _BLANKS):  # one byte each: a fast scan
        return False
    return _BLANKISH_LINE.search(b"\n" + data) is not None  # the first line too


def _exact_amounts(texts: list[str], scale: int) -> Ints | None:
    """The amounts in smallest units, exactly (never through a float), or None when any
    might be invalid: one regex over the joined column, then int64 parsing in C."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    joined = "\n".join(texts)
    # A field may itself hold a newline; then the joined text has extra lines.
    if joined.count("\n") != len(texts) - 1 or not _amount_pattern(scale, exact=False).fullmatch(joined):
        return None
    if scale and not _amount_pattern(scale, exact=True).fullmatch(joined):
        joined = "\n".join(map(str, map(_units, texts, repeat(scale))))
    digits = joined.replace(".", "")
    # At most 18 digits per amount: then every one fits in int64 (np.fromstring clamps).
    # The pattern allows 16 before the point, so only a scale above 2 needs the check.
    if scale > 2 and max(map(len, digits.split("\n"))) > 18:
        return None
    amounts: Ints = np.fromstring(digits, dtype=np.int64, sep="\n")
    if len(amounts) != len(texts) or amounts.min() <= 0 or amounts.max() > ABSOLUTE_MAX_AMOUNT:
        return None
    return amounts


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


def _objects_column(amounts: Ints, scale: int) -> Objects:
    texts = np.empty(len(amounts), dtype=object)
    texts[:] = _format_column(amounts, scale)
    return texts


def _part_column(parts: Ints, amounts: Ints, amount_texts: Objects, scale: int) -> list[str]:
    """`_format_column(parts)` for parts of `amounts` already formatted as `amount_texts`:
    most set-offs and remainders are 0 or the whole amount, so only the others are
    formatted."""
    texts = np.full(len(parts), format_amount(0, scale=scale), dtype=object)
    whole = parts == amounts
    texts[whole] = amount_texts[whole]
    other = np.flatnonzero(~whole & (parts != 0))
    texts[other] = _format_column(parts[other], scale)
    result: list[str] = texts.tolist()
    return result


def _format_column(amounts: Ints | Sequence[int], scale: int) -> list[str]:
    """`format_amount` for a column of nonnegative amounts, vectorised: the whole part
    through numpy's integer-to-text cast, the fraction looked up in a table of its digits."""
    values = np.asarray(amounts, dtype=np.int64)
    if scale == 0:
        return list(map(str, values.tolist()))
    unit = 10**scale
    if scale > 3:  # a lookup table of 10**scale fractions would be too large
        return list(map(f"%d.%0{scale}d".__mod__, map(divmod, values.tolist(), repeat(unit))))
    fractions = np.array([f".{i:0{scale}d}" for i in range(unit)], dtype=object)
    return list(map(add, map(str, (values // unit).tolist()), fractions[values % unit].tolist()))
