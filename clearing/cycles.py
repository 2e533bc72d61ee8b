"""Decomposition of a set-off circulation into simple cycles, for the report."""

from __future__ import annotations

from clearing.model import Cycle


def decompose_cycles(
    names: tuple[str, ...], tails: list[int], heads: list[int], flows: list[int]
) -> tuple[Cycle, ...]:
    """Simple cycles whose amounts add up, arc by arc, exactly to `flows` (a circulation).

    Walks forward along arcs that still carry flow; when the walk meets a node already on its
    path, that loop is a simple cycle: take its smallest flow off every arc and keep walking
    from where the loop closed. Each node's arcs are visited in head order and nodes in name
    order, so the result depends only on the flows. A cycle cannot come back: taking it off
    empties one of its arcs for good. Each cycle starts at its alphabetically first
    participant; largest amount first.
    """
    remaining = list(flows)
    outgoing: list[list[int]] = [[] for _ in names]
    for arc, flow in enumerate(flows):
        if flow > 0:
            outgoing[tails[arc]].append(arc)
    cursor = [0] * len(names)

    def next_arc(node: int) -> int:
        """First arc out of `node` that still carries flow, or -1."""
        arcs = outgoing[node]
        i = cursor[node]
        while i < len(arcs) and remaining[arcs[i]] == 0:
            i += 1
        cursor[node] = i
        return arcs[i] if i < len(arcs) else -1

    found: list[tuple[tuple[int, ...], int]] = []
    for start in range(len(names)):
        if next_arc(start) < 0:
            continue
        path_nodes = [start]
        path_arcs: list[int] = []
        position = {start: 0}
        while True:
            # Flow in equals flow out at every node, so a node reached by an arc that still
            # carries flow has an arc out that carries flow: this never returns -1 here.
            arc = next_arc(path_nodes[-1])
            head = heads[arc]
            path_arcs.append(arc)
            if head not in position:
                position[head] = len(path_nodes)
                path_nodes.append(head)
                continue
            loop_start = position[head]
            loop_arcs = path_arcs[loop_start:]
            amount = min(remaining[a] for a in loop_arcs)
            for a in loop_arcs:
                remaining[a] -= amount
            found.append((_canonical(path_nodes[loop_start:]), amount))
            for node in path_nodes[loop_start + 1 :]:
                del position[node]
            del path_nodes[loop_start + 1 :]
            del path_arcs[loop_start:]
            if len(path_nodes) == 1 and next_arc(start) < 0:
                break
    ordered = sorted(found, key=lambda item: (-item[1], item[0]))
    return tuple(Cycle(tuple(names[i] for i in nodes), amount) for nodes, amount in ordered)


def _canonical(nodes: list[int]) -> tuple[int, ...]:
    """The cycle rotated to start at its smallest node (names are sorted, so alphabetically)."""
    first = nodes.index(min(nodes))
    return (*nodes[first:], *nodes[:first])
