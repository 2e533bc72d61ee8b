"""Obligations summed per (debtor, creditor) pair, and the strongly connected components of
the pair graph, on numpy columns."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from clearing.table import Ints, ObligationTable


@dataclass(frozen=True, slots=True)
class PairGraph:
    """Obligations summed per (debtor, creditor) pair.

    Node i is participant i of the table (names sorted, so node order never depends on input
    order); pair k is `tails[k]` → `heads[k]` owing `amounts[k]`, pairs sorted by (tail,
    head); `pair_of[j]` is the pair of obligation j.
    """

    num_nodes: int
    tails: Ints
    heads: Ints
    amounts: Ints
    pair_of: Ints

    def per_node_totals(self) -> tuple[Ints, Ints]:
        """(what each node owes, what each node is owed)."""
        return self.sum_by_tail(self.amounts), self.sum_by_head(self.amounts)

    def sum_by_tail(self, values: Ints) -> Ints:
        """Per node, the sum of `values` over the pairs it owes on (exact int64)."""
        sums = np.zeros(self.num_nodes, dtype=np.int64)
        np.add.at(sums, self.tails, values)
        return sums

    def sum_by_head(self, values: Ints) -> Ints:
        """Per node, the sum of `values` over the pairs it is owed on (exact int64)."""
        sums = np.zeros(self.num_nodes, dtype=np.int64)
        np.add.at(sums, self.heads, values)
        return sums


def aggregate(table: ObligationTable) -> PairGraph:
    """One stable sort of the pair keys (debtor * n + creditor), then a sum per run of equal
    keys. The validated total fits in int64 (validation.MAX_TOTAL), so every sum is exact."""
    n = len(table.names)
    keys = table.debtors * n + table.creditors
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.diff(sorted_keys, prepend=-1))
    pair_keys = sorted_keys[starts]
    amounts = np.add.reduceat(table.amounts[order], starts) if len(starts) else np.zeros(0, np.int64)
    pair_of = np.empty(len(keys), dtype=np.int64)
    run = np.zeros(len(keys), dtype=np.int64)
    run[starts[1:]] = 1
    pair_of[order] = np.cumsum(run)
    return PairGraph(n, pair_keys // n, pair_keys % n, amounts.astype(np.int64), pair_of)


@dataclass(frozen=True, slots=True)
class Components:
    """Strongly connected components: `label[v]` names v's component; `preorder[v]` is v's
    depth-first discovery index, a numbering under which neighbours tend to sit close
    together (the solver runs about a tenth faster on it than on name order)."""

    label: Ints
    preorder: Ints

    def joins(self, tails: Ints, heads: Ints) -> np.ndarray:
        """Which arcs join two nodes of one component: only those lie on a cycle."""
        result: np.ndarray = self.label[tails] == self.label[heads]
        return result

    def with_cycles(self) -> int:
        """How many components have more than one node."""
        return int(np.count_nonzero(np.bincount(self.label) > 1)) if len(self.label) else 0


def strongly_connected_components(num_nodes: int, tails: Ints, heads: Ints) -> Components:
    """Tarjan's algorithm, iterative (no recursion limit); nodes and arcs are visited in index
    order, so the result depends only on the graph."""
    by_tail = np.argsort(tails, kind="stable")
    bounds = np.searchsorted(tails[by_tail], np.arange(num_nodes + 1)).tolist()
    targets = heads[by_tail].tolist()
    successors = [targets[a:b] for a, b in pairwise(bounds)]
    order = [-1] * num_nodes  # discovery index; -1 = not visited yet
    low = [0] * num_nodes
    label = [-1] * num_nodes  # -1 while the node is unvisited or still on the stack
    stack: list[int] = []
    counter = 0
    components = 0
    for root in range(num_nodes):
        if order[root] >= 0:
            continue
        order[root] = low[root] = counter
        counter += 1
        stack.append(root)
        frames = [(root, iter(successors[root]))]
        while frames:
            node, pending = frames[-1]
            for succ in pending:
                if order[succ] < 0:
                    order[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    frames.append((succ, iter(successors[succ])))
                    break
                if label[succ] < 0 and order[succ] < low[node]:
                    low[node] = order[succ]
            else:
                frames.pop()
                if frames and low[node] < low[frames[-1][0]]:
                    low[frames[-1][0]] = low[node]
                if low[node] == order[node]:
                    while True:
                        member = stack.pop()
                        label[member] = components
                        if member == node:
                            break
                    components += 1
    return Components(np.array(label, dtype=np.int64), np.array(order, dtype=np.int64))
