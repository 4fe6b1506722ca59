"""Who may write what: every role × write operation × own/other department's data.

The world is made by department ``water``; then ``water`` (own), ``police`` (other) and
the admin ``boss`` each try every write. Own and admin succeed, other gets 403 with a
message naming both departments, and nothing of water's changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
from sta_helpers import MEASUREMENT, make_world

Op = Callable[[str, dict[str, Any], tuple[str, str]], requests.Response]


def _new_stream(u: str, w: dict, a: tuple) -> requests.Response:
    body = {"name": "extra", "description": "", "observationType": MEASUREMENT,
            "unitOfMeasurement": {"symbol": "m"}, "Sensor": {"@iot.id": w["sensor"]},
            "ObservedProperty": {"@iot.id": w["observed_property"]}}  # fmt: skip
    return requests.post(f"{u}/Things({w['thing']})/Datastreams", json=body, auth=a)


def _new_stream_by_ref(u: str, w: dict, a: tuple) -> requests.Response:
    body = {"name": "extra", "description": "", "observationType": MEASUREMENT,
            "unitOfMeasurement": {"symbol": "m"}, "Thing": {"@iot.id": w["thing"]},
            "Sensor": {"@iot.id": w["sensor"]},
            "ObservedProperty": {"@iot.id": w["observed_property"]}}  # fmt: skip
    return requests.post(f"{u}/Datastreams", json=body, auth=a)


def _observation(u: str, w: dict, a: tuple) -> requests.Response:
    body = {"result": 2.0, "Datastream": {"@iot.id": w["datastream"]}}
    return requests.post(f"{u}/Observations", json=body, auth=a)


def _batch(u: str, w: dict, a: tuple) -> requests.Response:
    body = [{"Datastream": {"@iot.id": w["datastream"]}, "components": ["result"],
             "dataArray": [[7.0]]}]  # fmt: skip
    r = requests.post(f"{u}/CreateObservations", json=body, auth=a)
    # a batch answers 201 with per-row results: map a refused row to 403 for the matrix
    if r.status_code == 201 and r.json()[0].startswith("error"):
        r.status_code = 403
        r._content = json.dumps({"error": {"message": r.json()[0]}}).encode()
    return r


def _location_for_thing(u: str, w: dict, a: tuple) -> requests.Response:
    body = {"name": "moved", "description": "", "encodingType": "application/geo+json",
            "location": {"type": "Point", "coordinates": [116.5, 39.95]}}  # fmt: skip
    return requests.post(f"{u}/Things({w['thing']})/Locations", json=body, auth=a)


OPERATIONS: dict[str, Op] = {
    "create Datastream on Thing": _new_stream,
    "create Datastream naming Thing": _new_stream_by_ref,
    "create Observation": _observation,
    "CreateObservations row": _batch,
    "create Location of Thing": _location_for_thing,
    "patch Thing": lambda u, w, a: requests.patch(
        f"{u}/Things({w['thing']})", json={"name": "renamed"}, auth=a),
    "patch Datastream": lambda u, w, a: requests.patch(
        f"{u}/Datastreams({w['datastream']})", json={"description": "x"}, auth=a),
    "patch Location": lambda u, w, a: requests.patch(
        f"{u}/Locations({w['location']})", json={"name": "x"}, auth=a),
    "patch Sensor": lambda u, w, a: requests.patch(
        f"{u}/Sensors({w['sensor']})", json={"name": "x"}, auth=a),
    "patch ObservedProperty": lambda u, w, a: requests.patch(
        f"{u}/ObservedProperties({w['observed_property']})", json={"name": "x"}, auth=a),
    "patch Observation": lambda u, w, a: requests.patch(
        f"{u}/Observations({w['observation']})", json={"result": 9.5}, auth=a),
    "delete Observation": lambda u, w, a: requests.delete(
        f"{u}/Observations({w['observation']})", auth=a),
    "delete Datastream": lambda u, w, a: requests.delete(
        f"{u}/Datastreams({w['datastream']})", auth=a),
    "delete Sensor": lambda u, w, a: requests.delete(f"{u}/Sensors({w['sensor']})", auth=a),
    "delete Location": lambda u, w, a: requests.delete(
        f"{u}/Locations({w['location']})", auth=a),
    "delete Thing": lambda u, w, a: requests.delete(f"{u}/Things({w['thing']})", auth=a),
}  # fmt: skip


def _snapshot(u: str, w: dict) -> dict:
    return {
        "thing": requests.get(f"{u}/Things({w['thing']})?$expand=Datastreams,Locations").json(),
        "obs": requests.get(f"{u}/Observations?$count=true").json()["@iot.count"],
    }


@pytest.mark.parametrize("op", list(OPERATIONS))
def test_permission_matrix(live, op: str) -> None:
    u = live.url
    for role, dept in (("other", "police"), ("own", "water"), ("admin", "boss")):
        w = make_world(u, "water", live.tokens["water"])
        before = _snapshot(u, w)
        r = OPERATIONS[op](u, w, (dept, live.tokens[dept]))
        if role == "other":
            assert r.status_code == 403, (op, role, r.status_code, r.text)
            message = r.json()["error"]["message"]
            assert "police" in message and "water" in message, message
            assert _snapshot(u, w) == before, f"{op}: a refused write changed data"
        else:
            assert r.status_code in (200, 201), (op, role, r.status_code, r.text)


def test_a_department_cannot_claim_another_departments_ownership(live) -> None:
    from sta_helpers import thing_body

    body = thing_body("sneaky")
    body["properties"] = {"department": "water"}
    r = requests.post(f"{live.url}/Things", json=body, auth=("police", live.tokens["police"]))
    assert r.status_code == 201
    tid = r.json()["@iot.id"]
    # the Thing is police's, whatever its properties say: water may not change it
    r = requests.patch(f"{live.url}/Things({tid})", json={"name": "x"},
                       auth=("water", live.tokens["water"]))  # fmt: skip
    assert r.status_code == 403
    # the admin may file a Thing for a department
    r = requests.post(f"{live.url}/Things", json=body, auth=("boss", live.tokens["boss"]))
    tid = r.json()["@iot.id"]
    r = requests.patch(f"{live.url}/Things({tid})", json={"name": "y"},
                       auth=("water", live.tokens["water"]))  # fmt: skip
    assert r.status_code == 200


def test_revoked_token_cannot_write(live) -> None:
    from layers.departments import revoke
    from layers.store import open_store

    st = open_store(live.store_url)
    revoke(st, "police")
    st.close()
    from sta_helpers import thing_body

    r = requests.post(f"{live.url}/Things", json=thing_body(),
                      auth=("police", live.tokens["police"]))  # fmt: skip
    assert r.status_code == 401
