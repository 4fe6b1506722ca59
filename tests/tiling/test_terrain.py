"""Terrain stage: quantized-mesh-1.0 format, error budget, cracks, availability."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from cim.config import DatumConfig, load_project
from cim.crs import geodetic_to_ecef
from cim.datum import Datum
from cim.raster import DemMosaic
from cim.report import BuildReport
from cim.stages import BuildContext
from tiling.terrain import qmesh, scheme
from tiling.terrain.build import LayerJson, build_terrain, ranges_from_tiles, read_tile
from tiling.terrain.mesh import mesh_on_lattice
from tiling.terrain.stage import TerrainStage

REPO = Path(__file__).resolve().parents[2]
HAKONE = "dem/hakone_aster_gdem_1arcsec_4326.tif"


def realdata(rel: str) -> Path:
    """A real-data file, preferring the repository copy under sample_data/realdata."""
    for root in (REPO / "sample_data" / "realdata", Path("/work/shared/realdata")):
        if (root / rel).exists():
            return root / rel
    pytest.skip(f"real data {rel} not available")


@pytest.fixture(scope="module")
def hakone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, Path]:
    """Hakone DEM built to level 12 with a constant geoid offset, on 2 workers."""
    dem = realdata(HAKONE)
    out = tmp_path_factory.mktemp("hakone") / "terrain"
    result = build_terrain([dem], out, datum=DatumConfig(geoid_offset=36.5), max_zoom=12, jobs=2)
    return out, result, dem


# --- codec unit tests -------------------------------------------------------------


def test_zigzag_and_hwm_round_trip() -> None:
    rng = np.random.default_rng(1)
    vals = rng.integers(0, 32768, 500).astype(np.uint16)
    enc = qmesh.zigzag_delta_encode(vals)
    # spec: zig-zag of the delta; first value is the delta from 0
    d0 = int(vals[0])
    assert enc[0] == (d0 << 1)
    d1 = int(vals[1]) - int(vals[0])
    assert enc[1] == ((d1 << 1) ^ (d1 >> 31)) & 0xFFFF
    assert np.array_equal(qmesh.zigzag_delta_decode(enc), vals)
    tris = np.array([[0, 1, 2], [2, 1, 3], [0, 3, 4], [4, 3, 2]])
    codes = qmesh.hwm_encode(tris)
    assert codes[:3].tolist() == [0, 0, 0]  # three new vertices
    assert np.array_equal(qmesh.hwm_decode(codes).reshape(-1, 3), tris)


def test_oct_normals_round_trip() -> None:
    rng = np.random.default_rng(2)
    v = rng.normal(size=(200, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    back = qmesh.oct_decode(qmesh.oct_encode(v))
    assert np.degrees(np.arccos(np.clip((back * v).sum(axis=1), -1, 1))).max() < 1.5


def _parse_spec(data: bytes) -> dict:
    """Independent reading of the byte layout, straight from the spec."""
    out: dict = {}
    hdr = struct.unpack_from("<dddffddddddd", data, 0)
    out["header"] = hdr
    pos = 88
    (n,) = struct.unpack_from("<I", data, pos)
    pos += 4
    out["n"] = n
    out["uvh"] = [struct.unpack_from(f"<{n}H", data, pos + i * 2 * n) for i in range(3)]
    pos += 6 * n
    idx_fmt = "I" if n > 65536 else "H"
    isz = struct.calcsize(idx_fmt)
    pos += (-pos) % isz
    (m,) = struct.unpack_from("<I", data, pos)
    pos += 4
    out["codes"] = struct.unpack_from(f"<{3 * m}{idx_fmt}", data, pos)
    pos += 3 * m * isz
    out["edges"] = []
    for _ in range(4):
        (k,) = struct.unpack_from("<I", data, pos)
        pos += 4
        out["edges"].append(struct.unpack_from(f"<{k}{idx_fmt}", data, pos))
        pos += k * isz
    out["extensions"] = []
    while pos < len(data):
        ext_id, length = struct.unpack_from("<BI", data, pos)
        pos += 5
        out["extensions"].append((ext_id, length))
        pos += length
    assert pos == len(data)
    return out


def test_tile_byte_layout_matches_spec(hakone) -> None:
    out, result, _ = hakone
    z = 12
    r = result.layer.available[z][0]
    data = read_tile(out, z, r.start_x, r.start_y)
    spec = _parse_spec(data)
    q = qmesh.decode_tile(data)
    n = spec["n"]
    assert n == q.u.size
    # zig-zag deltas decode to 0..32767
    for arr in spec["uvh"]:
        dec = qmesh.zigzag_delta_decode(np.array(arr, dtype=np.uint16))
        assert dec.max() <= 32767
    # high-water mark: the first code is 0 and a code never exceeds the mark
    codes = np.array(spec["codes"])
    assert codes[0] == 0
    hwm = 0
    for c in codes:
        assert c <= hwm
        if c == 0:
            hwm += 1
    assert hwm == n  # every vertex used
    # edge lists: exactly the vertices on each edge, sorted as CesiumJS names them
    w, s, e, nn = (np.array(x, dtype=np.int64) for x in spec["edges"])
    assert set(w) == set(np.flatnonzero(q.u == 0))
    assert set(s) == set(np.flatnonzero(q.v == 0))
    assert set(e) == set(np.flatnonzero(q.u == 32767))
    assert set(nn) == set(np.flatnonzero(q.v == 32767))
    assert np.all(np.diff(q.v[w].astype(int)) > 0)  # south → north
    assert np.all(np.diff(q.u[s].astype(int)) < 0)  # east → west
    assert np.all(np.diff(q.v[e].astype(int)) < 0)  # north → south
    assert np.all(np.diff(q.u[nn].astype(int)) > 0)  # west → east
    # octvertexnormals extension: id 1, two bytes per vertex
    assert spec["extensions"] == [(1, 2 * n)]
    # header: min/max height, centre and bounding sphere agree with the vertices
    hdr = spec["header"]
    heights = q.heights()
    assert hdr[3] == pytest.approx(heights.min(), abs=1e-3)
    assert hdr[4] == pytest.approx(heights.max(), abs=1e-3)
    lon, lat = q.lonlat(scheme.tile_bounds(z, r.start_x, r.start_y))
    x, y, zz = geodetic_to_ecef(lon, lat, heights)
    pts = np.stack([x, y, zz], axis=1)
    centre = np.array(hdr[5:8])
    assert np.linalg.norm(pts - centre, axis=1).max() <= hdr[8] * (1 + 1e-6)
    assert np.linalg.norm(np.array(hdr[0:3]) - pts.mean(axis=0)) < 2 * hdr[8]
    # horizon occlusion point lies above the surface along the centre direction
    hop = np.array(hdr[9:12])
    assert np.linalg.norm(hop) > 1.0
    d = centre / qmesh.RADII
    assert np.allclose(hop / np.linalg.norm(hop), d / np.linalg.norm(d), atol=1e-9)
    # triangles counter-clockwise seen from above
    tri = q.triangles.astype(np.int64)
    uu, vv = q.u.astype(np.int64), q.v.astype(np.int64)
    area = (uu[tri[:, 1]] - uu[tri[:, 0]]) * (vv[tri[:, 2]] - vv[tri[:, 0]]) - (
        uu[tri[:, 2]] - uu[tri[:, 0]]
    ) * (vv[tri[:, 1]] - vv[tri[:, 0]])
    assert np.all(area > 0)


def test_files_are_gzip_and_availability_matches(hakone) -> None:
    out, _, _ = hakone
    files = {(int(p.parts[-3]), int(p.parts[-2]), int(p.stem)) for p in out.glob("*/*/*.terrain")}
    layer = LayerJson.from_json(json.loads((out / "layer.json").read_text()))
    assert files == layer.tiles()
    assert layer.maxzoom == 12 and layer.minzoom == 0
    assert "octvertexnormals" in layer.extensions
    # whole globe at levels 0..2, two root tiles
    assert layer.available[0] == [scheme.TileRange(0, 0, 1, 0)]
    assert layer.available[2] == [scheme.TileRange(0, 0, 7, 3)]
    raw = next(iter(out.glob("12/*/*.terrain"))).read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    gzip.decompress(raw)
    # typed round trip
    obj = json.loads((out / "layer.json").read_text())
    assert LayerJson.from_json(obj).to_json() == obj
    assert obj["format"] == "quantized-mesh-1.0" and obj["scheme"] == "tms"
    w, s, e, n = obj["bounds"]
    assert 139.1 < w < e < 139.36 and 35.2 < s < n < 35.5


def test_ranges_from_tiles_exact() -> None:
    tiles = {(x, y) for x in range(3, 7) for y in range(2, 5)} | {(10, 4), (11, 4), (10, 5)}
    ranges = ranges_from_tiles(tiles)
    covered = {
        (x, y)
        for r in ranges
        for x in range(r.start_x, r.end_x + 1)
        for y in range(r.start_y, r.end_y + 1)
    }
    assert covered == tiles
    assert sum(r.count() for r in ranges) == len(tiles)


def test_vertical_error_within_cesium_budget(hakone) -> None:
    out, result, dem_path = hakone
    dem = DemMosaic([dem_path])
    datum = Datum.from_config(DatumConfig(geoid_offset=36.5))
    db = dem.bounds_lonlat()
    checked = 0
    for z in range(3, 13):
        budget = scheme.geometric_error(z)
        tiles = sorted(result.layer.tiles())
        level = [t for t in tiles if t[0] == z]
        for _, x, y in level[:: max(1, len(level) // 4)]:
            q = qmesh.decode_tile(read_tile(out, z, x, y))
            w, s, e, n = scheme.tile_bounds(z, x, y)
            m = 128
            approx = mesh_on_lattice(
                q.u.astype(np.int64),
                (32767 - q.v).astype(np.int64),
                q.heights(),
                q.triangles.astype(np.int64),
                32767,
                m,
            )
            lon, lat = np.meshgrid(np.linspace(w, e, m + 1), np.linspace(n, s, m + 1))
            # one grid cell along the DEM's outer edge steps down to the sea-level fill
            band = 1.5 * scheme.tile_size_deg(z) / result.levels[z].grid
            inside = (
                (lon > db[0] + band)
                & (lon < db[2] - band)
                & (lat > db[1] + band)
                & (lat < db[3] - band)
            )
            truth = datum.to_ellipsoidal(dem.sample(lon, lat), lon, lat)
            ok = inside & np.isfinite(truth)
            if not ok.any():
                continue
            err = np.abs(approx[ok] - truth[ok]).max()
            assert err <= budget, f"level {z} tile {x},{y}: {err:.2f} m > {budget:.2f} m"
            checked += 1
        # the stage's own measurement agrees
        assert result.levels[z].max_error <= budget
    assert checked >= 10


def _edge_heights(q: qmesh.QuantizedMesh, side: str) -> dict[int, float]:
    h = q.heights()
    sel = {"w": q.u == 0, "e": q.u == 32767, "s": q.v == 0, "n": q.v == 32767}[side]
    key = q.v if side in "we" else q.u
    return {int(k): float(v) for k, v in zip(key[sel], h[sel], strict=True)}


def test_neighbours_share_edge_vertices_and_heights(hakone) -> None:
    out, result, _ = hakone
    pairs = 0
    for z in (8, 10, 11, 12):
        tiles = {(x, y) for zz, x, y in result.layer.tiles() if zz == z}
        for x, y in sorted(tiles):
            a = qmesh.decode_tile(read_tile(out, z, x, y))
            tol_a = (a.max_height - a.min_height) / 32767
            for (nx, ny), sa, sb in (((x + 1, y), "e", "w"), ((x, y + 1), "n", "s")):
                if (nx, ny) not in tiles:
                    continue
                b = qmesh.decode_tile(read_tile(out, z, nx, ny))
                tol = tol_a + (b.max_height - b.min_height) / 32767 + 1e-6
                ea, eb = _edge_heights(a, sa), _edge_heights(b, sb)
                assert ea.keys() == eb.keys(), f"{z}/{x}/{y} {sa}: edge vertices differ"
                diff = max(abs(ea[k] - eb[k]) for k in ea)
                assert diff <= tol, f"{z}/{x}/{y} {sa}: crack of {diff:.3f} m"
                pairs += 1
    assert pairs > 20


def test_normals_point_up_and_match_across_edges(hakone) -> None:
    out, result, _ = hakone
    z = 12
    r = result.layer.available[z][0]
    q = qmesh.decode_tile(read_tile(out, z, r.start_x, r.start_y))
    nrm = qmesh.oct_decode(q.normals)
    lon, lat = q.lonlat(scheme.tile_bounds(z, r.start_x, r.start_y))
    up = np.stack(
        [
            np.cos(np.radians(lat)) * np.cos(np.radians(lon)),
            np.cos(np.radians(lat)) * np.sin(np.radians(lon)),
            np.sin(np.radians(lat)),
        ],
        axis=1,
    )
    assert (nrm * up).sum(axis=1).min() > 0.0  # every normal points up
    # the east neighbour has the very same normals on the shared edge (no seam)
    b = qmesh.decode_tile(read_tile(out, z, r.start_x + 1, r.start_y))
    ea = {int(k): tuple(v) for k, v in zip(q.v[q.u == 32767], q.normals[q.u == 32767], strict=True)}
    eb = {int(k): tuple(v) for k, v in zip(b.v[b.u == 0], b.normals[b.u == 0], strict=True)}
    assert ea == eb


def test_datum_offset_applied_and_sea_level_fill(hakone, tmp_path: Path) -> None:
    out, result, _ = hakone
    # level-2 tile far from the DEM (South Atlantic) is the sea-level surface h = N
    q = qmesh.decode_tile(read_tile(out, 2, 3, 1))
    assert np.allclose(q.heights(), 36.5, atol=1e-3)
    # a coastal Hakone DEM post at 0 m orthometric sits at 36.5 m ellipsoidal
    assert result.layer.maxzoom == 12


def _write_dem(path: Path, data: np.ndarray, transform, crs, nodata) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as ds:
        ds.write(data, 1)
    return path


def test_projected_int16_dem_with_nodata_and_two_files(tmp_path: Path) -> None:
    # two overlapping int16 DEMs in UTM 50N, the first with a nodata hole
    yy, xx = np.mgrid[0:200, 0:200]
    a = (200 + 50 * np.sin(xx / 20.0) + yy).astype(np.int16)
    a[80:120, 80:120] = -32768
    b = np.full((200, 200), 300, dtype=np.int16)
    t = from_origin(400000, 3400000, 10, 10)
    p1 = _write_dem(tmp_path / "a.tif", a, t, "EPSG:32650", -32768)
    p2 = _write_dem(tmp_path / "b.tif", b, t, "EPSG:32650", -32768)
    res = build_terrain([p1, p2], tmp_path / "t", max_zoom=13, jobs=1)
    assert res.auto_max_zoom in (14, 15)
    dem = DemMosaic([p1, p2])
    # the hole is filled from the second file: 300 m
    cx, cy = t * (100, 100)
    from cim.crs import to_lonlat

    lon, lat = to_lonlat(np.array([cx]), np.array([cy]), "EPSG:32650")
    assert dem.sample(lon, lat)[0] == pytest.approx(300, abs=1e-6)
    for z, lv in res.levels.items():
        assert lv.max_error <= scheme.geometric_error(z)
    files = {
        (int(p.parts[-3]), int(p.parts[-2]), int(p.stem))
        for p in (tmp_path / "t").glob("*/*/*.terrain")
    }
    assert files == res.layer.tiles()


def test_stage_with_build_context(tmp_path: Path) -> None:
    dem = realdata(HAKONE)
    toml = tmp_path / "city.toml"
    toml.write_text(
        f'[city]\nname = "Hakone"\n[datum]\ngeoid_offset = 40.0\n'
        f'[terrain]\npaths = ["{dem}"]\nmax_zoom = 9\n',
        encoding="utf-8",
    )
    project = load_project(toml)
    ctx = BuildContext(
        project=project, workdir=tmp_path / "work", report=BuildReport(), jobs=1, progress=False
    )
    stage = TerrainStage()
    assert stage.enabled(project) and stage.inputs(project) == [dem]
    assert stage.name == "terrain" and stage.order == 20 and stage.needs == ()
    stage.run(ctx)
    rep = ctx.report.stage("terrain").to_json()
    assert rep["written"] == rep["counts"]["tiles"] > 0
    assert rep["counts"]["max_zoom"] == 9
    layer = ctx.manifest["layers"]["terrain"]
    assert layer["url"] == "terrain/layer.json"
    assert (tmp_path / "work" / "terrain" / "layer.json").is_file()


def test_sample_city_terrain_capped(sample_city: Path, tmp_path: Path) -> None:
    """The sample city's DEM (Gauss-Krüger, nodata strip) and datum, up to level 12."""
    project = load_project(sample_city)
    cfg = project.raw["terrain"]
    toml = tmp_path / "city.toml"
    paths = ", ".join(f'"{project.root / p}"' for p in cfg["paths"])
    toml.write_text(
        f'[city]\nname = "sample"\ncrs = "{project.crs}"\n'
        f"[datum]\ngeoid_offset = {project.datum.geoid_offset}\n"
        f'[terrain]\npaths = [{paths}]\ncrs = "{cfg.get("crs", project.crs)}"\n'
        "max_zoom = 12\n",
        encoding="utf-8",
    )
    ctx = BuildContext(
        project=load_project(toml),
        workdir=tmp_path / "work",
        report=BuildReport(),
        jobs=2,
        progress=False,
    )
    TerrainStage().run(ctx)
    rep = ctx.report.stage("terrain")
    assert rep.written > 0 and rep.counts["auto_max_zoom"] >= 15
    for z, lv in rep.counts["levels"].items():
        assert lv["max_error_m"] <= lv["geometric_error_m"], z
    # heights are ellipsoidal: the DEM (orthometric, > 0 m) plus N
    out = tmp_path / "work" / "terrain"
    layer = LayerJson.from_json(json.loads((out / "layer.json").read_text()))
    r = layer.available[12][0]
    q = qmesh.decode_tile(
        read_tile(out, 12, (r.start_x + r.end_x) // 2, (r.start_y + r.end_y) // 2)
    )
    n = project.datum.geoid_offset
    assert q.heights().min() >= n - 1e-3  # sea-level fill outside the DEM: h = N
    assert q.heights().max() > 100 + n  # the DEM's ground, shifted by N


@pytest.mark.slow
def test_sample_city_terrain_full(sample_city: Path, tmp_path: Path) -> None:
    """The sample city exactly as configured (auto max zoom)."""
    project = load_project(sample_city)
    ctx = BuildContext(
        project=project, workdir=tmp_path / "work", report=BuildReport(), jobs=2, progress=False
    )
    TerrainStage().run(ctx)
    rep = ctx.report.stage("terrain")
    assert rep.written > 0
    for z, lv in rep.counts["levels"].items():
        assert lv["max_error_m"] <= lv["geometric_error_m"], z


def _occluded(camera: np.ndarray, point: np.ndarray) -> bool:
    """CesiumJS EllipsoidalOccluder.isScaledSpacePointVisible, negated (scaled space)."""
    vh2 = float(camera @ camera) - 1.0
    vt = point - camera
    vt_dot_vc = -float(vt @ camera)
    if vh2 < 0:
        return vt_dot_vc > 0
    return vt_dot_vc > vh2 and vt_dot_vc * vt_dot_vc / float(vt @ vt) > vh2


def test_horizon_occlusion_point_is_conservative(hakone) -> None:
    """Whenever CesiumJS would cull a tile by its horizon point, every vertex is hidden."""
    out, result, _ = hakone
    rng = np.random.default_rng(5)
    for z in (12, 8, 3):
        x, y = result.layer.available[z][0][:2]
        data = read_tile(out, z, x, y)
        q = qmesh.decode_tile(data)
        lon, lat = q.lonlat(scheme.tile_bounds(z, x, y))
        px, py, pz = geodetic_to_ecef(lon, lat, q.heights())
        pts = np.stack([px, py, pz], axis=1) / qmesh.RADII
        hop = np.array(q.header["horizon_occlusion_point"])
        culled = 0
        for _ in range(400):
            d = rng.normal(size=3)
            cam = d / np.linalg.norm(d) * rng.uniform(1.0005, 3.0)
            if _occluded(cam, hop):
                culled += 1
                assert all(_occluded(cam, p) for p in pts[:: max(1, len(pts) // 50)])
        assert culled > 0
