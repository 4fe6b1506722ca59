"""Open311 GeoReport v2 at /api/open311/v2/: read with a real client (the ``georeport``
package, JSON and XML) against a served app; POST by the specification's form
encoding (``georeport`` only reads); the specification's error arrays."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from georeport import GeoReport
from test_events_api import EventsApp, _close, make_events_app, pg_server, store_url
from werkzeug.serving import make_server

__all__ = ["pg_server", "store_url"]  # fixtures shared with test_events_api.py

#: the members of a service request (GeoReport v2, GET requests)
REQUEST_KEYS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat",
    "long", "media_url",
}  # fmt: skip


class Served:
    def __init__(self, api: EventsApp, url: str) -> None:
        self.api = api
        self.url = url  # .../api/open311/v2
        self.client = GeoReport(url)
        self.xml = GeoReport(url, output_format="xml")

    def post(self, fmt: str = "json", **fields: Any) -> requests.Response:
        return requests.post(f"{self.url}/requests.{fmt}", data=fields, timeout=30)

    def file(self, **fields: Any) -> str:
        body = {"api_key": self.api.tokens["hotline"], "service_code": "SJ0102",
                "lat": "39.9100", "long": "116.3900", **fields}  # fmt: skip
        r = self.post(**body)
        assert r.status_code == 201, r.text
        return r.json()[0]["service_request_id"]


@pytest.fixture
def served(store_url: str, fixture_output: Path, tmp_path: Path) -> Iterator[Served]:
    api = make_events_app(store_url, fixture_output, tmp_path)
    srv = make_server("127.0.0.1", 0, api.app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(api, f"http://127.0.0.1:{srv.server_port}/api/open311/v2")
    finally:
        srv.shutdown()
        thread.join(10)
        _close(api.app)


def test_services_json_and_xml(served: Served) -> None:
    services = served.client.get_service_list()
    codes = [s["service_code"] for s in services]
    assert "SJ0102" in codes and len(codes) == len(set(codes)) >= 50
    s = next(s for s in services if s["service_code"] == "SJ0102")
    assert s["service_name"] == "暴露垃圾" and s["type"] == "realtime"
    assert s["metadata"] is False and s["group"] == "事件/市容环境"
    xml = served.xml.get_service_list()
    assert [x["service_code"] for x in xml] == codes
    assert next(x for x in xml if x["service_code"] == "SJ0102")["metadata"] == "false"
    assert served.client.get_service_definition("SJ0102") == {
        "service_code": "SJ0102",
        "attributes": [],
    }
    assert served.xml.get_service_definition("SJ0102")["service_code"] == "SJ0102"
    r = requests.get(f"{served.url}/services/NOPE.json", timeout=30)
    assert r.status_code == 404 and r.json()[0]["code"] == 404


def test_post_then_read_back(served: Served) -> None:
    rid = served.file(
        description="路口垃圾堆放",
        email="a@example.org",
        first_name="三",
        **{"attribute[size]": "large"},
    )
    req = served.client.get_service_request(rid)
    assert set(req) >= REQUEST_KEYS
    assert req["service_request_id"] == rid and req["status"] == "open"
    assert req["service_code"] == "SJ0102" and req["service_name"] == "暴露垃圾"
    assert req["description"] == "路口垃圾堆放"
    assert abs(req["lat"] - 39.91) < 1e-9 and abs(req["long"] - 116.39) < 1e-9
    assert req["status_notes"].startswith("信息采集") and req["cim_state"] == "reported"
    requested = dt.datetime.fromisoformat(req["requested_datetime"])
    assert requested.tzinfo is not None
    assert dt.datetime.fromisoformat(req["expected_datetime"]) > requested
    # the case behind it, in the events API: source, reporter, extra fields
    case = served.api.client.get(f"/api/events/{rid}").get_json()
    assert case["source"] == "open311" and case["reporter"] == "hotline"
    assert case["extra"]["attributes"] == {"size": "large"}
    assert case["extra"]["contact"] == {"email": "a@example.org", "first_name": "三"}
    # by building (address_id) and by address; XML answers too
    rid2 = served.file(lat="", long="", address_id="B0002")
    assert served.client.get_service_request(rid2)["address_id"] == "B0002"
    r = served.post("xml", api_key=served.api.tokens["water"], service_code="SJ0102",
                    address_string="示例市人民路5号")  # fmt: skip
    assert r.status_code == 201 and r.headers["Content-Type"].startswith("text/xml")
    assert "<service_requests><request><service_request_id>" in r.text
    xml = served.xml.get_service_request(rid2)
    assert xml["service_request_id"] == rid2 and xml["status"] == "open"


def _walk(api: EventsApp, eid: str, steps: list[tuple[str, str, dict[str, Any]]]) -> None:
    for who, action, kw in steps:
        assert api.act(int(eid), who, action, **kw).status_code == 200


def test_status_mapping_and_filters(served: Served) -> None:
    api = served.api
    reported = served.file()
    dispatched = served.file()
    _walk(
        api, dispatched, [("center", "file", {}), ("center", "dispatch", {"department": "water"})]
    )
    deferred = served.file(service_code="BJ0101")
    _walk(api, deferred, [
        ("center", "file", {}), ("center", "dispatch", {"department": "water"}),
        ("water", "accept", {}), ("water", "request_deferral", {"note": "冬季施工"}),
        ("center", "approve_deferral", {}),
    ])  # fmt: skip
    cancelled = served.file()
    _walk(api, cancelled, [("center", "cancel", {"note": "重复上报"})])
    closed = served.file()
    _walk(api, closed, [
        ("center", "file", {}), ("center", "dispatch", {"department": "water"}),
        ("water", "accept", {}), ("water", "report_done", {}), ("center", "check", {}),
        ("center", "close", {}),
    ])  # fmt: skip

    def ids(**kw: str) -> list[str]:
        return [r["service_request_id"] for r in served.client.get_service_requests(**kw)]

    assert ids() == [closed, cancelled, deferred, dispatched, reported]
    assert ids(status="closed") == [closed, cancelled]
    assert ids(status="open") == [deferred, dispatched, reported]
    assert ids(status="open,closed") == ids()
    assert ids(service_code="BJ0101") == [deferred]
    assert ids(service_request_id=f"{reported},{closed}") == [closed, reported]
    assert ids(end_date="2020-01-01T00:00:00Z") == []
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(requests.HTTPError):  # more than 90 days
        ids(start_date="2020-01-01T00:00:00Z", end_date=soon)
    assert len(ids(end_date=soon)) == 5
    by_id = {r["service_request_id"]: r for r in served.client.get_service_requests()}
    assert by_id[deferred]["cim_state"] == "deferred" and by_id[deferred]["status"] == "open"
    assert by_id[deferred]["expected_datetime"] is None  # the clock is stopped
    assert by_id[dispatched]["agency_responsible"] == "水务局"
    notes = served.client.get_service_request(cancelled)["status_notes"]
    assert notes == "注销: 重复上报"
    xml = served.xml.get_service_requests(status="closed")
    assert [r["service_request_id"] for r in xml] == [closed, cancelled]


BAD_POSTS: list[tuple[dict[str, str], int, list[str]]] = [
    ({"api_key": ""}, 403, ["api_key is required"]),
    ({"api_key": "water.forged"}, 403, ["not valid"]),
    ({"service_code": "", "lat": "", "long": ""}, 400, ["service_code", "location"]),
    ({"lat": "91"}, 400, ["lat", "location"]),
    ({"lat": "", "long": "", "address_string": "火星路1号"}, 400, ["location"]),
    ({"lat": "", "long": "", "address_id": "NOPE"}, 400, ["NOPE"]),
    ({"description": "x" * 4001}, 400, ["description"]),
]


def test_post_errors_are_the_spec_array(served: Served) -> None:
    for fields, status, words in BAD_POSTS:
        body = {"api_key": served.api.tokens["hotline"], "service_code": "SJ0102",
                "lat": "39.91", "long": "116.39", **fields}  # fmt: skip
        r = served.post(**body)
        assert r.status_code == status, fields
        errors = r.json()
        assert isinstance(errors, list) and len(errors) == len(words), errors
        for err, word in zip(errors, words, strict=True):
            assert set(err) == {"code", "description"} and err["code"] == status
            assert word in err["description"]
    assert served.client.get_service_requests() == []


def test_read_errors_are_the_spec_array(served: Served) -> None:
    r = requests.get(f"{served.url}/requests/123.json", timeout=30)
    assert r.status_code == 404 and r.json() == [
        {"code": 404, "description": "no service request 123"}
    ]
    r = requests.get(f"{served.url}/requests.json?start_date=yesterday", timeout=30)
    assert r.status_code == 400 and "start_date" in r.json()[0]["description"]
    r = requests.get(f"{served.url}/requests.xml?status=pending", timeout=30)
    assert r.status_code == 400 and r.text.count("<error><code>400</code>") == 1
    with pytest.raises(requests.HTTPError):
        served.client.get_service_request("999")
