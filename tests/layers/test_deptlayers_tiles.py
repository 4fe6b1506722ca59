"""Large layers in tiles: 100,000 features served by tiles the viewer can draw, every
feature in the complete tiles exactly once, lines and polygons across tile edges."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import shapely

from cim.report import StageReport
from layers.deptlayers.ingest import CleanFeatures
from layers.deptlayers.store import DeptLayers
from layers.deptlayers.tiles import GEOJSON_MAX_FEATURES, TileCache, tile_bounds
from layers.store import Department

WATER = Department("water", "水务局")


def _clean(geoms: np.ndarray, kinds: list[str]) -> CleanFeatures:
    report = StageReport("layer")
    report.read = report.written = len(geoms)
    return CleanFeatures(
        geoms,
        {"类型": kinds, "序号": list(range(len(geoms)))},
        {"类型": "text", "序号": "integer"},
        "EPSG:4326",
        report,
    )


@pytest.fixture
def app_store(tmp_path: Path) -> Iterator[tuple]:
    from layers.store import open_store
    from server import create_app

    url = str(tmp_path / "live.sqlite")
    app = create_app({"LIVE_STORE": url, "TESTING": True})
    store = open_store(url)
    yield app.test_client(), DeptLayers(store)
    store.close()
    state = app.extensions.get("cim.live")
    if state is not None:
        state.store.close()


def _tiles_at(z: int, bounds: list[float]) -> list[tuple[int, int, int]]:
    size = 180.0 / 2**z
    xs = range(int((bounds[0] + 180) // size), int((bounds[2] + 180) // size) + 1)
    ys = range(int((90 - bounds[3]) // size), int((90 - bounds[1]) // size) + 1)
    return [(z, x, y) for x in xs for y in ys]


def test_tile_bounds_follow_cesium_geographic_scheme() -> None:
    assert tile_bounds(0, 0, 0) == (-180.0, -90.0, 0.0, 90.0)
    assert tile_bounds(0, 1, 0) == (0.0, -90.0, 180.0, 90.0)
    assert tile_bounds(1, 3, 0) == (90.0, 0.0, 180.0, 90.0)
    with pytest.raises(Exception, match="no tile"):
        tile_bounds(1, 4, 0)


@pytest.mark.slow
def test_100k_points_are_served_in_tiles(app_store) -> None:
    _check_points_in_tiles(*app_store, 100_000)


def test_points_beyond_the_budget_are_served_in_tiles(app_store, monkeypatch) -> None:
    import layers.deptlayers.tiles as tiles

    monkeypatch.setattr(tiles, "TILE_BUDGET", 300)  # the same paths, with 6,000 points
    _check_points_in_tiles(*app_store, 6_000)


def _check_points_in_tiles(client, layers: DeptLayers, n: int) -> None:
    from layers.deptlayers import tiles

    rng = np.random.default_rng(3)
    lon = 114.30 + rng.uniform(-0.1, 0.1, n)
    lat = 30.58 + rng.uniform(-0.1, 0.1, n)
    kinds = ["消火栓" if i % 3 else "阀门" for i in range(n)]
    t0 = time.perf_counter()
    layer = layers.create(
        WATER,
        _clean(shapely.points(lon, lat), kinds),
        name="消火栓",
        style={"by": {"kind": "category", "attribute": "类型"}},
    )
    print(f"stored {n:,} points in {time.perf_counter() - t0:.2f} s")
    meta = client.get(f"/api/layers/{layer.id}").get_json()
    assert meta["serve"] == "tiles" and meta["feature_count"] == n > GEOJSON_MAX_FEATURES
    desc = client.get(f"/api/layers/{layer.id}/tiles.json").get_json()
    assert desc["attributes"] == ["类型"] and desc["budget"] == tiles.TILE_BUDGET
    # a city-wide view: few tiles, each thinned to the budget, flagged incomplete
    for z, x, y in _tiles_at(9, desc["bounds"]):
        tile = json.loads(client.get(f"/api/layers/{layer.id}/tiles/{z}/{x}/{y}.json").data)
        assert len(tile["features"]) <= tiles.TILE_BUDGET
        if tile["count"] > tiles.TILE_BUDGET:
            assert not tile["complete"] and tile["features"]
    # at street level every feature is in exactly one complete tile, placed exactly
    seen: list[int] = []
    for z, x, y in _tiles_at(13, desc["bounds"]):
        r = client.get(f"/api/layers/{layer.id}/tiles/{z}/{x}/{y}.json")
        tile = json.loads(r.data)
        assert tile["complete"] and len(tile["features"]) == tile["count"] <= tiles.TILE_BUDGET
        for f in tile["features"]:
            i = f["id"] - 1
            assert abs(f["geometry"]["coordinates"][0] - lon[i]) < 1e-6
            assert f["properties"] == {"类型": kinds[i]}
        seen.extend(f["id"] for f in tile["features"])
    assert sorted(seen) == list(range(1, n + 1))
    # the ETag follows the version and style; the tile is not sent again when unchanged
    url = (
        f"/api/layers/{layer.id}/tiles/13/{_tiles_at(13, desc['bounds'])[0][1]}/"
        f"{_tiles_at(13, desc['bounds'])[0][2]}.json"
    )
    etag = client.get(url).headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    layers.update(WATER, layer.id, style={"color": "#000000"})
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 200
    assert client.get(f"/api/layers/{layer.id}/tiles/30/0/0.json").status_code == 404


def test_lines_and_polygons_in_every_tile_they_cross(app_store) -> None:
    client, layers = app_store
    z = 12
    w, s, e, n = tile_bounds(z, 3400, 1400)
    mid = (w + e) / 2
    width = e - w
    big = shapely.box(w + width * 0.25, s + 0.001, e + width * 0.75, n - 0.001)  # two tiles
    wiggly = shapely.LineString(
        np.column_stack(
            [np.linspace(w + 1e-4, e - 1e-4, 2000), (s + n) / 2 + 1e-6 * np.sin(np.arange(2000))]
        )
    )
    small = shapely.Point(mid, (s + n) / 2)
    layer = layers.create(
        WATER, _clean(np.array([big, wiggly, small]), ["面", "线", "点"]), name="管线"
    )
    here = json.loads(client.get(f"/api/layers/{layer.id}/tiles/{z}/3400/1400.json").data)
    right = json.loads(client.get(f"/api/layers/{layer.id}/tiles/{z}/3401/1400.json").data)
    assert [f["id"] for f in here["features"]] == [1, 2, 3]
    assert [f["id"] for f in right["features"]] == [1]
    line = next(f for f in here["features"] if f["id"] == 2)
    # simplified to about a pixel of the tile: the 2,000-vertex wiggle is a few vertices
    assert len(line["geometry"]["coordinates"]) < 50
    coarse = json.loads(
        client.get(f"/api/layers/{layer.id}/tiles/3/{3400 >> 9}/{1400 >> 9}.json").data
    )
    assert {f["id"] for f in coarse["features"]} == {1, 2, 3}


def test_simultaneous_first_tiles_build_the_index_once() -> None:
    """N requests that miss the cache at once wait for one build, not N."""
    cache = TileCache()
    n = 8
    start = threading.Barrier(n)
    built: list[object] = []

    def build() -> object:
        built.append(object())
        time.sleep(0.2)  # long enough for every thread to arrive while it builds
        return built[-1]

    def first_tile() -> object:
        start.wait()
        return cache.get(("roads", 1), build)

    with ThreadPoolExecutor(n) as pool:
        got = list(pool.map(lambda _: first_tile(), range(n)))
    assert len(built) == 1
    assert all(g is built[0] for g in got)
    assert cache.get(("other", 1), build) is built[1]  # another key builds its own


def test_a_failed_build_is_retried() -> None:
    cache = TileCache()

    def broken() -> object:
        raise OSError("disk")

    with pytest.raises(OSError):
        cache.get(("roads", 1), broken)
    marker = object()
    assert cache.get(("roads", 1), lambda: marker) is marker
