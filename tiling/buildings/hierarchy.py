"""Spatial hierarchy for additive refinement: the skyline first, detail on approach.

Buildings are ranked by size (the larger of height and the square root of footprint
area: the screen error of leaving a building out). Each quadtree node keeps the
largest buildings of its cell that fit its budget and hands the rest to its four
children. A node's geometric error is the size of the largest building it leaves to
its descendants, so CesiumJS refines exactly when that building would be visible.
Every building lives in exactly one tile (``refine: "ADD"``): nothing is duplicated.

Buildings marked ``separate`` (the L3 district) get a quadtree of their own, hung
under the root as its last child: no tile mixes them with the others, so the L3
stage can give those tiles ``refine: "REPLACE"`` and the detailed models as children
(:mod:`tiling.l3.stream`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Node:
    """A quadtree node: its buildings (indices) and children (node indices)."""

    level: int
    x: int
    y: int
    members: np.ndarray
    geometric_error: float = 0.0
    children: list[int] = field(default_factory=list)
    part: int = 0  # > 0: a share of an over-budget tile's buildings (same cell)

    @property
    def key(self) -> str:
        """Stable name used in content paths."""
        suffix = f"-{self.part}" if self.part else ""
        return f"{self.level}/{self.x}/{self.y}{suffix}"


def build_hierarchy(
    centre_xy: np.ndarray,
    size: np.ndarray,
    vertices: np.ndarray,
    *,
    max_features: int,
    max_vertices: int,
    row_bytes: np.ndarray | None = None,
    max_bytes: float = np.inf,
    max_depth: int = 18,
    separate: np.ndarray | None = None,
    consume: bool = False,
) -> list[Node]:
    """Assign every building to one quadtree node.

    Parameters
    ----------
    centre_xy : (n, 2) float
        Building centres in a planar frame (metres).
    size : (n,) float
        Building size (metres): larger buildings go to shallower nodes.
    vertices : (n,) int
        Mesh vertices each building will produce (tile budget).
    max_features, max_vertices : int
        Per-tile budgets.
    row_bytes : (n,) float, optional
        Estimated bytes each building adds to its tile (geometry and metadata).
    max_bytes : float
        Per-tile byte budget for ``row_bytes``.
    separate : (n,) bool, optional
        Buildings that get their own subtree, the root's last child (or the whole
        tree when every building is marked). Its nodes' ``part`` is their index in
        the list (as for split tiles), so keys never collide.
    consume : bool
        ``centre_xy`` (C-ordered float64) may be reordered in place and its memory
        used for the centres the quadtree carries (a caller that lets it go anyway:
        a copy of the city's centres fewer at the peak, 160 MB at ten million).

    Returns
    -------
    list of Node
        ``nodes[0]`` is the root; members are sorted by decreasing size.
    """
    kw = dict(max_features=max_features, max_vertices=max_vertices, max_depth=max_depth)
    if separate is None or not separate.any() or separate.all():
        return _quadtree(centre_xy, size, vertices, row_bytes, max_bytes, consume=consume, **kw)
    trees = []
    for mask in (~separate, separate):
        idx = np.flatnonzero(mask)
        sub = _quadtree(
            centre_xy[idx],
            size[idx],
            vertices[idx],
            None if row_bytes is None else row_bytes[idx],
            max_bytes,
            consume=True,  # a copy of its own
            **kw,
        )
        for node in sub:
            node.members = idx[node.members]
        trees.append(sub)
    rest, district = trees
    offset = len(rest)
    for i, node in enumerate(district):
        node.children = [c + offset for c in node.children]
        node.part = offset + i
    root = rest[0]
    root.children.append(offset)
    root.geometric_error = max(root.geometric_error, float(size[district[0].members[0]]))
    return rest + district


def _quadtree(
    centre_xy: np.ndarray,
    size: np.ndarray,
    vertices: np.ndarray,
    row_bytes: np.ndarray | None,
    max_bytes: float,
    *,
    max_features: int,
    max_vertices: int,
    max_depth: int,
    consume: bool = False,
) -> list[Node]:
    """The size-ranked quadtree of :func:`build_hierarchy` (one set of buildings)."""
    order = _size_order(size)
    x, y = centre_xy[:, 0], centre_xy[:, 1]
    # per column: a reduction along axis 0 of an (n, 2) array strides through memory
    lo = np.array([x.min(), y.min()])
    span = float(max(max(x.max() - lo[0], y.max() - lo[1]), 1.0)) * (1 + 1e-9)
    # each pending node's members' centres travel with them, in the same order, as
    # one complex array (x + iy: one gather per level instead of two): read in
    # sequence, not gathered from the whole city at every level
    centres = {0: _packed_centres(centre_xy, order, consume)}
    del x, y
    nodes = [Node(0, 0, 0, order)]
    stack = [0]
    while stack:
        index = stack.pop()
        node = nodes[index]
        members = node.members
        xy = centres.pop(index)
        # a node keeps at most max_features buildings: only that prefix is summed
        # (a cumulative sum's prefix is the prefix's cumulative sum, bit for bit)
        head = members[:max_features]
        cum = np.cumsum(vertices[head])
        take = int(min(max_features, np.searchsorted(cum, max_vertices, side="right")))
        if row_bytes is not None:
            cum_bytes = np.cumsum(row_bytes[head])
            take = min(take, int(np.searchsorted(cum_bytes, max_bytes, side="right")))
        take = max(take, 1)
        if node.level >= max_depth:
            take = len(members)
        rest = members[take:]
        node.members = members[:take].copy()  # not a view that keeps ``members`` alive
        if len(rest) == 0:
            continue
        node.geometric_error = float(size[rest[0]])
        cell = span / (1 << node.level)
        ox, oy = lo[0] + node.x * cell, lo[1] + node.y * cell
        rxy = xy[take:]
        east = rxy.real >= ox + cell / 2
        north = rxy.imag >= oy + cell / 2
        # the quadrants in turn, each in size order (a stable partition by quadrant)
        for q, part in enumerate(_quadrants(east, north)):
            if not len(part):
                continue
            child = Node(node.level + 1, node.x * 2 + (q & 1), node.y * 2 + (q >> 1), rest[part])
            centres[len(nodes)] = rxy[part]
            node.children.append(len(nodes))
            stack.append(len(nodes))
            nodes.append(child)
    return nodes


def _packed_centres(centre_xy: np.ndarray, order: np.ndarray, consume: bool) -> np.ndarray:
    """``centre_xy`` in ``order`` as one complex array (x + iy); with ``consume``, in
    place when it is C-ordered float64 (an (n, 2) array of x, y pairs has the memory
    layout of n complex numbers), one column's temporary at a time."""
    if consume and centre_xy.dtype == np.float64 and centre_xy.flags.c_contiguous:
        for column in (0, 1):
            centre_xy[:, column] = centre_xy[order, column]
        return centre_xy.view(np.complex128).reshape(-1)
    packed = np.empty(len(order), dtype=np.complex128)
    packed.real, packed.imag = centre_xy[order, 0], centre_xy[order, 1]
    return packed


def _size_order(size: np.ndarray) -> np.ndarray:
    """Indices by decreasing size, ties in index order (a stable sort)."""
    if size.dtype == np.float64 and len(size) and float(size.min()) > 0.0:  # no NaN, 0, < 0
        # positive floats order as their bits do: a stable sort of integers is cheaper
        return np.argsort(-np.ascontiguousarray(size).view(np.int64), kind="stable")
    return np.argsort(-size, kind="stable")


def _quadrants(east: np.ndarray, north: np.ndarray) -> list[np.ndarray]:
    """Positions of the south-west, south-east, north-west and north-east members."""
    south = ~north
    return [
        np.flatnonzero(south & ~east),
        np.flatnonzero(south & east),
        np.flatnonzero(north & ~east),
        np.flatnonzero(north & east),
    ]
