"""Set-off and credit settlement as exact integer min-cost flows (OR-Tools SimpleMinCostFlow).

Both problems are written over the *remainders* r = amount - discharged of each debtor→creditor
pair. Whatever is discharged, every participant's position must stay the same, so the
remainders (plus any change of credit balance) must still carry each participant's net
position b_v = owed to v - owed by v. That is a flow with supply -b_v at v and capacity
`amount` per pair; minimising Σ r (unit cost) maximises what is discharged, with nonnegative
costs only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ortools.graph.python import min_cost_flow

from clearing.graph import strongly_connected_components
from clearing.table import Ints

# With credit a unit of debt left standing costs 3 and each credit arc 1. A simple cycle in the
# residual graph passes the liquidity node at most once (credit cost at most 2 in absolute
# value) while its debt cost is a multiple of 3, so an optimum first discharges the most debt
# and then, among those, moves the least credit.
DEBT_COST = 3
CREDIT_COST = 1


def max_setoff(num_nodes: int, tails: Ints, heads: Ints, amounts: Ints) -> tuple[Ints, int, int]:
    """Largest total set-off keeping every net position, per pair.

    Returns (set-off per pair, pairs given to the solver, components with a cycle). Pairs
    between strongly connected components never lie on a cycle and keep their amount.
    """
    components = strongly_connected_components(num_nodes, tails, heads)
    inside = np.flatnonzero(components.joins(tails, heads) & (amounts > 0))
    number = components.preorder
    k_tails, k_heads, k_amounts = number[tails[inside]], number[heads[inside]], amounts[inside]
    supplies = _supplies(num_nodes, k_tails, k_heads, k_amounts)
    remainders = _min_cost_flow(num_nodes, k_tails, k_heads, k_amounts, np.ones_like(k_amounts), supplies)
    setoffs = np.zeros(len(amounts), dtype=np.int64)
    setoffs[inside] = k_amounts - remainders
    return setoffs, len(inside), components.with_cycles()


def max_discharge(
    num_nodes: int,
    tails: Ints,
    heads: Ints,
    amounts: Ints,
    pay_headroom: Ints,
    receive_headroom: Ints,
) -> tuple[Ints, Ints]:
    """Most debt discharged by set-off plus payment through the federation's mutual credit.

    A liquidity node L (index `num_nodes`) stands for the federation ledger: arc v→L (capacity
    pay headroom) lets v's remainder shrink by paying out of its credit account, arc L→v
    (capacity receive headroom) lets v take payment into it. L has supply 0, so what is paid
    in equals what is paid out and the federation ledger still sums to zero.

    Returns (discharged per pair, credit balance change per node).
    """
    liquidity = num_nodes
    # Discharges form a circulation over debts plus credit movements: debtor→creditor,
    # receiver→L, L→payer. Only arcs inside its components can carry any.
    receivers = np.flatnonzero(receive_headroom > 0)
    payers = np.flatnonzero(pay_headroom > 0)
    m, r = len(tails), len(receivers)
    all_tails = np.concatenate([tails, receivers, np.full(len(payers), liquidity)]).astype(np.int64)
    all_heads = np.concatenate([heads, np.full(r, liquidity), payers]).astype(np.int64)
    components = strongly_connected_components(num_nodes + 1, all_tails, all_heads)
    inside = components.joins(all_tails, all_heads)
    debts = np.flatnonzero(inside[:m])
    kept_receivers = receivers[inside[m : m + r]]
    kept_payers = payers[inside[m + r :]]

    number = components.preorder
    k_tails, k_heads, k_amounts = number[tails[debts]], number[heads[debts]], amounts[debts]
    solver_liquidity = number[liquidity]
    receiving, paying = number[kept_receivers], number[kept_payers]
    supplies = _supplies(num_nodes + 1, k_tails, k_heads, k_amounts)
    credit_arcs = len(receiving) + len(paying)
    flows = _min_cost_flow(
        num_nodes + 1,
        np.concatenate([k_tails, np.full(len(receiving), solver_liquidity), paying]).astype(np.int64),
        np.concatenate([k_heads, receiving, np.full(len(paying), solver_liquidity)]).astype(np.int64),
        np.concatenate([k_amounts, receive_headroom[kept_receivers], pay_headroom[kept_payers]]),
        np.concatenate([np.full(len(k_amounts), DEBT_COST), np.full(credit_arcs, CREDIT_COST)]).astype(
            np.int64
        ),
        supplies,
    )
    discharged = np.zeros(m, dtype=np.int64)
    discharged[debts] = k_amounts - flows[: len(k_amounts)]
    change = np.zeros(num_nodes, dtype=np.int64)
    change[kept_receivers] += flows[len(k_amounts) : len(k_amounts) + len(receiving)]
    change[kept_payers] -= flows[len(k_amounts) + len(receiving) :]
    return discharged, change


def _supplies(num_nodes: int, tails: Ints, heads: Ints, amounts: Ints) -> Ints:
    """-b_v: what v owes minus what it is owed, over the given pairs."""
    supplies = np.zeros(num_nodes, dtype=np.int64)
    np.add.at(supplies, tails, amounts)
    np.subtract.at(supplies, heads, amounts)
    return supplies


def _min_cost_flow(
    num_nodes: int,
    tails: Ints,
    heads: Ints,
    capacities: Ints,
    costs: Ints,
    supplies: Ints,
) -> Ints:
    """Flow per arc of an optimal solution."""
    if not len(tails):
        return np.zeros(0, dtype=np.int64)
    solver: Any = min_cost_flow.SimpleMinCostFlow()
    arcs = solver.add_arcs_with_capacity_and_unit_cost(tails, heads, capacities, costs)
    solver.set_nodes_supplies(np.arange(num_nodes, dtype=np.int64), supplies)
    status = solver.solve()
    if status != solver.OPTIMAL:
        # Unreachable for validated input: remainder = amount is always feasible and every
        # sum stays far inside int64 (see validation.MAX_TOTAL).
        raise RuntimeError(f"min-cost flow solver returned {status!r}")
    flows: Ints = np.asarray(solver.flows(arcs), dtype=np.int64)
    return flows
