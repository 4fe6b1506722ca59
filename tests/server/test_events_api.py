"""The events REST API (/api/events): the whole lifecycle over HTTP, roles, conflicts,
attachments, filters and statistics, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fixture_city import BUILDINGS, CENTRE, building_lonlat
from flask import Flask
from flask.testing import FlaskClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers"))

from cim.errors import ConfigError, InputDataError
from layers.departments import add_department
from layers.events import attachments as att
from layers.events.config import events_config
from layers.events.model import Actor
from layers.events.roles import set_roles
from layers.events.store import EventFilter, EventStore
from layers.store import open_store
from server import create_app
from server.blueprints.events import attachments_folder

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%test\n" + b"0" * 64
HTML = b"<html><script>alert(1)</script></html>"
COMMAND_ROLES = ["operator", "supervisor", "dispatcher", "inspector"]


# --- fixtures (shared with test_open311.py) -----------------------------------------------


@dataclass
class _Candidate:
    address: str
    score: float
    lon: float
    lat: float
    height: float | None
    building_id: str | None
    distance: float | None = None


class AddressStub:
    """The address index contract (:class:`cim.addresses.AddressIndex`) over the fixture
    buildings: exact substring matches score 100."""

    def __init__(self, path: Path) -> None:
        self.items = []
        for b in BUILDINGS:
            lon, lat = building_lonlat(b)
            self.items.append(_Candidate(b[10], 100.0, lon, lat, CENTRE[2] + b[5], b[0]))

    def search(self, q: str, limit: int = 10) -> list[_Candidate]:
        return [c for c in self.items if q in c.address][:limit]

    def reverse(
        self, lon: float, lat: float, limit: int = 5, max_distance: float = 1000.0
    ) -> list[_Candidate]:
        near = sorted(self.items, key=lambda c: (c.lon - lon) ** 2 + (c.lat - lat) ** 2)
        return near[:limit]

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def pg_server() -> Iterator[Any]:
    """A throw-away PostgreSQL server (tests/layers/pgserver.py)."""
    from pgserver import pg_missing, start_pg, stop_pg

    problem = pg_missing()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is needed under CI: {problem}")
        pytest.skip(problem)
    server = start_pg()
    try:
        yield server
    finally:
        stop_pg(server)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "live.sqlite")
    return request.getfixturevalue("pg_server").fresh_database()


@dataclass
class EventsApp:
    app: Flask
    client: FlaskClient
    tokens: dict[str, str]
    store_url: str
    attachments: Path

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def post(self, url: str, who: str, **kw: Any) -> Any:
        headers = {**self.auth(who), **kw.pop("headers", {})}
        return self.client.post(url, headers=headers, **kw)

    def act(
        self, event_id: int, who: str, action: str, headers: dict | None = None, **fields: Any
    ) -> Any:
        return self.post(
            f"/api/events/{event_id}/transitions",
            who,
            json={"action": action, **fields},
            headers=headers or {},
        )

    def create(self, who: str = "center", **fields: Any) -> dict[str, Any]:
        body = {"subcategory": "SJ0102", "description": "路边暴露垃圾", "location": [116.39, 39.91]}
        r = self.post("/api/events", who, json={**body, **fields})
        assert r.status_code == 201, r.get_json()
        return r.get_json()


def make_events_app(store_url: str, output: Path, tmp_path: Path) -> EventsApp:
    st = open_store(store_url)
    EventStore(st, events_config())
    tokens = {
        "center": add_department(st, "center", "指挥中心"),  # the command center's roles
        "hotline": add_department(st, "hotline", "热线"),  # 受理员 only
        "water": add_department(st, "water", "水务局"),  # handlers
        "police": add_department(st, "police", "公安局"),
        "boss": add_department(st, "boss", "管理员", admin=True),
    }
    set_roles(st, "center", COMMAND_ROLES)
    set_roles(st, "hotline", ["operator"])
    st.close()
    attachments = tmp_path / "attachments"
    app = create_app(
        {
            "TESTING": True,
            "OUTPUT_DIR": output,
            "ADDRESS_INDEX_FACTORY": AddressStub,
            "LIVE_STORE": store_url,
            "ATTACHMENTS_DIR": attachments,
        }
    )
    return EventsApp(app, app.test_client(), tokens, store_url, attachments)


@pytest.fixture
def api(store_url: str, fixture_output: Path, tmp_path: Path) -> Iterator[EventsApp]:
    ea = make_events_app(store_url, fixture_output, tmp_path)
    yield ea
    _close(ea.app)


def _close(app: Flask) -> None:
    from server.blueprints.live import stop_live

    stop_live(app)
    state = app.extensions.get("cim.live")
    if state is not None:
        state.store.close()


# --- the lifecycle ------------------------------------------------------------------------


def test_whole_lifecycle_to_close_with_timeline(api: EventsApp) -> None:
    ev = api.create(location={"building": "B0003", "floor": 3}, priority="high")
    eid = ev["id"]
    assert ev["state"] == "reported" and ev["version"] == 1
    assert ev["location"]["building"] == "B0003" and ev["location"]["floor"] == 3
    b = next(b for b in BUILDINGS if b[0] == "B0003")
    assert 0 < ev["location"]["h"] - CENTRE[2] < b[5]  # the middle of floor 3, not the roof
    assert ev["deadline"] is not None
    assert [a["action"] for a in ev["actions"]] == ["file", "cancel"]

    steps = [
        ("center", "file", {}, "filed", "operator"),
        ("center", "dispatch", {"department": "water"}, "dispatched", "dispatcher"),
        ("water", "accept", {}, "handling", "handler"),
        ("water", "report_done", {"note": "已清运"}, "handled", "handler"),
        ("center", "check", {}, "checked", "inspector"),
        ("center", "close", {}, "closed", "supervisor"),
    ]
    for version, (who, action, fields, state, role) in enumerate(steps, start=1):
        r = api.act(eid, who, action, headers={"If-Match": f'"v{version}"'}, **fields)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        assert body["state"] == state
        assert r.headers["ETag"] == f'"v{version + 1}"'
        assert body["timeline"][-1]["role"] == role
    detail = api.client.get(f"/api/events/{eid}", headers=api.auth("center")).get_json()
    assert detail["state_label"] == "结案" and detail["closed_at"]
    assert detail["department"] == "water"
    timeline = detail["timeline"]
    assert [t["action"] for t in timeline] == [
        "report", "file", "dispatch", "accept", "report_done", "check", "close",
    ]  # fmt: skip
    assert [t["actor"] for t in timeline][2:4] == ["center", "water"]
    assert timeline[4]["note"] == "已清运" and timeline[2]["data"] == {"department": "water"}
    assert [a["action"] for a in detail["actions"]] == ["evaluate"]
    # a handler sees no action on a closed case, an anonymous reader none either
    water = api.client.get(f"/api/events/{eid}", headers=api.auth("water")).get_json()
    assert water["actions"] == [] and water["roles"] == ["handler"]
    assert api.client.get(f"/api/events/{eid}").get_json()["actions"] == []


def test_user_name_goes_into_the_trail(api: EventsApp) -> None:
    r = api.post(
        "/api/events", "hotline", headers={"X-User": "张三"},
        json={"subcategory": "SJ0102", "location": [116.39, 39.91]},
    )  # fmt: skip
    assert r.status_code == 201
    assert r.get_json()["timeline"][0]["actor"] == "hotline/张三"
    assert r.get_json()["timeline"][0]["role"] == "operator"


def test_role_refusals_are_403_and_name_the_allowed(api: EventsApp) -> None:
    eid = api.create()["id"]
    r = api.act(eid, "hotline", "cancel", note="重复")
    assert r.status_code == 403
    assert r.get_json()["error"]["allowed"] == ["file"]
    assert api.act(eid, "hotline", "file").status_code == 200
    r = api.act(eid, "water", "dispatch", department="water")
    assert r.status_code == 403 and "dispatcher" in r.get_json()["error"]["message"]
    assert api.act(eid, "center", "dispatch", department="water").status_code == 200
    r = api.act(eid, "police", "accept")  # a handler, but of another department
    assert r.status_code == 403 and "water" in r.get_json()["error"]["message"]
    r = api.act(eid, "center", "accept", role="handler")  # center holds no case of its own
    assert r.status_code == 403
    r = api.act(eid, "hotline", "accept", role="supervisor")  # a role it does not hold
    assert r.status_code == 403 and "does not hold" in r.get_json()["error"]["message"]
    assert api.act(eid, "boss", "accept").status_code == 200  # admin: any role
    assert (
        api.client.post(f"/api/events/{eid}/transitions", json={"action": "x"}).status_code == 401
    )
    bad = {"Authorization": "Bearer water.nope"}
    r = api.client.post(f"/api/events/{eid}/transitions", json={"action": "x"}, headers=bad)
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers


def test_illegal_transitions_are_409_with_allowed_actions(api: EventsApp) -> None:
    eid = api.create()["id"]
    r = api.act(eid, "center", "close")
    assert r.status_code == 409
    err = r.get_json()["error"]
    assert err["allowed"] == ["file", "cancel"] and "file (立案)" in err["message"]
    r = api.act(eid, "center", "fly")
    assert r.status_code == 409 and "unknown action" in r.get_json()["error"]["message"]
    r = api.act(eid, "center", "cancel")  # needs a note
    assert r.status_code == 400 and "note" in r.get_json()["error"]["message"]
    assert api.act(404404, "center", "file").status_code == 404
    r = api.act(eid, "center", "file", headers={"If-Match": '"v7"'})
    assert r.status_code == 409
    assert r.get_json()["error"]["version"] == 1 and r.headers["ETag"] == '"v1"'
    assert api.act(eid, "center", "file", headers={"If-Match": "junk"}).status_code == 400
    assert api.act(eid, "center", "file", version=1).status_code == 200
    r = api.act(eid, "center", "file", version=1)  # someone else's stale view
    assert r.status_code == 409 and r.get_json()["error"]["allowed"] == ["dispatch"]


def test_concurrent_dispatch_one_wins(api: EventsApp) -> None:
    for _ in range(4):
        eid = api.create()["id"]
        assert api.act(eid, "center", "file").status_code == 200
        barrier = threading.Barrier(2)
        codes: list[int] = []

        def dispatch(
            dept: str, eid: int = eid, barrier: threading.Barrier = barrier, codes: list = codes
        ) -> None:
            client = api.app.test_client()
            barrier.wait()
            r = client.post(
                f"/api/events/{eid}/transitions",
                json={"action": "dispatch", "department": dept},
                headers=api.auth("center"),
            )
            codes.append(r.status_code)

        threads = [threading.Thread(target=dispatch, args=(d,)) for d in ("water", "police")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(codes) == [200, 409]
        detail = api.client.get(f"/api/events/{eid}").get_json()
        assert [t["action"] for t in detail["timeline"]].count("dispatch") == 1
        assert detail["version"] == 3


# --- creating: placement and validation ---------------------------------------------------


def test_create_places_crs_coordinates_addresses_and_buildings(api: EventsApp) -> None:
    from pyproj import Transformer

    lon, lat = building_lonlat(BUILDINGS[1])
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:4547", always_xy=True).transform(lon, lat)
    ev = api.create(location={"coordinates": [x, y], "crs": "EPSG:4547"})
    assert abs(ev["location"]["lon"] - lon) < 1e-7 and abs(ev["location"]["lat"] - lat) < 1e-7
    assert ev["location"]["building"] == BUILDINGS[1][0]  # on its roof
    ev = api.create(location=None, address="示例市人民路5号")
    assert ev["location"]["building"] == "B0006" and ev["location"]["address"] == "示例市人民路5号"
    ev = api.create(location=None, building="B0004", floor="2")
    assert ev["location"]["floor"] == 2
    # form fields work as well as JSON
    r = api.post("/api/events", "center", data={"subcategory": "SJ0102", "lon": lon, "lat": lat})
    assert r.status_code == 201 and r.get_json()["location"]["building"] == BUILDINGS[1][0]


BAD_CREATES: list[tuple[dict[str, Any], int, str]] = [
    ({"subcategory": "XX99"}, 400, "unknown subcategory"),
    ({"location": None}, 400, "needs a location"),
    ({"location": {"building": "NOPE"}}, 404, "NOPE"),
    ({"location": {"coordinates": [1e12, 5], "crs": "EPSG:4547"}}, 400, ""),
    ({"location": {"building": "B0001", "floor": 99}}, 400, "floor"),
    ({"source": "pigeon"}, 400, "source"),
    ({"priority": "now!"}, 400, "priority"),
    ({"description": "x" * 4001}, 400, "longer"),
]


def test_create_refuses_bad_input(api: EventsApp) -> None:
    for fields, status, words in BAD_CREATES:
        body = {"subcategory": "SJ0102", "location": [116.39, 39.91], **fields}
        r = api.post("/api/events", "center", json=body)
        assert r.status_code == status, (fields, r.get_json())
        assert words in r.get_json()["error"]["message"]
    assert api.client.get("/api/events").get_json()["total"] == 0


def test_create_needs_a_token(api: EventsApp) -> None:
    r = api.client.post("/api/events", json={"subcategory": "SJ0102", "location": [116.39, 39.91]})
    assert r.status_code == 401


# --- attachments --------------------------------------------------------------------------


def _files(*items: tuple[bytes, str]) -> dict[str, Any]:
    return {"attachment": [(io.BytesIO(data), name) for data, name in items]}


def test_attachments_checked_stored_and_served(api: EventsApp) -> None:
    data = {
        "event": '{"subcategory": "SJ0102", "location": [116.39, 39.91]}',
        **_files((PNG, "../../etc/photo.png"), (PDF, 'report".pdf')),
    }
    r = api.post("/api/events", "center", data=data, content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    items = r.get_json()["attachments"]
    assert [a["media_type"] for a in items] == ["image/png", "application/pdf"]
    assert "/" not in items[0]["name"] and '"' not in items[1]["name"]
    for a, content in zip(items, (PNG, PDF), strict=True):
        stored = (
            api.attachments
            / a["sha256"][:2]
            / (a["sha256"] + (".png" if a is items[0] else ".pdf"))
        )
        assert stored.read_bytes() == content
    png = api.client.get(items[0]["url"])
    assert png.status_code == 200 and png.data == PNG
    assert png.headers["Content-Type"] == "image/png"
    assert png.headers["X-Content-Type-Options"] == "nosniff"
    assert png.headers["Content-Disposition"].startswith("inline")
    assert "sandbox" in png.headers["Content-Security-Policy"]
    pdf = api.client.get(items[1]["url"])
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith("attachment")
    eid = r.get_json()["id"]
    # added later, to an existing case
    r = api.post(f"/api/events/{eid}/attachments", "water", data=_files((PNG + b"1", "b.png")))
    assert r.status_code == 201 and r.get_json()[0]["uploaded_by"] == "water"
    # the attachment URL takes only numbers; another case's attachment is not found
    assert api.client.get(f"/api/events/{eid}/attachments/..%2F..%2Fsecret").status_code == 404
    other = api.create()["id"]
    assert api.client.get(f"/api/events/{other}/attachments/{items[0]['id']}").status_code == 404


def test_attachments_refused_by_content_and_size(
    api: EventsApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = {"subcategory": "SJ0102", "lon": "116.39", "lat": "39.91", **_files((HTML, "a.jpg"))}
    r = api.post("/api/events", "center", data=data)
    assert r.status_code == 400 and "content decides" in r.get_json()["error"]["message"]
    assert api.client.get("/api/events").get_json()["total"] == 0  # nothing half-made
    assert not api.attachments.exists() or not any(api.attachments.rglob("*.*"))
    monkeypatch.setattr(att, "MAX_BYTES", 32)
    r = api.post("/api/events", "center", data={**data, **_files((PNG, "a.png"))})
    assert r.status_code == 400 and "bytes" in r.get_json()["error"]["message"]


def test_storage_keys_cannot_name_other_paths(tmp_path: Path) -> None:
    for key in ("../x.png", "a" * 64 + ".html", "/etc/passwd", "0" * 63 + "/.png"):
        with pytest.raises(InputDataError):
            att.stored_path(tmp_path, key)


def test_attachments_folder_never_in_the_build_output(fixture_output: Path) -> None:
    app = create_app(
        {"TESTING": True, "OUTPUT_DIR": fixture_output, "LIVE_STORE": "/nonexistent/x.sqlite",
         "ATTACHMENTS_DIR": fixture_output / "att"}
    )  # fmt: skip
    with pytest.raises(ConfigError):
        attachments_folder(app)


def test_attachments_folder_defaults_beside_the_sqlite_store(api: EventsApp) -> None:
    api.app.config["ATTACHMENTS_DIR"] = None
    folder = attachments_folder(api.app)
    if api.store_url.startswith("postgresql"):
        assert folder is None
    else:
        assert folder == Path(api.store_url).with_name("live-attachments")


# --- the list, filters and statistics -----------------------------------------------------


def test_list_filters_paging_and_counts(api: EventsApp) -> None:
    a = api.create(description="井盖缺失 东门", location={"building": "B0001"})["id"]
    b = api.create(subcategory="SJ0109", description="空气污染")["id"]
    c = api.create(description="暴露垃圾")["id"]
    api.act(a, "center", "file")
    api.act(a, "center", "dispatch", department="water")
    api.act(b, "center", "cancel", note="重复")

    def ids(query: str) -> list[int]:
        r = api.client.get(f"/api/events?{query}")
        assert r.status_code == 200, r.get_json()
        return [e["id"] for e in r.get_json()["items"]]

    assert ids("") == [c, b, a]
    assert ids("state=reported,dispatched") == [c, a]
    assert ids("department=water") == [a]
    assert ids("category=SJ0109") == [b] and ids("category=SJ01") == [c, b, a]
    assert ids("open=true") == [c, a]
    assert ids("q=东门") == [a] and ids("q=%25") == []
    lon, lat = building_lonlat(BUILDINGS[0])
    assert ids(f"bbox={lon - 1e-4},{lat - 1e-4},{lon + 1e-4},{lat + 1e-4}") == [a]
    assert ids("overdue=true") == []
    assert ids("limit=1&offset=1") == [b] and ids("order=oldest&limit=1") == [a]
    body = api.client.get("/api/events?state=reported&limit=1").get_json()
    assert body["total"] == 1
    assert body["counts"] == {"reported": 1, "dispatched": 1, "cancelled": 1}
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    assert ids(f"to={yesterday.replace('+00:00', 'Z')}") == []
    for bad in ("state=nope", "overdue=maybe", "limit=100000", "bbox=1,2,3", "from=yesterday"):
        assert api.client.get(f"/api/events?{bad}").status_code == 400, bad
    # a search with more matches than the store counts says so (the viewer: "1+")
    assert api.client.get("/api/events?q=东门").get_json()["capped"] is False
    d = api.create(description="东门垃圾")["id"]
    from server.blueprints.events import events_runtime

    events_runtime(api.app).events.count_cap = 1
    for url in ("/api/events?q=东门", "/api/events/markers?q=东门"):
        body = api.client.get(url).get_json()
        assert body["capped"] is True and body["total"] == 1, url
        assert body["counts"] == {"reported": 1} and len(body["items"]) == 2, url
    assert ids("q=东门") == [d, a]


def test_overdue_and_approaching_flags(api: EventsApp) -> None:
    st = api.app.extensions  # the app's EventStore, on the same store
    from server.blueprints.events import events_runtime

    with api.app.app_context():
        events = events_runtime(api.app).events
    actor = Actor("center", "operator")
    # Monday 2026-11-23 09:00, 1 working hour to 立案: approaching from 09:48, overdue at 10:00
    at = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    e = events.report(subcategory="SJ0102", source="hotline", description="", reporter=actor,
                      at=at, lon=116.39, lat=39.91)  # fmt: skip
    assert st  # the app is up

    def found(now_min: int, **kw: bool) -> bool:
        now = at + dt.timedelta(minutes=now_min)
        return [x.id for x in events.list_events(EventFilter(**kw), now)[0]] == [e.id]

    assert not found(30, approaching=True) and found(30, approaching=False)
    assert found(50, approaching=True) and not found(50, overdue=True)
    assert found(61, overdue=True) and not found(61, approaching=True)
    body = api.client.get(f"/api/events/{e.id}").get_json()
    assert body["overdue"] is True  # it is long past that Monday now


def test_statistics(api: EventsApp) -> None:
    done = api.create()["id"]
    for who, action, kw in [
        ("center", "file", {}), ("center", "dispatch", {"department": "water"}),
        ("water", "accept", {}), ("water", "report_done", {}), ("center", "check", {}),
        ("center", "close", {}),
    ]:  # fmt: skip
        assert api.act(done, who, action, **kw).status_code == 200
    api.create()
    r = api.client.get("/api/events/stats")
    assert r.status_code == 200
    s = r.get_json()
    assert s["by_state"] == {"closed": 1, "reported": 1}
    assert s["by_department"]["water"] == {"open": 0, "closed": 1}
    assert s["closed"] == 1 and s["on_time_rate"] == 1.0
    assert s["mean_hours_by_subcategory"][0]["name"] == "暴露垃圾"
    old = api.client.get("/api/events/stats?from=2020-01-01&to=2020-02-01").get_json()
    assert old["by_state"] == {} and old["on_time_rate"] is None
    assert api.client.get("/api/events/stats?from=2020-02-01&to=2020-01-01").status_code == 400


# --- roles administration, reads with tokens, the live bus --------------------------------


def test_roles_admin_and_me(api: EventsApp) -> None:
    assert api.client.get("/api/events/roles", headers=api.auth("center")).status_code == 403
    r = api.client.get("/api/events/roles", headers=api.auth("boss"))
    assert r.get_json() == {"center": COMMAND_ROLES, "hotline": ["operator"]}
    r = api.client.put("/api/events/roles/water", json={"roles": ["inspector"]},
                       headers=api.auth("boss"))  # fmt: skip
    assert r.status_code == 200 and r.get_json()["roles"] == ["inspector"]
    me = api.client.get("/api/events/me", headers=api.auth("water")).get_json()
    assert me["roles"] == ["inspector", "handler"] and me["admin"] is False
    r = api.client.put("/api/events/roles/water", json={"roles": ["handler"]},
                       headers=api.auth("boss"))  # fmt: skip
    assert r.status_code == 400
    r = api.client.put("/api/events/roles/ghost", json={"roles": []}, headers=api.auth("boss"))
    assert r.status_code == 404


def test_reads_need_a_token_when_configured(api: EventsApp) -> None:
    from server.blueprints.events import events_runtime

    api.create()
    events_runtime(api.app).read = "token"
    assert api.client.get("/api/events").status_code == 401
    assert api.client.get("/api/events", headers=api.auth("water")).status_code == 200


def test_each_write_publishes_an_event_delta(api: EventsApp) -> None:
    from server.blueprints.live import live_runtime

    sub = live_runtime(api.app).hub.bus.subscribe()
    eid = api.create()["id"]
    api.act(eid, "center", "file")
    got = [sub.get(timeout=5), sub.get(timeout=5)]
    sub.close()
    deltas = [m for batch in got if batch for m in batch if m.get("kind") == "event"]
    assert [(d["id"], d["action"], d["state"], d["version"]) for d in deltas] == [
        (eid, "report", "reported", 1), (eid, "file", "filed", 2),
    ]  # fmt: skip
    assert deltas[0]["lon"] == 116.39 and deltas[0]["deadline"]


def test_categories(api: EventsApp) -> None:
    body = api.client.get("/api/events/categories").get_json()
    subs = {s["code"]: s for c in body["categories"] for s in c["subcategories"]}
    assert subs["SJ0102"]["name"] == "暴露垃圾" and "handle" in subs["SJ0102"]["limits"]
    assert "hotline" in body["sources"]


def test_kept_counts_match_the_cases(api: EventsApp) -> None:
    from server.blueprints.events import events_runtime

    ids = [api.create(subcategory=code)["id"] for code in ("SJ0102", "SJ0102", "SJ0109")]
    api.act(ids[0], "center", "file")
    api.act(ids[0], "center", "dispatch", department="water")
    api.act(ids[0], "center", "redispatch", department="police", note="错派")
    api.act(ids[1], "center", "cancel", note="重复")
    api.act(ids[2], "center", "close")  # refused: changes nothing
    events = events_runtime(api.app).events
    with events.store.transaction() as tx:
        actual = dict(tx.execute("SELECT state, count(*) FROM events GROUP BY state"))
    assert events.count_by_state(EventFilter()) == actual == {
        "dispatched": 1, "cancelled": 1, "reported": 1,
    }  # fmt: skip
    assert events.count_by_state(EventFilter(departments=["police"])) == {"dispatched": 1}
    assert events.count_by_state(EventFilter(departments=["water"])) == {}
    assert events.list_events(EventFilter(categories=["SJ01"], open=True))[1] == 2
    end = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    kept = events.statistics(end - dt.timedelta(days=30), end)  # whole days + two edges
    assert kept["by_state"] == actual
    assert kept["by_department"] == {"police": {"open": 1, "closed": 0},
                                     "": {"open": 1, "closed": 1}}  # fmt: skip
    events.rebuild_counts()
    assert events.count_by_state(EventFilter()) == actual
    assert events.statistics(end - dt.timedelta(days=30), end) == kept


# --- the map's markers, the counts of range filters, cases from a sensor alarm ----------------


def test_markers_match_the_list(api: EventsApp) -> None:
    """/api/events/markers gives, row by row, what /api/events says of the same cases."""
    from server.blueprints.events import events_runtime

    events = events_runtime(api.app).events
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=5)
    late = events.report(subcategory="SJ0102", source="hotline", description="", at=old,
                         reporter=Actor("center", "operator"), lon=116.39, lat=39.91)  # fmt: skip
    a = api.create()["id"]
    b = api.create(subcategory="SJ0109")["id"]
    api.act(a, "center", "file")
    api.act(b, "center", "cancel", note="重复")
    for query in ("open=1", "", "state=filed", "overdue=1", "department=water", "limit=1&offset=1"):
        listed = api.client.get(f"/api/events?{query}").get_json()
        body = api.client.get(f"/api/events/markers?{query}").get_json()
        rows = [dict(zip(body["columns"], r, strict=True)) for r in body["items"]]
        assert [r["id"] for r in rows] == [e["id"] for e in listed["items"]], query
        for r, e in zip(rows, listed["items"], strict=True):
            assert (r["state"], r["overdue"], r["approaching"], r["version"]) == (
                e["state"], e["overdue"], e["approaching"], e["version"]
            ), query  # fmt: skip
            assert (r["lon"], r["lat"]) == (e["location"]["lon"], e["location"]["lat"])
        assert (body["total"], body["counts"]) == (listed["total"], listed["counts"]), query
    overdue = api.client.get("/api/events/markers?overdue=1").get_json()["items"]
    assert [r[0] for r in overdue] == [late.id]
    # the map reads up to 20,000 at once (the list's pages stop at 1,000)
    many = api.client.get("/api/events/markers?limit=20000")
    assert many.status_code == 200 and len(many.get_json()["items"]) == 3
    assert api.client.get("/api/events/markers").get_json()["limit"] == 20000
    assert api.client.get("/api/events/markers?limit=20001").status_code == 400
    assert api.client.get("/api/events?limit=1001").status_code == 400


def test_counts_of_range_filters_match_the_cases(api: EventsApp) -> None:
    """The counts by state of the overdue, approaching and report-time filters (one index
    range per state on SQLite) are what counting the matching cases gives."""
    from server.blueprints.events import events_runtime

    events = events_runtime(api.app).events
    actor = Actor("center", "admin")
    now = dt.datetime.now(dt.UTC)
    for days, actions in [(6, ["file"]), (5, []), (4, ["file", "dispatch"]), (0, []),
                          (0, ["cancel"]), (3, ["cancel"])]:  # fmt: skip
        e = events.report(subcategory="SJ0102", source="hotline", description="", reporter=actor,
                          at=now - dt.timedelta(days=days), lon=116.39, lat=39.91)  # fmt: skip
        for k, action in enumerate(actions):
            kw = {"department": "water"} if action == "dispatch" else {}
            note = "重复" if action == "cancel" else ""
            when = now - dt.timedelta(days=days, seconds=-k - 1)
            events.transition(e.id or 0, action, actor, at=when, note=note, **kw)
    cases, _ = events.list_events(EventFilter(limit=1000), now)
    flags = {e.id: e for e in cases}
    body = {e["id"]: e for e in api.client.get("/api/events?limit=1000").get_json()["items"]}
    for f, test in [
        (EventFilter(overdue=True), lambda e: body[e.id]["overdue"]),
        (EventFilter(overdue=True, open=True), lambda e: body[e.id]["overdue"]),
        (EventFilter(approaching=True), lambda e: body[e.id]["approaching"]),
        (EventFilter(reported_after=now - dt.timedelta(days=4, hours=1)),
         lambda e: e.reported_at >= now - dt.timedelta(days=4, hours=1)),
        (EventFilter(reported_before=now - dt.timedelta(days=1), open=False),
         lambda e: e.reported_at < now - dt.timedelta(days=1) and not e.is_open),
        (EventFilter(reported_after=now - dt.timedelta(days=5, hours=1), states=["filed"]),
         lambda e: e.reported_at >= now - dt.timedelta(days=5, hours=1)),
    ]:  # fmt: skip
        expected: dict[str, int] = {}
        for e in flags.values():
            if test(e):
                expected[e.state.value] = expected.get(e.state.value, 0) + 1
        assert events.count_by_state(f, now) == expected, f
        page = events.list_page(f, now)
        wanted = set(f.states) or set(expected)
        assert page.total == sum(n for s, n in expected.items() if s in wanted), f
        assert sorted(x.id for x in page.items) == sorted(
            e.id for e in flags.values() if test(e) and e.state.value in wanted
        ), f
    assert events.count_by_state(EventFilter(overdue=True), now), "some case is overdue"


def _datastream(api: EventsApp, prop: str = "道路水位") -> int:
    body = {
        "name": "1号积水点",
        "Locations": [{"name": "积水点", "encodingType": "application/geo+json",
                       "location": {"type": "Point", "coordinates": [116.39, 39.91, 50.0]}}],
        "Datastreams": [{
            "name": "1号积水点",
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "unitOfMeasurement": {"name": "metre", "symbol": "m", "definition": "ucum:m"},
            "Sensor": {"name": "gauge", "encodingType": "text/html", "metadata": "none"},
            "ObservedProperty": {"name": prop, "definition": "urn:water"},
        }],
    }  # fmt: skip
    r = api.post("/api/sta/v1.1/Things", "water", json=body)
    assert r.status_code == 201, r.get_json()
    thing = r.get_json()["@iot.id"]
    return int(
        api.client.get(f"/api/sta/v1.1/Things({thing})/Datastreams").get_json()["value"][0][
            "@iot.id"
        ]
    )


def test_case_filed_from_a_sensor_alarm(api: EventsApp) -> None:
    """The viewer's 立案 on an alarm: a case linked to its datastream (source sensor),
    one open case per datastream (409 naming it), and the keywords the viewer maps."""
    ds = _datastream(api)
    fields = {"subcategory": "SJ0405", "source": "sensor", "priority": "high",
              "description": "1号积水点: 道路水位 = 9 m (告警)", "datastream": ds}  # fmt: skip
    first = api.create(**fields)
    assert (first["source"], first["datastream_id"], first["subcategory"]) == (
        "sensor",
        ds,
        "SJ0405",
    )
    again = api.post("/api/events", "center", json={**fields, "location": [116.39, 39.91]})
    assert again.status_code == 409
    assert again.get_json()["error"]["event"] == first["id"]
    listed = api.client.get(f"/api/events?datastream={ds}").get_json()["items"]
    assert [e["id"] for e in listed] == [first["id"]]
    for bad, status in (("x1", 400), (ds + 1000, 404), (True, 400)):
        r = api.post("/api/events", "center", json={**fields, "location": [116.39, 39.91],
                                                      "datastream": bad})  # fmt: skip
        assert r.status_code == status, (bad, r.get_json())
    # closed, the datastream may have a new case
    api.act(first["id"], "center", "cancel", note="误报")
    assert api.create(**fields)["datastream_id"] == ds
    cats = api.client.get("/api/events/categories").get_json()
    subs = {s["code"]: s for c in cats["categories"] for s in c["subcategories"]}
    assert "水位" in subs["SJ0405"]["sensor"] and cats["sensor_default"] in subs
