"""The batch ingest path (``layers.ingest``): columnar checks and one bulk insert per
batch, on SQLite and PostgreSQL — each reading's outcome as if checked alone."""

from __future__ import annotations

import random

import pytest
from test_store import make_stream

from cim.errors import DatasetIOError
from layers.ingest import Reading, ReadingColumns, ingest, ingest_columns
from layers.store import Department, ObservationRow
from layers.store.batch import ObservationBatch

WATER = Department("water", "水务局")
OTHER_TYPES = {
    "integer": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation",
    "boolean": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_TruthObservation",
    "string": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CategoryObservation",
    "any": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Observation",
}


def typed_stream(store, kind: str) -> int:
    ds = make_stream(store)
    with store.transaction(write=True) as tx:
        tx.update("datastreams", ds, {"observation_type": OTHER_TYPES[kind]})
    return ds


def test_mixed_batch_reasons_in_check_order(store) -> None:
    ds = make_stream(store)
    police = make_stream(store, dept="police")
    count = typed_stream(store, "integer")
    readings = [
        Reading(ds, 1.5, "2024-02-01T00:00:00Z"),
        Reading(ds, 2, "2024-02-01T08:00:00.25+08:00"),  # same instant +250 ms, an int
        Reading(ds, float("inf"), "2024-02-01T00:00:01Z"),
        Reading(ds, None, "2024-02-01T00:00:02Z"),
        Reading(ds, True, "2024-02-01T00:00:03Z"),
        Reading(ds, 1.0, "2999-01-01T00:00:00Z"),
        Reading(ds, 1.0, "2024-02-30T00:00:00Z"),  # no such day
        Reading(ds, 1.0, "2024-02-01T00:00:00Z/2024-02-01T00:10:00Z"),  # an interval
        Reading(ds, 1.0, None),  # now
        Reading(ds, 1.0, "2024-02-01T00:00:05Z", parameters=[1]),
        Reading(ds, 1.0, "2024-02-01T00:00:06Z", foi_id=987654),
        Reading(ds, 1.0, "2024-02-01T00:00:07Z", foi_id="x"),
        Reading(police, 1.0, "2024-02-01T00:00:00Z"),
        Reading(True, 1.0, "2024-02-01T00:00:00Z"),  # True is not datastream 1
        Reading([1], 1.0),
        Reading(count, 2.5, "2024-02-01T00:00:00Z"),
        Reading(count, 3, "2024-02-01T00:00:00Z", result_time="2024-02-01T00:00:09Z"),
        Reading(ds, 1.5, "2024-02-01T00:00:00Z"),  # duplicate of the first
    ]
    out = ingest(store, WATER, readings)
    why = [o.error for o in out]
    assert why[0] is None and why[1] is None and why[7] is None and why[8] is None
    assert why[2] == "result is NaN or infinite"
    assert why[3] == "result is missing"
    assert why[4] == "wrong result type: expected a number, got bool"
    assert why[5] == "phenomenonTime is more than 1 day in the future"
    assert why[6].startswith("not an ISO 8601 date-time")
    assert why[9] == "parameters must be a JSON object"
    assert why[10] == "unknown FeatureOfInterest 987654"
    assert why[11] == "bad FeatureOfInterest id 'x'"
    assert why[12] == f"datastream {police} belongs to department 'police', not 'water'"
    assert why[13] == "unknown datastream True" and why[14] == "unknown datastream [1]"
    assert why[15] == "wrong result type: expected an integer, got float"
    assert why[16] is None
    assert out[17].duplicate and out[17].id == out[0].id and not out[0].duplicate
    with store.transaction() as tx:
        rows = dict(
            tx.execute("SELECT id, phenomenon_time FROM observations WHERE id IN (?, ?)",
                       [out[0].id, out[1].id])
        )  # fmt: skip
        end = tx.scalar("SELECT phenomenon_time_end FROM observations WHERE id = ?", [out[7].id])
        rt = tx.scalar("SELECT result_time FROM observations WHERE id = ?", [out[16].id])
    assert rows[out[1].id] - rows[out[0].id] == 250_000
    assert end - rows[out[0].id] == 600_000_000
    assert rt == rows[out[0].id] + 9_000_000
    counts = store.rejection_counts()
    assert counts["not finite"] == 1 and counts["other department"] == 1
    assert counts["unknown datastream"] == 2 and counts["far future"] == 1


def test_every_result_kind_round_trips(store) -> None:
    cases = {
        "boolean": ([True, False], [1, "x"]),
        "string": (["高", ""], [1.0, None]),
        "any": ([{"a": [1, 2]}, "x", 3, 2.5, False], [None]),
    }
    for kind, (good, bad) in cases.items():
        ds = typed_stream(store, kind)
        values = good + bad
        cols = ReadingColumns(
            [ds] * len(values),
            values,
            [f"2024-03-01T00:00:{i:02d}Z" for i in range(len(values))],
        )
        done = ingest_columns(store, WATER, cols)
        assert done.errors[: len(good)] == [None] * len(good), kind
        assert all(e for e in done.errors[len(good) :]), kind
        with store.transaction() as tx:
            stored = tx.execute(
                "SELECT result FROM observations WHERE datastream_id = ? ORDER BY id", [ds]
            )
        import json

        assert [json.loads(r[0]) for r in stored] == good, kind


def test_batch_equals_one_by_one(store) -> None:
    """The vectorised checks give each reading the outcome it gets alone."""
    ds = make_stream(store)
    rng = random.Random(7)
    values = [1.0, 2, float("nan"), None, "x", True, -0.0, 1e308]
    times = ["2024-01-01T00:00:%02dZ", "2024-01-01 00:00:%02d", "2024-01-01T00:00:%02d.5+01:00",
             "2024-13-01T00:00:%02dZ", "%02d", None]  # fmt: skip
    readings = []
    for i in range(120):
        t = rng.choice(times)
        readings.append(
            Reading(
                rng.choice([ds, ds, ds, 424242]),
                rng.choice(values),
                None if t is None else t % (i % 60),
            )
        )
    batch = [o.error for o in ingest(store, WATER, readings)]
    with store.transaction(write=True) as tx:
        tx.execute("DELETE FROM observations")
    alone = [ingest(store, WATER, [r])[0].error for r in readings]
    assert batch == alone
    assert any(e is None for e in batch) and any(e for e in batch)


def test_client_keys_and_duplicates_in_one_batch(store) -> None:
    ds = make_stream(store)
    first = store.insert_observations([ObservationRow(ds, 1, 1.0, key="k1")])
    ids, dup = store.insert_batch(
        ObservationBatch(
            datastream_id=[ds, ds, ds, ds],
            phenomenon_time=[2, 3, 3, 1],
            result=[5.0, 6.0, 6.0, 1.0],
            key=["k1", None, None, None],  # k1 again (other time): a redelivery
        )
    )
    assert dup == [True, False, True, True]
    assert ids[0] == first[0].id and ids[2] == ids[1] and ids[3] == first[0].id
    with store.transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM observations") == 2


def test_deleting_a_feature_of_interest_cascades(store) -> None:
    ds = make_stream(store)
    store.insert_observations([ObservationRow(ds, 1, 1.0)])
    with store.transaction(write=True) as tx:
        tx.execute("DELETE FROM features_of_interest")
        assert tx.scalar("SELECT count(*) FROM observations") == 0


def test_a_vanished_datastream_fails_the_whole_batch(store) -> None:
    ds = make_stream(store)
    batch = ObservationBatch([ds, 424242], [1, 2], [1.0, 2.0])
    # PostgreSQL: the per-batch parent lock; SQLite: its foreign key
    with pytest.raises((DatasetIOError, Exception)) as info:
        store.insert_batch(batch)
    if store.dialect == "postgresql":
        assert info.type is DatasetIOError and "424242" in str(info.value)
    with store.transaction() as tx:
        assert tx.scalar("SELECT count(*) FROM observations") == 0


def test_reading_columns_concat_and_from_readings() -> None:
    a = ReadingColumns([1, 2], [1.0, 2.0], ["t1", "t2"])
    b = ReadingColumns([3], [3.0], foi_id=[7])
    c = ReadingColumns.concat([a, b])
    assert c.datastream_id == [1, 2, 3] and c.result == [1.0, 2.0, 3.0]
    assert c.phenomenon_time == ["t1", "t2", None] and c.foi_id == [None, None, 7]
    assert c.result_time is None and len(c) == 3
    assert ReadingColumns.concat([a]) is a
    assert len(ReadingColumns.from_readings([])) == 0
    one = ReadingColumns.from_readings([Reading(1, 2.0), Reading(2, 3.0, key="k")])
    assert one.datastream_id == [1, 2] and one.phenomenon_time is None
    assert one.key == [None, "k"]


def test_data_array_malformed_rows_and_json_fallbacks(live) -> None:
    import requests
    from sta_helpers import make_world

    w = make_world(live.url, "water", live.tokens["water"])
    foi = requests.get(f"{live.url}/Datastreams({w['datastream']})/Observations").json()
    foi_id = requests.get(foi["value"][0]["@iot.selfLink"] + "/FeatureOfInterest").json()
    ds, f = w["datastream"], foi_id["@iot.id"]
    body = (
        f'[{{"Datastream": {{"@iot.id": {ds}}}, '
        '"components": ["phenomenonTime", "result", "FeatureOfInterest/@iot.id"], '
        f'"dataArray": [["2024-05-01T00:00:00Z", 1.0, {f}], "junk", [1.0], '
        '["2024-05-01T00:00:01Z", Infinity, null], ["2024-05-01T00:00:02Z", 2, null]]}]'
    )
    r = requests.post(
        f"{live.url}/CreateObservations",
        data=body,  # Infinity: orjson refuses the document, the standard parser takes it
        headers={"Content-Type": "application/json"},
        auth=("water", live.tokens["water"]),
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert out[0].startswith("http") and out[4].startswith("http")
    assert out[1] == out[2] == "error: unknown datastream None"  # not a row of the array
    assert out[3] == "error: result is NaN or infinite"
    for bad in (b"not json", b"[1, 2"):
        r = requests.post(
            f"{live.url}/CreateObservations",
            data=bad,
            headers={"Content-Type": "application/json"},
            auth=("water", live.tokens["water"]),
        )
        assert r.status_code == 400 and "must be JSON" in r.text


def test_bulk_insert_keeps_every_value_exact(store) -> None:
    """Numbers (extreme floats, 64-bit ints), texts and JSON results come back exactly
    as sent, whichever way the store inserts the batch (SQLite: one JSON array)."""
    ds = typed_stream(store, "any")
    rng = random.Random(3)
    values = [0.1, -0.0, 5e-324, 1.7976931348623157e308, 2**63 - 1, -(2**63), 2**64, "开\n\"",
              {"k": [1.5, None]}, True, rng.random() * 1e-300]  # fmt: skip
    values += [rng.uniform(-1e9, 1e9) for _ in range(200)]
    cols = ReadingColumns(
        [ds] * len(values),
        values,
        [f"2024-04-01T00:{i // 60:02d}:{i % 60:02d}Z" for i in range(len(values))],
    )
    done = ingest_columns(store, WATER, cols)
    assert done.errors == [None] * len(values)
    with store.transaction() as tx:
        rows = tx.execute(
            "SELECT result, result_num FROM observations WHERE datastream_id = ? ORDER BY id",
            [ds],
        )
    import json

    assert [json.loads(r[0]) for r in rows] == values
    nums = [(v, r[1]) for v, r in zip(values, rows, strict=True) if type(v) is float]
    # bit for bit (SQLite stores -0.0 as 0.0 in any case: equal, and the text keeps it)
    assert all(float(n) == v and (v == 0 or repr(float(n)) == repr(v)) for v, n in nums)


def test_json_rows_refuses_values_without_an_exact_json_form() -> None:
    from layers.store.sqlite import _json_rows

    assert _json_rows([(1, 2.5, "x", None)]) == '[[1,2.5,"x",null]]'
    assert _json_rows([(1, float("nan"))]) is None
    assert _json_rows([(2**64, 1)]) is None
