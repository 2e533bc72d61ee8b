"""Obligations and their clearing as columns: numpy arrays, one entry per obligation.

The engine works on these columns (`clearing.engine.clear_table`); `clear()` builds them from
`Obligation` values and file mode builds them straight from the CSV, so a million obligations
never become a million Python objects. numpy is here for numerical arrays: exact int64
arithmetic column by column, at C speed (OR-Tools already requires it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clearing.model import Cycle, GraphStats, Obligation, ParticipantReport

Ints = npt.NDArray[np.int64]
Objects = npt.NDArray[np.object_]


@dataclass(frozen=True, slots=True, eq=False)
class ObligationTable:
    """Obligation i is `ids[i]`: `names[debtors[i]]` owes `names[creditors[i]]` `amounts[i]`
    smallest units, due `due_on[i]` (an ISO date string or None; `due_on` is None when no
    obligation has a due date).

    `names` are the participants, sorted, each once; debtor and creditor indexes point into
    them, so node numbers never depend on the input order. The columns are taken as they are:
    `clear_table` validates them.
    """

    ids: Objects
    names: Objects
    debtors: Ints
    creditors: Ints
    amounts: Ints
    due_on: Objects | None = None

    def __len__(self) -> int:
        return len(self.amounts)

    def obligation(self, index: int) -> Obligation:
        due = None if self.due_on is None else self.due_on[index]
        debtor, creditor = self.names[self.debtors[index]], self.names[self.creditors[index]]
        return Obligation(self.ids[index], debtor, creditor, int(self.amounts[index]), due)

    def obligations(self) -> list[Obligation]:
        """Every obligation as a value (for error messages; a million of them are slow)."""
        return list(map(self.obligation, range(len(self))))

    @classmethod
    def of(
        cls,
        ids: Sequence[str],
        debtors: Sequence[str],
        creditors: Sequence[str],
        amounts: Sequence[int] | Ints,
        due_on: Sequence[str | None] | None = None,
    ) -> ObligationTable:
        """From columns of plain values: names sorted, then looked up once per obligation.
        Every name must be hashable and every amount fit in int64 (validation checks both
        before it builds a table)."""
        names = sorted(set(debtors).union(creditors))
        index = {name: i for i, name in enumerate(names)}
        n = len(amounts)
        return cls(
            ids=_objects(ids),
            names=_objects(names),
            debtors=np.fromiter(map(index.__getitem__, debtors), dtype=np.int64, count=n),
            creditors=np.fromiter(map(index.__getitem__, creditors), dtype=np.int64, count=n),
            amounts=np.asarray(amounts, dtype=np.int64).reshape(n),
            due_on=None if due_on is None or set(due_on) <= {None} else _objects(due_on),
        )


def _objects(values: Sequence[object]) -> Objects:
    """A 1-d object array (np.array would make a 2-d one from a list of tuples)."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


@dataclass(frozen=True, slots=True)
class Participants:
    """Per participant (sorted by name): what it owes and is owed before the run, what was
    set off (on its debts, and equally on its claims), and what it paid and received through
    the federation's mutual credit."""

    names: Objects
    owes: Ints
    owed: Ints
    setoff: Ints
    credit_paid: Ints
    credit_received: Ints

    def __len__(self) -> int:
        return len(self.names)

    def reports(self) -> tuple[ParticipantReport, ...]:
        columns = (self.owes, self.owed, self.setoff, self.credit_paid, self.credit_received)
        return tuple(map(ParticipantReport, self.names.tolist(), *(c.tolist() for c in columns)))


@dataclass(frozen=True, slots=True, eq=False)
class TableResult:
    """`clear_table`'s outcome: `setoffs[i]` and `credit_payments[i]` belong to obligation i of
    `table`; the totals are plain ints (see `ClearingResult` for their meaning)."""

    table: ObligationTable
    setoffs: Ints
    credit_payments: Ints
    participants: Participants
    cycles: tuple[Cycle, ...] | None
    total: int
    net_internal_debt: int
    total_setoff: int
    total_credit_paid: int
    setoff_only_optimum: int
    stats: GraphStats

    @property
    def total_remainder(self) -> int:
        return self.total - self.total_setoff - self.total_credit_paid

    def remainders(self) -> Ints:
        return self.table.amounts - self.setoffs - self.credit_payments
