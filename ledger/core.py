"""The pure ledger core: values and the rules a transfer must satisfy.

Imports only the standard library. Functions return `Problem` values; the service decides what
to raise. The same rules are enforced again by the database (CHECK constraints, conditional
updates, triggers), so a bug on one side is caught by the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from ledger.errors import Problem


class AccountKind(StrEnum):
    MEMBER = "member"
    COOP = "coop"
    FEDERATION = "federation"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


class TransferStatus(StrEnum):
    POSTED = "posted"
    PENDING = "pending"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# A pending claim may leave the pending state exactly once, to one of these.
PENDING_OUTCOMES = frozenset(
    {TransferStatus.POSTED, TransferStatus.REJECTED, TransferStatus.CANCELLED, TransferStatus.EXPIRED}
)

MAX_MEMO_LENGTH = 500
MAX_CATEGORY_LENGTH = 40


@dataclass(frozen=True, slots=True)
class AccountState:
    """What the rules need to know of an account at one moment."""

    id: int
    ledger_id: int
    status: AccountStatus
    balance: int
    min_balance: int | None
    max_balance: int | None
    kind: AccountKind = AccountKind.MEMBER


@dataclass(frozen=True, slots=True)
class Movement:
    """One amount moving from payer to payee: the essence of a transfer."""

    payer: int
    payee: int
    amount: int


def validate_movement(
    movement: Movement,
    payer: AccountState | None,
    payee: AccountState | None,
    *,
    max_amount: int,
) -> list[Problem]:
    """Everything that makes a movement impossible regardless of balances."""
    problems: list[Problem] = []
    if movement.amount <= 0:
        problems.append(Problem("invalid_amount", "the amount must be greater than zero", "amount"))
    elif movement.amount > max_amount:
        problems.append(
            Problem("invalid_amount", "the amount is above this ledger's per-transfer maximum", "amount")
        )
    if movement.payer == movement.payee:
        problems.append(Problem("same_account", "payer and payee are the same account", "payee"))
    for side, account in (("payer", payer), ("payee", payee)):
        if account is None:
            problems.append(Problem("account_not_found", f"the {side} account does not exist", side))
        elif account.status is AccountStatus.FROZEN:
            problems.append(Problem("account_frozen", f"the {side} account is frozen", side))
        elif account.status is AccountStatus.CLOSED:
            problems.append(Problem("account_closed", f"the {side} account is closed", side))
    if payer is not None and payee is not None and payer.ledger_id != payee.ledger_id:
        problems.append(Problem("unit_mismatch", "payer and payee belong to different ledgers", "payee"))
    return problems


def member_movement_problems(payer: AccountState, payee: AccountState) -> list[Problem]:
    """A co-op's federation mirror account moves only with cross-co-op payments and clearing,
    each of which keeps its three legs together; a plain transfer would break the mirror."""
    if AccountKind.FEDERATION in (payer.kind, payee.kind):
        return [
            Problem(
                "federation_account",
                "the federation account moves only through cross-co-op payments and clearing",
                "payer" if payer.kind is AccountKind.FEDERATION else "payee",
            )
        ]
    return []


def limit_problems(payer: AccountState, payee: AccountState, amount: int) -> list[Problem]:
    """Which limit, if any, the movement would break. Empty when it fits."""
    problems: list[Problem] = []
    if payer.min_balance is not None and payer.balance - amount < payer.min_balance:
        problems.append(
            Problem(
                "insufficient_credit",
                "this would take the payer below its credit limit",
                "amount",
            )
        )
    if payee.max_balance is not None and payee.balance + amount > payee.max_balance:
        problems.append(
            Problem(
                "ceiling_exceeded",
                "this would take the payee above its maximum balance",
                "amount",
            )
        )
    return problems


def within_limits(balance: int, min_balance: int | None, max_balance: int | None) -> bool:
    return (min_balance is None or balance >= min_balance) and (max_balance is None or balance <= max_balance)


def validate_limits(min_balance: int | None, max_balance: int | None) -> list[Problem]:
    problems: list[Problem] = []
    if min_balance is not None and min_balance > 0:
        problems.append(Problem("validation_failed", "min_balance must be zero or negative", "min_balance"))
    if max_balance is not None and max_balance < 0:
        problems.append(Problem("validation_failed", "max_balance must be zero or positive", "max_balance"))
    return problems


def validate_text(memo: str | None, category: str | None) -> list[Problem]:
    problems: list[Problem] = []
    if memo is not None and len(memo) > MAX_MEMO_LENGTH:
        problems.append(
            Problem("validation_failed", f"memo is longer than {MAX_MEMO_LENGTH} characters", "memo")
        )
    if category is not None and len(category) > MAX_CATEGORY_LENGTH:
        problems.append(
            Problem(
                "validation_failed",
                f"category is longer than {MAX_CATEGORY_LENGTH} characters",
                "category",
            )
        )
    return problems


def replay_balances(movements: Iterable[Movement]) -> dict[int, int]:
    """Balances that a history of posted movements produces (credits minus debits)."""
    balances: dict[int, int] = {}
    for m in movements:
        balances[m.payer] = balances.get(m.payer, 0) - m.amount
        balances[m.payee] = balances.get(m.payee, 0) + m.amount
    return balances


def ledger_sum(balances: Mapping[int, int]) -> int:
    return sum(balances.values())
