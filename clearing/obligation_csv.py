"""Reading an obligations CSV for import (standard library and exact amounts only).

The clearing file format (`id,debtor,creditor,amount`, or `debtor,creditor,amount` with ids
the 1-based row numbers) plus optional `due_on` (YYYY-MM-DD) and `reference` columns, in any
order. Debtor and creditor are co-op slugs; amounts are decimal strings in the federation unit.
A bad header refuses the whole file; a bad row is reported with its line and the rest go on.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date

from ledger.amounts import AmountError, parse_amount

REQUIRED = ("debtor", "creditor", "amount")
OPTIONAL = ("id", "due_on", "reference")
MAX_EXTERNAL_ID = 200
MAX_REFERENCE = 200
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class CsvHeaderError(ValueError):
    """The file cannot be read at all: no header, unknown or missing columns."""


@dataclass(frozen=True, slots=True)
class ObligationInput:
    external_id: str
    debtor: str
    creditor: str
    amount: int
    due_on: date | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    external_id: str | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ParsedRow:
    line: int
    obligation: ObligationInput


def field_problems(
    *, external_id: str, debtor: str, creditor: str, reference: str | None
) -> list[tuple[str, str, str]]:
    """(code, message, field) for what is wrong with an obligation's text fields."""
    problems: list[tuple[str, str, str]] = []
    if not external_id.strip() or len(external_id) > MAX_EXTERNAL_ID or not external_id.isprintable():
        problems.append(
            (
                "validation_failed",
                f"external_id must be 1 to {MAX_EXTERNAL_ID} printable characters",
                "external_id",
            )
        )
    if debtor == creditor:
        problems.append(("validation_failed", "a co-op cannot owe itself", "creditor"))
    if reference is not None and len(reference) > MAX_REFERENCE:
        problems.append(
            (
                "validation_failed",
                f"reference is longer than {MAX_REFERENCE} characters",
                "reference",
            )
        )
    return problems


def parse_obligations_csv(text: str, *, scale: int) -> tuple[list[ParsedRow], list[RowProblem]]:
    """Rows that could be read, and the problems of those that could not (by file line)."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvHeaderError("the file is empty; the first line must be a header") from None
    except csv.Error as exc:
        raise CsvHeaderError(f"line 1: {exc}") from None
    columns = [name.strip() for name in header]
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
    missing = [c for c in REQUIRED if c not in columns]
    if unknown or missing or len(set(columns)) != len(columns):
        raise CsvHeaderError(
            "line 1: the header must name debtor, creditor and amount, optionally id, due_on "
            f"and reference, each once (got {','.join(columns)[:200]!r})"
        )
    position = {name: i for i, name in enumerate(columns)}
    rows: list[ParsedRow] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    row_number = 0
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(RowProblem(line, None, "validation_failed", f"line {line}: {exc}"))
            break
        if not fields or fields == [""]:
            continue  # blank lines carry nothing
        row_number += 1
        parsed = _row(fields, position, line=line, row_number=row_number, scale=scale)
        if isinstance(parsed, RowProblem):
            problems.append(parsed)
            continue
        first = seen.setdefault(parsed.obligation.external_id, line)
        if first != line:
            message = f"line {line}: id {parsed.obligation.external_id!r} is also used on line {first}"
            problems.append(RowProblem(line, parsed.obligation.external_id, "duplicate_id", message))
            continue
        rows.append(parsed)
    return rows, problems


def _row(
    fields: list[str], position: dict[str, int], *, line: int, row_number: int, scale: int
) -> ParsedRow | RowProblem:
    def get(name: str) -> str | None:
        return fields[position[name]].strip() if name in position else None

    external_id = get("id")
    if external_id is None:
        external_id = str(row_number)
    if len(fields) != len(position):
        return RowProblem(
            line,
            external_id,
            "validation_failed",
            f"line {line}: {len(fields)} fields, the header has {len(position)}",
        )
    debtor, creditor = get("debtor") or "", get("creditor") or ""
    reference = get("reference") or None
    for code, message, _field in field_problems(
        external_id=external_id, debtor=debtor, creditor=creditor, reference=reference
    ):
        return RowProblem(line, external_id, code, f"line {line}: {message}")
    try:
        amount = parse_amount(get("amount"), scale=scale)
    except AmountError as exc:
        return RowProblem(line, external_id, "invalid_amount", f"line {line}: {exc}")
    if amount <= 0:
        return RowProblem(
            line,
            external_id,
            "invalid_amount",
            f"line {line}: the amount must be greater than zero",
        )
    due_text = get("due_on") or None
    due_on = None
    if due_text is not None:
        try:
            if not _ISO_DATE.fullmatch(due_text):
                raise ValueError(due_text)
            due_on = date.fromisoformat(due_text)
        except ValueError:
            return RowProblem(
                line,
                external_id,
                "validation_failed",
                f"line {line}: due_on {due_text[:40]!r} is not a date (YYYY-MM-DD)",
            )
    return ParsedRow(line, ObligationInput(external_id, debtor, creditor, amount, due_on, reference))
