"""Obligations as columns: each field of every obligation in one list, read once.

Validation, aggregation and allocation each need whole columns; reading them once with
C-level map() keeps a million-obligation run from walking the objects again and again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter

from clearing.model import Obligation


@dataclass(frozen=True, slots=True)
class Columns:
    ids: list[str]
    debtors: list[str]
    creditors: list[str]
    amounts: list[int]
    due_on: list[str | None]

    @classmethod
    def of(cls, obligations: Sequence[Obligation]) -> Columns:
        return cls(
            ids=list(map(attrgetter("id"), obligations)),
            debtors=list(map(attrgetter("debtor"), obligations)),
            creditors=list(map(attrgetter("creditor"), obligations)),
            amounts=list(map(attrgetter("amount"), obligations)),
            due_on=list(map(attrgetter("due_on"), obligations)),
        )
