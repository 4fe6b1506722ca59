"""``/api/pipelines``: burst analysis, upstream/downstream, clearances (净距)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from cim.crs import get_transformer
from server import create_app

ORIGIN = (440300.0, 4439750.0)
# id, x, y, depth, feature, utility (ground 1000.00 everywhere)
POINTS = [
    ("S", 0, 0, "1.2", "水厂", "给水"),
    ("V1", 50, 0, "1.2", "阀门", "给水"),
    ("N1", 100, 0, "1.2", "", "给水"),
    ("N2", 150, 0, "1.2", "", "给水"),
    ("V2", 200, 0, "1.2", "阀门", "给水"),
    ("N3", 250, 0, "1.2", "", "给水"),
    ("N4", 100, 50, "1.2", "", "给水"),
    ("D1", 0, 20, "2.0", "检查井", "排水"),
    ("D2", 50, 20, "2.2", "检查井", "排水"),
    ("D3", 100, 20, "2.4", "检查井", "排水"),
    ("Q1", 10, 0.5, "1.0", "", "燃气"),
    ("Q2", 40, 0.5, "1.0", "", "燃气"),
    ("E1", 75, -10, "0.9", "", "电力"),
    ("E2", 75, 10, "0.9", "", "电力"),
]
# id, start, end, size
SEGMENTS = [
    ("W1", "S", "V1", "DN300"),
    ("W2", "V1", "N1", "DN300"),
    ("W3", "N1", "N2", "DN300"),
    ("W4", "N2", "V2", "DN300"),
    ("W5", "V2", "N3", "DN300"),
    ("W6", "N1", "N4", "DN300"),
    ("R1", "D1", "D2", "DN500"),
    ("R2", "D3", "D2", "DN500"),  # surveyed against the flow: the slope decides
    ("G1", "Q1", "Q2", "DN100"),
    ("C1", "E1", "E2", "300×200"),
]


def _lonlat(x: float, y: float) -> list[float]:
    lon, lat = get_transformer("EPSG:4547").transform(x + ORIGIN[0], y + ORIGIN[1])
    return [float(lon), float(lat)]


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cim.build import build_project

    root = tmp_path_factory.mktemp("pipe_api")
    data = root / "data"
    data.mkdir()
    rows = ["点号,x,y,地面高程,埋深,附属物,管线类型"]
    rows += [
        f"{p},{x + ORIGIN[0]},{y + ORIGIN[1]},1000.00,{d},{f},{u}" for p, x, y, d, f, u in POINTS
    ]
    (data / "points.csv").write_bytes(("\n".join(rows) + "\n").encode("gbk"))
    depth = {p[0]: p[3] for p in POINTS}
    kind = {p[0]: p[5] for p in POINTS}
    rows = ["管线编号,起点点号,终点点号,起点埋深,终点埋深,管径,管线类型"]
    rows += [f"{i},{a},{b},{depth[a]},{depth[b]},{s},{kind[a]}" for i, a, b, s in SEGMENTS]
    (data / "segments.csv").write_bytes(("\n".join(rows) + "\n").encode("gbk"))
    ring = [_lonlat(x, y) for x, y in ((210, 1), (230, 1), (230, 20), (210, 20), (210, 1))]
    building = {
        "type": "Feature",
        "properties": {"id": "B1", "height": 10},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }
    doc = {"type": "FeatureCollection", "features": [building]}
    (data / "b.geojson").write_text(json.dumps(doc), encoding="utf-8")
    (root / "city.toml").write_text(
        '[city]\nname = "t"\n[buildings]\npath = "data/b.geojson"\nid = "id"\n'
        '[pipelines]\npoints = "data/points.csv"\nsegments = "data/segments.csv"\n'
        'crs = "EPSG:4547"\n',
        encoding="utf-8",
    )
    return build_project(root / "city.toml", progress=False).output


@pytest.fixture
def client(output: Path, tmp_path: Path) -> FlaskClient:
    return create_app({"TESTING": True, "OUTPUT_DIR": output}).test_client()


def test_summary(client: FlaskClient) -> None:
    body = client.get("/api/pipelines").get_json()
    assert body["segments"] == len(SEGMENTS) and body["valves"] == 2
    assert body["sources"] == ["S"]
    assert set(body["utilities"]) == {"water", "drainage", "gas", "power"}
    assert body["clearance"]["horizontal"]["gas/water"] == 0.5


def test_burst_valves_isolated_and_cut_off(client: FlaskClient) -> None:
    body = client.get("/api/pipelines/segments/W3/burst").get_json()
    assert body["valves"] == ["V1", "V2"]
    assert body["isolated"] == ["W2", "W3", "W4", "W6"]
    assert body["cut_off"] == ["W5"]  # beyond V2: no longer fed from the waterworks
    assert body["supply"] == "sources" and body["closable"] is True
    # a burst next to the source: its own valve, nothing between the source and it
    body = client.get("/api/pipelines/segments/W1/burst").get_json()
    assert body["valves"] == ["V1"] and body["closable"] is False  # the source is inside


def test_upstream_downstream_from_sources(client: FlaskClient) -> None:
    down = client.get("/api/pipelines/segments/W3/connected?direction=downstream").get_json()
    assert down["flow"] == "sources" and down["segments"] == ["W4", "W5"]
    up = client.get("/api/pipelines/segments/W3/connected?direction=upstream").get_json()
    assert up["segments"] == ["W1", "W2"]
    both = client.get("/api/pipelines/segments/W3/connected?direction=both").get_json()
    assert both["segments"] == ["W1", "W2", "W4", "W5", "W6"]


def test_gravity_flow_by_slope(client: FlaskClient) -> None:
    down = client.get("/api/pipelines/segments/R1/connected").get_json()
    assert down["flow"] == "slope" and down["segments"] == ["R2"]
    up = client.get("/api/pipelines/segments/R2/connected?direction=upstream").get_json()
    assert up["segments"] == ["R1"]


def test_clearances(client: FlaskClient) -> None:
    body = client.get("/api/pipelines/clearance?bbox=113.29,40.08,113.31,40.10").get_json()
    found = {(v["a"], v["b"], v["kind"]) for v in body["violations"]}
    assert ("W1", "G1", "horizontal") in found or ("G1", "W1", "horizontal") in found
    assert {("W2", "C1", "vertical"), ("C1", "W2", "vertical")} & found
    assert ("W5", "building:B1", "building") in found
    assert len(found) == 3, found
    by_kind = {v["kind"]: v for v in body["violations"]}
    # gas 0.5 m from the water main's axis: 0.5 - 0.15 - 0.05 = 0.3 m < 0.5 m
    assert by_kind["horizontal"]["clearance"] == pytest.approx(0.3, abs=0.01)
    assert by_kind["horizontal"]["required"] == 0.5
    # power duct centre 999.0, water centre 998.65: 0.35 - 0.1 - 0.15 = 0.1 m < 0.5 m
    assert by_kind["vertical"]["clearance"] == pytest.approx(0.1, abs=0.01)
    assert by_kind["building"]["clearance"] == pytest.approx(0.85, abs=0.02)
    assert np.allclose(by_kind["building"]["lonlat"], _lonlat(220, 0), atol=2e-4)
    one = client.get("/api/pipelines/clearance?segment=W5&buildings=0").get_json()
    assert one["checked"] == 1 and one["violations"] == []


def test_errors(client: FlaskClient) -> None:
    assert client.get("/api/pipelines/segments/nope/burst").status_code == 404
    assert client.get("/api/pipelines/segments/W1/connected?direction=sideways").status_code == 400
    assert client.get("/api/pipelines/clearance").status_code == 400
    assert client.get("/api/pipelines/clearance?bbox=1,2,3").status_code == 400
    assert client.get("/api/pipelines/clearance?bbox=100,30,120,50").status_code == 400
    assert client.get("/api/pipelines/points/V1").get_json()["point"]["valve"] == 1
    seg = client.get("/api/pipelines/segments/W1").get_json()["segment"]
    assert seg["start"] == "S" and seg["end"] == "V1" and seg["size"] == "DN300"


def test_no_pipelines_is_404(tmp_path: Path) -> None:
    app = create_app({"TESTING": True, "OUTPUT_DIR": tmp_path})
    assert app.test_client().get("/api/pipelines").status_code == 404
