"""Corpus: one bad geometry among good ones is a skip or a repair, never the city lost."""

from __future__ import annotations

import math

import numpy as np
import pytest
from corpus_kit import (
    M_LAT,
    M_LON,
    Project,
    buildings_project,
    expect_built,
    expect_error,
    feature,
    good_features,
    polygon,
    square,
    wkt_polygon,
)

IDS = [f"b{k}" for k in range(8)]


def _ring(k: int) -> list[list[float]]:
    return square(k)


def unclosed() -> dict:
    return polygon(_ring(10)[:-1])


def two_point() -> dict:
    r = _ring(11)
    return polygon([r[0], r[1], r[0]])


def tiny_triangle() -> dict:
    x, y = _ring(12)[0]
    d = 0.0005 / M_LON
    return polygon([[x, y], [x + d, y], [x, y + d], [x, y]])


def bow_tie() -> dict:
    r = _ring(13)
    return polygon([r[0], r[2], r[1], r[3], r[0]])


def with_hole() -> dict:
    r = np.array(_ring(14))
    c = r[:4].mean(axis=0)
    hole = (c + (r - c) * 0.3)[::-1].tolist()
    return polygon(r.tolist(), hole)


def with_z() -> dict:
    return polygon([[x, y, 25.0] for x, y in _ring(15)])


def one_part_multi() -> dict:
    return {"type": "MultiPolygon", "coordinates": [[_ring(16)]]}


def multi_part() -> dict:
    return {"type": "MultiPolygon", "coordinates": [[_ring(17)], [_ring(18)]]}


def point() -> dict:
    return {"type": "Point", "coordinates": _ring(19)[0]}


def line() -> dict:
    return {"type": "LineString", "coordinates": _ring(20)[:3]}


def collection_with_polygon() -> dict:
    return {"type": "GeometryCollection", "geometries": [polygon(_ring(21)), line()]}


def collection_of_points() -> dict:
    return {"type": "GeometryCollection", "geometries": [point(), point()]}


def empty_polygon() -> dict:
    return {"type": "Polygon", "coordinates": []}


def spike() -> dict:
    r = _ring(22)
    tip = [r[1][0] + 20 / M_LON, r[1][1]]
    return polygon([r[0], r[1], tip, r[1], r[2], r[3], r[0]])


def clockwise() -> dict:
    return polygon(_ring(23)[::-1])


def repeated_vertices() -> dict:
    r = _ring(24)
    return polygon([r[0], r[1], r[1], r[1], r[2], r[3], r[0]])


def huge_polygon(n: int = 100_000) -> dict:
    x, y = _ring(25)[0]
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    lon = x + 15 / M_LON * (1 + np.cos(t))
    lat = y + 15 / M_LAT * (1 + np.sin(t))
    ring = np.column_stack([lon, lat]).tolist()
    return polygon([*ring, ring[0]])


# (case id, bad geometry, outcome: "skip" | "repair" | "keep" (in tiles, not a repair)
# | "either" (in the tiles, or skipped with a reason))
GEOJSON_CASES = [
    ("unclosed-ring", unclosed, "either"),
    ("two-point-ring", two_point, "skip"),
    ("half-millimetre-triangle", tiny_triangle, "skip"),
    ("bow-tie", bow_tie, "repair"),
    ("null-geometry", lambda: None, "skip"),
    ("empty-polygon", empty_polygon, "skip"),
    ("point", point, "skip"),
    ("line", line, "skip"),
    ("collection-with-polygon", collection_with_polygon, "either"),
    ("collection-of-points", collection_of_points, "skip"),
    ("hole", with_hole, "keep"),
    ("z", with_z, "repair"),
    ("one-part-multipolygon", one_part_multi, "keep"),
    ("multi-part", multi_part, "either"),
    ("spike", spike, "either"),
    ("clockwise-ring", clockwise, "keep"),
    ("repeated-vertices", repeated_vertices, "either"),
]


@pytest.mark.parametrize(
    "make,outcome", [c[1:] for c in GEOJSON_CASES], ids=[c[0] for c in GEOJSON_CASES]
)
def test_one_bad_geometry(project: Project, make, outcome: str) -> None:
    buildings_project(project, [*good_features(), feature("bad", make(), height=12.0)])
    kw = {
        "skip": {"skipped": ["bad"]},
        "repair": {"repaired": ["bad"]},
        "keep": {"not_repaired": ["bad"]},
        "either": {},
    }[outcome]
    valid = [*IDS, "bad"] if outcome == "keep" else IDS
    features = expect_built(project, project.build(), valid, **kw)
    skipped = {r["id"] for r in project.report()["buildings"]["skipped"]}
    assert "bad" in features or "bad" in skipped, "the bad feature vanished without a word"
    if outcome == "keep" or "bad" in features:
        assert features["bad"]["height"] == pytest.approx(12.0)


def test_multi_part_is_one_building(project: Project) -> None:
    buildings_project(project, [*good_features(), feature("mp", multi_part(), height=12.0)])
    features = expect_built(project, project.build(), [*IDS, "mp"])
    assert len(features) == 9
    st = project.report()["buildings"]
    assert st["counts"].get("multipolygons") == 1


def test_one_part_multipolygons_are_not_repairs(project: Project) -> None:
    feats = [
        feature(f"m{k}", {"type": "MultiPolygon", "coordinates": [[square(k)]]}, height=9.0)
        for k in range(8)
    ]
    buildings_project(project, feats)
    expect_built(project, project.build(), [f"m{k}" for k in range(8)])
    assert project.report()["buildings"]["repaired_count"] == 0


def test_100k_vertex_polygon(project: Project) -> None:
    buildings_project(project, [*good_features(), feature("huge", huge_polygon(), height=30.0)])
    expect_built(project, project.build(), [*IDS, "huge"])
    sizes = [p.stat().st_size for p in (project.output / "tiles/l2").rglob("*.glb")]
    assert max(sizes) < 1_000_000, sizes


def test_duplicate_ids_are_renamed(project: Project) -> None:
    feats = [*good_features(), feature("b0", polygon(square(30)), height=5.0)]
    buildings_project(project, feats)
    features = expect_built(project, project.build(), IDS, bad=["b0"])
    assert len(features) == 9
    assert len([i for i in features if i.startswith("b0")]) == 2


def test_duplicate_footprints(project: Project) -> None:
    feats = [*good_features(), feature("twin", polygon(square(3)), height=13.0)]
    buildings_project(project, feats)
    expect_built(project, project.build(), IDS, skipped=["twin"])


def test_same_id_and_geometry_twice(project: Project) -> None:
    feats = [*good_features(), feature("b3", polygon(square(3)), height=13.0)]
    buildings_project(project, feats)
    features = expect_built(project, project.build(), IDS)
    assert len(features) == 8
    assert "b3" in {r["id"] for r in project.report()["buildings"]["skipped"]}


def test_missing_ids_are_generated(project: Project) -> None:
    feats = [*good_features(), feature(None, polygon(square(30)), height=5.0)]
    buildings_project(project, feats)
    features = expect_built(project, project.build(), IDS)
    assert len(features) == 9


# WKT in a CSV: what JSON cannot carry (NaN, inf) and what WKT readers refuse
WKT_CASES = [
    ("nan", "POLYGON((NaN 30.55,114.3 30.55,114.3 30.56,NaN 30.55))"),
    ("inf", "POLYGON((inf 30.55,114.3 30.55,114.3 30.56,inf 30.55))"),
    ("unclosed", "POLYGON((114.3 30.55,114.3001 30.55,114.3001 30.5501))"),
    ("garbage", "POLYGON((this is not wkt"),
    ("empty", "POLYGON EMPTY"),
    ("blank", ""),
    ("off-earth", "POLYGON((114.3 95,114.3001 95,114.3001 95.0001,114.3 95))"),
]


@pytest.mark.parametrize("wkt", [c[1] for c in WKT_CASES], ids=[c[0] for c in WKT_CASES])
def test_one_bad_wkt_in_a_csv(project: Project, wkt: str) -> None:
    rows = [(f"b{k}", wkt_polygon(square(k)), 10 + k) for k in range(8)]
    project.csv("data/b.csv", ["id", "wkt", "height"], [*rows, ("bad", wkt, 12)])
    project.toml('[buildings]\npath = "data/b.csv"\nid = "id"\ncrs = "EPSG:4326"\n')
    expect_built(project, project.build(), IDS, bad=["bad"])


def test_no_usable_feature_at_all(project: Project) -> None:
    feats = [feature(f"p{k}", point(), height=3.0) for k in range(5)]
    buildings_project(project, feats)
    expect_error(project.build(), 4, r"b\.geojson.*no usable")
