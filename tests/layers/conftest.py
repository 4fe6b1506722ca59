"""Fixtures for the live layers: both stores (SQLite, PostgreSQL + PostGIS), a real
PostgreSQL server in a temporary folder, and the SensorThings server in a thread.

PostgreSQL comes from Debian's packages (``scripts/setup.sh`` installs them for the
tests). The server runs as an unprivileged user (``cimtest``, created when missing and
when the tests run as root), on a free port, in a temporary folder; the cluster Debian
creates is never touched. Where PostgreSQL is missing the PostgreSQL tests skip, except
under CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pgserver import PgServer, pg_missing, start_pg, stop_pg
from sta_helpers import running_app


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is needed under CI: {reason} (scripts/setup.sh installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL + PostGIS server in a temporary folder, stopped at the end."""
    problem = pg_missing()
    if problem:
        _missing(problem)
    server = start_pg()
    try:
        yield server
    finally:
        stop_pg(server)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty live store, once per backend."""
    if request.param == "sqlite":
        return str(tmp_path / "live.sqlite")
    server: PgServer = request.getfixturevalue("pg_server")
    return server.fresh_database()


@pytest.fixture
def store(store_url: str):
    """An open, migrated store on each backend."""
    from layers.store import open_store

    st = open_store(store_url)
    yield st
    st.close()


@dataclass
class LiveServer:
    """The app with the SensorThings API in a thread, and department tokens."""

    url: str  # .../api/sta/v1.1
    store_url: str
    tokens: dict[str, str]


@pytest.fixture
def live(store_url: str) -> Iterator[LiveServer]:
    """The SensorThings server over a fresh store with departments water, police and
    an admin ``boss``."""
    from layers.departments import add_department
    from layers.store import open_store

    st = open_store(store_url)
    tokens = {
        "water": add_department(st, "water", "水务局"),
        "police": add_department(st, "police", "公安局"),
        "boss": add_department(st, "boss", "指挥中心", admin=True),
    }
    st.close()
    with running_app(store_url) as url:
        yield LiveServer(url, store_url, tokens)


def wait_for(predicate, timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true or the timeout passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


from mqtt_fixtures import mosquitto  # noqa: E402, F401 - the MQTT broker fixture (live stream)
