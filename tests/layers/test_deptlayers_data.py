"""Department-layer test data (each format and CRS) and the ingest-level tests.

The builders write the same truth (WGS84 lon/lat and Chinese attributes) in every
format the upload takes; the API tests compare what is served with that truth.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import shapely
from pyproj import Transformer

from cim.crs import wgs84_to_gcj02
from cim.errors import CRSError, DatasetIOError, InputDataError
from layers.deptlayers.ingest import ingest_file, unpack

#: in EPSG:4547's zone (CGCS2000 3-degree Gauss-Krüger, CM 114° E): Wuhan
LON0, LAT0 = 114.30, 30.58
NAMES = ["消火栓一号", "消火栓二号", "中山路东口", "江汉区·测试", "长江大桥"]


def truth_points(n: int = 5, seed: int = 1) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """n points (lon, lat) and their attributes (Chinese names, integers, floats)."""
    rng = np.random.default_rng(seed)
    lon = LON0 + rng.uniform(-0.05, 0.05, n)
    lat = LAT0 + rng.uniform(-0.05, 0.05, n)
    props = [
        {"名称": NAMES[i % len(NAMES)] + str(i), "编号": i + 1, "压力": round(0.2 + i * 0.05, 3)}
        for i in range(n)
    ]
    return lon, lat, props


def truth_shapes() -> tuple[list[shapely.Geometry], list[dict]]:
    """A point, a line and a polygon with a hole (lon/lat), with attributes."""
    d = 0.001
    hole = [(LON0 + d, LAT0 + d), (LON0 + 2 * d, LAT0 + d), (LON0 + 2 * d, LAT0 + 2 * d)]
    geoms = [
        shapely.Point(LON0, LAT0),
        shapely.LineString([(LON0, LAT0), (LON0 + d, LAT0 + d), (LON0 + 3 * d, LAT0)]),
        shapely.Polygon(
            [
                (LON0, LAT0),
                (LON0 + 3 * d, LAT0),
                (LON0 + 3 * d, LAT0 + 3 * d),
                (LON0, LAT0 + 3 * d),
            ],
            [hole],
        ),
    ]
    props = [{"名称": n, "类型": t} for n, t in zip(NAMES[:3], ["点", "线", "面"], strict=True)]
    return geoms, props


def to_4547(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True)
    return t.transform(lon, lat)


def _fields(props: list[dict]) -> tuple[list[str], list[np.ndarray]]:
    names = list(props[0])
    cols = []
    for n in names:
        vals = [p[n] for p in props]
        cols.append(np.array(vals, dtype=object if isinstance(vals[0], str) else None))
    return names, cols


def write_vector(path: Path, geoms, props, driver: str, crs: str, encoding: str | None = None):
    names, cols = _fields(props)
    pyogrio.raw.write(
        str(path),
        shapely.to_wkb(np.asarray(geoms, dtype=object)),
        cols,
        names,
        driver=driver,
        geometry_type="Unknown" if driver != "ESRI Shapefile" else "Point",
        crs=crs,
        encoding=encoding,
    )
    return path


def gbk_shapefile_zip(folder: Path, n: int = 5) -> tuple[Path, tuple]:
    """Points in EPSG:4547, GBK text, zipped without a .cpg (the planning bureau's usual)."""
    lon, lat, props = truth_points(n)
    x, y = to_4547(lon, lat)
    shp = folder / "消火栓.shp"
    write_vector(shp, shapely.points(x, y), props, "ESRI Shapefile", "EPSG:4547", "GBK")
    shp.with_suffix(".cpg").unlink(missing_ok=True)
    out = folder / "hydrants.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for part in folder.glob("消火栓.*"):
            zf.write(part, f"hydrants/{part.name}")
    return out, (lon, lat, props)


def gcj_csv(folder: Path, n: int = 5) -> tuple[Path, tuple]:
    """Points copied from a web map: GCJ-02 lon/lat in a UTF-8 CSV."""
    lon, lat, props = truth_points(n, seed=2)
    glon, glat = wgs84_to_gcj02(lon, lat)
    lines = ["lng,lat,名称,编号,压力"] + [
        f"{float(a)!r},{float(b)!r},{p['名称']},{p['编号']},{p['压力']}"
        for a, b, p in zip(glon, glat, props, strict=True)
    ]
    path = folder / "furniture.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, (lon, lat, props)


def wkt_csv(folder: Path) -> tuple[Path, tuple]:
    """The three shapes as WKT in EPSG:4547 (a GBK CSV)."""
    geoms, props = truth_shapes()
    t = Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True)
    projected = [_project(g, t) for g in geoms]
    rows = ["wkt,名称,类型"] + [
        f'"{shapely.to_wkt(g, rounding_precision=4)}",{p["名称"]},{p["类型"]}'
        for g, p in zip(projected, props, strict=True)
    ]
    path = folder / "shapes.csv"
    path.write_bytes(("\n".join(rows) + "\n").encode("gbk"))
    return path, (geoms, props)


def _project(g: shapely.Geometry, t: Transformer) -> shapely.Geometry:
    xy = shapely.get_coordinates(g)
    x, y = t.transform(xy[:, 0], xy[:, 1])
    return shapely.set_coordinates(g, np.column_stack([x, y]))


def kml_text(geoms, props) -> str:
    def coords(seq) -> str:
        return " ".join(f"{x!r},{y!r},0" for x, y in seq)

    def geom(g) -> str:
        if g.geom_type == "Point":
            return f"<Point><coordinates>{coords(g.coords)}</coordinates></Point>"
        if g.geom_type == "LineString":
            return f"<LineString><coordinates>{coords(g.coords)}</coordinates></LineString>"
        inner = "".join(
            f"<innerBoundaryIs><LinearRing><coordinates>{coords(r.coords)}</coordinates>"
            "</LinearRing></innerBoundaryIs>"
            for r in g.interiors
        )
        return (
            "<Polygon><outerBoundaryIs><LinearRing><coordinates>"
            f"{coords(g.exterior.coords)}</coordinates></LinearRing></outerBoundaryIs>{inner}</Polygon>"
        )

    marks = "".join(
        f"<Placemark><name>{p['名称']}</name><ExtendedData>"
        + "".join(f'<Data name="{k}"><value>{v}</value></Data>' for k, v in p.items())
        + f"</ExtendedData>{geom(g)}</Placemark>"
        for g, p in zip(geoms, props, strict=True)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><kml xmlns="http://www.opengis.net/kml/2.2">'
        f"<Document><Folder><name>水务</name>{marks}</Folder></Document></kml>"
    )


def kml_file(folder: Path) -> tuple[Path, tuple]:
    geoms, props = truth_shapes()
    path = folder / "shapes.kml"
    path.write_text(kml_text(geoms, props), encoding="utf-8")
    return path, (geoms, props)


def kmz_file(folder: Path) -> tuple[Path, tuple]:
    geoms, props = truth_shapes()
    path = folder / "shapes.kmz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("doc.kml", kml_text(geoms, props))
        zf.writestr("files/icon.png", b"\x89PNG")
    return path, (geoms, props)


def gdal_file(folder: Path, suffix: str, driver: str) -> tuple[Path, tuple]:
    geoms, props = truth_shapes()
    path = folder / f"shapes{suffix}"
    write_vector(path, geoms, props, driver, "EPSG:4326")
    return path, (geoms, props)


# --- ingest-level tests ------------------------------------------------------------------


def test_gbk_shapefile_zip_without_cpg_in_gauss_kruger(tmp_path: Path) -> None:
    path, (lon, lat, props) = gbk_shapefile_zip(tmp_path)
    work = tmp_path / "w"
    work.mkdir()
    clean = ingest_file(path, work)
    xy = shapely.get_coordinates(clean.geometry)
    assert clean.crs == "EPSG:4547"
    assert np.abs(xy[:, 0] - lon).max() < 1e-8 and np.abs(xy[:, 1] - lat).max() < 1e-8
    assert [p["名称"] for p in clean.properties] == [p["名称"] for p in props]
    assert clean.fields["编号"] == "integer"


def test_gcj02_needs_the_declared_crs(tmp_path: Path) -> None:
    path, (lon, lat, _) = gcj_csv(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(CRSError, match="carries no CRS"):
        ingest_file(path, tmp_path / "a")
    clean = ingest_file(path, tmp_path / "b", crs="GCJ-02")
    xy = shapely.get_coordinates(clean.geometry)
    # inverse GCJ-02 is exact to < 0.1 mm (cim.crs): far inside 0.1 m
    assert np.abs(xy[:, 0] - lon).max() < 1e-6 and np.abs(xy[:, 1] - lat).max() < 1e-6


def names_shapefile(folder: Path, names: list[str], codec: str) -> Path:
    """Points named ``names`` in a shapefile whose text is ``codec``, with neither a
    ``.cpg`` nor a language driver id (only the bytes tell the encoding)."""
    folder.mkdir(exist_ok=True)
    shp = folder / "names.shp"
    points = shapely.points(LON0 + np.arange(len(names)) * 1e-3, np.full(len(names), LAT0))
    write_vector(shp, points, [{"name": n} for n in names], "ESRI Shapefile", "EPSG:4326", codec)
    shp.with_suffix(".cpg").unlink(missing_ok=True)
    dbf = bytearray(shp.with_suffix(".dbf").read_bytes())
    dbf[29] = 0
    shp.with_suffix(".dbf").write_bytes(bytes(dbf))
    return shp


def test_latin1_shapefile_without_cpg_reads_exactly(tmp_path: Path) -> None:
    names = ["6 rue de la Platière", "Hämeentie 12", "École Sainte-Thérèse"]
    clean = ingest_file(names_shapefile(tmp_path, names, "CP1252"), tmp_path / "w")
    assert [p["name"] for p in clean.properties] == names


def test_shapefile_text_no_encoding_fits_is_refused_not_misread(tmp_path: Path) -> None:
    shp = names_shapefile(tmp_path, ["江岸区第3号楼", "北京路", "消火栓"], "GBK")
    dbf = bytearray(shp.with_suffix(".dbf").read_bytes())
    at = dbf.index("北京".encode("gbk"))
    dbf[at + 1] = 0xFF  # one broken GBK character: neither GBK, UTF-8 nor Latin text
    shp.with_suffix(".dbf").write_bytes(bytes(dbf))
    with pytest.raises(InputDataError, match="neither UTF-8, GBK/GB18030 nor Latin-1") as err:
        ingest_file(shp, tmp_path / "w")
    # one line naming the upload and what to do (the form field, not city.toml)
    assert "give the upload's encoding" in str(err.value) and "city.toml" not in str(err.value)
    assert str(err.value).startswith("names.shp: ")


def test_declared_encoding_is_verified_on_every_record(tmp_path: Path) -> None:
    names = [f"消火栓{i}号" for i in range(3000)]  # the last records decide, not a sample
    shp = names_shapefile(tmp_path / "a", names, "UTF-8")
    dbf = bytearray(shp.with_suffix(".dbf").read_bytes())
    utf8 = names[-1].encode()
    at = dbf.rindex(utf8)
    gbk = names[-1].encode("gbk")
    # one record in GBK among UTF-8 ones (padded with spaces as dBase pads text)
    dbf[at : at + len(utf8)] = gbk + b" " * (len(utf8) - len(gbk))
    shp.with_suffix(".dbf").write_bytes(bytes(dbf))
    with pytest.raises(InputDataError, match=r"encoding = 'UTF-8' cannot decode the \.dbf"):
        ingest_file(shp, tmp_path / "wa", encoding="UTF-8")
    ok = names_shapefile(tmp_path / "b", names[:3], "GBK")
    clean = ingest_file(ok, tmp_path / "wb", encoding="GBK")
    assert [p["name"] for p in clean.properties] == names[:3]


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["../evil.geojson", "/abs/evil.geojson", "a/../../evil.geojson"])
def test_unpack_refuses_path_traversal(tmp_path: Path, name: str) -> None:
    z = _zip(tmp_path / "bad.zip", {name: b"{}"})
    work = tmp_path / "w"
    work.mkdir()
    with pytest.raises(InputDataError, match="unsafe path"):
        unpack(z, work)
    assert not (tmp_path / "evil.geojson").exists()


def test_unpack_refuses_zip_bombs_and_ambiguity(tmp_path: Path, monkeypatch) -> None:
    import layers.deptlayers.ingest as ingest

    def work() -> Path:
        return Path(tempfile.mkdtemp(dir=tmp_path))

    monkeypatch.setattr(ingest, "MAX_UNZIPPED_BYTES", 1000)
    big = _zip(tmp_path / "big.zip", {"a.geojson": b" " * 2000})
    with pytest.raises(InputDataError, match="unpacks to more than"):
        unpack(big, work())
    two = _zip(tmp_path / "two.zip", {"a.geojson": b"{}", "b.kml": b"<kml/>"})
    with pytest.raises(InputDataError, match="holds 2 layers"):
        unpack(two, work())
    none = _zip(tmp_path / "none.zip", {"readme.md": b"hi"})
    with pytest.raises(InputDataError, match="no readable layer"):
        unpack(none, work())
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(InputDataError, match="not a readable zip"):
        unpack(tmp_path / "junk.zip", work())


def test_repairs_and_skips_are_reported(tmp_path: Path) -> None:
    features = [
        {
            "type": "Feature",
            "properties": {"n": "bowtie"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[114.3, 30.5], [114.31, 30.51], [114.31, 30.5], [114.3, 30.51], [114.3, 30.5]]
                ],
            },
        },
        {
            "type": "Feature",
            "properties": {"n": "zero line"},
            "geometry": {"type": "LineString", "coordinates": [[114.3, 30.5], [114.3, 30.5]]},
        },
        {
            "type": "Feature",
            "properties": {"n": "flat"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[114.3, 30.5], [114.31, 30.5], [114.32, 30.5], [114.3, 30.5]]],
            },
        },
        {"type": "Feature", "properties": {"n": "none"}, "geometry": None},
        {
            "type": "Feature",
            "properties": {"n": "z"},
            "geometry": {"type": "Point", "coordinates": [114.3, 30.5, 12.0]},
        },
        {
            "type": "Feature",
            "properties": {"n": "dup"},
            "geometry": {
                "type": "LineString",
                "coordinates": [[114.3, 30.5], [114.3, 30.5], [114.31, 30.5]],
            },
        },
        {
            "type": "Feature",
            "properties": {"n": "far"},
            "geometry": {"type": "Point", "coordinates": [1e12, 30.5]},
        },
        {
            "type": "Feature",
            "properties": {"n": "ok"},
            "geometry": {"type": "MultiPoint", "coordinates": [[114.3, 30.5], [114.31, 30.5]]},
        },
        {
            "type": "Feature",
            "properties": {"n": "tiny"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[114.3, 30.5], [114.3000001, 30.5], [114.3, 30.5000001], [114.3, 30.5]]
                ],
            },
        },
    ]
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    work = tmp_path / "w"
    work.mkdir()
    clean = ingest_file(path, work)
    rep = clean.report
    skipped = {int(s["id"]): s["reason"] for s in rep.skipped}
    repaired = {(int(r["id"]), r["reason"]) for r in rep.repaired}
    assert skipped == {
        1: "degenerate",
        2: "invalid-geometry",  # collapses to a line: nothing polygonal left
        3: "no-geometry",
        6: "bad-coordinates",
        8: "degenerate",
    }
    assert {(0, "invalid-geometry"), (4, "z-dropped"), (5, "duplicate-vertices")} <= repaired
    assert rep.read == 9 and rep.written == 4 == len(clean.geometry)
    assert all(shapely.is_valid(clean.geometry)) and not shapely.has_z(clean.geometry).any()
    assert [p["n"] for p in clean.properties] == ["bowtie", "z", "dup", "ok"]


def test_kml_keeps_chinese_extended_data_and_types(tmp_path: Path) -> None:
    path, (geoms, props) = kml_file(tmp_path)
    clean = ingest_file(path, tmp_path)
    assert [{k: p[k] for k in ("名称", "类型")} for p in clean.properties] == props
    assert all(p["folder"] == "水务" for p in clean.properties)
    assert all(shapely.equals_exact(a, b, 1e-9) for a, b in zip(clean.geometry, geoms, strict=True))


def test_empty_and_unknown_inputs(tmp_path: Path) -> None:
    (tmp_path / "e.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    (tmp_path / "w").mkdir()
    with pytest.raises(InputDataError):
        ingest_file(tmp_path / "e.geojson", tmp_path / "w")
    (tmp_path / "x.dwg").write_bytes(b"AC1027")
    with pytest.raises(DatasetIOError, match="unknown vector format"):
        ingest_file(tmp_path / "x.dwg", tmp_path / "w")


def test_undecoded_text_from_the_reader_is_an_input_error(tmp_path: Path, monkeypatch) -> None:
    """The last guard: text the reader hands over undecoded (pyarrow refuses it) is a
    400-style input error naming the upload, not an internal error."""
    import pyarrow as pa

    import layers.deptlayers.ingest as ingest

    def undecodable(*args, **kwargs):
        raise pa.ArrowException("Wrapping \ufffd failed")

    monkeypatch.setattr(ingest, "read_features", undecodable)
    path, _ = gcj_csv(tmp_path)
    with pytest.raises(InputDataError, match="does not decode as GBK; give the upload's"):
        ingest_file(path, tmp_path / "w", encoding="GBK")
