"""Open311 GeoReport v2: services, request mapping, POST and GET validation."""

from __future__ import annotations

import datetime as dt

import pytest

from layers.events.categories import load_categories
from layers.events.lifecycle import FINAL_STATES, State
from layers.events.model import Actor, apply_action, report
from layers.events.open311 import (
    MAX_DESCRIPTION,
    Open311Error,
    created_response,
    parse_post,
    parse_query,
    services,
    status_of,
    to_request,
)
from layers.events.worktime import CST, WorkSchedule

TABLE = load_categories()
S = WorkSchedule()
AT = dt.datetime(2026, 11, 25, 9, 0, tzinfo=CST)


def test_services_list_every_subcategory() -> None:
    out = services(TABLE)
    assert len(out) == len(TABLE)
    rubbish = next(s for s in out if s["service_code"] == "SJ0102")
    assert rubbish == {
        "service_code": "SJ0102",
        "service_name": "暴露垃圾",
        "description": "事件 · 市容环境 · 暴露垃圾",
        "metadata": False,
        "type": "realtime",
        "keywords": "事件,市容环境,暴露垃圾",
        "group": "事件/市容环境",
    }


def test_every_non_closed_state_is_open() -> None:
    event, _ = report(TABLE, S, subcategory="SJ0102", source="open311", description="d",
                      reporter=Actor("x", "operator"), at=AT)  # fmt: skip
    for state in State:
        expected = "closed" if state in FINAL_STATES else "open"
        assert status_of(event.__class__(**{**event.__dict__, "state": state})) == expected
    assert {s for s in State if s not in FINAL_STATES} >= {State.DEFERRED, State.HANDLED}


def test_request_mapping() -> None:
    event, _ = report(TABLE, S, subcategory="SJ0102", source="open311", description="垃圾",
                      reporter=Actor("x", "operator"), at=AT, lon=116.39, lat=39.91,
                      address="平城路1号", building="B17")  # fmt: skip
    event = event.__class__(**{**event.__dict__, "id": 42})
    filed, _ = apply_action(event, "file", Actor("w", "supervisor"), AT, TABLE, S)
    sent, _ = apply_action(filed, "dispatch", Actor("z", "dispatcher"), AT, TABLE, S)
    r = to_request(sent, TABLE, S, status_notes="已派遣", agency_names={"sanitation": "环卫处"})
    assert r["service_request_id"] == "42" and r["status"] == "open"
    assert r["status_notes"] == "派遣: 已派遣" and r["cim_state"] == "dispatched"
    assert (r["service_code"], r["service_name"]) == ("SJ0102", "暴露垃圾")
    assert r["agency_responsible"] == "环卫处"
    assert r["requested_datetime"] == "2026-11-25T09:00:00+08:00"
    assert r["expected_datetime"] == "2026-11-25T14:30:00+08:00"  # 4 working hours
    assert (r["lat"], r["long"], r["address"], r["address_id"]) == (
        39.91,
        116.39,
        "平城路1号",
        "B17",
    )
    closed = sent.__class__(**{**sent.__dict__, "state": State.CLOSED, "clock": None})
    r = to_request(closed, TABLE, S)
    assert r["status"] == "closed" and r["expected_datetime"] is None


def test_post_validation() -> None:
    ok = parse_post({"service_code": "SJ0102", "lat": "39.9", "long": "116.4",
                     "description": " 垃圾 ", "email": "a@b.c", "phone": ""}, TABLE)  # fmt: skip
    assert (ok.lat, ok.lon, ok.description, ok.contact) == (39.9, 116.4, "垃圾", {"email": "a@b.c"})
    by_address = parse_post({"service_code": "SJ0102", "address_string": "平城路1号"}, TABLE)
    assert by_address.address_string == "平城路1号" and by_address.lat is None
    assert parse_post({"service_code": "SJ0102", "address_id": "B17"}, TABLE).address_id == "B17"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lat": "1", "long": "2"}, "service_code is required"),
        ({"service_code": "NOPE", "lat": "1", "long": "2"}, "not a service of this city"),
        ({"service_code": "SJ0102"}, "a location is required"),
        ({"service_code": "SJ0102", "lat": "39.9"}, "lat and long must be given together"),
        ({"service_code": "SJ0102", "lat": "north", "long": "2"}, "lat must be a number"),
        ({"service_code": "SJ0102", "lat": "91", "long": "2"}, "lat must be between -90 and 90"),
        ({"service_code": "SJ0102", "lat": "nan", "long": "2"}, "lat must be between"),
        (
            {
                "service_code": "SJ0102",
                "address_id": "1",
                "description": "x" * (MAX_DESCRIPTION + 1),
            },
            "longer than 4000",
        ),
        (
            {"service_code": "SJ0102", "address_id": "1", "media_url": "file:///etc/passwd"},
            "media_url must be an http",
        ),
    ],
)
def test_post_errors_are_the_spec_error_array(params: dict, message: str) -> None:
    with pytest.raises(Open311Error) as info:
        parse_post(params, TABLE)
    assert info.value.status == 400
    assert all(set(e) == {"code", "description"} and e["code"] == 400 for e in info.value.errors)
    assert any(message in e["description"] for e in info.value.errors)


def test_post_collects_every_error() -> None:
    with pytest.raises(Open311Error) as info:
        parse_post({}, TABLE)
    assert len(info.value.errors) == 2  # no service_code, no location


def test_get_query() -> None:
    now = dt.datetime(2026, 11, 25, 12, tzinfo=dt.UTC)
    q = parse_query({}, now)
    assert q.end == now and q.start == now - dt.timedelta(days=90) and q.limit == 1000
    q = parse_query({"start_date": "2026-10-01T00:00:00+08:00", "status": "open,closed",
                     "service_code": "SJ0102,BJ0101"}, now)  # fmt: skip
    assert q.end - q.start == dt.timedelta(days=90)
    assert q.statuses == ("open", "closed") and q.service_codes == ("SJ0102", "BJ0101")
    q = parse_query({"service_request_id": "3,5"}, now)
    assert q.ids == (3, 5) and q.start is None
    assert parse_query({"end_date": "2026-11-01T00:00:00Z"}, now).start.month == 8
    bad_queries = [
        ({"status": "pending"}, "open or closed"),
        ({"start_date": "yesterday"}, "W3C date-time"),
        ({"service_request_id": "1,x"}, "not a request id"),
        ({"start_date": "2026-11-02", "end_date": "2026-11-01"}, "before"),
    ]
    for bad, msg in bad_queries:
        with pytest.raises(Open311Error, match=msg):
            parse_query(bad, now)


def test_created_response() -> None:
    assert created_response(7) == [{"service_request_id": "7", "service_notice": None,
                                    "account_id": None}]  # fmt: skip
