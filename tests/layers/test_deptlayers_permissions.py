"""The permission matrix of ``/api/layers``: every role × every operation × own/other
layer. No write by anyone but the owner and the admin may succeed.

Semantics (docs/layers.md): 401 without a (valid) token for writes; 404 for a layer
the caller may not read (its existence is not revealed), for reads and writes alike;
403 with a message naming the owner for a layer it may read but not write.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_deptlayers_api import Api, make_api
from test_deptlayers_data import gcj_csv

ROLES = ("anonymous", "badtoken", "water", "police", "boss")
#: water's layers: readable by all, by police too, by nobody else
READERS = {"all": "all", "police": ["police"], "private": []}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Api, dict[str, int], Path]]:
    for api in make_api(str(tmp_path / "live.sqlite")):
        api.tokens["badtoken"] = "water.not-the-token"
        csv, _ = gcj_csv(tmp_path)
        ids = {}
        for key, readers in READERS.items():
            r = api.upload("water", csv, name=f"water-{key}", crs="GCJ-02", readable_by=readers)
            assert r.status_code == 201, r.get_json()
            ids[key] = r.get_json()["layer"]["id"]
        yield api, ids, csv


def _headers(api: Api, role: str) -> dict[str, str]:
    return {} if role == "anonymous" else {"Authorization": f"Bearer {api.tokens[role]}"}


def _write(api: Api, role: str, op: str, lid: int, csv: Path) -> int:
    h = _headers(api, role)
    c = api.client
    if op in ("replace", "append"):
        data = {
            "file": (io.BytesIO(csv.read_bytes()), csv.name),
            "mode": op,
            "id": str(lid),
            "crs": "GCJ-02",
        }
        return c.post(
            "/api/layers", data=data, headers=h, content_type="multipart/form-data"
        ).status_code
    if op == "patch-name":
        return c.patch(f"/api/layers/{lid}", json={"name": "hacked"}, headers=h).status_code
    if op == "patch-style":
        return c.patch(
            f"/api/layers/{lid}", json={"style": {"color": "#000000"}}, headers=h
        ).status_code
    if op == "patch-readers":
        return c.patch(f"/api/layers/{lid}", json={"readable_by": "all"}, headers=h).status_code
    if op == "delete":
        return c.delete(f"/api/layers/{lid}", headers=h).status_code
    if op == "restore":
        return c.post(f"/api/layers/{lid}/versions/1/restore", headers=h).status_code
    raise AssertionError(op)


WRITES = ("replace", "append", "patch-name", "patch-style", "patch-readers", "delete", "restore")
READS = (
    "",
    "/features",
    "/features/1",
    "/tiles.json",
    "/tiles/0/1/0.json",
    "/versions",
    "/export.geojson",
    "/export.gpkg",
)


def _can_read(role: str, key: str) -> bool:
    if role in ("water", "boss"):
        return True
    if key == "all":
        return role in ("anonymous", "police")
    return role == "police" and key == "police"


def _expected_write(role: str, key: str) -> int:
    if role in ("anonymous", "badtoken"):
        return 401
    if role in ("water", "boss"):
        return 200
    return 403 if _can_read(role, key) else 404


def _snapshot(api: Api, lid: int) -> dict:
    r = api.get(f"/api/layers/{lid}", "boss").get_json()
    return {
        k: r[k] for k in ("name", "version", "style", "readable_by", "deleted", "feature_count")
    }


def test_write_matrix_no_cross_department_write_succeeds(world) -> None:
    api, ids, csv = world
    cross_successes = []
    results = {}
    for key, lid in ids.items():
        for role in ("anonymous", "badtoken", "police"):
            for op in WRITES:
                before = _snapshot(api, lid)
                status = _write(api, role, op, lid, csv)
                results[(role, op, key)] = status
                if status < 400 or _snapshot(api, lid) != before:
                    cross_successes.append((role, op, key, status))
                assert status == _expected_write(role, key), (role, op, key, status)
        for role in ("water", "boss"):
            for op in WRITES:
                status = _write(api, role, op, lid, csv)
                assert status in (200, 201), (role, op, key, status)
    assert cross_successes == []
    # the 403 says whose layer it is and what the caller may do
    r = api.client.delete(f"/api/layers/{ids['all']}", headers=_headers(api, "police"))
    msg = r.get_json()["error"]["message"]
    assert "belongs to department 'water'" in msg and "only its own layers" in msg
    r = api.client.delete(f"/api/layers/{ids['all']}")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


def test_read_matrix(world) -> None:
    api, ids, _ = world
    for key, lid in ids.items():
        for role in ROLES:
            if role == "badtoken":
                continue
            for path in READS:
                status = api.client.get(
                    f"/api/layers/{lid}{path}", headers=_headers(api, role)
                ).status_code
                assert status == (200 if _can_read(role, key) else 404), (role, key, path, status)
            listed = {
                x["id"]
                for x in api.client.get("/api/layers", headers=_headers(api, role)).get_json()[
                    "layers"
                ]
            }
            assert (lid in listed) == _can_read(role, key), (role, key)
    assert api.client.get("/api/layers", headers=_headers(api, "badtoken")).status_code == 401


def test_basic_auth_and_creating_for_others(world) -> None:
    api, ids, csv = world
    basic = base64.b64encode(f"police:{api.tokens['police']}".encode()).decode()
    r = api.client.patch(
        f"/api/layers/{ids['all']}", json={"name": "x"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert r.status_code == 403
    wrong_user = base64.b64encode(f"water:{api.tokens['police']}".encode()).decode()
    r = api.client.get("/api/layers", headers={"Authorization": f"Basic {wrong_user}"})
    assert r.status_code == 401
    data = {
        "file": (io.BytesIO(csv.read_bytes()), csv.name),
        "crs": "GCJ-02",
        "department": "water",
    }
    r = api.client.post(
        "/api/layers",
        data=data,
        headers=_headers(api, "police"),
        content_type="multipart/form-data",
    )
    assert r.status_code == 403 and "only for itself" in r.get_json()["error"]["message"]
    data = {
        "file": (io.BytesIO(csv.read_bytes()), csv.name),
        "crs": "GCJ-02",
        "department": "water",
    }
    r = api.client.post(
        "/api/layers", data=data, headers=_headers(api, "boss"), content_type="multipart/form-data"
    )
    assert r.status_code == 201 and r.get_json()["layer"]["department"] == "water"


def test_revoked_token_writes_nothing(world) -> None:
    from layers.departments import revoke

    api, ids, _ = world
    state = api.client.application.extensions["cim.live"]
    revoke(state.store, "water")
    r = api.client.patch(
        f"/api/layers/{ids['all']}", json={"name": "x"}, headers=_headers(api, "water")
    )
    assert r.status_code == 401


def test_token_read_mode_needs_a_token(tmp_path: Path) -> None:
    from layers.departments import add_department
    from layers.store import open_store
    from server import create_app

    url = str(tmp_path / "live.sqlite")
    st = open_store(url)
    token = add_department(st, "water", "水务局")
    st.close()
    app = create_app({"LIVE_STORE": url, "LIVE_READ": "token", "TESTING": True})
    c = app.test_client()
    assert c.get("/api/layers").status_code == 401
    assert c.get("/api/layers", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    app.extensions["cim.live"].store.close()
