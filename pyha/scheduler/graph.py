"""Graph helpers for constraints between groups: stable topological order and cycles."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence


def topological(nodes: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """`nodes` with every edge's source before its target; ties keep the input order.

    The graph must be acyclic; nodes left in a cycle come last, in input order.
    """
    pos = {n: i for i, n in enumerate(nodes)}
    indegree = dict.fromkeys(nodes, 0)
    for src in edges:
        for dst in edges[src]:
            indegree[dst] += 1
    ready = [pos[n] for n in nodes if indegree[n] == 0]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        out.append(node)
        for dst in edges.get(node, ()):
            indegree[dst] -= 1
            if indegree[dst] == 0:
                heapq.heappush(ready, pos[dst])
    if len(out) < len(nodes):
        seen = set(out)
        out.extend(n for n in nodes if n not in seen)
    return out


def cycles(nodes: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node, each in input order.

    Tarjan's algorithm, iterative so long chains of groups do not hit Python's
    recursion limit.
    """
    pos = {n: i for i, n in enumerate(nodes)}
    number: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in nodes:
        if root in number:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                number[node] = low[node] = len(number)
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, ())
            if i < len(targets):
                work.append((node, i + 1))
                dst = targets[i]
                if dst not in number:
                    work.append((dst, 0))
                elif dst in on_stack:
                    low[node] = min(low[node], number[dst])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == number[node]:
                component = _pop_component(stack, on_stack, node)
                if len(component) > 1:
                    found.append(sorted(component, key=pos.__getitem__))
    return found


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    component = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == root:
            return component


def cycle_path(component: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """One cycle through the first node of a strongly connected `component`, closed:
    [a, b, c, a]."""
    inside = set(component)
    start = component[0]
    path, seen = [start], {start}
    node = start
    while True:
        targets = [t for t in edges.get(node, ()) if t in inside]
        if start in targets and len(path) > 1:
            return [*path, start]
        nxt = next((t for t in targets if t not in seen), None)
        if nxt is None:
            # Every way on was visited: close the loop at the first node seen again.
            back = next(t for t in targets if t in seen)
            return [*path[path.index(back):], back]
        path.append(nxt)
        seen.add(nxt)
        node = nxt
