"""The repair's array route for plain footprints (tiling/buildings/plain.py) gives the
GEOS route's result exactly: the same rows kept, WKB bytes, figures and report."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import shapely

from tiling.buildings import plain, repair

CRS = "EPSG:4547"  # CGCS2000 / 3-degree Gauss-Kruger CM 114E (metres)
X0, Y0 = 500_000.0, 4_440_000.0


def _at(coords: list[tuple[float, float]], dx: float = 0.0) -> list[tuple[float, float]]:
    return [(X0 + dx + x, Y0 + y) for x, y in coords]


SQUARE = [(0, 0), (20, 0), (20, 15), (0, 15), (0, 0)]
CASES = {
    "square": shapely.Polygon(_at(SQUARE)),
    "clockwise": shapely.Polygon(_at(SQUARE[::-1], 40)),
    "l-shape": shapely.Polygon(_at([(0, 0), (20, 0), (20, 10), (10, 10), (10, 20), (0, 20)], 80)),
    "octagon": shapely.Polygon(
        _at([(10 * np.cos(t) + 10, 10 * np.sin(t) + 10) for t in np.linspace(0, 2 * np.pi, 9)], 120)
    ),
    "triangle": shapely.Polygon(_at([(0, 0), (30, 0), (15, 20)], 160)),
    # every vertex turns the same way, twice around: self-intersecting
    "pentagram": shapely.Polygon(
        _at([(20 * np.cos(t) + 20, 20 * np.sin(t) + 20) for t in np.arange(5) * 4 * np.pi / 5], 200)
    ),
    "bowtie": shapely.Polygon(_at([(0, 0), (20, 20), (20, 0), (0, 20), (0, 0)], 260)),
    "spike": shapely.Polygon(
        _at([(0, 0), (20, 0), (20, 20), (10, 20), (10, 40), (10, 20), (0, 20)], 300)
    ),
    "repeated": shapely.Polygon(_at([(0, 0), (20, 0), (20, 0), (20, 20), (0, 20)], 340)),
    "collinear": shapely.Polygon(_at([(0, 0), (10, 0), (20, 0), (20, 20), (0, 20)], 380)),
    "sliver": shapely.Polygon(_at([(0, 0), (30, 0), (30, 0.2), (0, 0.2)], 420)),
    "small": shapely.Polygon(_at([(0, 0), (1, 0), (1, 1), (0, 1)], 460)),
    "courtyard": shapely.Polygon(
        _at([(0, 0), (30, 0), (30, 30), (0, 30)], 500),
        [_at([(10, 10), (10, 20), (20, 20), (20, 10)], 500)],
    ),
    "multi": shapely.MultiPolygon(
        [shapely.Polygon(_at(SQUARE, 560)), shapely.Polygon(_at(SQUARE, 600))]
    ),
    # one vertex PROJ cannot place (the build's checks drop most such rows before)
    "off-earth": shapely.Polygon(_at([(0, 0), (1e12, 0), (20, 20), (0, 20)], 680)),
    "zero-area": shapely.Polygon(_at([(0, 0), (10, 0), (20, 0), (10, 0)], 640)),
}


def _task(geoms: list[shapely.Geometry], names: list[str]) -> repair.RepairTask:
    wkb = pa.array(shapely.to_wkb(np.array(geoms, dtype=object)), pa.binary())
    return repair.RepairTask(0, pa.array(names, pa.string()), wkb, CRS, 2.0)


def _assert_same_as_geos(task: repair.RepairTask) -> repair.RepairResult:
    got = repair.repair_chunk(task)
    keep, figures, found = repair.repair_geometries(
        task.ids.to_numpy(zero_copy_only=False), task.wkb, task.crs, task.min_area
    )
    np.testing.assert_array_equal(got.keep, keep)
    assert got.footprints.wkb.arrow.equals(figures.wkb.arrow)
    for name in ("centres", "bounds", "areas", "vertices", "kinds", "holes", "hashes"):
        np.testing.assert_array_equal(
            getattr(got.footprints, name), getattr(figures, name), err_msg=name
        )
    assert sorted(got.records, key=repr) == sorted(found, key=repr)
    return got


def test_every_kind_of_footprint_as_the_geos_route_leaves_it() -> None:
    names = list(CASES)
    got = _assert_same_as_geos(_task(list(CASES.values()), names))
    kept = {n for n, k in zip(names, got.keep, strict=True) if k}
    assert {"square", "clockwise", "l-shape", "octagon", "courtyard", "multi"} <= kept
    assert not {"sliver", "small", "off-earth", "zero-area"} & kept
    reasons = {(r[3]["id"], r[3]["reason"]) for r in got.records}
    assert ("sliver", "sliver") in reasons and ("pentagram", "invalid-geometry") in reasons


def test_plain_rows_are_the_ones_needing_nothing() -> None:
    """The array route takes the rings it can decide alone; the rest go to GEOS."""
    names = list(CASES)
    task = _task(list(CASES.values()), names)
    rings = plain.plain_rings(task.wkb, task.crs)
    assert rings is not None
    taken = {names[r] for r in rings.rows}
    assert {"square", "clockwise", "l-shape", "octagon", "triangle", "sliver"} <= taken
    assert not {"repeated", "courtyard", "multi", "off-earth"} & taken
    convex = {names[r] for r, c in zip(rings.rows, plain.convex(rings), strict=True) if c}
    assert {"square", "clockwise", "octagon", "triangle"} <= convex
    assert not {"pentagram", "bowtie", "spike", "l-shape", "collinear", "zero-area"} & convex
    ok = {names[r] for r, v in zip(rings.rows, plain.valid(rings), strict=True) if v}
    assert "l-shape" in ok and not {"pentagram", "bowtie", "spike", "zero-area"} & ok


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_rings_as_the_geos_route_leaves_them(seed: int) -> None:
    """Random rings, most of them self-intersecting (points in random order), some
    star-shaped (sorted by angle), some convex hulls, some clockwise."""
    rng = np.random.default_rng(seed)
    geoms = []
    for i in range(3000):
        k = int(rng.integers(3, 9))
        pts = rng.uniform(-15, 15, (k, 2))
        kind = i % 3
        if kind == 1:
            pts = pts[np.argsort(np.arctan2(pts[:, 1], pts[:, 0]))]
        elif kind == 2:
            pts = np.asarray(shapely.convex_hull(shapely.multipoints(pts)).exterior.coords)[:-1]
            if len(pts) < 3:
                pts = np.array([[0, 0], [10, 0], [0, 10]], float)
        if rng.random() < 0.5:
            pts = pts[::-1]
        pts = pts + np.array([X0 + 40 * (i % 60), Y0 + 40 * (i // 60)])
        geoms.append(shapely.Polygon(pts))
    task = _task(geoms, [f"r{i}" for i in range(len(geoms))])
    got = _assert_same_as_geos(task)
    # both routes were taken, and the GEOS one repaired what the array one left it
    rings = plain.plain_rings(task.wkb, task.crs)
    assert rings is not None
    assert 0.3 < plain.valid(rings).sum() / len(geoms) < 0.9
    repaired = [r for r in got.records if r[3]["reason"] == "invalid-geometry"]
    assert len(repaired) > 300


@pytest.mark.parametrize(
    "names", [["square", "octagon"], ["courtyard"], ["small"], ["multi", "square"]]
)
def test_chunks_of_one_route(names: list[str]) -> None:
    """A chunk all plain, all for GEOS, or nothing kept."""
    _assert_same_as_geos(_task([CASES[n] for n in names], names))


def test_a_chunk_geos_cannot_scan_goes_the_geos_route() -> None:
    """Big-endian WKB is not read by the array route: the whole chunk takes GEOS's."""
    geoms = np.array([CASES["square"], CASES["l-shape"]], dtype=object)
    wkb = pa.array(shapely.to_wkb(geoms, byte_order=0), pa.binary())
    task = repair.RepairTask(0, pa.array(["a", "b"]), wkb, CRS, 2.0)
    assert plain.plain_rings(task.wkb, task.crs) is None
    got = repair.repair_chunk(task)
    assert got.keep.all() and len(got.footprints.centres) == 2


def test_polygon_wkb_is_what_geos_writes() -> None:
    task = _task([CASES["square"], CASES["octagon"]], ["a", "b"])
    rings = plain.plain_rings(task.wkb, task.crs)
    assert rings is not None
    ours = plain.polygon_wkb(rings).to_pylist()
    polygons = shapely.polygons(shapely.linearrings(rings.lonlat, indices=rings.owner))
    assert ours == list(shapely.to_wkb(polygons))
