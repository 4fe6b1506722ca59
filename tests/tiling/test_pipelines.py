"""The pipelines stage: survey reader, 3D axes, sections, joints, report, tiles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyogrio
import pytest
import shapely

from cim.config import PipelinesConfig, parse_section
from cim.crs import get_transformer, lonlat_to_enu
from cim.datum import Datum
from cim.errors import ConfigError
from tiling.gltf import read_accessor, read_glb, read_positions_enu, read_property_table
from tiling.pipelines.model import build_model
from tiling.pipelines.reader import parse_sizes, read_survey
from tiling.pipelines.tiles import joints
from tiling.validate import check_tileset

ORIGIN = (440300.0, 4439750.0)
GEOID = -20.0
# id, x, y, ground, depth, feature, utility (local metres around ORIGIN)
POINTS = [
    ("A1", 0, 0, "1000.00", "1.20", "阀门", "给水"),
    ("A2", 50, 0, "1000.50", "1.30", "三通", "给水"),
    ("A3", 50, 40, "1001.00", "1.10", "阀门井", "给水"),
    ("A4", 100, 0, "1000.20", "", "", "给水"),
    ("A5", 100, 0.004, "1000.20", "", "", "给水"),
    ("P1", 0, 10, "1000.00", "2.00", "检查井", "排水"),
    ("P2", 60, 10, "999.80", "2.10", "检查井", "排水"),
    ("B1", 0, -30, "1000.00", "", "", "燃气"),
    ("B2", 40, -30, "1000.10", "", "", "燃气"),
    ("C1", 0, -60, "1000.00", "1.0", "", "燃气"),
    ("C2", 50, -60, "1000.00", "1.0", "", "燃气"),
    ("C3", 90, -30, "1000.00", "1.0", "", "燃气"),
]
# id, start, end, start depth, end depth, 管径, 断面, 材质
SEGMENTS = [
    ("J1", "A1", "A2", "1.20", "1.30", "DN300", "", "球墨铸铁"),
    ("J2", "A2", "A3", "", "1.10", "DN200", "", "PE"),
    ("J3", "A2", "A4", "1.30", "", "Φ200", "", "PE"),
    ("J4", "A4", "A9", "1.30", "1.30", "200", "", "PE"),
    ("J5", "A4", "A5", "1.30", "1.30", "200", "", "PE"),
    ("J1", "A3", "A1", "1.10", "1.20", "DN300", "", "球墨铸铁"),
    ("K1", "P1", "P2", "2.00", "2.10", "", "1000×800", "砼"),
    ("M1", "B1", "B2", "", "", "DN100", "", "PE"),
    ("N1", "C1", "C2", "1.0", "1.0", "DN300", "", "钢"),
    ("N2", "C2", "C3", "1.0", "1.0", "DN300", "", "钢"),
]
UTIL = {"A": "给水", "P": "排水", "B": "燃气", "C": "燃气"}


def write_survey(folder: Path, *, joints_mode: str = "sphere", extra: str = "") -> Path:
    """A GBK CSV survey with Chinese column names and its city.toml."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    lines = ["点号,x,y,地面高程,埋深,附属物,管线类型"]
    lines += [
        f"{p},{x + ORIGIN[0]:.3f},{y + ORIGIN[1]:.3f},{g},{d},{f},{u}"
        for p, x, y, g, d, f, u in POINTS
    ]
    (data / "管点.csv").write_bytes(("\n".join(lines) + "\n").encode("gbk"))
    lines = ["管线编号,起点点号,终点点号,起点埋深,终点埋深,管径,断面,材质,管线类型"]
    lines += [",".join([*s, UTIL[s[1][0]]]) for s in SEGMENTS]
    (data / "管线.csv").write_bytes(("\n".join(lines) + "\n").encode("gbk"))
    toml = folder / "city.toml"
    toml.write_text(
        f'[city]\nname = "t"\ncrs = "EPSG:4547"\n[datum]\ngeoid_offset = {GEOID}\n'
        f'[pipelines]\npoints = "data/管点.csv"\nsegments = "data/管线.csv"\n'
        f'joints = "{joints_mode}"\n{extra}',
        encoding="utf-8",
    )
    return toml


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cim.build import build_project

    toml = write_survey(tmp_path_factory.mktemp("pipes"))
    return build_project(toml, progress=False).output


def _lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = get_transformer("EPSG:4547").transform(x + ORIGIN[0], y + ORIGIN[1])
    return float(lon), float(lat)


def _tile(built: Path) -> tuple[dict, bytes, np.ndarray]:
    doc = json.loads((built / "tiles/pipelines/tileset.json").read_text())
    frame = np.asarray(doc["root"]["transform"], dtype=np.float64).reshape(4, 4).T
    (glb,) = sorted((built / "tiles/pipelines/content").glob("*.glb"))
    gltf, binary = read_glb(glb.read_bytes())
    return gltf, binary, frame


# --- reader ---------------------------------------------------------------------------


def test_reader_finds_chinese_columns_in_gbk(tmp_path: Path) -> None:
    toml = write_survey(tmp_path)
    cfg = parse_section(
        {"points": "data/管点.csv", "segments": "data/管线.csv", "crs": "EPSG:4547"},
        PipelinesConfig,
        toml.parent,
        "pipelines",
    )
    survey = read_survey(cfg, None)
    assert list(survey.points.ids[:3]) == ["A1", "A2", "A3"]
    assert survey.points.ground[0] == 1000.0 and np.isnan(survey.points.depth[3])
    assert list(survey.points.feature[:3]) == ["阀门", "三通", "阀门井"]
    assert list(survey.segments.utility[:7]) == ["water"] * 6 + ["drainage"]
    assert list(survey.segments.text["material"][:2]) == ["球墨铸铁", "PE"]
    assert survey.segments.start_depth[0] == 1.2 and np.isnan(survey.segments.start_depth[1])


def test_reader_shapefile_gbk_and_field_mapping(tmp_path: Path) -> None:
    pts = shapely.points([[ORIGIN[0], ORIGIN[1]], [ORIGIN[0] + 30, ORIGIN[1]]])
    t = pa.table(
        {
            "WTDH": ["G1", "G2"],
            "DMGC": [1000.0, 1000.3],
            "QT": ["x", "y"],
            "geometry": pa.array(shapely.to_wkb(pts).tolist(), pa.binary()),
        }
    )
    pyogrio.write_arrow(
        t,
        tmp_path / "RQ_POINT.shp",
        driver="ESRI Shapefile",
        geometry_name="geometry",
        geometry_type="Point",
        crs="EPSG:4547",
        encoding="GBK",
    )
    seg = pa.table(
        {
            "起点": ["G1"],
            "终点": ["G2"],
            "深1": [1.0],
            "深2": [1.1],
            "管径": ["DN150"],
            "geometry": pa.array(
                shapely.to_wkb(shapely.linestrings([pts_xy(pts)])).tolist(), pa.binary()
            ),
        }
    )
    pyogrio.write_arrow(
        seg,
        tmp_path / "RQ_LINE.shp",
        driver="ESRI Shapefile",
        geometry_name="geometry",
        geometry_type="LineString",
        crs="EPSG:4547",
        encoding="GBK",
    )
    cfg = parse_section(
        {
            "points": "RQ_POINT.shp",
            "segments": "RQ_LINE.shp",
            "fields": {"start_depth": "深1", "end_depth": "深2"},
        },
        PipelinesConfig,
        tmp_path,
        "pipelines",
    )
    survey = read_survey(cfg, None)
    assert list(survey.points.utility) == ["gas", "gas"]  # from the file name RQ_...
    assert survey.segments.start_depth[0] == 1.0 and survey.segments.end_depth[0] == 1.1
    assert survey.segments.width[0] == 150.0
    bad = parse_section(
        {"points": "RQ_POINT.shp", "segments": "RQ_LINE.shp", "fields": {"start": "nope"}},
        PipelinesConfig,
        tmp_path,
        "pipelines",
    )
    with pytest.raises(Exception, match="nope"):
        read_survey(bad, None)


def pts_xy(pts: np.ndarray) -> np.ndarray:
    return shapely.get_coordinates(pts)


def test_parse_sizes() -> None:
    text = np.array(["DN300", "Φ200", "300mm", "0.5m", "800×600", "", "1000*800"], dtype=object)
    w, h, rect, _ = parse_sizes(text, np.full(len(text), "", dtype=object))
    assert w[:5].tolist() == [300, 200, 300, 500, 800] and h[4] == 600
    assert rect.tolist() == [False, False, False, False, True, False, True]
    assert np.isnan(w[5])


def test_config_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        parse_section({"points": "a.csv"}, PipelinesConfig, tmp_path, "pipelines")
    with pytest.raises(ConfigError, match="joints"):
        parse_section({"lines": "a.gpkg", "joints": "weld"}, PipelinesConfig, tmp_path, "pipelines")


# --- geometry ---------------------------------------------------------------------------


def _features(gltf: dict, binary: bytes) -> tuple[np.ndarray, np.ndarray, dict]:
    pos = read_positions_enu(gltf, binary)
    prim = gltf["meshes"][0]["primitives"][0]
    fid = read_accessor(gltf, binary, prim["attributes"]["_FEATURE_ID_0"])[:, 0]
    return pos, fid, read_property_table(gltf, binary)


def test_every_axis_within_1cm_of_the_surveyed_depth(built: Path) -> None:
    gltf, binary, frame = _tile(built)
    pos, fid, table = _features(gltf, binary)
    where = {p: (x, y, float(g)) for p, x, y, g, *_ in POINTS}
    checked = 0
    for f, kind in enumerate(table["kind"]):
        if kind != "pipe" or table["width"][f] != table["height"][f]:
            continue
        radius = table["width"][f] / 2000.0
        v = pos[fid == f]
        ends = []
        for pid, depth in (
            (table["start"][f], table["start_depth"][f]),
            (table["end"][f], table["end_depth"][f]),
        ):
            x, y, ground = where[pid]
            lon, lat = _lonlat(x, y)
            h = ground - depth - radius + GEOID  # depths reach the pipe's top
            ends.append(lonlat_to_enu(np.array([lon]), np.array([lat]), np.array([h]), frame)[0])
        a, b = ends
        t = (v - a) @ (b - a) / np.dot(b - a, b - a)
        for ring, expected in ((v[t < 0.5], a), (v[t >= 0.5], b)):
            assert np.linalg.norm(ring.mean(axis=0) - expected) < 0.01, table["id"][f]
            # every ring vertex at the pipe's radius from the axis
            d = np.linalg.norm(np.cross(ring - a, (b - a) / np.linalg.norm(b - a)), axis=1)
            assert np.abs(d - radius).max() < 0.01
        checked += 1
    assert checked == 6  # J1, J2, J3, J1~2, N1, N2


def test_rectangular_section(built: Path) -> None:
    gltf, binary, _ = _tile(built)
    pos, fid, table = _features(gltf, binary)
    f = table["id"].index("K1")
    assert (
        table["size"][f] == "1000×800" and table["width"][f] == 1000 and table["height"][f] == 800
    )
    v = pos[fid == f]
    assert len(v) == 16
    # in the pipe's own frame: B = 1.0 m across (horizontal), H = 0.8 m up
    centre = v.mean(axis=0)
    d = np.linalg.svd(v - centre)[2][0]  # the long axis
    u = np.cross(d, [0.0, 0.0, 1.0])
    u /= np.linalg.norm(u)
    w = np.cross(d, u)
    assert abs(np.ptp((v - centre) @ u) - 1.0) < 0.01
    assert abs(np.ptp((v - centre) @ w) - 0.8) < 0.01


def test_joints_wells_and_metadata(built: Path) -> None:
    gltf, binary, frame = _tile(built)
    pos, fid, table = _features(gltf, binary)
    kinds = dict(zip(table["id"], table["kind"], strict=True))
    assert kinds["A1"] == "valve" and kinds["A2"] == "joint" and kinds["A3"] == "well"
    assert kinds["P1"] == kinds["P2"] == "well"
    # the well of P1 reaches the ground
    f = table["id"].index("P1")
    lon, lat = _lonlat(0, 10)
    top = lonlat_to_enu(np.array([lon]), np.array([lat]), np.array([1000.0 + GEOID]), frame)[0]
    assert abs(pos[fid == f][:, 2].max() - top[2]) < 0.02
    assert table["utility_name"][table["id"].index("J1")] == "给水"
    prim = gltf["meshes"][0]["primitives"][0]
    colours = read_accessor(gltf, binary, prim["attributes"]["COLOR_0"])
    water = colours[fid == table["id"].index("J1")][0]
    assert water.tolist() == [0, 191, 255, 255]  # sky blue, the water convention


def test_mitre_cuts_both_pipes_on_one_plane(tmp_path: Path) -> None:
    toml = write_survey(tmp_path, joints_mode="mitre")
    cfg = parse_section(
        {
            "points": "data/管点.csv",
            "segments": "data/管线.csv",
            "crs": "EPSG:4547",
            "joints": "mitre",
        },
        PipelinesConfig,
        toml.parent,
        "pipelines",
    )
    model, _ = build_model(read_survey(cfg, None), cfg, Datum(geoid_offset=GEOID))
    j = joints(model, cfg)
    c2 = list(model.pt_ids).index("C2")
    assert not j["ball"][c2]
    n1, n2 = list(model.ids).index("N1"), list(model.ids).index("N2")
    plane = j["mitre_b"][n1]
    assert np.allclose(plane, j["mitre_a"][n2])
    from tiling.pipelines.geometry import tubes

    rows = np.array([n1, n2])
    mesh = tubes(
        model.a[rows],
        model.b[rows],
        model.width[rows] / 2,
        np.arange(2),
        np.zeros((2, 4), np.uint8),
        12,
        j["mitre_a"][rows],
        j["mitre_b"][rows],
    )
    joint = model.b[n1]
    ring1 = mesh.positions[12:24]  # N1's end ring
    ring2 = mesh.positions[24:36]  # N2's start ring
    for ring in (ring1, ring2):
        assert np.abs((ring - joint) @ plane).max() < 1e-6
    sphere = parse_section(
        {"points": "data/管点.csv", "segments": "data/管线.csv", "joints": "sphere"},
        PipelinesConfig,
        toml.parent,
        "pipelines",
    )
    assert joints(model, sphere)["ball"][c2]


# --- report, tiles, manifest -------------------------------------------------------------


def test_bad_input_is_reported(built: Path) -> None:
    report = json.loads((built / "build-report.json").read_text())["stages"]["pipelines"]
    skipped = {(s["id"], s["reason"]) for s in report["skipped"]}
    repaired = {(r["id"], r["reason"]) for r in report["repaired"]}
    assert ("J4", "dangling-point") in skipped
    assert ("J5", "zero-length") in skipped
    assert ("M1", "missing-depth") in skipped
    assert ("J2", "depth-from-point") in repaired
    assert ("J3", "depth-from-other-end") in repaired
    assert ("J1~2", "duplicate-id") in repaired
    assert report["read"] == len(SEGMENTS)
    assert report["read"] == report["written"] + report["skipped_count"]


def test_default_depth_repairs_instead_of_skipping(tmp_path: Path) -> None:
    toml = write_survey(tmp_path)
    cfg = parse_section(
        {
            "points": "data/管点.csv",
            "segments": "data/管线.csv",
            "crs": "EPSG:4547",
            "default_depth": 1.5,
        },
        PipelinesConfig,
        toml.parent,
        "pipelines",
    )
    model, issues = build_model(read_survey(cfg, None), cfg, Datum(geoid_offset=GEOID))
    assert "M1" in list(model.ids)
    assert ("M1", "default-depth") in {(i[0], i[1]) for i in issues}


def test_ground_from_the_dem(tmp_path: Path) -> None:
    toml = write_survey(tmp_path)
    text = (toml.parent / "data/管点.csv").read_bytes().decode("gbk").replace(",1000.50,", ",,")
    (toml.parent / "data/管点.csv").write_bytes(text.encode("gbk"))
    cfg = parse_section(
        {"points": "data/管点.csv", "segments": "data/管线.csv", "crs": "EPSG:4547"},
        PipelinesConfig,
        toml.parent,
        "pipelines",
    )
    survey = read_survey(cfg, None, lambda lon, lat: np.full(len(lon), 999.0))
    assert survey.points.ground[1] == 999.0
    assert ("A2", "ground-from-dem") in {(i[0], i[1]) for i in survey.issues}


def test_tileset_and_glb_are_valid(built: Path, gltf_validator) -> None:
    assert check_tileset(built / "tiles/pipelines/tileset.json") == []
    glbs = sorted((built / "tiles/pipelines/content").glob("*.glb"))
    for result in gltf_validator(glbs):
        assert result["errors"] == 0, result["messages"]


def test_manifest_entry(built: Path) -> None:
    import jsonschema

    from cim.manifest import schema

    manifest = json.loads((built / "manifest.json").read_text())
    jsonschema.validate(manifest, schema())
    layer = manifest["layers"]["pipelines"]
    assert layer["url"] == "tiles/pipelines/tileset.json"
    assert layer["network"] == "pipelines/network.sqlite"
    assert layer["segments"] == 7 and layer["utilities"]["water"]["colour"] == "#00bfff"


def test_lines_with_z(tmp_path: Path) -> None:
    x0, y0 = ORIGIN
    lines = np.array(
        [
            shapely.LineString([(x0, y0, 998.0), (x0 + 40, y0, 997.8), (x0 + 80, y0 + 10, 997.6)]),
            shapely.LineString([(x0 + 40, y0, 997.8), (x0 + 40, y0 + 50, 997.5)]),
        ]
    )
    t = pa.table(
        {
            "管线编号": ["W1", "W2"],
            "管径": ["DN300", "DN200"],
            "管线类型": ["污水", "污水"],
            "geometry": pa.array(shapely.to_wkb(lines, output_dimension=3).tolist(), pa.binary()),
        }
    )
    pyogrio.write_arrow(
        t,
        tmp_path / "lines.gpkg",
        driver="GPKG",
        geometry_name="geometry",
        geometry_type="LineString Z",
        crs="EPSG:4547",
    )
    cfg = parse_section(
        {"lines": "lines.gpkg", "depth_reference": "centre"}, PipelinesConfig, tmp_path, "pipelines"
    )
    model, _ = build_model(read_survey(cfg, None), cfg, Datum())
    assert list(model.ids) == ["W1#1", "W1#2", "W2#1"]
    assert set(model.utility) == {"drainage"}
    # W2 starts where W1's first segment ends: one shared point
    assert model.seg_start[2] == model.seg_end[0]
    assert model.start_axis[0] == pytest.approx(998.0)


# --- throughput: what the workers import, one parse per table, the pool's tiles ------------


def test_tile_encoder_imports_no_reader_stack() -> None:
    """A pool worker imports ``tiling.pipelines.encode`` only: not pyproj, rasterio, networkx."""
    import subprocess
    import sys

    heavy = ["pyproj", "rasterio", "networkx", "pyogrio", "cim.pipelines", "tiling.pipelines.model"]
    code = f"import sys, tiling.pipelines.encode; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_segment_csv_without_geometry_is_parsed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tiling.pipelines.reader as reader

    toml = write_survey(tmp_path)
    cfg = parse_section(
        {"points": "data/管点.csv", "segments": "data/管线.csv", "crs": "EPSG:4547"},
        PipelinesConfig,
        toml.parent,
        "pipelines",
    )
    read = []
    original = reader.read_features
    monkeypatch.setattr(
        reader, "read_features", lambda path, **kw: read.append(path.name) or original(path, **kw)
    )
    survey = reader.read_survey(cfg, None)
    assert read == ["管点.csv"]  # the segment table went straight to the attribute reader
    assert len(survey.segments.ids) == len(SEGMENTS)


def test_step_timings_in_the_report(built: Path) -> None:
    report = json.loads((built / "build-report.json").read_text())["stages"]["pipelines"]
    timings = report["counts"]["timings"]
    assert set(timings) == {"read", "model", "tiles", "network"}
    assert all(t["wall"] > 0 and t["cpu"] >= 0 for t in timings.values())


def test_pool_writes_the_same_tiles_as_one_process(tmp_path: Path) -> None:
    """Several tiles encoded by a 2-process pool are byte for byte the in-process ones."""
    from cim.build import build_project

    outputs = {}
    for jobs in (1, 2):
        toml = write_survey(tmp_path / f"j{jobs}", extra="max_tile_size = 50.0\n")
        out = build_project(toml, jobs=jobs, progress=False).output
        outputs[jobs] = {
            p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted((out / "tiles/pipelines").rglob("*"))
            if p.is_file()
        }
    assert len([k for k in outputs[1] if k.endswith(".glb")]) >= 3
    assert outputs[2] == outputs[1]
