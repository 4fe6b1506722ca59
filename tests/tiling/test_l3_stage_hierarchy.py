"""The L2 hierarchy keeps the L3 district's buildings in a subtree of their own."""

from __future__ import annotations

import numpy as np
import pytest

from tiling.buildings.hierarchy import build_hierarchy


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_district_buildings_get_their_own_subtree(share: float) -> None:
    rng = np.random.default_rng(5)
    n = 5000
    xy = rng.uniform(0, 2000, (n, 2))
    size = rng.uniform(3, 60, n)
    separate = rng.uniform(size=n) < share
    nodes = build_hierarchy(
        xy, size, np.full(n, 40), max_features=300, max_vertices=60000, separate=separate
    )
    members = np.concatenate([node.members for node in nodes])
    assert np.array_equal(np.sort(members), np.arange(n))  # every building once
    assert len({node.key for node in nodes}) == len(nodes)
    for node in nodes:
        assert len(set(separate[node.members].tolist())) <= 1, "a tile mixes the two"
    if 0 < share < 1:
        district_root = nodes[nodes[0].children[-1]]
        assert separate[district_root.members].all()
        below = [district_root]
        seen = 0
        while below:
            node = below.pop()
            seen += len(node.members)
            assert separate[node.members].all()
            below += [nodes[c] for c in node.children]
        assert seen == separate.sum()  # the whole district is under that child
        assert nodes[0].geometric_error >= size[district_root.members].max()
    for node in nodes:
        for c in node.children:
            assert nodes[c].geometric_error <= node.geometric_error + 1e-9


def test_large_l2_tiles_are_shared_among_tasks() -> None:
    import shapely

    from tiling.l3.stage import TASK_BUILDINGS, _task_rows

    rng = np.random.default_rng(2)
    n = 2 * TASK_BUILDINGS + 100
    xy = rng.uniform(0, 0.01, (n, 2)) + np.array([113.3, 40.1])
    footprints = shapely.buffer(shapely.points(xy), 0.00005)
    rows = np.arange(n)[::-1]
    parts = _task_rows(rows, footprints)
    assert len(parts) == 3 and all(len(p) <= TASK_BUILDINGS for p in parts)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(n))
    assert _task_rows(rows[:10], footprints)[0].tolist() == rows[:10].tolist()
