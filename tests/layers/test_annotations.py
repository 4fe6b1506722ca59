"""Shared annotations (批注) in the live store and ``/api/annotations``, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cim.errors import InputDataError, NotFoundError
from layers.annotations import ANNOTATIONS, AnnotationPermissionError, Annotations
from layers.store import Department


@pytest.fixture
def notes(store: Any) -> Annotations:
    return Annotations(store)


WATER = Department("water", "水务局")
POLICE = Department("police", "公安局")
BOSS = Department("boss", "指挥中心", role="admin")


def test_migration_is_a_component(store: Any) -> None:
    assert store.schema_version(ANNOTATIONS) == 0
    Annotations(store)
    Annotations(store)  # a second open applies nothing again
    assert store.schema_version(ANNOTATIONS) == ANNOTATIONS.version == 1


def test_create_list_delete(notes: Annotations) -> None:
    cam = {"lon": 113.3, "lat": 40.08, "height": 800.0, "heading": 10.0, "pitch": -45.0}
    a = notes.create(WATER, "  <b>管网</b> 漏水点  ", 113.30, 40.09, 1030.5, cam)
    b = notes.create(POLICE, "布控点", 113.31, 40.091)
    assert a.text == "<b>管网</b> 漏水点"  # stored as typed (trimmed): viewers escape it
    assert (a.department, a.author, a.camera) == ("water", "水务局", cam)
    assert [n.id for n in notes.list()] == [b.id, a.id]  # newest first
    assert notes.get(a.id).to_json()["position"] == {"lon": 113.30, "lat": 40.09, "height": 1030.5}
    with pytest.raises(AnnotationPermissionError):
        notes.delete(POLICE, a.id)
    notes.delete(WATER, a.id)
    notes.delete(BOSS, b.id)  # the admin deletes any
    assert notes.list() == []
    with pytest.raises(NotFoundError):
        notes.delete(WATER, a.id)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("", 113.0, 40.0), "non-empty"),
        (("x" * 2001, 113.0, 40.0), "longer than"),
        (("x", 200.0, 40.0), "lon must be between"),
        (("x", 113.0, float("nan")), "lat must be between"),
        (("x", "113", 40.0), "lon must be a number"),
    ],
)
def test_create_refuses(notes: Annotations, args: tuple, needle: str) -> None:
    with pytest.raises(InputDataError, match=needle):
        notes.create(WATER, *args)
    with pytest.raises(InputDataError, match="camera"):
        notes.create(WATER, "x", 113.0, 40.0, 0.0, {"lon": 1})


# --- the HTTP API ---------------------------------------------------------------------------
class Api:
    def __init__(self, client: Any, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    def h(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}


@pytest.fixture
def api(store_url: str) -> Iterator[Api]:
    from layers.departments import add_department
    from layers.store import open_store
    from server import create_app

    st = open_store(store_url)
    tokens = {
        "water": add_department(st, "water", "水务局"),
        "police": add_department(st, "police", "公安局"),
    }
    st.close()
    app = create_app({"LIVE_STORE": store_url, "TESTING": True})
    try:
        yield Api(app.test_client(), tokens)
    finally:
        state = app.extensions.get("cim.live")
        if state is not None:
            state.store.close()


def test_api_round_trip(api: Api) -> None:
    c = api.client
    body = {"text": "<img src=x onerror=alert(1)>", "position": {"lon": 113.3, "lat": 40.09}}
    assert c.post("/api/annotations", json=body).status_code == 401
    bad = c.post("/api/annotations", json=body, headers={"Authorization": "Bearer water.nope"})
    assert bad.status_code == 401
    resp = c.post("/api/annotations", json=body, headers=api.h("water"))
    assert resp.status_code == 201, resp.json
    note = resp.json["annotation"]
    assert note["author"] == "水务局" and note["text"] == body["text"]
    assert resp.headers["Location"] == f"/api/annotations/{note['id']}"
    # anyone reads; "mine" tells the viewer which it may delete
    listed = c.get("/api/annotations").json["annotations"]
    assert [(n["id"], n["mine"]) for n in listed] == [(note["id"], False)]
    assert c.get("/api/annotations", headers=api.h("water")).json["annotations"][0]["mine"]
    # another department may not delete it; its own does
    gone = c.delete(f"/api/annotations/{note['id']}", headers=api.h("police"))
    assert gone.status_code == 403 and gone.json["error"]["type"] == "Forbidden"
    assert c.delete(f"/api/annotations/{note['id']}").status_code == 401
    assert c.delete(f"/api/annotations/{note['id']}", headers=api.h("water")).status_code == 204
    assert c.get("/api/annotations").json["annotations"] == []
    assert c.delete(f"/api/annotations/{note['id']}", headers=api.h("water")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"text": "x"},
        {"text": "", "position": {"lon": 1, "lat": 2}},
        {"text": "x", "position": {"lon": 1, "lat": 95}},
        [1, 2],
    ],
)
def test_api_bad_body_is_400(api: Api, body: Any) -> None:
    resp = api.client.post("/api/annotations", json=body, headers=api.h("water"))
    assert resp.status_code == 400, resp.json
