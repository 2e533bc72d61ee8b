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
from clearing.validation import MAX_TOTAL, validate_obligations, validate_policy

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
    obligations: Iterable[Obligation], *, policy: ClearingPolicy = ClearingPolicy()
) -> ClearingResult:
    """Clear `obligations` under `policy`.

    Raises `ClearingInputError` (carrying every error) when `validate_obligations` or
    `validate_policy` would return errors.
    """
    items = tuple(obligations)
    errors: tuple[ObligationError | PolicyError, ...] = (
        *validate_obligations(items),
        *validate_policy(policy.credit),
    )
    if errors:
        raise ClearingInputError(errors)
    graph = aggregate(items)
    n = len(graph.names)
    best_setoff, pairs_solved, components = max_setoff(n, graph.tails, graph.heads, graph.amounts)
    if policy.settle_with_credit:
        pay, receive = _headrooms(graph, policy.credit)
        discharged, _ = max_discharge(n, graph.tails, graph.heads, graph.amounts, pay, receive)
        pair_setoff, _, _ = max_setoff(n, graph.tails, graph.heads, discharged)
    else:
        discharged = pair_setoff = best_setoff

    order = _allocation_order(items)
    per_obligation_discharged = _allocate(discharged, graph.amounts, graph, _amounts(items), order)
    setoffs = _allocate(pair_setoff, discharged, graph, per_obligation_discharged, order)
    credit = [d - s for d, s in zip(per_obligation_discharged, setoffs, strict=True)]
    pair_credit = [d - s for d, s in zip(discharged, pair_setoff, strict=True)]
    participants = _participant_reports(graph, pair_setoff, pair_credit)
    return ClearingResult(
        obligations=items,
        setoffs=tuple(setoffs),
        credit_payments=tuple(credit),
        participants=participants,
        cycles=decompose_cycles(graph.names, graph.tails, graph.heads, pair_setoff),
        total=sum(graph.amounts),
        net_internal_debt=sum(max(p.net_position, 0) for p in participants),
        total_setoff=sum(pair_setoff),
        total_credit_paid=sum(pair_credit),
        setoff_only_optimum=sum(best_setoff),
        stats=GraphStats(len(graph.amounts), pairs_solved, components),
    )


def _amounts(items: Sequence[Obligation]) -> list[int]:
    return [o.amount for o in items]


def _headrooms(graph: PairGraph, credit: Mapping[str, CreditLine]) -> tuple[list[int], list[int]]:
    """Headroom per node, capped at what the node owes (pay) and is owed (receive): it can
    never use more, and the cap keeps every solver figure within the validated total."""
    owes = [0] * len(graph.names)
    owed = [0] * len(graph.names)
    for tail, head, amount in zip(graph.tails, graph.heads, graph.amounts, strict=True):
        owes[tail] += amount
        owed[head] += amount
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
    graph: PairGraph,
    capacities: list[int],
    order: Callable[[int], tuple[bool, str, str]],
) -> list[int]:
    """Share each pair's total among its obligations, each taking at most its capacity.

    A pair that takes nothing or everything needs no order; only the few partly used pairs
    (at most one per participant in an optimal flow's spanning forest) are sorted.
    """
    shares = [0] * len(capacities)
    partial: dict[int, list[int]] = {}
    for index, pair in enumerate(graph.pair_of):
        total = pair_totals[pair]
        if total == pair_capacities[pair]:
            shares[index] = capacities[index]
        elif total:
            partial.setdefault(pair, []).append(index)
    for pair, members in partial.items():
        left = pair_totals[pair]
        for index in sorted(members, key=order):
            share = min(capacities[index], left)
            shares[index] = share
            left -= share
    return shares


def _participant_reports(
    graph: PairGraph, pair_setoff: list[int], pair_credit: list[int]
) -> tuple[ParticipantReport, ...]:
    n = len(graph.names)
    owes, owed, setoff = [0] * n, [0] * n, [0] * n
    paid, received = [0] * n, [0] * n
    for k, (tail, head) in enumerate(zip(graph.tails, graph.heads, strict=True)):
        owes[tail] += graph.amounts[k]
        owed[head] += graph.amounts[k]
        setoff[tail] += pair_setoff[k]
        paid[tail] += pair_credit[k]
        received[head] += pair_credit[k]
    return tuple(
        ParticipantReport(graph.names[v], owes[v], owed[v], setoff[v], paid[v], received[v])
        for v in range(n)
    )
