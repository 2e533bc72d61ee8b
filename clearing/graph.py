"""The obligation graph: participants as nodes, one arc per (debtor, creditor) pair."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import add, floordiv, mod, sub

from clearing.columns import Columns


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
        owed = [0] * len(self.names)
        for head, amount in zip(self.heads, self.amounts, strict=True):
            owed[head] += amount
        return self.sum_by_tail(self.amounts), owed

    def sum_by_tail(self, values: list[int]) -> list[int]:
        """Per node, the sum of `values` over the pairs it owes on. Pairs are sorted by tail,
        so each node's pairs are one run: prefix sums at the run boundaries, at C speed."""
        prefix = [0, *accumulate(values)]
        bounds = [bisect_left(self.tails, node) for node in range(len(self.names) + 1)]
        return list(map(sub, map(prefix.__getitem__, bounds[1:]), map(prefix.__getitem__, bounds)))


def aggregate(columns: Columns) -> PairGraph:
    # Column-wise with C-level map(): this runs once per obligation, a million times a month,
    # so the only Python-level loop left is the sum per pair. Pair keys are plain ints
    # (tail * n + head), not tuples: ints are not tracked by the cyclic garbage collector,
    # which would otherwise rescan every live object while a million keys are created.
    debtors, creditors = columns.debtors, columns.creditors
    assert columns.participants is not None, "validated: every name is a string"
    names = tuple(sorted(columns.participants))
    n = len(names)
    as_tail = {name: i * n for i, name in enumerate(names)}
    as_head = {name: i for i, name in enumerate(names)}
    keys = list(map(add, map(as_tail.__getitem__, debtors), map(as_head.__getitem__, creditors)))
    del as_tail, as_head
    pair_keys = sorted(set(keys))
    index = dict(zip(pair_keys, range(len(pair_keys)), strict=True))
    pair_of = list(map(index.__getitem__, keys))
    del keys, index
    amounts = [0] * len(pair_keys)
    for pair, amount in zip(pair_of, columns.amounts, strict=True):
        amounts[pair] += amount
    tails = list(map(floordiv, pair_keys, repeat(n)))
    heads = list(map(mod, pair_keys, repeat(n)))
    return PairGraph(names, tails, heads, amounts, pair_of)


@dataclass(frozen=True, slots=True)
class Components:
    """Strongly connected components: `label[v]` names v's component; `preorder[v]` is v's
    depth-first discovery index, a numbering under which neighbours tend to sit close
    together (the solver runs about a tenth faster on it than on name order)."""

    label: list[int]
    preorder: list[int]

    def joins(self, tails: list[int], heads: list[int]) -> list[bool]:
        """Which arcs join two nodes of one component: only those lie on a cycle."""
        label = self.label
        return [label[t] == label[h] for t, h in zip(tails, heads, strict=True)]

    def with_cycles(self) -> int:
        """How many components have more than one node."""
        return sum(1 for size in Counter(self.label).values() if size > 1)


def strongly_connected_components(num_nodes: int, tails: list[int], heads: list[int]) -> Components:
    """Tarjan's algorithm, iterative (no recursion limit); nodes and arcs are visited in index
    order, so the result depends only on the graph."""
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
    return Components(label, order)
