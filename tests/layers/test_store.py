"""The live store, on SQLite and on PostgreSQL + PostGIS: schema, departments, readings."""

from __future__ import annotations

import pytest

from cim.errors import DatasetIOError
from layers.departments import add_department, authenticate, hash_token, revoke, verify_hash
from layers.store import ObservationRow, open_store
from layers.store.schema import SCHEMA_VERSION

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"


def make_stream(store, dept: str = "water", thresholds: dict | None = None) -> int:
    """A Thing with one Location and one Datastream; returns the Datastream id."""
    with store.transaction(write=True) as tx:
        thing = tx.insert("things", {"name": "gauge", "department": dept})
        loc = tx.insert(
            "locations",
            {"name": "here", "location": '{"type":"Point","coordinates":[116.4,39.9]}'},
        )
        tx.execute("INSERT INTO thing_locations VALUES (?, ?)", [thing, loc])
        sensor = tx.insert("sensors", {"name": "s"})
        prop = tx.insert("observed_properties", {"name": "level"})
        values = {
            "name": "level",
            "observation_type": MEASUREMENT,
            "unit_of_measurement": '{"symbol":"m"}',
            "thing_id": thing,
            "sensor_id": sensor,
            "observed_property_id": prop,
            "department": dept,
        }
        values.update(thresholds or {})
        return tx.insert("datastreams", values)


def test_migrate_is_idempotent_and_versioned(store) -> None:
    assert store.schema_version() == SCHEMA_VERSION
    assert store.migrate() == SCHEMA_VERSION
    assert store.schema_version() == SCHEMA_VERSION


def test_newer_schema_is_refused(store, store_url) -> None:
    with store.transaction(write=True) as tx:
        tx.execute(
            "INSERT INTO schema_migrations (component, version, applied) VALUES ('live', ?, 0)",
            [SCHEMA_VERSION + 1],
        )
    with pytest.raises(DatasetIOError, match="newer than this toolkit"):
        open_store(store_url)


def test_sqlite_is_wal_with_full_sync(tmp_path) -> None:
    st = open_store(tmp_path / "live.sqlite")
    with st.transaction() as tx:
        assert tx.scalar("PRAGMA journal_mode") == "wal"
        assert tx.scalar("PRAGMA synchronous") == 2  # FULL
        assert tx.scalar("PRAGMA foreign_keys") == 1
    st.close()


def test_departments_tokens_hashed_and_revocable(store) -> None:
    token = add_department(store, "water", "水务局")
    dept, stored = store.department_row("water")
    assert dept.name == "水务局" and dept.role == "department" and not dept.revoked
    assert token not in stored and stored.startswith("scrypt$")
    assert authenticate(store, token).id == "water"
    assert authenticate(store, token, "water").id == "water"
    assert authenticate(store, token, "police") is None  # Basic user must match
    assert authenticate(store, token[:-2] + "xx") is None
    revoke(store, "water")
    assert authenticate(store, token) is None
    assert [d.revoked for d in store.list_departments()] == [True]


def test_authorization_header_parsing(store) -> None:
    import base64

    from layers.departments import UnauthorizedError, principal_from_header

    token = add_department(store, "water", "水务局")

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert principal_from_header(store, f"Bearer {token}").id == "water"
    assert principal_from_header(store, basic("water", token)).id == "water"
    assert principal_from_header(store, None) is None  # anonymous, not required
    for header, why in [
        (basic("police", token), "unknown or revoked"),  # the user must be the token's
        ("Basic abc", "malformed Basic"),  # bad padding
        (f"Bearer {token}x", "unknown or revoked"),
        (f"Digest {token}", "unknown or revoked"),
    ]:
        with pytest.raises(UnauthorizedError, match=why):
            principal_from_header(store, header)
    with pytest.raises(UnauthorizedError, match="writing needs a department token"):
        principal_from_header(store, "", required=True, needed_for="writing")


def test_hash_verification() -> None:
    h = hash_token("abc")
    assert verify_hash("abc", h)
    assert not verify_hash("abd", h)
    assert not verify_hash("abc", "garbage")
    assert hash_token("abc") != h  # salted


def test_observations_stored_duplicates_recognised(store) -> None:
    ds = make_stream(store)
    rows = [ObservationRow(ds, 1_000_000 * i, float(i)) for i in range(1, 6)]
    first = store.insert_observations(rows)
    assert [r.duplicate for r in first] == [False] * 5
    again = store.insert_observations(
        [ObservationRow(ds, 3_000_000, 3.0), ObservationRow(ds, 9_000_000, 9.0)]
    )
    assert again[0].duplicate and again[0].id == first[2].id
    assert not again[1].duplicate
    with store.transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM observations") == 6
    assert store.stats.duplicates == 1 and store.stats.accepted == 6


def test_client_key_recognises_redelivery(store) -> None:
    ds = make_stream(store)
    a = store.insert_observations([ObservationRow(ds, 1_000_000, 1.0, key="m-1")])
    b = store.insert_observations([ObservationRow(ds, 2_000_000, 1.5, key="m-1")])
    assert b[0].duplicate and b[0].id == a[0].id


def test_duplicates_inside_one_batch(store) -> None:
    ds = make_stream(store)
    res = store.insert_observations([ObservationRow(ds, 5, 1.0), ObservationRow(ds, 5, 1.0)])
    assert not res[0].duplicate and res[1].duplicate and res[0].id == res[1].id


def test_latest_value_time_state_and_default_feature(store) -> None:
    ds = make_stream(store, thresholds={"warn_high": 5.0, "alarm_high": 8.0})
    store.insert_observations([ObservationRow(ds, 2_000_000, 6.0), ObservationRow(ds, 1, 9.0)])
    ((sid, value, t, state),) = store.latest()
    assert (sid, value, t, state) == (ds, "6.0", 2_000_000, "warning")
    store.insert_observations([ObservationRow(ds, 3_000_000, 8.5)])
    assert store.latest()[0][3] == "alarm"
    store.insert_observations([ObservationRow(ds, 1_500_000, 1.0)])  # older: no change
    assert store.latest()[0][1:] == ("8.5", 3_000_000, "alarm")
    with store.transaction() as tx:
        foi = tx.scalar("SELECT foi_id FROM datastreams WHERE id = ?", [ds])
        assert foi is not None
        assert tx.scalar("SELECT count(DISTINCT foi_id) FROM observations") == 1
        span = tx.one(
            "SELECT phenomenon_time_start, phenomenon_time_end FROM datastreams WHERE id = ?",
            [ds],
        )
    assert span == (1, 3_000_000)


def test_rejection_counters_persist(store) -> None:
    store.count_rejections({"unknown datastream": 2})
    store.count_rejections({"unknown datastream": 1, "not finite": 4})
    assert store.rejection_counts() == {"not finite": 4, "unknown datastream": 3}


def test_deleting_a_datastream_cascades(store) -> None:
    ds = make_stream(store)
    store.insert_observations([ObservationRow(ds, 1, 1.0)])
    with store.transaction(write=True) as tx:
        tx.execute("DELETE FROM datastreams WHERE id = ?", [ds])
        assert tx.scalar("SELECT count(*) FROM observations") == 0


def test_postgis_geometry_column_filled(pg_server) -> None:
    st = open_store(pg_server.fresh_database())
    make_stream(st)
    with st.transaction() as tx:
        assert tx.scalar("SELECT ST_AsText(location_geom) FROM locations") == "POINT(116.4 39.9)"
    st.close()


def test_on_commit_listeners_see_committed_rows(store) -> None:
    ds = make_stream(store)
    seen = []
    store.on_commit.append(
        lambda rows, results: seen.append([(r.id, r.duplicate) for r in results])
    )
    store.on_commit.append(lambda rows, results: 1 / 0)  # a broken listener is contained
    res = store.insert_observations([ObservationRow(ds, 1, 1.0), ObservationRow(ds, 1, 1.0)])
    assert seen == [[(res[0].id, False), (res[0].id, True)]]


def test_concurrent_batches_all_committed_once(store) -> None:
    import threading

    ds = make_stream(store)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for b in range(10):
                rows = [
                    ObservationRow(ds, (k * 1000 + b * 50 + i) * 1000, float(i)) for i in range(50)
                ]
                # every other batch is resent: duplicates across threads and batches
                store.insert_observations(rows)
                if b % 2:
                    assert all(r.duplicate for r in store.insert_observations(rows))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with store.transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM observations") == 4 * 10 * 50
