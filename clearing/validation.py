"""Validation of clearing input: the list of what is wrong, as values, with what it concerns."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from clearing.columns import Columns
from clearing.model import CreditLine, Obligation, ObligationError, PolicyError
from clearing.table import ObligationTable

# The solver and the columns count in signed 64-bit integers and, with credit, the solver
# weighs debts 3 and credit 1, so every cost it sums stays below 5 * 2**60 < 2**63.
MAX_TOTAL = 2**60

_ISO_DATE = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")


def validate_obligations(obligations: Sequence[Obligation]) -> list[ObligationError]:
    """Everything wrong with `obligations`, in input order; empty when they can be cleared."""
    return find_errors(obligations, Columns.of(obligations))


def find_errors(obligations: Sequence[Obligation], columns: Columns) -> list[ObligationError]:
    """`validate_obligations` for a caller that already holds the columns."""
    if plain_types(columns) and table_is_valid(columns.table()):
        return []
    return row_errors(obligations)


def table_errors(table: ObligationTable) -> list[ObligationError]:
    """`validate_obligations` for obligations held as columns (indexes are table rows)."""
    return [] if table_is_valid(table) else row_errors(table.obligations())


def plain_types(columns: Columns) -> bool:
    """Every id and name a str, every amount an int (not a bool) that fits the engine's
    int64 columns, every due date a str or None: what a table can be built from. Checked
    column-wise with C-speed builtins; False sends the caller to `row_errors`."""
    ids, amounts, names = columns.ids, columns.amounts, columns.participants
    if names is None:
        return False
    try:
        due_types = set(map(type, set(columns.due_on)))
    except TypeError:  # something unhashable: certainly not a string
        return False
    return (
        set(map(type, ids)).union(map(type, names)) <= {str}
        and set(map(type, amounts)) <= {int}
        and (not amounts or (min(amounts) >= -MAX_TOTAL and max(amounts) <= MAX_TOTAL))
        and due_types <= {str, type(None)}
    )


def table_is_valid(table: ObligationTable) -> bool:
    """Every rule of `row_errors`, column-wise: a valid million-row input costs a fraction of
    a second; any doubt falls back to the row-by-row pass for the messages."""
    if len(table) == 0:
        return True
    amounts = table.amounts
    ids = table.ids.tolist()
    names = table.names.tolist()
    unique_ids = set(ids)
    due_dates = set() if table.due_on is None else set(table.due_on.tolist())
    due_dates.discard(None)
    return (
        int(amounts.min()) > 0
        and exact_sum(amounts) <= MAX_TOTAL
        and not bool(np.any(table.debtors == table.creditors))
        and set(map(type, unique_ids)).union(map(type, names)) <= {str}
        and len(unique_ids) == len(ids)
        and "" not in unique_ids
        # str.strip returns "" (falsy) for empty and blank names
        and all(map(str.strip, names))
        and all(map(_is_due_date, due_dates))
    )


def exact_sum(values: npt.NDArray[np.int64]) -> int:
    """The sum as a Python int, never wrapped around: int64 when it cannot overflow."""
    if len(values) == 0:
        return 0
    largest = max(abs(int(values.max())), abs(int(values.min())))
    if largest * len(values) < 2**63:
        return int(values.sum())
    return sum(values.tolist())


def row_errors(obligations: Sequence[Obligation]) -> list[ObligationError]:
    """The row-by-row pass: each obligation's problems with a message, in input order."""
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
