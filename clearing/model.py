"""Values of the clearing engine: what goes in, what comes out, and what can be wrong.

All amounts are integers in the federation unit's smallest step; nothing here is a float.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True, slots=True, init=False)
class Obligation:
    """`debtor` owes `creditor` `amount` smallest units; `due_on` is an ISO date (YYYY-MM-DD)."""

    id: str
    debtor: str
    creditor: str
    amount: int
    due_on: str | None = None

    def __init__(self, id: str, debtor: str, creditor: str, amount: int, due_on: str | None = None) -> None:
        # The generated __init__ of a frozen dataclass sets each field through
        # object.__setattr__, which doubles the cost of reading a million obligations; the
        # slot descriptors set the same fields directly. Assignment afterwards still raises.
        _set_id(self, id)
        _set_debtor(self, debtor)
        _set_creditor(self, creditor)
        _set_amount(self, amount)
        _set_due_on(self, due_on)


_set_id, _set_debtor, _set_creditor, _set_amount, _set_due_on = (
    getattr(Obligation, name).__set__ for name in ("id", "debtor", "creditor", "amount", "due_on")
)


@dataclass(frozen=True, slots=True)
class CreditLine:
    """How far a participant's federation mutual-credit account may still move.

    `pay_headroom`: how much it may still pay out (its balance may fall by at most this much);
    `receive_headroom`: how much it may still take in (its balance may rise by at most this much).
    """

    pay_headroom: int
    receive_headroom: int


def _no_credit() -> Mapping[str, CreditLine]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ClearingPolicy:
    """`settle_with_credit`: also pay residual debts through the federation's mutual credit.

    Participants missing from `credit` have no headroom (they can only set off).
    """

    settle_with_credit: bool = False
    credit: Mapping[str, CreditLine] = field(default_factory=_no_credit)


@dataclass(frozen=True, slots=True)
class ObligationError:
    """What is wrong with the obligation at `index` (0-based position in the input)."""

    index: int
    obligation: Obligation
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class PolicyError:
    """What is wrong with the credit line of `participant`."""

    participant: str
    code: str
    message: str


class ClearingInputError(ValueError):
    """Raised by `clear` when validation found errors; callers that want the errors as values
    call `validate_obligations` / `validate_policy` first."""

    def __init__(self, errors: tuple[ObligationError | PolicyError, ...]) -> None:
        self.errors = errors
        first = errors[0].message if errors else "invalid input"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)


@dataclass(frozen=True, slots=True)
class ParticipantReport:
    """One participant's position before and after the run.

    `setoff` is both what was set off on its debts and on its claims: a set-off is a
    circulation, so the two are always equal.
    """

    name: str
    owes_before: int
    owed_before: int
    setoff: int
    credit_paid: int
    credit_received: int

    @property
    def net_position(self) -> int:
        """Owed to it minus it owes, before the run (set-off never changes it)."""
        return self.owed_before - self.owes_before

    @property
    def credit_balance_change(self) -> int:
        """Change of its federation mutual-credit balance (negative: it paid out)."""
        return self.credit_received - self.credit_paid

    @property
    def owes_after(self) -> int:
        return self.owes_before - self.setoff - self.credit_paid

    @property
    def owed_after(self) -> int:
        return self.owed_before - self.setoff - self.credit_received


@dataclass(frozen=True, slots=True)
class Cycle:
    """`amount` set off around participants[0] → participants[1] → … → participants[0]."""

    participants: tuple[str, ...]
    amount: int

    def describe(self) -> str:
        return " → ".join((*self.participants, self.participants[0]))


@dataclass(frozen=True, slots=True)
class GraphStats:
    """Size of the problem: debtor→creditor pairs, how many lie inside strongly connected
    components (only those can carry a set-off and reach the solver), and how many
    components have more than one participant."""

    pairs: int
    pairs_solved: int
    components: int


@dataclass(frozen=True, slots=True)
class ObligationOutcome:
    obligation: Obligation
    setoff: int
    credit_paid: int

    @property
    def remainder(self) -> int:
        return self.obligation.amount - self.setoff - self.credit_paid


@dataclass(frozen=True, slots=True)
class ClearingResult:
    """Outcome of one clearing over `obligations` (kept in input order).

    `setoffs[i]` and `credit_payments[i]` belong to `obligations[i]`. Participants are sorted
    by name; cycles are largest first (None when not asked for). `setoff_only_optimum` is
    the best pure set-off for the same obligations: equal to `total_setoff` without credit,
    and a lower bound of `total_discharged` with credit.
    """

    obligations: tuple[Obligation, ...]
    setoffs: tuple[int, ...]
    credit_payments: tuple[int, ...]
    participants: tuple[ParticipantReport, ...]
    cycles: tuple[Cycle, ...] | None
    total: int
    net_internal_debt: int
    total_setoff: int
    total_credit_paid: int
    setoff_only_optimum: int
    stats: GraphStats

    @property
    def total_discharged(self) -> int:
        return self.total_setoff + self.total_credit_paid

    @property
    def total_remainder(self) -> int:
        return self.total - self.total_discharged

    @property
    def extra_cleared_by_credit(self) -> int:
        """How much more was discharged than the best set-off alone could."""
        return self.total_discharged - self.setoff_only_optimum

    def remainders(self) -> tuple[int, ...]:
        return tuple(
            o.amount - s - p
            for o, s, p in zip(self.obligations, self.setoffs, self.credit_payments, strict=True)
        )

    def outcomes(self) -> Iterator[ObligationOutcome]:
        for o, s, p in zip(self.obligations, self.setoffs, self.credit_payments, strict=True):
            yield ObligationOutcome(o, s, p)
