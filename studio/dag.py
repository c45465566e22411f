"""Layout of a workflow run's DAG for an SVG drawing: layers by longest path from a root."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 40, 60, 18, 12


@dataclass(frozen=True)
class PlacedNode:
    name: str
    status: str
    x: int
    y: int
    task_id: int | None
    runs: int


@dataclass(frozen=True)
class Edge:
    path: str
    css: str


@dataclass(frozen=True)
class Dag:
    width: int
    height: int
    nodes: list[PlacedNode]
    edges: list[Edge]
    node_w: int = NODE_W
    node_h: int = NODE_H


def layers(nodes: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Longest distance from a node without upstream; cycles and unknown names are cut."""
    upstream = {n["node"]: [u for u in (n.get("upstream") or [])] for n in nodes}
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def depth(name: str) -> int:
        if name in layer:
            return layer[name]
        if name in visiting or name not in upstream:
            return -1
        visiting.add(name)
        value = 1 + max((depth(u) for u in upstream[name]), default=-1)
        visiting.discard(name)
        layer[name] = value
        return value

    for name in upstream:
        depth(name)
    return layer


def layout(nodes: Sequence[dict[str, Any]]) -> Dag:
    layer = layers(nodes)
    columns: dict[int, list[dict[str, Any]]] = {}
    for n in sorted(nodes, key=lambda n: (layer[n["node"]], n["node"])):
        columns.setdefault(layer[n["node"]], []).append(n)
    tallest = max((len(c) for c in columns.values()), default=0)
    height = PAD * 2 + tallest * NODE_H + max(tallest - 1, 0) * GAP_Y
    placed: dict[str, PlacedNode] = {}
    for col, members in columns.items():
        column_h = len(members) * NODE_H + (len(members) - 1) * GAP_Y
        top = (height - column_h) // 2
        for i, n in enumerate(members):
            placed[n["node"]] = PlacedNode(
                name=n["node"], status=n["status"], x=PAD + col * (NODE_W + GAP_X),
                y=top + i * (NODE_H + GAP_Y), task_id=n.get("task_id"), runs=n.get("runs", 0))
    edges: list[Edge] = []
    for n in nodes:
        target = placed[n["node"]]
        for u in n.get("upstream") or []:
            source = placed.get(u)
            if source is None:
                continue
            x1, y1 = source.x + NODE_W, source.y + NODE_H // 2
            x2, y2 = target.x, target.y + NODE_H // 2
            mid = (x1 + x2) // 2
            css = "edge-done" if source.status == "succeeded" else "edge"
            edges.append(Edge(f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 4},{y2}", css))
    width = PAD * 2 + len(columns) * NODE_W + max(len(columns) - 1, 0) * GAP_X
    return Dag(width=max(width, 200), height=max(height, 60), nodes=list(placed.values()),
               edges=edges)
