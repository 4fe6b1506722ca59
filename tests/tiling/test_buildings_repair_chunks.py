"""The per-row footprint repair in chunks: the same buildings and report however cut or run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from cim.config import load_project
from cim.executor import PoolExecutor
from cim.report import StageReport
from tiling.buildings.prepare import Runner, read_footprints

LON, LAT = 114.05, 22.55
D = 0.0002


def ring(x: float, y: float, size: float = D, cw: bool = False) -> list:
    pts = [[x, y], [x + size, y], [x + size, y + size], [x, y + size]]
    pts = pts[::-1] if cw else pts
    return [*pts, pts[0]]


def polygon(*rings: list) -> dict:
    return {"type": "Polygon", "coordinates": list(rings)}


def bad_features(k: int) -> list[tuple[str, dict | None, dict]]:
    """One of each kind of feature the repair handles, around column ``k``."""
    x = LON + k * 0.01
    tiny = D / 100_000
    bowtie = [[x, LAT], [x + D, LAT + D], [x + D, LAT], [x, LAT + D], [x, LAT]]
    dup = ring(x + 0.003, LAT)
    dup.insert(1, list(dup[0]))
    hole = ring(x + 0.0042, LAT + 0.0002, D / 4, cw=False)
    return [
        ("ok", polygon(ring(x, LAT)), {"height": 10}),
        ("cw", polygon(ring(x + 0.001, LAT, cw=True)), {"floors": 3}),
        ("bowtie", polygon(bowtie), {"height": 12}),
        ("dup", polygon(dup), {}),
        ("tiny", polygon([[x, LAT], [x + tiny, LAT], [x, LAT + tiny], [x, LAT]]), {}),
        ("thin", polygon(ring(x + 0.002, LAT, D / 1000)), {"height": 5}),
        ("holed", polygon(ring(x + 0.004, LAT), hole), {"height": 20}),
        (
            "coll",
            {
                "type": "GeometryCollection",
                "geometries": [
                    polygon(ring(x + 0.005, LAT)),
                    {"type": "LineString", "coordinates": [[x, LAT], [x + D, LAT]]},
                ],
            },
            {"height": 7},
        ),
        ("line", {"type": "LineString", "coordinates": [[x, LAT], [x + D, LAT]]}, {}),
        ("none", None, {}),
        (
            "multi",
            {
                "type": "MultiPolygon",
                "coordinates": [[ring(x + 0.006, LAT)], [ring(x + 0.007, LAT)]],
            },
            {"height": 9},
        ),
    ]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("chunks")
    features = [
        {"type": "Feature", "properties": {"id": f"{name}-{k}", **props}, "geometry": geometry}
        for k in range(4)
        for name, geometry, props in bad_features(k)
    ]
    (folder / "b.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8"
    )
    (folder / "city.toml").write_text(
        '[buildings]\npath = "b.geojson"\nid = "id"\n', encoding="utf-8"
    )
    return folder / "city.toml"


def read(path: Path, run: Runner) -> tuple[tuple, dict]:
    report = StageReport("buildings")
    buildings, figures = read_footprints(load_project(path), report, run=run)
    return (buildings, figures), report.to_json() | {
        "repaired": report.repaired,
        "skipped": report.skipped,
    }


@pytest.fixture(scope="module")
def whole(city: Path) -> tuple[tuple, dict]:
    return read(city, Runner())


def same(a: tuple, b: tuple) -> None:
    (ba, fa), (bb, fb) = a, b
    assert ba.ids.tolist() == bb.ids.tolist()
    assert fa.wkb.tolist() == fb.wkb.tolist()
    for name in ("centres", "bounds", "areas", "vertices", "kinds", "holes", "hashes"):
        np.testing.assert_array_equal(getattr(fa, name), getattr(fb, name))
    np.testing.assert_array_equal(ba.height, bb.height)
    assert shapely.to_wkb(ba.footprints).tolist() == shapely.to_wkb(bb.footprints).tolist()


def test_the_city_exercises_every_phase(whole: tuple[tuple, dict]) -> None:
    _, report = whole
    reasons = {r["reason"] for r in report["repaired"]} | {r["reason"] for r in report["skipped"]}
    assert {"invalid-geometry", "duplicate-vertices", "sliver", "not-a-polygon"} <= reasons
    assert {"no-geometry", "multipolygon", "height-from-floors"} <= reasons


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_chunks_give_the_same_buildings_and_report(
    city: Path, whole: tuple[tuple, dict], chunk: int
) -> None:
    out, report = read(city, Runner(chunk=chunk))
    same(whole[0], out)
    assert report == whole[1]  # same entries, same messages, same order


def test_pool_workers_give_the_same_result(city: Path, whole: tuple[tuple, dict]) -> None:
    with PoolExecutor(2) as executor:
        out, report = read(city, Runner(executor, chunk=4))
    same(whole[0], out)
    assert report == whole[1]


def test_the_figures_are_those_of_the_footprints(whole: tuple[tuple, dict]) -> None:
    buildings, figures = whole[0]
    fp = buildings.footprints
    assert figures.wkb.tolist() == shapely.to_wkb(fp, output_dimension=2).tolist()
    np.testing.assert_array_equal(figures.centres, shapely.get_coordinates(shapely.centroid(fp)))
    np.testing.assert_array_equal(figures.bounds, shapely.bounds(fp))
    np.testing.assert_array_equal(figures.areas, shapely.area(fp))
    np.testing.assert_array_equal(figures.vertices, shapely.get_num_coordinates(fp))
    assert figures.total_bounds() == buildings.bounds()
    # clockwise input comes out counter-clockwise, holes clockwise
    assert shapely.is_ccw(shapely.get_exterior_ring(buildings.footprints[0:2])).all()


@pytest.mark.slow
def test_dask_workers_give_the_same_result(city: Path, whole: tuple[tuple, dict]) -> None:
    pytest.importorskip("distributed")
    from cim.executor import DaskExecutor

    with DaskExecutor("local:2", memory_limit="1GiB") as executor:
        out, report = read(city, Runner(executor, chunk=5))
    same(whole[0], out)
    assert report == whole[1]


def test_the_wkb_hashes_are_the_l2_row_hashes_of_the_wkb(whole: tuple[tuple, dict]) -> None:
    from tiling.buildings.rowhash import xxh3_hashes

    _, figures = whole[0]
    assert figures.hashes.tolist() == xxh3_hashes(figures.wkb).tolist()
