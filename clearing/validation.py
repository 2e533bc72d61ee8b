"""Validation of clearing input: the list of what is wrong, as values, with what it concerns."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from operator import eq

from clearing.columns import Columns
from clearing.model import CreditLine, Obligation, ObligationError, PolicyError

# The solver counts in signed 64-bit integers and, with credit, weighs debts 3 and credit 1,
# so every cost it sums stays below 5 * 2**60 < 2**63.
MAX_TOTAL = 2**60

_ISO_DATE = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")


def validate_obligations(obligations: Sequence[Obligation]) -> list[ObligationError]:
    """Everything wrong with `obligations`, in input order; empty when they can be cleared."""
    return find_errors(obligations, Columns.of(obligations))


def find_errors(obligations: Sequence[Obligation], columns: Columns) -> list[ObligationError]:
    """`validate_obligations` for a caller that already holds the columns."""
    if _obviously_valid(columns):
        return []
    errors: list[ObligationError] = []
    first_index: dict[str, int] = {}
    running_total = 0
    for index, obligation in enumerate(obligations):
        for code, message in _row_problems(obligation):
            errors.append(ObligationError(index, obligation, code, message))
        if isinstance(obligation.id, str):
            seen = first_index.setdefault(obligation.id, index)
            if seen != index:
                message = f"obligation id {obligation.id!r} is also used at position {seen}"
                errors.append(ObligationError(index, obligation, "duplicate_id", message))
        if _is_amount(obligation.amount) and running_total <= MAX_TOTAL:
            running_total += obligation.amount
            if running_total > MAX_TOTAL:  # reported once, on the row that crosses the limit
                message = f"the total of all obligations exceeds {MAX_TOTAL} smallest units"
                errors.append(ObligationError(index, obligation, "total_too_large", message))
    return errors


def validate_policy(credit: Mapping[str, CreditLine]) -> list[PolicyError]:
    errors: list[PolicyError] = []
    for participant in sorted(credit):
        line = credit[participant]
        for label, value in (("pay", line.pay_headroom), ("receive", line.receive_headroom)):
            if not _is_amount(value) or value < 0:
                message = f"{participant!r}: {label} headroom must be an integer ≥ 0, not {value!r}"
                errors.append(PolicyError(participant, "bad_headroom", message))
    return errors


def _is_amount(value: object) -> bool:
    # bool is an int subclass; True is not an amount.
    return type(value) is int


def _row_problems(obligation: Obligation) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not isinstance(obligation.id, str) or obligation.id == "":
        problems.append(("empty_id", "the obligation id is empty or not a string"))
    if not _is_name(obligation.debtor):
        problems.append(("empty_name", "the debtor is empty or not a string"))
    if not _is_name(obligation.creditor):
        problems.append(("empty_name", "the creditor is empty or not a string"))
    if _is_name(obligation.debtor) and obligation.debtor == obligation.creditor:
        problems.append(("self_obligation", f"{obligation.debtor!r} cannot owe itself"))
    if not _is_amount(obligation.amount):
        problems.append(("amount_not_integer", f"amount {obligation.amount!r} is not an integer"))
    elif obligation.amount <= 0:
        problems.append(("non_positive_amount", f"amount {obligation.amount} is not positive"))
    if obligation.due_on is not None and not _is_due_date(obligation.due_on):
        message = f"due date {obligation.due_on!r} is not an ISO date (YYYY-MM-DD)"
        problems.append(("bad_due_on", message))
    return problems


def _is_name(value: object) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_due_date(value: object) -> bool:
    return isinstance(value, str) and _ISO_DATE.fullmatch(value) is not None


def _obviously_valid(columns: Columns) -> bool:
    """The same rules checked column-wise with C-speed builtins, so a valid million-row input
    costs a fraction of a second; any doubt falls back to the row-by-row pass for messages."""
    ids, amounts, names = columns.ids, columns.amounts, columns.participants
    if names is None:
        return False
    try:
        unique_ids = set(ids)
        due_dates = set(columns.due_on)
    except TypeError:  # something unhashable: certainly not a string
        return False
    due_dates.discard(None)
    return (
        set(map(type, unique_ids)).union(map(type, names)) <= {str}
        and set(map(type, amounts)) <= {int}
        and (not amounts or min(amounts) > 0)
        and sum(amounts) <= MAX_TOTAL
        and len(unique_ids) == len(ids)
        and "" not in unique_ids
        # str.strip returns "" (falsy) for empty and blank names
        and all(map(str.strip, names))
        and not any(map(eq, columns.debtors, columns.creditors))
        and all(map(_is_due_date, due_dates))
    )
