"""The clearing engine: multilateral set-off (MTCS), optionally settled through mutual credit.

One pure function, `clear(obligations, *, policy) -> ClearingResult`: no database, clock,
logging or printing; the same input (in any order) always gives the same result.

1. Obligations are summed per (debtor, creditor) pair.
2. The largest set-off that keeps every net position is an exact integer min-cost flow over
   the pairs inside strongly connected components (see `clearing.flow`).
3. With `policy.settle_with_credit`, a second flow discharges as much as possible by set-off
   plus payments through the federation's mutual-credit ledger, within each participant's
   headroom; what it discharges is split into the largest set-off it contains (a third flow
   over the discharged amounts) and credit payments.
4. Each pair's figures go back to its obligations oldest due date first (None last), then
   by id; the set-off is decomposed into cycles for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import compress
from operator import eq, mul

from clearing.columns import Columns
from clearing.cycles import decompose_cycles
from clearing.flow import max_discharge, max_setoff
from clearing.graph import PairGraph, aggregate
from clearing.model import (
    ClearingInputError,
    ClearingPolicy,
    ClearingResult,
    CreditLine,
    Cycle,
    GraphStats,
    Obligation,
    ObligationError,
    ObligationOutcome,
    ParticipantReport,
    PolicyError,
)
from clearing.validation import MAX_TOTAL, find_errors, validate_obligations, validate_policy

__all__ = [
    "MAX_TOTAL",
    "ClearingInputError",
    "ClearingPolicy",
    "ClearingResult",
    "CreditLine",
    "Cycle",
    "GraphStats",
    "Obligation",
    "ObligationError",
    "ObligationOutcome",
    "ParticipantReport",
    "PolicyError",
    "clear",
    "validate_obligations",
    "validate_policy",
]


def clear(
    obligations: Iterable[Obligation],
    *,
    policy: ClearingPolicy = ClearingPolicy(),
    report_cycles: bool = True,
) -> ClearingResult:
    """Clear `obligations` under `policy`.

    Raises `ClearingInputError` (carrying every error) when `validate_obligations` or
    `validate_policy` would return errors. `report_cycles=False` leaves `cycles` as None: on a
    million obligations the decomposition costs more than the solve, and file mode does not
    print it.
    """
    items = tuple(obligations)
    columns = Columns.of(items)
    errors: tuple[ObligationError | PolicyError, ...] = (
        *find_errors(items, columns),
        *validate_policy(policy.credit),
    )
    if errors:
        raise ClearingInputError(errors)
    graph = aggregate(columns)
    n = len(graph.names)
    best_setoff, pairs_solved, components = max_setoff(n, graph.tails, graph.heads, graph.amounts)
    order = _allocation_order(items)
    amounts = columns.amounts
    if policy.settle_with_credit:
        pay, receive = _headrooms(graph, policy.credit)
        discharged, _ = max_discharge(n, graph.tails, graph.heads, graph.amounts, pay, receive)
        # The largest set-off inside what was discharged; the rest is paid through credit.
        pair_setoff, _, _ = max_setoff(n, graph.tails, graph.heads, discharged)
        per_discharged = _allocate(discharged, graph.amounts, graph.pair_of, amounts, order)
        setoffs = _allocate(pair_setoff, discharged, graph.pair_of, per_discharged, order)
        credit = tuple(d - s for d, s in zip(per_discharged, setoffs, strict=True))
    else:
        discharged = pair_setoff = best_setoff
        setoffs = _allocate(pair_setoff, graph.amounts, graph.pair_of, amounts, order)
        credit = (0,) * len(items)
    pair_credit = [d - s for d, s in zip(discharged, pair_setoff, strict=True)]
    participants = _participant_reports(graph, pair_setoff, pair_credit)
    cycles = decompose_cycles(graph.names, graph.tails, graph.heads, pair_setoff) if report_cycles else None
    return ClearingResult(
        obligations=items,
        setoffs=tuple(setoffs),
        credit_payments=credit,
        participants=participants,
        cycles=cycles,
        total=sum(graph.amounts),
        net_internal_debt=sum(max(p.net_position, 0) for p in participants),
        total_setoff=sum(pair_setoff),
        total_credit_paid=sum(pair_credit),
        setoff_only_optimum=sum(best_setoff),
        stats=GraphStats(len(graph.amounts), pairs_solved, components),
    )


def _headrooms(graph: PairGraph, credit: Mapping[str, CreditLine]) -> tuple[list[int], list[int]]:
    """Headroom per node, capped at what the node owes (pay) and is owed (receive): it can
    never use more, and the cap keeps every solver figure within the validated total."""
    owes, owed = graph.per_node_totals()
    no_credit = CreditLine(0, 0)
    lines = [credit.get(name, no_credit) for name in graph.names]
    pay = [min(line.pay_headroom, cap) for line, cap in zip(lines, owes, strict=True)]
    receive = [min(line.receive_headroom, cap) for line, cap in zip(lines, owed, strict=True)]
    return pay, receive


def _allocation_order(items: Sequence[Obligation]) -> Callable[[int], tuple[bool, str, str]]:
    """Oldest due date first, obligations without one last, then by id (ids are unique)."""

    def key(index: int) -> tuple[bool, str, str]:
        obligation = items[index]
        return (obligation.due_on is None, obligation.due_on or "", obligation.id)

    return key


def _allocate(
    pair_totals: list[int],
    pair_capacities: list[int],
    pair_of: list[int],
    capacities: list[int],
    order: Callable[[int], tuple[bool, str, str]],
) -> list[int]:
    """Share each pair's total among its obligations, each taking at most its capacity
    (the capacities of a pair's obligations add up to the pair's capacity).

    A pair that takes nothing or everything needs no order, so that case runs column-wise;
    only pairs the optimum uses in part (a small share of them) are shared out in `order`.
    """
    # Decided once per pair, then looked up per obligation at C speed.
    pair_full = list(map(eq, pair_totals, pair_capacities))
    pair_partial = [total and not full for total, full in zip(pair_totals, pair_full, strict=True)]
    shares = list(map(mul, capacities, map(pair_full.__getitem__, pair_of)))  # True * c == c
    partial: dict[int, list[int]] = {}
    for index in compress(range(len(pair_of)), map(pair_partial.__getitem__, pair_of)):
        partial.setdefault(pair_of[index], []).append(index)
    for pair, members in partial.items():
        left = pair_totals[pair]
        for index in sorted(members, key=order) if len(members) > 1 else members:
            share = min(capacities[index], left)
            shares[index] = share
            left -= share
    return shares


def _participant_reports(
    graph: PairGraph, pair_setoff: list[int], pair_credit: list[int]
) -> tuple[ParticipantReport, ...]:
    owes, owed = graph.per_node_totals()
    setoff = graph.sum_by_tail(pair_setoff)  # a circulation: the same sum over its claims
    n = len(graph.names)
    paid, received = [0] * n, [0] * n
    if any(pair_credit):
        for tail, head, amount in zip(graph.tails, graph.heads, pair_credit, strict=True):
            paid[tail] += amount
            received[head] += amount
    return tuple(map(ParticipantReport, graph.names, owes, owed, setoff, paid, received))
