"""What an HTTP transition costs the server, and that the shortcuts keep security: the
role picked from the case inside the transition (no read before it), the detail's
trail and attachments in one read, the department's granted roles remembered for a
short time (a change through the API at once, one by another process within
``GRANTS_CACHE_SECONDS``), a revoked token refused at once; SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_events_api import EventsApp, _close, make_events_app, pg_server, store_url

from layers import departments
from layers.events import roles
from layers.events.lifecycle import Role, RoleNotAllowedError, StaleEventError
from layers.events.model import Actor, Event
from layers.events.store import EventStore
from server.blueprints.events import events_runtime

__all__ = ["pg_server", "store_url"]  # fixtures used by name


@pytest.fixture
def api(store_url: str, fixture_output: Path, tmp_path: Path) -> Iterator[EventsApp]:
    ea = make_events_app(store_url, fixture_output, tmp_path)
    yield ea
    _close(ea.app)


def _events(api: EventsApp) -> EventStore:
    with api.app.app_context():
        return events_runtime(api.app).events


def test_a_transition_reads_the_case_only_inside_it(
    api: EventsApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    eid = api.create()["id"]
    store = _events(api)
    calls: list[str] = []
    for name in ("get", "audit", "attachments"):
        real = getattr(EventStore, name)

        def counted(self: Any, *a: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            calls.append(_name)
            return _real(self, *a, **kw)

        monkeypatch.setattr(EventStore, name, counted)
    r = api.act(eid, "center", "file", headers={"If-Match": '"v1"'})
    assert r.status_code == 200 and r.headers["ETag"] == '"v2"'
    assert calls == []  # no read before the transition; trail + attachments in one
    body = r.get_json()
    assert [t["action"] for t in body["timeline"]] == ["report", "file"]
    assert body["attachments"] == [] and body["state"] == "filed"
    assert [a["action"] for a in body["actions"]] == ["dispatch"]
    audit, files = store.trail(eid)
    assert [a.action for a in audit] == ["report", "file"] and files == []
    # a refusal still names what the caller may do with the case as it is now
    r = api.act(eid, "hotline", "dispatch", department="water")
    assert r.status_code == 403 and r.get_json()["error"]["allowed"] == []


def test_the_role_is_picked_from_the_case_as_the_transition_reads_it(api: EventsApp) -> None:
    store = _events(api)
    eid = api.create()["id"]
    seen: list[tuple[int, str]] = []

    def actor(event: Event) -> Actor:
        seen.append((event.version, event.state.value))
        return Actor("center", Role.OPERATOR, "center")

    new, _ = store.transition(eid, "file", actor, expected_version=1)
    assert seen == [(1, "reported")] and new.version == 2

    def refuse(event: Event) -> Actor:
        raise RoleNotAllowedError("no", state=event.state, action="dispatch",
                                  role=Role.HANDLER, allowed=[])  # fmt: skip

    with pytest.raises(RoleNotAllowedError):
        store.transition(eid, "dispatch", refuse, department="water")
    assert store.get(eid).version == 2  # nothing written
    assert [a.action for a in store.audit(eid)] == ["report", "file"]
    with pytest.raises(StaleEventError):  # a stale If-Match is refused before the pick
        store.transition(eid, "dispatch", refuse, expected_version=1)


def test_granted_roles_change_at_once_through_the_api(api: EventsApp) -> None:
    eid = api.create()["id"]
    assert api.act(eid, "center", "file").status_code == 200
    assert api.act(eid, "water", "dispatch", department="water").status_code == 403  # remembered
    r = api.client.put("/api/events/roles/water", json={"roles": ["dispatcher"]},
                       headers=api.auth("boss"))  # fmt: skip
    assert r.status_code == 200
    assert api.act(eid, "water", "dispatch", department="water").status_code == 200
    r = api.client.put("/api/events/roles/water", json={"roles": []}, headers=api.auth("boss"))
    assert api.act(eid, "water", "return", note="不归我们").status_code == 200  # handler
    eid2 = api.create()["id"]
    assert api.act(eid2, "center", "file").status_code == 200
    r = api.act(eid2, "water", "dispatch", department="water")
    assert r.status_code == 403  # the grant taken back: refused at once


def test_granted_roles_changed_elsewhere_expire(
    api: EventsApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(roles, "GRANTS_CACHE_SECONDS", 0.3)
    store = _events(api).store
    eid = api.create()["id"]
    assert api.act(eid, "center", "file").status_code == 200  # center's roles remembered
    with store.transaction(write=True) as tx:  # as another server process would
        tx.execute("DELETE FROM event_roles WHERE department = ?", ["center"])
    assert roles.granted_roles(store, "center") == [
        Role.OPERATOR, Role.SUPERVISOR, Role.DISPATCHER, Role.INSPECTOR,
    ]  # fmt: skip
    time.sleep(0.35)
    assert roles.granted_roles(store, "center") == []
    r = api.act(eid, "center", "dispatch", department="water")
    assert r.status_code == 403


def test_grants_of_a_new_store_at_a_freed_address_are_not_reused() -> None:
    class FakeStore:
        pass

    cache = roles._Grants()
    a = FakeStore()
    cache.put(a, "water", (Role.DISPATCHER,))  # type: ignore[arg-type]
    assert cache.get(a, "water") == (Role.DISPATCHER,)  # type: ignore[arg-type]
    key = next(iter(cache._items))
    del a
    b = FakeStore()
    expiry, _, held = cache._items[key]
    cache._items[(id(b), "water")] = (expiry, cache._items[key][1], held)  # same id, dead ref
    assert cache.get(b, "water") is None  # type: ignore[arg-type]


def test_a_revoked_token_is_refused_at_once(api: EventsApp) -> None:
    eid = api.create()["id"]
    assert api.act(eid, "center", "file").status_code == 200  # the token check is cached
    departments.revoke(_events(api).store, "center")
    r = api.act(eid, "center", "dispatch", department="water")
    assert r.status_code == 401
    assert api.client.get(f"/api/events/{eid}").get_json()["version"] == 2
