"""``/api/layers``: every upload format and CRS served back as it came in, versions,
styles, search, export (SQLite; versions and export on PostgreSQL too)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pytest
import shapely
from test_deptlayers_data import (
    gbk_shapefile_zip,
    gcj_csv,
    gdal_file,
    kml_file,
    kmz_file,
    names_shapefile,
    wkt_csv,
)

M_PER_DEG = 111_320.0


class Api:
    """A test client with department tokens (water, police; boss is the admin)."""

    def __init__(self, client: Any, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    def auth(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def upload(self, who: str | None, path: Path, **form: Any) -> Any:
        data = {
            k: (json.dumps(v) if isinstance(v, (dict, list)) else str(v)) for k, v in form.items()
        }
        data["file"] = (io.BytesIO(path.read_bytes()), path.name)
        return self.client.post(
            "/api/layers", data=data, headers=self.auth(who), content_type="multipart/form-data"
        )

    def get(self, url: str, who: str | None = None, **kw: Any) -> Any:
        return self.client.get(url, headers=self.auth(who), **kw)


def make_api(store_url: str) -> Iterator[Api]:
    from layers.departments import add_department
    from layers.store import open_store
    from server import create_app

    st = open_store(store_url)
    tokens = {
        "water": add_department(st, "water", "水务局"),
        "police": add_department(st, "police", "公安局"),
        "boss": add_department(st, "boss", "指挥中心", admin=True),
    }
    st.close()
    app = create_app({"LIVE_STORE": store_url, "TESTING": True})
    try:
        yield Api(app.test_client(), tokens)
    finally:
        state = app.extensions.get("cim.live")
        if state is not None:
            state.store.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(str(tmp_path / "live.sqlite"))


@pytest.fixture
def api_both(store_url: str) -> Iterator[Api]:
    yield from make_api(store_url)


def _metres(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    return float(
        np.hypot(d[:, 0] * M_PER_DEG * np.cos(np.radians(a[:, 1])), d[:, 1] * M_PER_DEG).max()
    )


def _served(api: Api, layer_id: int) -> list[dict]:
    r = api.get(f"/api/layers/{layer_id}/features")
    assert r.status_code == 200, r.get_json()
    return sorted(r.get_json()["features"], key=lambda f: f["id"])


def _check_points(features: list[dict], lon, lat, props) -> None:
    xy = np.array([f["geometry"]["coordinates"] for f in features])
    assert _metres(xy, np.column_stack([lon, lat])) < 0.1
    for f, p in zip(features, props, strict=True):
        assert {k: f["properties"][k] for k in p} == p  # Chinese text and numbers intact


def _check_shapes(features: list[dict], geoms, props) -> None:
    assert len(features) == len(geoms)
    # matched by name: a FlatGeobuf with a spatial index stores features in Hilbert order
    by_name = {f["properties"]["名称"]: f for f in features}
    for g, p in zip(geoms, props, strict=True):
        f = by_name[p["名称"]]
        got = shapely.geometry.shape(f["geometry"])
        assert got.geom_type == g.geom_type
        assert got.equals_exact(g, 0.1 / M_PER_DEG)  # every vertex within ~0.1 m
        assert {k: f["properties"][k] for k in p} == p


@pytest.mark.parametrize(
    ("build", "form", "crs"),
    [
        (gbk_shapefile_zip, {}, "EPSG:4547"),
        (gcj_csv, {"crs": "GCJ-02"}, "GCJ-02"),
    ],
    ids=["gbk-shapefile-zip-4547-no-cpg", "gcj02-csv"],
)
def test_point_uploads_round_trip(api: Api, tmp_path: Path, build, form, crs) -> None:
    path, (lon, lat, props) = build(tmp_path)
    r = api.upload("water", path, name="消火栓", **form)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["report"]["crs"] == crs and body["report"]["written"] == len(lon)
    layer = body["layer"]
    assert layer["department"] == "water" and layer["feature_count"] == len(lon)
    assert layer["style"]["point"]["icon"] == "hydrant"  # from the name 消火栓
    _check_points(_served(api, layer["id"]), lon, lat, props)


@pytest.mark.parametrize(
    ("build", "form"),
    [
        (kml_file, {}),
        (kmz_file, {}),
        (lambda d: gdal_file(d, ".gpkg", "GPKG"), {}),
        (lambda d: gdal_file(d, ".geojson", "GeoJSON"), {}),
        (lambda d: gdal_file(d, ".fgb", "FlatGeobuf"), {}),
        (wkt_csv, {"crs": "EPSG:4547", "encoding": "GBK"}),
    ],
    ids=["kml", "kmz", "gpkg", "geojson", "flatgeobuf", "wkt-csv-4547-gbk"],
)
def test_shape_uploads_round_trip(api: Api, tmp_path: Path, build, form) -> None:
    path, (geoms, props) = build(tmp_path)
    r = api.upload("police", path, name="测试图层", **form)
    assert r.status_code == 201, r.get_json()
    layer = r.get_json()["layer"]
    assert layer["geometry_types"] == ["LineString", "Point", "Polygon"]
    _check_shapes(_served(api, layer["id"]), geoms, props)


def test_upload_errors_are_400_with_the_reason(api: Api, tmp_path: Path) -> None:
    path, _ = gcj_csv(tmp_path)
    r = api.upload("water", path)  # no crs: the CSV carries none
    assert r.status_code == 400
    assert "carries no CRS" in r.get_json()["error"]["message"]
    assert "city.toml" not in r.get_json()["error"]["message"]
    bad = tmp_path / "x.dwg"
    bad.write_bytes(b"AC1027")
    assert api.upload("water", bad).status_code == 400
    r = api.upload("water", path, crs="GCJ-02", encoding="no-such-codec")
    assert r.status_code == 400 and "encoding" in r.get_json()["error"]["message"]
    r = api.upload(
        "water", path, crs="GCJ-02", style={"by": {"kind": "graduated", "attribute": "名称"}}
    )
    assert r.status_code == 400 and "not a number" in r.get_json()["error"]["message"]
    # a zipped shapefile whose text fits no encoding: refused with the reason, not stored
    # as byte soup (and not a server error)
    shp = names_shapefile(tmp_path / "enc", ["江岸区第3号楼", "北京路"], "GBK")
    dbf = bytearray(shp.with_suffix(".dbf").read_bytes())
    dbf[dbf.index("北京".encode("gbk")) + 1] = 0xFF
    shp.with_suffix(".dbf").write_bytes(bytes(dbf))
    zpath = tmp_path / "enc.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for part in shp.parent.glob("names.*"):
            zf.write(part, part.name)
    r = api.upload("water", zpath, name="坏编码")
    message = r.get_json()["error"]["message"]
    assert r.status_code == 400 and "neither UTF-8, GBK/GB18030 nor Latin-1" in message
    assert "give the upload's encoding" in message and "city.toml" not in message
    r = api.upload("water", zpath, name="坏编码", encoding="UTF-8")
    assert r.status_code == 400 and "cannot decode the .dbf" in r.get_json()["error"]["message"]


def test_versions_replace_append_delete_restore(api_both: Api, tmp_path: Path) -> None:
    api = api_both
    geo, (geoms, props) = gdal_file(tmp_path, ".geojson", "GeoJSON")
    csv, _ = gcj_csv(tmp_path)
    lid = api.upload("water", geo, name="管网").get_json()["layer"]["id"]
    r = api.upload("water", csv, name="管网", mode="append", crs="GCJ-02")
    assert r.status_code == 201 and r.get_json()["layer"]["version"] == 2
    assert r.get_json()["layer"]["feature_count"] == 3 + 5
    assert len(_served(api, lid)) == 8
    r = api.upload("water", csv, mode="replace", id=lid, crs="GCJ-02")
    assert r.get_json()["layer"]["version"] == 3 and r.get_json()["layer"]["feature_count"] == 5
    served = _served(api, lid)
    assert len(served) == 5 and served[0]["id"] == 9  # replaced rows get new ids
    old = api.get(f"/api/layers/{lid}/features?version=1").get_json()["features"]
    _check_shapes(sorted(old, key=lambda f: f["id"]), geoms, props)
    # delete: gone for the operation view, visible to the owner, restorable
    assert api.client.delete(f"/api/layers/{lid}", headers=api.auth("water")).status_code == 200
    assert api.get(f"/api/layers/{lid}").status_code == 404
    assert lid not in [x["id"] for x in api.get("/api/layers").get_json()["layers"]]
    assert api.get(f"/api/layers/{lid}", "water").get_json()["deleted"]
    r = api.client.post(f"/api/layers/{lid}/versions/1/restore", headers=api.auth("water"))
    assert r.status_code == 200 and r.get_json()["version"] == 4 and not r.get_json()["deleted"]
    _check_shapes(_served(api, lid), geoms, props)
    assert [f["id"] for f in _served(api, lid)] == [1, 2, 3]  # ids of version 1 kept
    versions = api.get(f"/api/layers/{lid}/versions").get_json()["versions"]
    assert [(v["version"], v["mode"], v["feature_count"]) for v in versions] == [
        (1, "new", 3),
        (2, "append", 8),
        (3, "replace", 5),
        (4, "restore", 3),
    ]
    assert versions[-1]["current"] and versions[1]["report"]["crs"] == "GCJ-02"
    # every version is still served as it was
    assert len(api.get(f"/api/layers/{lid}/features?version=2").get_json()["features"]) == 8


def test_search_bbox_and_paging(api_both: Api, tmp_path: Path) -> None:
    api = api_both
    path, (lon, lat, props) = gbk_shapefile_zip(tmp_path, n=40)
    lid = api.upload("water", path).get_json()["layer"]["id"]

    def ids(query: str) -> list[int]:
        r = api.get(f"/api/layers/{lid}/features?{query}")
        assert r.status_code == 200, r.get_json()
        return [f["id"] for f in r.get_json()["features"]]

    want = [i + 1 for i, p in enumerate(props) if "中山" in p["名称"]]
    assert ids("q=中山") == want and want
    assert ids("q=%25") == []  # LIKE wildcards are text, not patterns
    assert ids("where=编号 >= 38") == [38, 39, 40]
    assert ids("where=压力 > 1.5 and 编号 < 30") == [
        i + 1 for i, p in enumerate(props) if p["压力"] > 1.5 and p["编号"] < 30
    ]
    assert ids("where=名称 = '长江大桥4'") == [5]
    assert ids("where=名称 ~ '一号'") == [i + 1 for i, p in enumerate(props) if "一号" in p["名称"]]
    injection = api.get(f"/api/layers/{lid}/features?where=名称 = 'x'' or 1=1 --'")
    assert injection.status_code == 200 and injection.get_json()["features"] == []
    assert api.get(f"/api/layers/{lid}/features?where=nope = 1").status_code == 400
    assert api.get(f"/api/layers/{lid}/features?where=编号 >=").status_code == 400
    w, s, e, n = lon.min(), lat.min(), np.median(lon), lat.max()
    inside = sorted(i + 1 for i in range(40) if lon[i] <= e)
    assert ids(f"bbox={w},{s},{e},{n}") == inside
    page = api.get(f"/api/layers/{lid}/features?limit=15&offset=30").get_json()
    assert [f["id"] for f in page["features"]] == list(range(31, 41))
    assert page["numberMatched"] == 40 and "next" not in page
    first = api.get(f"/api/layers/{lid}/features?limit=15").get_json()
    assert "offset=15" in first["next"]
    one = api.get(f"/api/layers/{lid}/features/7").get_json()
    assert one["properties"] == props[6]
    assert api.get(f"/api/layers/{lid}/features/999").status_code == 404


def test_styles_patch_and_defaults(api: Api, tmp_path: Path) -> None:
    path, (_, _, props) = gcj_csv(tmp_path, n=20)
    r = api.upload("water", path, name="路灯", crs="GCJ-02")
    layer = r.get_json()["layer"]
    assert layer["style"]["point"]["icon"] == "lamp"
    assert layer["style"]["label"]["attribute"] == "名称"
    style = {"by": {"kind": "graduated", "attribute": "压力"}, "polygon": {"extrude": None}}
    r = api.client.patch(
        f"/api/layers/{layer['id']}", json={"style": style}, headers=api.auth("water")
    )
    assert r.status_code == 200, r.get_json()
    by = r.get_json()["style"]["by"]
    pressures = sorted(p["压力"] for p in props)
    assert len(by["colors"]) == len(by["breaks"]) + 1 and by["breaks"] == sorted(by["breaks"])
    assert pressures[0] < by["breaks"][0] and by["breaks"][-1] < pressures[-1]
    cat = {"by": {"kind": "category", "attribute": "名称", "categories": {"x": "#ff0000"}}}
    r = api.client.patch(
        f"/api/layers/{layer['id']}", json={"style": cat}, headers=api.auth("water")
    )
    assert r.get_json()["style"]["by"]["categories"] == {"x": "#ff0000"}
    for bad, why in [
        ({"colour": "#fff"}, "unknown key"),
        ({"color": "red"}, "colour like"),
        ({"point": {"icon": "unicorn"}}, "not a built-in icon"),
        ({"by": {"kind": "graduated", "attribute": "压力", "breaks": [2, 1]}}, "ascending"),
        ({"label": {"attribute": "nope"}}, "no attribute"),
    ]:
        r = api.client.patch(
            f"/api/layers/{layer['id']}", json={"style": bad}, headers=api.auth("water")
        )
        assert r.status_code == 400 and why in r.get_json()["error"]["message"], (bad, r.get_json())
    icons = api.get("/api/layers/icons").get_json()["icons"]
    assert "hydrant" in icons and api.get(icons["hydrant"]).status_code == 200


def test_export_geojson_and_gpkg(api_both: Api, tmp_path: Path) -> None:
    api = api_both
    path, (geoms, props) = kml_file(tmp_path)
    lid = api.upload("water", path, name="导出").get_json()["layer"]["id"]
    r = api.get(f"/api/layers/{lid}/export.geojson")
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    _check_shapes(sorted(json.loads(r.data)["features"], key=lambda f: f["id"]), geoms, props)
    r = api.get(f"/api/layers/{lid}/export.gpkg")
    assert r.status_code == 200
    out = tmp_path / "out.gpkg"
    out.write_bytes(r.data)
    meta, table = pyogrio.read_arrow(out)
    assert meta["crs"] == "EPSG:4326"
    assert table.column("类型").to_pylist() == ["点", "线", "面"]
    got = shapely.from_wkb(
        table.column(meta["geometry_name"] or "geom").to_numpy(zero_copy_only=False)
    )
    assert all(g.equals_exact(w, 1e-9) for g, w in zip(got, geoms, strict=True))


def test_small_layers_are_served_as_geojson(api: Api, tmp_path: Path) -> None:
    path, _ = kml_file(tmp_path)
    layer = api.upload("water", path).get_json()["layer"]
    assert layer["serve"] == "geojson" and layer["writable"]
    assert layer["links"]["features"] == f"/api/layers/{layer['id']}/features"
    listed = api.get("/api/layers").get_json()["layers"]
    assert [x["id"] for x in listed] == [layer["id"]] and not listed[0]["writable"]
    assert listed[0]["department"] == "water" and listed[0]["department_name"] == "水务局"


def test_client_folders_in_the_file_name_are_dropped(api: Api, tmp_path: Path) -> None:
    path, _ = kml_file(tmp_path)
    data = {"file": (io.BytesIO(path.read_bytes()), "C:\\Users\\张三\\桌面\\../水务 图层.kml")}
    r = api.client.post(
        "/api/layers", data=data, headers=api.auth("water"), content_type="multipart/form-data"
    )
    assert r.status_code == 201, r.get_json()
    layer = r.get_json()["layer"]
    assert layer["name"] == "水务 图层"
    versions = api.get(f"/api/layers/{layer['id']}/versions").get_json()["versions"]
    assert versions[0]["source"] == "水务 图层.kml"
