"""``/api/search`` over everything and ``/api/locate``: names, pinyin, ids, coordinates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fixture_city import BUILDINGS, CENTRE, building_lonlat
from flask.testing import FlaskClient
from pyproj import Transformer

from cim import query
from cim.errors import CRSError


def _search(client: FlaskClient, q: str, limit: int = 10) -> list[dict]:
    resp = client.get("/api/search", query_string={"q": q, "limit": limit})
    assert resp.status_code == 200, resp.json
    return resp.json["results"]


def test_address_results_keep_their_fields(client: FlaskClient) -> None:
    first = _search(client, "银河街", 5)[0]
    assert first["type"] == "address" and first["building_id"] == "B0004"
    assert first["label"] == "示例市银河街100号"


@pytest.mark.parametrize(
    ("q", "building", "match"),
    [
        ("银河大厦", "B0004", "name"),  # exact name
        ("翠湖苑", "B0003", "name"),  # prefix: both towers, the first id first
        ("B0006", "B0006", "id"),
        ("yinhedasha", "B0004", "pinyin"),
        ("yin he da sha", "B0004", "pinyin"),
        ("rmyy", "B0006", "initials"),  # 人民医院
        ("zhongshanxiao", "B0002", "pinyin"),  # 中山小学, a prefix
    ],
)
def test_buildings_by_name_pinyin_and_id(
    client: FlaskClient, q: str, building: str, match: str
) -> None:
    hits = [r for r in _search(client, q) if r["type"] == "building"]
    assert hits, q
    top = hits[0]
    assert (top["id"], top["match"]) == (building, match)
    b = next(b for b in BUILDINGS if b[0] == building)
    lon, lat = building_lonlat(b)
    assert abs(top["lon"] - lon) < 2e-4 and abs(top["lat"] - lat) < 2e-4
    assert top["height"] == pytest.approx(CENTRE[2] + b[5])  # the roof: where to fly
    assert top["label"] == b[1]


def test_both_towers_and_a_miss(client: FlaskClient) -> None:
    ids = [r["id"] for r in _search(client, "cuihuyuan") if r["type"] == "building"]
    assert ids == ["B0003", "B0005"]
    assert _search(client, "qqqqzz") == []


@pytest.mark.parametrize(
    "q",
    [
        "116.39, 39.91",
        "39.91, 116.39",  # latitude first: only that order fits
        "116°23'24\"E 39°54'36\"N",
        "39°54′36″N 116°23′24″E",
        "EPSG:4490 116.39 39.91",
    ],
)
def test_degrees_locate(client: FlaskClient, q: str) -> None:
    first = _search(client, q)[0]
    assert first["type"] == "coordinate"
    assert first["lon"] == pytest.approx(116.39, abs=1e-9)
    assert first["lat"] == pytest.approx(39.91, abs=1e-9)
    assert first["height"] == pytest.approx(CENTRE[2], abs=1.0)  # the ground there


def _gk(code: int, lon: float = 116.39, lat: float = 39.91) -> tuple[float, float]:
    return Transformer.from_crs(4326, code, always_xy=True).transform(lon, lat)


def test_gauss_kruger_zone_prefix_and_order(client: FlaskClient) -> None:
    # 3° zone 39 (central meridian 117°) with its prefix: EPSG:4527
    e, n = _gk(4527)
    assert 39e6 < e < 40e6
    for q in (f"{e:.2f} {n:.2f}", f"{n:.2f}, {e:.2f}"):
        first = _search(client, q)[0]
        assert first["type"] == "coordinate" and first["crs"] == "EPSG:4527"
        assert first["lon"] == pytest.approx(116.39, abs=1e-7)
        assert first["lat"] == pytest.approx(39.91, abs=1e-7)


def test_gauss_kruger_without_prefix_takes_the_city_zone(client: FlaskClient) -> None:
    e, n = _gk(4548)  # CGCS2000 3° CM 117°E: the fixture city's zone (116.39°)
    first = _search(client, f"{e:.3f} {n:.3f}")[0]
    assert first["crs"] == "EPSG:4548" and first["how"] == "gauss-kruger"
    assert first["lon"] == pytest.approx(116.39, abs=1e-7)
    # an explicit CRS wins over the detection
    e2, n2 = _gk(4547)
    first = _search(client, f"EPSG:4547 {e2:.3f} {n2:.3f}")[0]
    assert (first["crs"], first["how"]) == ("EPSG:4547", "explicit")
    assert first["lat"] == pytest.approx(39.91, abs=1e-7)


def test_six_degree_zone_prefix() -> None:
    e, n = _gk(4498)  # 6° zone 20 (central meridian 117°)
    loc = query.parse_coordinates(f"{e:.2f} {n:.2f}")
    assert loc is not None and loc.crs == "EPSG:4498"
    assert loc.lon == pytest.approx(116.39, abs=1e-7)


@pytest.mark.parametrize("q", ["中山路1号", "12 34", "B0001", "100号"])
def test_not_coordinates(q: str) -> None:
    assert query.parse_coordinates(q, centre_lon=116.39) is None


def test_bad_gauss_kruger_is_no_coordinate_in_search(client: FlaskClient) -> None:
    with pytest.raises(CRSError):
        query.parse_coordinates("99501234.5 3345678.9")
    # the search does not fail: it looks for the text instead
    assert client.get("/api/search", query_string={"q": "99501234.5 3345678.9"}).status_code == 200


def test_locate_endpoint(client: FlaskClient) -> None:
    e, n = _gk(4548)
    for crs in ("EPSG:4548", "auto", None):
        args = {"x": f"{e:.3f}", "y": f"{n:.3f}"} | ({"crs": crs} if crs else {})
        resp = client.get("/api/locate", query_string=args)
        assert resp.status_code == 200, resp.json
        body = resp.json
        assert (body["type"], body["crs"]) == ("coordinate", "EPSG:4548")
        assert math.isclose(body["lon"], 116.39, abs_tol=1e-7)
        assert math.isclose(body["lat"], 39.91, abs_tol=1e-7)
    gcj = client.get("/api/locate", query_string={"x": 116.39, "y": 39.91, "crs": "GCJ-02"})
    assert gcj.status_code == 200
    # GCJ-02 is offset by some hundred metres from WGS84 in China
    assert 1e-4 < abs(gcj.json["lon"] - 116.39) < 0.02
    wgs = client.get("/api/locate", query_string={"x": 116.39, "y": 39.91, "crs": "EPSG:4326"})
    assert wgs.json["lon"] == 116.39


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"y": "1"}, "missing query parameter 'x'"),
        ({"x": "east", "y": "1"}, "x must be a number"),
        ({"x": "1", "y": "2", "crs": "EPSG:999999"}, "unknown CRS"),
        ({"x": "99501234.5", "y": "3345678.9"}, "zone"),
    ],
)
def test_locate_bad_input_is_400(client: FlaskClient, args: dict, needle: str) -> None:
    resp = client.get("/api/locate", query_string=args)
    assert resp.status_code == 400
    assert needle in resp.json["error"]["message"]


def test_pinyin_keys_are_cached_per_table(fixture_output) -> None:
    from cim.outputs import BuildOutputs

    table = BuildOutputs(fixture_output).buildings()
    assert query.columns(table) is query.columns(table)
    assert query.pinyin_keys(table) is query.pinyin_keys(table)
    keys = dict(zip(query.columns(table).names, query.pinyin_keys(table), strict=True))
    assert keys["人民医院"] == ("renminyiyuan", "rmyy")
    assert keys["翠湖苑1栋"] == ("cuihuyuan1dong", "chy1d")
    assert np.all(np.isfinite(query.columns(table).area_m2))
