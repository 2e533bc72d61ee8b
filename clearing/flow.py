"""Set-off and credit settlement as exact integer min-cost flows (OR-Tools SimpleMinCostFlow).

Both problems are written over the *remainders* r = amount - discharged of each debtor→creditor
pair. Whatever is discharged, every participant's position must stay the same, so the
remainders (plus any change of credit balance) must still carry each participant's net
position b_v = owed to v - owed by v. That is a flow with supply -b_v at v and capacity
`amount` per pair; minimising Σ r (unit cost) maximises what is discharged, with nonnegative
costs only.
"""

from __future__ import annotations

from itertools import compress
from operator import sub
from typing import Any

from ortools.graph.python import min_cost_flow

from clearing.graph import strongly_connected_components

# With credit a unit of debt left standing costs 3 and each credit arc 1. A simple cycle in the
# residual graph passes the liquidity node at most once (credit cost at most 2 in absolute
# value) while its debt cost is a multiple of 3, so an optimum first discharges the most debt
# and then, among those, moves the least credit.
DEBT_COST = 3
CREDIT_COST = 1


def max_setoff(
    num_nodes: int, tails: list[int], heads: list[int], amounts: list[int]
) -> tuple[list[int], int, int]:
    """Largest total set-off keeping every net position, per pair.

    Returns (set-off per pair, pairs given to the solver, components with a cycle). Pairs
    between strongly connected components never lie on a cycle and keep their amount.
    """
    components = strongly_connected_components(num_nodes, tails, heads)
    inside = [ok and amount > 0 for ok, amount in zip(components.joins(tails, heads), amounts, strict=True)]
    number = components.preorder.__getitem__
    k_tails = list(map(number, compress(tails, inside)))
    k_heads = list(map(number, compress(heads, inside)))
    k_amounts = list(compress(amounts, inside))
    supplies = _supplies(num_nodes, k_tails, k_heads, k_amounts)
    remainders = _min_cost_flow(num_nodes, k_tails, k_heads, k_amounts, [1] * len(k_amounts), supplies)
    setoffs = [0] * len(amounts)
    for k, setoff in zip(compress(range(len(amounts)), inside), map(sub, k_amounts, remainders), strict=True):
        setoffs[k] = setoff
    return setoffs, len(k_amounts), components.with_cycles()


def max_discharge(
    num_nodes: int,
    tails: list[int],
    heads: list[int],
    amounts: list[int],
    pay_headroom: list[int],
    receive_headroom: list[int],
) -> tuple[list[int], list[int]]:
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
    receivers = [v for v in range(num_nodes) if receive_headroom[v] > 0]
    payers = [v for v in range(num_nodes) if pay_headroom[v] > 0]
    all_tails = [*tails, *receivers, *[liquidity] * len(payers)]
    all_heads = [*heads, *[liquidity] * len(receivers), *payers]
    components = strongly_connected_components(num_nodes + 1, all_tails, all_heads)
    inside = components.joins(all_tails, all_heads)
    m = len(tails)
    debts = inside[:m]
    kept_receivers = list(compress(receivers, inside[m : m + len(receivers)]))
    kept_payers = list(compress(payers, inside[m + len(receivers) :]))

    number = components.preorder.__getitem__
    k_tails = list(map(number, compress(tails, debts)))
    k_heads = list(map(number, compress(heads, debts)))
    k_amounts = list(compress(amounts, debts))
    solver_liquidity = number(liquidity)
    receiving = list(map(number, kept_receivers))
    paying = list(map(number, kept_payers))
    supplies = _supplies(num_nodes + 1, k_tails, k_heads, k_amounts)
    flows = _min_cost_flow(
        num_nodes + 1,
        [*k_tails, *[solver_liquidity] * len(receiving), *paying],
        [*k_heads, *receiving, *[solver_liquidity] * len(paying)],
        [
            *k_amounts,
            *(receive_headroom[v] for v in kept_receivers),
            *(pay_headroom[v] for v in kept_payers),
        ],
        [DEBT_COST] * len(k_amounts) + [CREDIT_COST] * (len(receiving) + len(paying)),
        supplies,
    )
    discharged = [0] * m
    remainders = flows[: len(k_amounts)]
    for k, amount in zip(compress(range(m), debts), map(sub, k_amounts, remainders), strict=True):
        discharged[k] = amount
    change = [0] * num_nodes
    received = flows[len(k_amounts) : len(k_amounts) + len(receiving)]
    paid = flows[len(k_amounts) + len(receiving) :]
    for v, flow in zip(kept_receivers, received, strict=True):
        change[v] += flow
    for v, flow in zip(kept_payers, paid, strict=True):
        change[v] -= flow
    return discharged, change


def _supplies(num_nodes: int, tails: list[int], heads: list[int], amounts: list[int]) -> list[int]:
    """-b_v: what v owes minus what it is owed, over the given pairs."""
    supplies = [0] * num_nodes
    for tail, head, amount in zip(tails, heads, amounts, strict=True):
        supplies[tail] += amount
        supplies[head] -= amount
    return supplies


def _min_cost_flow(
    num_nodes: int,
    tails: list[int],
    heads: list[int],
    capacities: list[int],
    costs: list[int],
    supplies: list[int],
) -> list[int]:
    """Flow per arc of an optimal solution (plain ints)."""
    if not tails:
        return []
    # The stubs ask for numpy arrays; the pybind11 binding converts plain lists itself.
    solver: Any = min_cost_flow.SimpleMinCostFlow()
    arcs = solver.add_arcs_with_capacity_and_unit_cost(tails, heads, capacities, costs)
    solver.set_nodes_supplies(list(range(num_nodes)), supplies)
    status = solver.solve()
    if status != solver.OPTIMAL:
        # Unreachable for validated input: remainder = amount is always feasible and every
        # sum stays far inside int64 (see validation.MAX_TOTAL).
        raise RuntimeError(f"min-cost flow solver returned {status!r}")
    flows: list[int] = solver.flows(arcs).tolist()
    return flows
