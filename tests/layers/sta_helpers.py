"""Helpers for the SensorThings API tests: a small world made over HTTP."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import requests

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def auth(dept: str, token: str) -> tuple[str, str]:
    """HTTP Basic credentials as SensorThings clients send them."""
    return (dept, token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def thing_body(name: str = "river gauge", lon: float = 116.4, lat: float = 39.9) -> dict:
    """A Thing with a Location and a Datastream (new Sensor and ObservedProperty)."""
    return {
        "name": name,
        "description": "a gauge",
        "properties": {"district": "东城"},
        "Locations": [
            {
                "name": "bridge",
                "description": "on the bridge",
                "encodingType": "application/geo+json",
                "location": {"type": "Point", "coordinates": [lon, lat]},
            }
        ],
        "Datastreams": [
            {
                "name": f"{name} level",
                "description": "water level",
                "observationType": MEASUREMENT,
                "unitOfMeasurement": {"name": "metre", "symbol": "m", "definition": "ucum:m"},
                "properties": {"thresholds": {"warn_high": 5, "alarm_high": 8}},
                "Sensor": {"name": "radar", "description": "radar gauge",
                           "encodingType": "text/html", "metadata": "http://example.org"},
                "ObservedProperty": {"name": "water level", "definition": "http://x/level",
                                     "description": "level"},
            }
        ],
    }  # fmt: skip


def make_world(url: str, dept: str, token: str) -> dict[str, Any]:
    """Create a Thing (with Location, Datastream, Sensor, ObservedProperty) and one
    Observation as ``dept``; returns their ids."""
    r = requests.post(f"{url}/Things", json=thing_body(f"{dept} gauge"), auth=(dept, token))
    assert r.status_code == 201, r.text
    thing = r.json()["@iot.id"]
    ds = requests.get(f"{url}/Things({thing})/Datastreams").json()["value"][0]["@iot.id"]
    loc = requests.get(f"{url}/Things({thing})/Locations").json()["value"][0]["@iot.id"]
    dsj = requests.get(f"{url}/Datastreams({ds})?$expand=Sensor,ObservedProperty").json()
    r = requests.post(
        f"{url}/Datastreams({ds})/Observations",
        json={"result": 1.5, "phenomenonTime": "2024-01-01T00:00:00Z"},
        auth=(dept, token),
    )
    assert r.status_code == 201, r.text
    return {
        "thing": thing,
        "datastream": ds,
        "location": loc,
        "sensor": dsj["Sensor"]["@iot.id"],
        "observed_property": dsj["ObservedProperty"]["@iot.id"],
        "observation": r.json()["@iot.id"],
    }


@contextlib.contextmanager
def running_app(store_url: str, read: str = "open") -> Iterator[str]:
    """Serve the app on a free port in a thread; yields the SensorThings base URL."""
    from werkzeug.serving import make_server

    from server import create_app

    app = create_app({"LIVE_STORE": store_url, "LIVE_READ": read, "TESTING": True})
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}/api/sta/v1.1"
    finally:
        srv.shutdown()
        thread.join(10)
        state = app.extensions.get("cim.live")
        if state is not None:
            state.store.close()
