"""cim.outputs / cim.qmesh: the read side of a build (buildings, ground, addresses)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import shapely

from cim.addresses import AddressIndex
from cim.errors import DatasetIOError, NotFoundError
from cim.outputs import BUILDINGS_FILE, BuildOutputs
from cim.qmesh import MAX_Q, TerrainReader, decode_tile, tile_bounds


@pytest.fixture(scope="module")
def outputs(sample_output: Path) -> BuildOutputs:
    return BuildOutputs(sample_output)


@pytest.fixture(scope="module")
def table(sample_output: Path) -> dict:
    t = pq.read_table(sample_output / BUILDINGS_FILE)
    return {name: t.column(name).to_pylist() for name in t.column_names}


def test_build_writes_geoparquet_footprints(sample_output: Path, table: dict) -> None:
    meta = pq.read_schema(sample_output / BUILDINGS_FILE).metadata
    geo = json.loads(meta[b"geo"])
    assert geo["primary_column"] == "geometry"
    assert geo["columns"]["geometry"]["encoding"] == "WKB"
    manifest = json.loads((sample_output / "manifest.json").read_text(encoding="utf-8"))
    assert len(table["id"]) == manifest["layers"]["l2"]["buildings"]
    geoms = shapely.from_wkb(table["geometry"])
    w, s, e, n = shapely.total_bounds(geoms)
    assert 70 < w < e < 140 and 0 < s < n < 60  # lon/lat, not projected metres


def test_building_at_and_by_id(outputs: BuildOutputs, table: dict) -> None:
    geoms = shapely.from_wkb(table["geometry"])
    rng = np.random.default_rng(0)
    for i in rng.choice(len(geoms), 50, replace=False).tolist():
        p = shapely.point_on_surface(geoms[i])
        got = outputs.building_at(p.x, p.y)
        assert got is not None
        # the point is in this building, or in a smaller one overlapping it
        assert got.id == table["id"][i] or shapely.area(got.footprint) <= shapely.area(geoms[i])
        one = outputs.building(table["id"][i])
        assert one.height == table["height"][i] and one.base == table["base"][i]
        assert one.top == pytest.approx(table["base"][i] + table["height"][i])
        assert one.to_json()["footprint"]["type"] in ("Polygon", "MultiPolygon")
    assert outputs.building_at(0.0, 0.0) is None
    assert outputs.building_at(float("nan"), 40.0) is None
    with pytest.raises(NotFoundError, match="no building"):
        outputs.building("no-such-building")


def test_building_at_agrees_with_address_index(outputs: BuildOutputs, table: dict) -> None:
    index = outputs.addresses()
    assert isinstance(index, AddressIndex)
    geoms = shapely.from_wkb(table["geometry"])
    for i in range(0, len(geoms), max(1, len(geoms) // 40)):
        p = shapely.point_on_surface(geoms[i])
        here = index.building_at(p.x, p.y)
        assert here is not None and outputs.building_at(p.x, p.y).id == here[0]


def test_ground_height_is_the_terrain_mesh(outputs: BuildOutputs, sample_output: Path) -> None:
    terrain = TerrainReader(sample_output / "terrain")
    z = terrain.maxzoom
    tiles = sorted((sample_output / "terrain" / str(z)).glob("*/*.terrain"))
    assert tiles
    for path in tiles[:: max(1, len(tiles) // 5)]:
        x, y = int(path.parent.name), int(path.stem)
        mesh = decode_tile(path.read_bytes())
        w, s, e, n = tile_bounds(z, x, y)
        # inner vertices: exactly the vertex heights (edges may belong to a neighbour)
        inner = (mesh.u > 0) & (mesh.u < MAX_Q) & (mesh.v > 0) & (mesh.v < MAX_Q)
        lon = w + mesh.u[inner] / MAX_Q * (e - w)
        lat = s + mesh.v[inner] / MAX_Q * (n - s)
        heights = mesh.heights()
        np.testing.assert_allclose(outputs.ground_heights(lon, lat), heights[inner], atol=1e-6)
        # triangle centroids: the mean of the corners (linear on the triangle)
        t = mesh.triangles[:50]
        cu, cv = mesh.u[t].mean(axis=1), mesh.v[t].mean(axis=1)
        got = outputs.ground_heights(w + cu / MAX_Q * (e - w), s + cv / MAX_Q * (n - s))
        np.testing.assert_allclose(got, heights[t].mean(axis=1), atol=1e-6)


def test_ground_under_buildings_is_near_their_base(outputs: BuildOutputs, table: dict) -> None:
    geoms = shapely.from_wkb(table["geometry"])
    p = shapely.point_on_surface(geoms)
    ground = outputs.ground_heights(shapely.get_x(p), shapely.get_y(p))
    base = np.asarray(table["base"])
    # the base is the lowest DEM height under the footprint: at most a little above the
    # mesh (its simplification error), and the ground there not far above it
    assert np.all(base <= ground + 2.0)
    assert np.median(ground - base) < 5.0
    assert outputs.ground_height(float(shapely.get_x(p[0])), float(shapely.get_y(p[0]))) == (
        pytest.approx(ground[0])
    )


def test_plane_terrain_is_interpolated_linearly(tmp_path: Path) -> None:
    """A tile of a sloping plane: heights between vertices follow the plane."""
    from tiling.terrain.qmesh import encode_tile

    z, x, y = 10, 1666, 739
    w, s, e, n = tile_bounds(z, x, y)
    q = np.linspace(0, MAX_Q, 9).round().astype(np.int64)
    uu, vv = np.meshgrid(q, q)
    u, v = uu.ravel(), vv.ravel()
    lon = w + u / MAX_Q * (e - w)
    lat = s + v / MAX_Q * (n - s)
    h = 100.0 + 3.0 * (u / MAX_Q) - 7.0 * (v / MAX_Q)
    k = np.arange(81).reshape(9, 9)
    a, b, c, d = k[:-1, :-1].ravel(), k[:-1, 1:].ravel(), k[1:, 1:].ravel(), k[1:, :-1].ravel()
    tri = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    folder = tmp_path / "terrain"
    (folder / str(z) / str(x)).mkdir(parents=True)
    data = encode_tile(lon, lat, h, u, v, tri)
    (folder / str(z) / str(x) / f"{y}.terrain").write_bytes(data)
    available = [[] for _ in range(z)] + [[{"startX": x, "startY": y, "endX": x, "endY": y}]]
    (folder / "layer.json").write_text(json.dumps({"maxzoom": z, "available": available}))
    reader = TerrainReader(folder)
    rng = np.random.default_rng(1)
    pu, pv = rng.uniform(0, 1, 500), rng.uniform(0, 1, 500)
    got = reader.heights(w + pu * (e - w), s + pv * (n - s))
    np.testing.assert_allclose(got, 100.0 + 3.0 * pu - 7.0 * pv, atol=2e-3)
    assert reader.height(w - 1.0, s) is None  # no tile there
    # BuildOutputs over the same folder: terrain first, 0 where none
    out = tmp_path
    assert BuildOutputs(out).ground_height(w + 0.5 * (e - w), s + 0.5 * (n - s)) == (
        pytest.approx(100.0 + 1.5 - 3.5, abs=2e-3)
    )
    assert BuildOutputs(out).ground_height(w - 1.0, s) == 0.0


def test_corrupt_tile_is_a_dataset_error() -> None:
    with pytest.raises(DatasetIOError, match="quantized-mesh"):
        decode_tile(b"\x1f\x8bnot gzip at all")
    with pytest.raises(DatasetIOError, match="quantized-mesh"):
        decode_tile(b"short")


def test_footprint_table_of_another_version_is_refused(sample_output: Path, tmp_path: Path) -> None:
    t = pq.read_table(sample_output / BUILDINGS_FILE)
    meta = dict(t.schema.metadata)
    meta[b"cim:buildings"] = b'{"version": 99}'
    pq.write_table(t.replace_schema_metadata(meta), tmp_path / BUILDINGS_FILE)
    with pytest.raises(DatasetIOError, match="rebuild") as err:
        BuildOutputs(tmp_path).building("x")
    assert str(tmp_path) not in err.value.message


def test_missing_outputs(tmp_path: Path) -> None:
    out = BuildOutputs(tmp_path)
    with pytest.raises(NotFoundError, match="buildings"):
        out.building_at(113.3, 40.1)
    with pytest.raises(NotFoundError, match="address index"):
        out.addresses()
    assert out.ground_height(113.3, 40.1) == 0.0


def test_files_replaced_by_a_build_are_reopened(sample_output: Path, tmp_path: Path) -> None:
    shutil.copy2(sample_output / BUILDINGS_FILE, tmp_path / BUILDINGS_FILE)
    out = BuildOutputs(tmp_path)
    first = out.buildings()
    assert out.buildings() is first  # cached while the file is unchanged
    t = pq.read_table(tmp_path / BUILDINGS_FILE).slice(0, 3)
    pq.write_table(t, tmp_path / "new.parquet")
    os.replace(tmp_path / "new.parquet", tmp_path / BUILDINGS_FILE)
    assert len(out.buildings()) == 3
