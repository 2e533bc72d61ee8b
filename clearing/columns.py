"""Obligations as columns: each field of every obligation in one list, read once.

`clear()` reads the `Obligation` values once, with C-level map(): the type checks run on these
plain lists (`validation.plain_types`), and `table()` turns them into the numpy columns the
engine works on (`clearing.table.ObligationTable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter

from clearing.model import Obligation
from clearing.table import ObligationTable


@dataclass(frozen=True, slots=True)
class Columns:
    """`participants`: every debtor and creditor once; None when some name is unhashable
    (then validation reports it and nothing else looks at the names)."""

    ids: list[str]
    debtors: list[str]
    creditors: list[str]
    amounts: list[int]
    due_on: list[str | None]
    participants: set[str] | None

    @classmethod
    def of(cls, obligations: Sequence[Obligation]) -> Columns:
        debtors = list(map(attrgetter("debtor"), obligations))
        creditors = list(map(attrgetter("creditor"), obligations))
        try:
            participants: set[str] | None = set(debtors).union(creditors)
        except TypeError:
            participants = None
        return cls(
            ids=list(map(attrgetter("id"), obligations)),
            debtors=debtors,
            creditors=creditors,
            amounts=list(map(attrgetter("amount"), obligations)),
            due_on=list(map(attrgetter("due_on"), obligations)),
            participants=participants,
        )

    def table(self) -> ObligationTable:
        """The same obligations as numpy columns (needs `validation.plain_types`)."""
        return ObligationTable.of(self.ids, self.debtors, self.creditors, self.amounts, self.due_on)
