"""Buildings always on the ground: base attribute, DEM edge, terrain margin, wall skirt.

The end-to-end checks decode the terrain tiles a build wrote and measure every wall
bottom (base − skirt) against the mesh under its footprint
(:mod:`tiling.terrain.check`): 0 buildings may float more than 0.5 m above it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin
from rasterio.windows import Window

from cim.build import build_project
from cim.config import DatumConfig, load_project
from cim.errors import CRSError
from cim.model import Buildings
from cim.qmesh import TerrainReader
from cim.raster import DemMosaic
from cim.report import StageReport
from tiling.buildings.extrude import extrude
from tiling.buildings.ground import check_ground, set_base_elevation
from tiling.buildings.l2 import L2Options, write_l2
from tiling.buildings.prepare import read_buildings
from tiling.terrain import scheme
from tiling.terrain.build import LayerJson, build_terrain, finest_level
from tiling.terrain.check import ground_gaps, probe_footprints
from tiling.terrain.extend import EDGE_FLAT_M, EDGE_RAMP_M, EdgeExtendedDem

REPO = Path(__file__).resolve().parents[2]
HAKONE = REPO / "sample_data/realdata/dem/hakone_aster_gdem_1arcsec_4326.tif"
RES = 0.0003  # degrees (≈ 27 m east-west at 35.2° N)
W0, N0 = 139.10, 35.25


def plane_dem(path: Path, size: int = 100) -> Path:
    """A lon/lat DEM rising 1 m per pixel eastwards from 500 m (500–599 m)."""
    data = np.tile(500.0 + np.arange(size), (size, 1)).astype("float32")
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="float32",
        crs="EPSG:4326",
        transform=from_origin(W0, N0, RES, RES),
    ) as ds:
        ds.write(data, 1)
    return path


def metres_east(metres: float) -> float:
    """Degrees of longitude for ``metres`` at the test DEM's latitude."""
    return metres / (scheme.M_PER_DEG * np.cos(np.radians(N0)))


def square(lon: float, lat: float, half_m: float = 10.0) -> shapely.Polygon:
    d = metres_east(half_m)
    e = half_m / scheme.M_PER_DEG
    return shapely.box(lon - d, lat - e, lon + d, lat + e)


def write_project(folder: Path, polygons: list, extra: str = "", columns=None) -> Path:
    """GeoJSON footprints (EPSG:4326) + city.toml on ``dem.tif`` with N = −20 m."""
    features = []
    for i, g in enumerate(polygons):
        props = {"id": f"b{i}", "height": 10.0}
        props.update((columns or {}).get(i, {}))
        features.append(
            {"type": "Feature", "properties": props, "geometry": json.loads(shapely.to_geojson(g))}
        )
    (folder / "b.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), "utf-8"
    )
    (folder / "city.toml").write_text(
        '[city]\ncrs = "EPSG:4326"\n[datum]\ngeoid_offset = -20.0\n'
        f'[buildings]\npath = "b.geojson"\nid = "id"\n{extra}'
        '[terrain]\npaths = ["dem.tif"]\n',
        "utf-8",
    )
    return folder / "city.toml"


# --- the wall skirt -------------------------------------------------------------------


def test_extrude_walls_reach_below_base_by_the_skirt() -> None:
    ring = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], dtype=float)
    base = np.c_[ring, np.zeros(5)]
    top = np.c_[ring, np.full(5, 12.0)]
    args = (np.array([0, 5]), np.array([0, 1]), np.array([0]))
    plain = extrude(base, top, *args)
    skirted = extrude(base, top, *args, skirt=2.5)
    assert plain.positions[:, 2].min() == 0.0
    assert skirted.positions[:, 2].min() == pytest.approx(-2.5)
    assert skirted.positions[:, 2].max() == pytest.approx(12.0)  # the roof stays
    assert len(skirted.indices) == len(plain.indices)


def test_l2_tiles_carry_the_skirt(tmp_path: Path) -> None:
    polys = np.array([square(W0 + 0.01, N0 - 0.01), square(W0 + 0.012, N0 - 0.01)])
    b = Buildings(
        ids=np.array(["a", "b"], dtype=object),
        footprints=polys,
        height=np.array([10.0, 20.0]),
        floors=np.full(2, np.nan),
        base=np.array([100.0, 100.0]),
        name=np.array(["", ""], dtype=object),
        use=np.array(["", ""], dtype=object),
        roof_type=np.array(["", ""], dtype=object),
    )

    def lowest(skirt: float) -> float:
        out = tmp_path / f"s{skirt}"
        write_l2(b, out, L2Options(compression="none", skirt=skirt))
        box = json.loads((out / "tileset.json").read_text())["root"]["boundingVolume"]["box"]
        return box[2] - abs(box[11])  # ENU up: centre − half-axis

    assert lowest(0.0) - lowest(3.0) == pytest.approx(3.0, abs=0.05)


# --- the DEM continued past its edge ---------------------------------------------------


def test_edge_continuation_is_continuous_flat_then_ramps_to_sea_level(tmp_path: Path) -> None:
    ext = EdgeExtendedDem(DemMosaic([plane_dem(tmp_path / "dem.tif")], fill_nodata=True))
    east = W0 + 100 * RES
    lat = N0 - 50 * RES
    metres = np.array([-100.0, 5.0, 30.0, 200.0, 450.0, EDGE_FLAT_M + EDGE_RAMP_M / 2, 5000.0])
    lon = east + metres_east(metres)
    h, inside, dist = ext.sample_detail(lon, np.full(lon.shape, lat))
    edge = 599.0  # the easternmost pixel's height
    assert inside.tolist() == [True] + [False] * 6
    assert np.isfinite(h).all()
    assert h[0] == pytest.approx(599.0 - 100 / 27.3, abs=1.0)  # the DEM itself
    assert abs(h[1] - edge) < 3.0  # no step at the edge
    assert h[2:5] == pytest.approx([edge] * 3, abs=3.0)  # flat continuation
    assert h[5] == pytest.approx(edge / 2, rel=0.1)  # half-way down the ramp
    assert h[6] == 0.0 and dist[6] == np.inf  # sea level beyond the margin
    assert np.all(np.diff(dist[1:6]) > 0)


def test_terrain_does_not_fall_off_a_cliff_at_the_dem_edge(tmp_path: Path) -> None:
    dem = plane_dem(tmp_path / "dem.tif")
    out = tmp_path / "terrain"
    result = build_terrain([dem], out, datum=DatumConfig(geoid_offset=-20.0), jobs=1)
    z = result.layer.maxzoom
    # tiles are written for the margin around the DEM at the finest level
    _, south, east, north = result.dem_bounds
    lat = (south + north) / 2
    beyond = scheme.tiles_for_bounds(
        z, (east + metres_east(400), lat, east + metres_east(400), lat)
    )
    assert (z, beyond.start_x, beyond.start_y) in LayerJson.from_json(
        json.loads((out / "layer.json").read_text())
    ).tiles()
    metres = np.array([-60.0, 30.0, 150.0, 400.0])
    mesh, levels = TerrainReader(out).heights_and_levels(
        east + metres_east(metres), np.full(4, lat)
    )
    assert (levels == z).all()
    # ellipsoidal: the edge height (≈ 599 m) − 20 m, not the sea level −20 m
    assert mesh == pytest.approx([597.0 - 20.0, 579.0, 579.0, 579.0], abs=scheme.geometric_error(z))


# --- where the base comes from ---------------------------------------------------------


def test_base_attribute_wins_where_usable(tmp_path: Path) -> None:
    plane_dem(tmp_path / "dem.tif")
    lat = N0 - 50 * RES
    polys = [square(W0 + k * 20 * RES, lat) for k in (1, 2, 3, 4)]
    columns = {
        0: {"Z_MIN_SOL": 518.0},
        1: {"Z_MIN_SOL": None},
        2: {"Z_MIN_SOL": -1000.0},
        3: {"Z_MIN_SOL": 700.0},
    }
    toml = write_project(tmp_path, polys, 'base = "Z_MIN_SOL"\n', columns)
    project = load_project(toml)
    report = StageReport("buildings")
    b = read_buildings(project, report)
    set_base_elevation(b, project, report)
    dem = DemMosaic([tmp_path / "dem.tif"])
    ground = [float(np.nanmin(dem.sample(*shapely.get_coordinates(p).T))) for p in polys]
    assert b.base[0] == pytest.approx(518.0 - 20.0)  # attribute, datum applied
    assert b.base[1] == pytest.approx(ground[1] - 20.0, abs=0.5)  # missing → DEM
    assert b.base[2] == pytest.approx(ground[2] - 20.0, abs=0.5)  # -1000: unknown → DEM
    assert b.base[3] == pytest.approx(700.0 - 20.0)
    assert report.counts["base_source"] == {
        "attribute": 2,
        "DEM": 2,
        "DEM edge": 0,
        "outside_dem_base": 0,
    }
    assert [f["id"] for f in report.flagged if f["reason"] == "base-above-dem"] == ["b3"]


def test_base_attribute_column_missing_is_a_warning(tmp_path: Path) -> None:
    plane_dem(tmp_path / "dem.tif")
    toml = write_project(tmp_path, [square(W0 + 0.01, N0 - 0.01)], 'base = "Z_SOL"\n')
    project = load_project(toml)
    report = StageReport("buildings")
    b = read_buildings(project, report)
    set_base_elevation(b, project, report)
    assert any("'Z_SOL' not found" in w for w in report.warnings)
    assert report.counts["base_source"]["DEM"] == 1


def test_outside_the_dem_base_from_the_nearest_edge_with_a_warning(tmp_path: Path) -> None:
    plane_dem(tmp_path / "dem.tif")
    east = W0 + 100 * RES
    lat = N0 - 50 * RES
    polys = [
        square(east + metres_east(200), lat),  # outside, within the flat margin
        square(east, lat),  # straddling the edge
        square(east + metres_east(5000), lat),  # beyond the margin
    ]
    toml = write_project(tmp_path, polys, "outside_dem_base = 3.0\n")
    project = load_project(toml)
    report = StageReport("buildings")
    b = read_buildings(project, report)
    skirt = set_base_elevation(b, project, report)
    assert b.base[0] == pytest.approx(599.0 - 20.0, abs=3.0)
    assert b.base[1] == pytest.approx(599.0 - 1 - 20.0, abs=3.0)
    assert b.base[2] == pytest.approx(3.0 - 20.0)
    outside = [r["id"] for r in report.repaired if r["reason"] == "outside-dem"]
    assert outside == ["b0", "b2"]
    assert "1 buildings outside the DEM: base from the nearest DEM edge" in report.warnings
    assert any(w.startswith("1 buildings more than 1000 m outside") for w in report.warnings)
    assert report.counts["outside_dem"] == 2
    # CesiumJS's error at the finest level the terrain stage builds for this DEM
    finest = finest_level(DemMosaic([tmp_path / "dem.tif"]))
    assert skirt == pytest.approx(scheme.geometric_error(finest))
    assert report.counts["wall_skirt_m"] == round(skirt, 3)


def test_a_dem_away_from_every_building_fails_before_the_ground_is_set(tmp_path: Path) -> None:
    """A DEM in the wrong CRS lands elsewhere: CRSError in the buildings stage, before L2."""
    plane_dem(tmp_path / "dem.tif")
    toml = write_project(tmp_path, [square(W0 + 3.0, N0 - 2.0)])
    project = load_project(toml)
    report = StageReport("buildings")
    b = read_buildings(project, report)
    with pytest.raises(CRSError, match=r"dem\.tif: the DEM covers .* no overlap"):
        set_base_elevation(b, project, report)
    assert not report.repaired  # no building was put on a made-up ground


def test_without_terrain_the_base_attribute_is_not_used(tmp_path: Path) -> None:
    plane_dem(tmp_path / "dem.tif")
    toml = write_project(
        tmp_path, [square(W0 + 0.01, N0 - 0.01)], 'base = "z"\n', {0: {"z": 530.0}}
    )
    toml.write_text(toml.read_text().split("[terrain]")[0], "utf-8")
    project = load_project(toml)
    report = StageReport("buildings")
    b = read_buildings(project, report)
    assert set_base_elevation(b, project, report) == 0.0
    assert b.base[0] == 0.0
    assert any("not used" in w for w in report.warnings)


# --- against the decoded terrain mesh ----------------------------------------------------


def hakone_crop(path: Path, size: int = 110) -> Path:
    """A window of the real Hakone DEM (hills and its eastern coast cut at an edge)."""
    if not HAKONE.exists():
        pytest.skip("sample_data/realdata Hakone DEM missing")
    with rasterio.open(HAKONE) as src:
        window = Window(src.width - size - 200, 300, size, size)
        data = src.read(1, window=window)
        profile = src.profile | {
            "width": size,
            "height": size,
            "transform": src.window_transform(window),
        }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def test_real_dem_no_building_floats_above_the_decoded_mesh(tmp_path: Path) -> None:
    dem = hakone_crop(tmp_path / "dem.tif")
    polys = probe_footprints(DemMosaic([dem]).bounds_lonlat(), 250, seed=3)
    toml = write_project(tmp_path, list(polys))
    result = build_project(toml, jobs=1, progress=False)
    report = json.loads((result.output / "build-report.json").read_text("utf-8"))
    counts = report["stages"]["buildings"]["counts"]
    gaps, ground = check_ground(load_project(toml))
    assert counts["wall_skirt_m"] == ground.counts["wall_skirt_m"] > 0
    assert gaps.buildings == 250
    assert ground.counts["outside_dem"] > 20  # off the DEM and across its edges
    assert ground.counts["base_source"]["DEM edge"] > 10
    assert gaps.floating == 0, f"max gap {gaps.max_gap_m:.2f} m"
    # the mesh the check measured against is the DEM within the terrain's own error
    # (cim.qmesh decodes it; its byte layout is checked against the spec in test_terrain)
    rng = np.random.default_rng(0)
    w, s, e, n = DemMosaic([dem]).bounds_lonlat()
    lon, lat = rng.uniform(w, e, 2000), rng.uniform(s, n, 2000)
    mesh, levels = TerrainReader(result.output / "terrain").heights_and_levels(lon, lat)
    z = int(levels.max())
    dem_h = DemMosaic([dem]).sample(lon, lat) - 20.0  # [datum] geoid_offset
    assert (levels == z).all()
    assert np.nanmax(np.abs(mesh - dem_h)) < 2.0 * scheme.geometric_error(z) + 1.0
    # the check does see a building that floats
    project = load_project(toml)
    b = read_buildings(project, StageReport("b"))
    set_base_elevation(b, project, StageReport("b"))
    lifted = ground_gaps(
        result.output / "terrain", b.footprints, b.base + counts["wall_skirt_m"] + 1.0, 0.0
    )
    assert lifted.floating > 0


def test_sample_city_no_building_floats_above_the_decoded_mesh(
    sample_city: Path, sample_output: Path
) -> None:
    gaps, report = check_ground(load_project(sample_city), sample_output / "terrain")
    assert gaps.buildings > 10_000
    assert gaps.floating == 0, f"max gap {gaps.max_gap_m:.2f} m"
    built = json.loads((sample_output / "build-report.json").read_text("utf-8"))
    assert built["stages"]["buildings"]["counts"]["wall_skirt_m"] == report.counts["wall_skirt_m"]
