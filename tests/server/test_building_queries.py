"""Spatial and attribute queries and city statistics: ``/api/buildings/query`` and ``/stats``."""

from __future__ import annotations

import math

import pytest
from fixture_city import BUILDINGS, CENTRE
from flask.testing import FlaskClient

from cim import query
from cim.errors import InputDataError

K_LON = 111_320.0 * math.cos(math.radians(CENTRE[1]))


def _ring(east0: float, north0: float, east1: float, north1: float) -> list[list[float]]:
    """A lon/lat rectangle from metres east/north of the fixture centre."""
    lon0, lat0, _ = CENTRE
    pts = [(east0, north0), (east1, north0), (east1, north1), (east0, north1), (east0, north0)]
    return [[lon0 + e / K_LON, lat0 + n / 111_320.0] for e, n in pts]


def _expected(ids: set[str]) -> dict:
    rows = [b for b in BUILDINGS if b[0] in ids]
    return {
        "count": len(rows),
        "area": sum(b[8] * b[9] for b in rows),
        "floor_area": sum(b[8] * b[9] * b[4] for b in rows),
        "heights": [b[5] for b in rows],
    }


def _post(client: FlaskClient, body: object) -> dict:
    resp = client.post("/api/buildings/query", json=body)
    assert resp.status_code == 200, resp.json
    return resp.json


def test_polygon_query_with_statistics(client: FlaskClient) -> None:
    # the southern row: B0001 (-60,-60), B0002 (10,-60), B0003 (60,-55)
    polygon = {"type": "Polygon", "coordinates": [_ring(-90, -90, 80, -30)]}
    body = _post(client, {"polygon": polygon})
    assert body["count"] == 3 and sorted(body["ids"]) == ["B0001", "B0002", "B0003"]
    exp = _expected({"B0001", "B0002", "B0003"})
    st = body["stats"]
    assert st["count"] == 3
    assert st["area"] == pytest.approx(exp["area"], rel=0.01)
    assert st["floor_area"] == pytest.approx(exp["floor_area"], rel=0.01)
    assert st["height"] == {"min": 14.0, "mean": pytest.approx(37.33, abs=0.01), "max": 56.0}
    assert st["by_use"]["办公"]["count"] == 1
    assert st["by_use"]["住宅"]["floor_area"] == pytest.approx(20 * 20 * 18, rel=0.01)
    assert {k: v["count"] for k, v in st["by_roof_type"].items()} == {"flat": 2, "gable": 1}


def test_predicates(client: FlaskClient) -> None:
    # a box over half of B0004 (-55, 20, 30×30) only
    ring = _ring(-55, 0, -30, 40)
    assert _post(client, {"polygon": ring})["ids"] == ["B0004"]
    assert _post(client, {"polygon": ring, "predicate": "within"})["count"] == 0
    assert _post(client, {"polygon": ring, "predicate": "centroid"})["count"] == 0
    whole = _post(client, {"polygon": _ring(-75, 0, -35, 40), "predicate": "within"})
    assert whole["ids"] == ["B0004"]


def test_conditions_text_and_json_agree(client: FlaskClient) -> None:
    text = _post(client, {"conditions": "use = 住宅 AND height > 30 AND floors >= 5"})
    listed = _post(
        client,
        {
            "conditions": [
                {"field": "use", "op": "=", "value": "住宅"},
                {"field": "height", "op": ">", "value": 30},
                {"field": "floors", "op": ">=", "value": 5},
            ]
        },
    )
    assert text["ids"] == listed["ids"] == ["B0003", "B0005"]
    assert text["conditions"][1] == {"field": "height", "op": ">", "value": 30.0}


@pytest.mark.parametrize(
    ("conditions", "ids"),
    [
        ("height between 20 and 60", ["B0001", "B0003", "B0005", "B0006"]),
        ("use in (学校, 医疗)", ["B0002", "B0006"]),
        ("name contains 翠湖 and floors < 20", ["B0003", "B0005"]),
        ("roof_type != flat", ["B0003", "B0005"]),
        ("name startswith 中山", ["B0002"]),
        ("top >= 100 且 use = '商业'", ["B0004"]),
        ("area > 1000", ["B0001", "B0006"]),
        ('id = "B0001"', ["B0001"]),
        ("用途 = 住宅 且 高度 > 30 且 层数 >= 5", ["B0003", "B0005"]),
        ("高度 介于 20 至 60 且 名称 包含 翠湖", ["B0003", "B0005"]),
    ],
)
def test_condition_language(client: FlaskClient, conditions: str, ids: list[str]) -> None:
    assert _post(client, {"conditions": conditions})["ids"] == ids


def test_polygon_and_conditions_combined(client: FlaskClient) -> None:
    ring = _ring(-90, -90, 80, -30)
    body = _post(client, {"polygon": ring, "conditions": "height < 50"})
    assert body["ids"] == ["B0001", "B0002"]


def test_paging_keeps_count_and_stats(client: FlaskClient) -> None:
    page = _post(client, {"conditions": "height > 0", "offset": 2, "limit": 3})
    assert page["count"] == 6 and page["stats"]["count"] == 6
    assert page["ids"] == ["B0003", "B0004", "B0005"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "polygon, conditions or both"),
        ({"conditions": "colour = red"}, "unknown field"),
        ({"conditions": "height ~ 3"}, "cannot read the condition"),
        ({"conditions": "height > tall"}, "not a number"),
        ({"conditions": "use > 住宅"}, "operator"),
        ({"conditions": [{"field": "use"}]}, "each condition"),
        ({"conditions": "height > 1; DROP TABLE x"}, "not a number"),
        ({"polygon": [[1, 2], [3, 4]]}, "polygon"),
        ({"polygon": [[0, 0], [1, 1], [2, 2]]}, "degenerate"),
        ({"polygon": [[500, 0], [501, 1], [500, 2]]}, "lon/lat"),
        ({"conditions": "height > 1", "limit": -1}, "limit must be"),
        ({"conditions": "height > 1", "predicate": "near"}, "predicate"),
    ],
)
def test_bad_queries_are_400(client: FlaskClient, body: dict, needle: str) -> None:
    resp = client.post("/api/buildings/query", json=body)
    assert resp.status_code == 400, resp.json
    assert needle in resp.json["error"]["message"]


def test_query_needs_json(client: FlaskClient) -> None:
    resp = client.post("/api/buildings/query", data="x", content_type="text/plain")
    assert resp.status_code == 400


def test_city_statistics(client: FlaskClient) -> None:
    st = client.get("/api/buildings/stats").json["stats"]
    assert st["count"] == len(BUILDINGS)
    assert {k: v["count"] for k, v in st["by_use"].items()} == {
        "住宅": 2,
        "办公": 1,
        "医疗": 1,
        "商业": 1,
        "学校": 1,
    }
    assert next(iter(st["by_use"])) == "住宅"  # the most frequent first
    hist = {(h["min"], h["max"]): h["count"] for h in st["height_histogram"]}
    assert hist == {
        (0.0, 10.0): 0,
        (10.0, 20.0): 1,
        (20.0, 30.0): 0,
        (30.0, 50.0): 2,
        (50.0, 100.0): 2,
        (100.0, None): 1,
    }
    assert st["height"]["max"] == 110.0
    assert st["area"] == pytest.approx(_expected({b[0] for b in BUILDINGS})["area"], rel=0.01)


def test_stats_without_buildings_is_404(tmp_path) -> None:
    from server import create_app

    client = create_app({"TESTING": True, "OUTPUT_DIR": tmp_path}).test_client()
    assert client.get("/api/buildings/stats").status_code == 404
    resp = client.post("/api/buildings/query", json={"conditions": "height > 1"})
    assert resp.status_code == 404


def test_floor_area_falls_back_to_height(fixture_output) -> None:
    from cim.outputs import BuildOutputs

    table = BuildOutputs(fixture_output).buildings()
    cols = query.columns(table)
    saved = cols.floors_est.copy()
    assert list(saved) == [b[4] for b in BUILDINGS]
    # the fallback: height / 3 m per floor, at least one floor
    assert query.FLOOR_HEIGHT_FALLBACK == 3.0
    with pytest.raises(InputDataError):
        query.parse_conditions("floors between 1")
