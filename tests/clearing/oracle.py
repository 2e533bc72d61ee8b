"""An independent optimum, written a different way, for the property tests.

The engine minimises the remainders with supplies at every node (OR-Tools). Here the set-off
is what it is by definition: the largest circulation inside the obligations, a min-cost
circulation with cost -1 per unit on every debtor→creditor pair (networkx network simplex).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import networkx as nx

from clearing.engine import CreditLine, Obligation

LIQUIDITY = ("liquidity",)  # not a str: cannot collide with a participant name


def _pair_totals(obligations: Iterable[Obligation]) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for o in obligations:
        totals[(o.debtor, o.creditor)] += o.amount
    return totals


def _max_circulation(graph: nx.DiGraph) -> int:
    if graph.number_of_edges() == 0:
        return 0
    cost, _ = nx.network_simplex(graph)
    return int(-cost)


def optimum_setoff(obligations: Iterable[Obligation]) -> int:
    graph = nx.DiGraph()
    for (debtor, creditor), amount in _pair_totals(obligations).items():
        graph.add_edge(debtor, creditor, capacity=amount, weight=-1)
    return _max_circulation(graph)


def optimum_discharge(obligations: Iterable[Obligation], credit: Mapping[str, CreditLine]) -> int:
    """Set-off plus credit payments: the circulation may also pass through the federation
    ledger, entering it from a participant that receives (up to its receive headroom) and
    leaving it to a participant that pays (up to its pay headroom), at no gain."""
    graph = nx.DiGraph()
    graph.add_node(LIQUIDITY)
    for (debtor, creditor), amount in _pair_totals(obligations).items():
        graph.add_edge(debtor, creditor, capacity=amount, weight=-1)
    for name, line in credit.items():
        graph.add_edge(name, LIQUIDITY, capacity=line.receive_headroom, weight=0)
        graph.add_edge(LIQUIDITY, name, capacity=line.pay_headroom, weight=0)
    return _max_circulation(graph)


def components(obligations: Iterable[Obligation]) -> dict[str, int]:
    graph = nx.DiGraph((o.debtor, o.creditor) for o in obligations)
    return {name: i for i, part in enumerate(nx.strongly_connected_components(graph)) for name in part}
