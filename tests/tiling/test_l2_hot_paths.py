"""The vectorised hot paths of the buildings and L2 stages give what the per-row code gave."""

from __future__ import annotations

import mapbox_earcut
import numpy as np
import shapely

from cim.report import StageReport
from tiling.buildings.extrude import _earcut_parts
from tiling.buildings.prepare import _height_problem, _report_heights


def _per_row_heights(ids, height, floors, from_floors, fallback, max_height) -> list[dict]:
    """The report entries as the per-building loop made them."""
    report = StageReport("buildings")
    for i in np.flatnonzero(from_floors | fallback):
        why = _height_problem(height[i], max_height)
        if from_floors[i]:
            report.repair(ids[i], "height-from-floors", f"{why}; {floors[i]:g} floors")
        else:
            report.repair(ids[i], "default-height", f"{why}; no usable floors")
    return report.repaired


def test_height_repairs_match_the_per_building_texts() -> None:
    rng = np.random.default_rng(7)
    n = 5000
    ids = np.array([f"b{i}" for i in range(n)], dtype=object)
    height = rng.choice([np.nan, np.inf, -np.inf, 0.0, -3.5, 1e4, 612.25, 12.0], n)
    floors = rng.choice([np.nan, 2.5, 3.0, 7.0, 120.0], n)
    from_floors = (rng.random(n) < 0.4) & np.isfinite(floors)
    fallback = ~from_floors & (rng.random(n) < 0.5)
    report = StageReport("buildings")
    _report_heights(report, ids, height, floors, from_floors, fallback, 500.0)
    expected = _per_row_heights(ids, height, floors, from_floors, fallback, 500.0)
    assert report.repaired == expected
    texts = {r["detail"] for r in report.repaired}
    # each kind of problem is there (the cache keeps "height 0" apart from "missing")
    assert {"height 0; no usable floors", "height missing; no usable floors"} <= texts
    assert "height 612.25 m above max_height 500; 2.5 floors" in texts
    assert "height -3.5 m negative; 120 floors" in texts


def test_no_height_repair_adds_nothing() -> None:
    report = StageReport("buildings")
    none = np.zeros(3, dtype=bool)
    _report_heights(report, np.array(["a", "b", "c"], dtype=object), np.ones(3), np.ones(3),
                    none, none, 500.0)  # fmt: skip
    assert report.repaired == []


def _per_part_earcut(positions, ring_len, part_ring_offsets, parts) -> np.ndarray:
    xy = np.ascontiguousarray(positions[:, :2])
    ring_end = np.cumsum(ring_len)
    ring_start = ring_end - ring_len
    out = []
    for p in parts.tolist():
        r0, r1 = part_ring_offsets[p], part_ring_offsets[p + 1]
        first = ring_start[r0]
        ends = (ring_end[r0:r1] - first).astype(np.uint32)
        tris = mapbox_earcut.triangulate_float64(xy[first : first + ends[-1]], ends)
        out.append(tris.astype(np.int64) + first)
    return np.concatenate(out)


def test_earcut_of_all_parts_at_once_matches_one_call_per_part() -> None:
    court = shapely.box(0, 0, 30, 30).difference(shapely.box(10, 10, 20, 20))
    two_holes = shapely.box(0, 0, 40, 20).difference(
        shapely.union(shapely.box(5, 5, 10, 10), shapely.box(20, 5, 30, 15))
    )
    lshape = shapely.Polygon([(0, 0), (20, 0), (20, 10), (10, 10), (10, 20), (0, 20)])
    polys = [shapely.affinity.translate(g, 100.0 * k, 7.0 * k) for k in range(30)
             for g in (court, lshape, two_holes, shapely.box(0, 0, 3, 4))]  # fmt: skip
    polys = shapely.orient_polygons(np.array(polys, dtype=object), exterior_cw=False)
    _, coords, (rings, parts) = shapely.to_ragged_array(polys)
    keep = np.ones(len(coords), dtype=bool)
    keep[rings[1:] - 1] = False  # the roof's vertices: no closing vertex
    positions = np.column_stack([coords, np.zeros(len(coords))])[keep]
    ring_len = np.diff(rings) - 1
    chosen = np.flatnonzero(np.arange(len(polys)) % 4 != 3)  # not the boxes (fans)
    got = _earcut_parts(positions, ring_len, parts, chosen)
    assert len(got) == 1 and got[0].dtype == np.int64
    np.testing.assert_array_equal(got[0], _per_part_earcut(positions, ring_len, parts, chosen))
    assert _earcut_parts(positions, ring_len, parts, np.zeros(0, dtype=np.int64)) == []
