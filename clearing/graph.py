"""The obligation graph: participants as nodes, one arc per (debtor, creditor) pair."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter

from clearing.model import Obligation


@dataclass(frozen=True, slots=True)
class PairGraph:
    """Obligations summed per (debtor, creditor) pair.

    Node i is `names[i]` (names sorted, so node order never depends on input order); pair k
    is `tails[k]` → `heads[k]` owing `amounts[k]`, pairs sorted by (tail, head); `pair_of[j]`
    is the pair of obligation j.
    """

    names: tuple[str, ...]
    tails: list[int]
    heads: list[int]
    amounts: list[int]
    pair_of: list[int]

    def per_node_totals(self) -> tuple[list[int], list[int]]:
        """(what each node owes, what each node is owed)."""
        owes = [0] * len(self.names)
        owed = [0] * len(self.names)
        for tail, head, amount in zip(self.tails, self.heads, self.amounts, strict=True):
            owes[tail] += amount
            owed[head] += amount
        return owes, owed


def aggregate(obligations: Sequence[Obligation]) -> PairGraph:
    # Column-wise with C-level map()/zip(): this runs once per obligation, a million times a
    # month, so the only Python-level loop left is the sum per pair.
    debtors = list(map(attrgetter("debtor"), obligations))
    creditors = list(map(attrgetter("creditor"), obligations))
    names = tuple(sorted(set(debtors).union(creditors)))
    node = {name: i for i, name in enumerate(names)}
    keys = list(zip(map(node.__getitem__, debtors), map(node.__getitem__, creditors), strict=True))
    del debtors, creditors
    pairs = sorted(set(keys))
    index = dict(zip(pairs, range(len(pairs)), strict=True))
    pair_of = list(map(index.__getitem__, keys))
    del keys, index
    amounts = [0] * len(pairs)
    for pair, amount in zip(pair_of, map(attrgetter("amount"), obligations), strict=True):
        amounts[pair] += amount
    tails = list(map(itemgetter(0), pairs))
    heads = list(map(itemgetter(1), pairs))
    return PairGraph(names, tails, heads, amounts, pair_of)


def strongly_connected_components(num_nodes: int, tails: list[int], heads: list[int]) -> list[int]:
    """Component label of every node (Tarjan's algorithm, iterative: no recursion limit)."""
    successors: list[list[int]] = [[] for _ in range(num_nodes)]
    for tail, head in zip(tails, heads, strict=True):
        successors[tail].append(head)
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
    return label


def arcs_inside_components(
    num_nodes: int, tails: list[int], heads: list[int]
) -> tuple[list[bool], int]:
    """Which arcs join two nodes of the same strongly connected component, and how many
    components have more than one node. Only such arcs lie on a cycle, so only they can
    carry a circulation (a set-off); every other arc keeps its whole amount."""
    label = strongly_connected_components(num_nodes, tails, heads)
    inside = [label[t] == label[h] for t, h in zip(tails, heads, strict=True)]
    sizes: dict[int, int] = {}
    for component in label:
        sizes[component] = sizes.get(component, 0) + 1
    return inside, sum(1 for size in sizes.values() if size > 1)
