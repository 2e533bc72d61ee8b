"""The clearing engine: multilateral set-off (MTCS), optionally settled through mutual credit.

One pure function, `clear(obligations, *, policy) -> ClearingResult`: no database, clock,
logging or printing; the same input (in any order) always gives the same result. It turns the
obligations into columns and calls `clear_table`, which file mode calls directly on columns
read from the CSV: one algorithm, on numpy int64 arrays, exact (validation keeps every total
within 2**60, so no sum can wrap around).

1. Obligations are summed per (debtor, creditor) pair (one stable sort of the pair keys).
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

from collections.abc import Iterable, Mapping

import numpy as np

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
from clearing.table import Ints, ObligationTable, Participants, TableResult
from clearing.validation import (
    MAX_TOTAL,
    plain_types,
    row_errors,
    table_errors,
    table_is_valid,
    validate_obligations,
    validate_policy,
)

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
    "ObligationTable",
    "ParticipantReport",
    "PolicyError",
    "TableResult",
    "clear",
    "clear_table",
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
    print it. The obligations become columns and `clear_table` clears them.
    """
    items = tuple(obligations)
    columns = Columns.of(items)
    policy_errors = validate_policy(policy.credit)
    table = columns.table() if plain_types(columns) else None
    if table is None or not table_is_valid(table) or policy_errors:
        found = [] if table is not None and table_is_valid(table) else row_errors(items)
        raise ClearingInputError((*found, *policy_errors))
    result = _clear_valid(table, policy, report_cycles)
    return ClearingResult(
        obligations=items,
        setoffs=tuple(result.setoffs.tolist()),
        credit_payments=tuple(result.credit_payments.tolist()),
        participants=result.participants.reports(),
        cycles=result.cycles,
        total=result.total,
        net_internal_debt=result.net_internal_debt,
        total_setoff=result.total_setoff,
        total_credit_paid=result.total_credit_paid,
        setoff_only_optimum=result.setoff_only_optimum,
        stats=result.stats,
    )


def clear_table(
    table: ObligationTable,
    *,
    policy: ClearingPolicy = ClearingPolicy(),
    report_cycles: bool = True,
) -> TableResult:
    """`clear` for obligations held as columns; the same checks, the same result."""
    errors: tuple[ObligationError | PolicyError, ...] = (
        *table_errors(table),
        *validate_policy(policy.credit),
    )
    if errors:
        raise ClearingInputError(errors)
    return _clear_valid(table, policy, report_cycles)


def _clear_valid(table: ObligationTable, policy: ClearingPolicy, report_cycles: bool) -> TableResult:
    graph = aggregate(table)
    n = graph.num_nodes
    best_setoff, pairs_solved, components = max_setoff(n, graph.tails, graph.heads, graph.amounts)
    amounts = table.amounts
    if policy.settle_with_credit:
        pay, receive = _headrooms(graph, table.names.tolist(), policy.credit)
        discharged, _ = max_discharge(n, graph.tails, graph.heads, graph.amounts, pay, receive)
        # The largest set-off inside what was discharged; the rest is paid through credit.
        pair_setoff, _, _ = max_setoff(n, graph.tails, graph.heads, discharged)
        per_discharged = _allocate(discharged, graph.amounts, graph.pair_of, amounts, table)
        setoffs = _allocate(pair_setoff, discharged, graph.pair_of, per_discharged, table)
        credit = per_discharged - setoffs
    else:
        discharged = pair_setoff = best_setoff
        setoffs = _allocate(pair_setoff, graph.amounts, graph.pair_of, amounts, table)
        credit = np.zeros(len(table), dtype=np.int64)
    pair_credit = discharged - pair_setoff
    participants = _participants(table, graph, pair_setoff, pair_credit)
    cycles = (
        decompose_cycles(
            tuple(table.names.tolist()), graph.tails.tolist(), graph.heads.tolist(), pair_setoff.tolist()
        )
        if report_cycles
        else None
    )
    net = participants.owed - participants.owes
    return TableResult(
        table=table,
        setoffs=setoffs,
        credit_payments=credit,
        participants=participants,
        cycles=cycles,
        total=int(graph.amounts.sum()),
        net_internal_debt=int(net[net > 0].sum()),
        total_setoff=int(pair_setoff.sum()),
        total_credit_paid=int(pair_credit.sum()),
        setoff_only_optimum=int(best_setoff.sum()),
        stats=GraphStats(len(graph.amounts), pairs_solved, components),
    )


def _headrooms(graph: PairGraph, names: list[str], credit: Mapping[str, CreditLine]) -> tuple[Ints, Ints]:
    """Headroom per node, capped at what the node owes (pay) and is owed (receive): it can
    never use more, and the cap keeps every solver figure within the validated total."""
    owes, owed = graph.per_node_totals()
    no_credit = CreditLine(0, 0)
    lines = [credit.get(name, no_credit) for name in names]
    # min() in Python ints first: a headroom may be any size, the cap fits in int64.
    pay = [min(line.pay_headroom, cap) for line, cap in zip(lines, owes.tolist(), strict=True)]
    receive = [min(line.receive_headroom, cap) for line, cap in zip(lines, owed.tolist(), strict=True)]
    return np.array(pay, dtype=np.int64), np.array(receive, dtype=np.int64)


def _allocate(
    pair_totals: Ints, pair_capacities: Ints, pair_of: Ints, capacities: Ints, table: ObligationTable
) -> Ints:
    """Share each pair's total among its obligations, each taking at most its capacity
    (the capacities of a pair's obligations add up to the pair's capacity), oldest due date
    first (none last), then by id.

    A pair that takes nothing or everything needs no order, so that case is one vectorised
    pass; only obligations of pairs the optimum uses in part (a small share) are sorted: one
    stable lexsort by (pair, due date, id rank), then each takes what is left of its pair's
    total after the obligations before it (cumulative sums per run of one pair).
    """
    full = pair_totals == pair_capacities
    partial = (pair_totals > 0) & ~full
    shares = np.where(full[pair_of], capacities, 0)
    members = np.flatnonzero(partial[pair_of])
    if not len(members):
        return shares
    ids = table.ids[members]
    # Ids are unique strings: Python's order on them (an object argsort) breaks every tie.
    id_rank = np.empty(len(members), dtype=np.int64)
    id_rank[np.argsort(ids, kind="stable")] = np.arange(len(members))
    if table.due_on is None:
        order = np.lexsort((id_rank, pair_of[members]))
    else:
        due = table.due_on[members]
        undated = due == None  # noqa: E711 (elementwise on an object array)
        order = np.lexsort((id_rank, np.where(undated, "", due).astype(str), undated, pair_of[members]))
    members = members[order]
    pairs = pair_of[members]
    caps = capacities[members]
    before = np.cumsum(caps) - caps  # capacity ahead of each member, over all runs
    first = np.flatnonzero(np.diff(pairs, prepend=-1))
    run_starts = np.repeat(before[first], np.diff(np.append(first, len(pairs))))
    shares[members] = np.clip(pair_totals[pairs] - (before - run_starts), 0, caps)
    return shares


def _participants(
    table: ObligationTable, graph: PairGraph, pair_setoff: Ints, pair_credit: Ints
) -> Participants:
    owes, owed = graph.per_node_totals()
    return Participants(
        names=table.names,
        owes=owes,
        owed=owed,
        setoff=graph.sum_by_tail(pair_setoff),  # a circulation: the same sum over its claims
        credit_paid=graph.sum_by_tail(pair_credit),
        credit_received=graph.sum_by_head(pair_credit),
    )
