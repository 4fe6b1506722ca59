"""Fixtures for the live stream and MQTT tests: a real mosquitto broker in a temporary
folder on a free port (Debian's ``mosquitto``; the Debian service is never used),
stopped at the end; and a small world of datastreams in a store.

Where mosquitto is missing the MQTT tests skip, except under CI (``CI`` set), where
that is a failure (``scripts/setup.sh --browser`` installs it).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_exe() -> str | None:
    """The mosquitto program, or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


@dataclass
class Broker:
    """A running mosquitto for the tests."""

    port: int
    folder: Path
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


def _wait_port(port: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"mosquitto is needed under CI: {reason}; scripts/setup.sh installs it")
    pytest.skip(reason)


@contextlib.contextmanager
def start_broker(folder: Path) -> Iterator[Broker]:
    """Run a mosquitto broker (persistent sessions kept, no queue limit) in ``folder``
    on a free port until the block ends."""
    exe = mosquitto_exe()
    if exe is None:
        _missing("mosquitto is not installed (Debian: mosquitto)")
    assert exe is not None
    port = free_port()
    user = pwd.getpwuid(os.geteuid()).pw_name
    (folder / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        f"user {user}\n"  # as root it would switch to 'mosquitto' and lose the folder
        "persistence true\n"
        f"persistence_location {folder}/\n"
        # the durability promise needs the broker to keep every queued message
        "max_queued_messages 0\n"
        "log_dest stderr\n"
    )
    with open(folder / "log", "wb") as log:
        proc = subprocess.Popen([exe, "-c", str(folder / "mosquitto.conf")], stderr=log)
        try:
            if not _wait_port(port):
                pytest.fail(f"mosquitto did not start: {(folder / 'log').read_text()[-2000:]}")
            yield Broker(port, folder, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Broker]:
    """A mosquitto broker for the whole session, in a temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="cim-mqtt-"))
    try:
        with start_broker(folder) as broker:
            yield broker
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def make_streams(
    store: Any,
    n: int,
    dept: str = "water",
    prop: str = "water level",
    lon0: float = 116.0,
    lat0: float = 39.0,
    step: float = 0.01,
    properties: dict[str, Any] | None = None,
) -> list[int]:
    """Create ``n`` Things with one Location and one Datastream each, owned by ``dept``,
    placed along a line from (lon0, lat0); returns the datastream ids."""
    from layers.sta.model import ENTITY_SETS
    from layers.sta.write import Creator
    from layers.store import Department

    principal = Department(dept, dept)
    ids = []
    with store.transaction(write=True) as tx:
        creator = Creator(tx, principal)
        op = creator.create(
            ENTITY_SETS["ObservedProperties"],
            {"name": prop, "definition": f"http://example.org/{prop}", "description": prop},
        )
        sensor = creator.create(
            ENTITY_SETS["Sensors"],
            {"name": "probe", "description": "a probe", "encodingType": "text/html",
             "metadata": "http://example.org"},
        )  # fmt: skip
        for i in range(n):
            thing = creator.create(
                ENTITY_SETS["Things"],
                {
                    "name": f"{dept} {prop} {i}",
                    "description": "a sensor",
                    "Locations": [
                        {
                            "name": "here",
                            "description": "where it is",
                            "encodingType": "application/geo+json",
                            "location": {
                                "type": "Point",
                                "coordinates": [lon0 + i * step, lat0 + i * step, 50.0],
                            },
                        }
                    ],
                },
            )
            ds = creator.create(
                ENTITY_SETS["Datastreams"],
                {
                    "name": f"{prop} {i}",
                    "description": prop,
                    "observationType": MEASUREMENT,
                    "unitOfMeasurement": {"name": "metre", "symbol": "m", "definition": "m"},
                    "properties": properties or {},
                    "Thing": {"@iot.id": thing},
                    "Sensor": {"@iot.id": sensor},
                    "ObservedProperty": {"@iot.id": op},
                },
            )
            ids.append(ds)
    return ids


@dataclass
class SseEvent:
    """One Server-Sent Event (``event`` is "message" when the stream names none)."""

    id: str | None
    event: str
    data: Any


class SseClient:
    """A minimal Server-Sent Events reader over a real HTTP connection.

    Parameters
    ----------
    port : int
        The server's port on 127.0.0.1.
    query : str
        Appended to ``/api/live/stream``.
    headers : dict, optional
        e.g. ``{"Last-Event-ID": "..."}``.
    """

    def __init__(
        self, port: int, query: str = "", headers: dict[str, str] | None = None, timeout=10.0
    ) -> None:
        import http.client

        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", "/api/live/stream" + query, headers=headers or {})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.last_id: str | None = None
        self.comments = 0

    def next(self) -> SseEvent:
        """The next event (id-only blocks and comments update :attr:`last_id` only)."""
        import json

        event, data, ident = "message", [], None
        while True:
            raw = self.resp.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if line == "":
                if ident is not None:
                    self.last_id = ident
                if data:
                    text = "\n".join(data)
                    return SseEvent(ident, event, json.loads(text))
                event, ident = "message", None
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id":
                ident = value

    def deltas(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` deltas (across delta events); fails on a snapshot meanwhile."""
        out: list[dict[str, Any]] = []
        while len(out) < n:
            ev = self.next()
            assert ev.event == "delta", f"expected deltas, got {ev.event}: {ev.data}"
            out.extend(ev.data)
        return out

    def close(self) -> None:
        self.resp.close()  # the response holds the socket open otherwise
        self.conn.close()
