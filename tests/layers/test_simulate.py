"""The simulator (layers.simulate) and its sensor catalogue (layers.catalogue)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import shapely

from cim.errors import ConfigError
from cim.outputs import BuildOutputs
from cim.placement import Placement, floor_height
from layers.catalogue import (
    DEPARTMENTS,
    KINDS,
    PlacedSensor,
    SensorSpec,
    catalogue,
    is_sample_city,
    place_sensors,
)
from layers.simulate import (
    ALARM_SHARE,
    EXCURSION_RATE,
    SILENT_AFTER,
    ReadingModel,
    StaClient,
    daily_shape,
    datastream_body,
    department_tokens,
    feed,
    silent_sensors,
    simulate,
    tokens_file,
)

# --- catalogue and placement on the sample build ---------------------------------------------


@pytest.fixture(scope="module")
def outputs(sample_output: Path) -> BuildOutputs:
    return BuildOutputs(sample_output)


@pytest.fixture(scope="module")
def placed(outputs: BuildOutputs) -> list[PlacedSensor]:
    return place_sensors(catalogue(outputs, 2026), outputs)


def test_catalogue_is_deterministic_and_complete(outputs: BuildOutputs) -> None:
    assert is_sample_city(outputs)
    a, b = catalogue(outputs, 2026), catalogue(outputs, 2026)
    assert a == b
    assert catalogue(outputs, 1) != a  # the seed moves the manholes and picks the towers
    keys = [s.key for s in a]
    assert len(set(keys)) == len(keys) and keys == sorted(keys)
    kinds = Counter(s.kind for s in a)
    assert set(kinds) == set(KINDS)  # every kind of sensor is there
    assert {KINDS[k].department for k in kinds} <= set(DEPARTMENTS)
    assert 150 <= len(a) <= 500


def test_every_sensor_stands_on_the_city(outputs: BuildOutputs, placed) -> None:
    manifest = json.loads((outputs.root / "manifest.json").read_text(encoding="utf-8"))
    west, south, east, north = manifest["extent"]
    margin = 100.0 / 111_195.0  # street sensors on the ring roads at the city's edge
    hows = Counter()
    for s in placed:
        p = s.placement
        assert west - margin <= p.lon <= east + margin, s.spec.key
        assert south - margin <= p.lat <= north + margin, s.spec.key
        how = p.how.split()[0]
        hows[how] += 1
        if how == "terrain":
            want = outputs.ground_height(p.lon, p.lat)
        else:
            b = outputs.building(p.building_id)
            assert shapely.intersects_xy(b.footprint, p.lon, p.lat), s.spec.key
            if how == "roof":
                want = b.top
            else:
                assert how == "floor"
                want = b.base + (p.floor - 0.5) * floor_height(b)
        assert abs(p.h - want) <= 0.5, (s.spec.key, p, want)
    assert hows["terrain"] > 100 and hows["roof"] > 30 and hows["floor"] > 5
    by_kind = {s.spec.kind: s for s in placed}
    # river gauges stand in the valley, below the energy meters' roofs
    assert by_kind["water_level"].placement.h < by_kind["building_energy"].placement.h


def test_river_gauges_are_in_the_river(placed) -> None:
    from cim.crs import get_transformer
    from cim.sample import CRS, ORIGIN
    from cim.sample import _layout as lay

    tr = get_transformer("EPSG:4326", CRS)
    for s in placed:
        if s.spec.kind in ("water_level", "bridge_strain"):
            x, y = tr.transform(s.placement.lon, s.placement.lat)
            dist = abs(x - ORIGIN[0] - lay.river_x(y - ORIGIN[1]))
            assert dist < lay.RIVER_WIDTH / 2, s.spec.key


# --- readings -------------------------------------------------------------------------------


def _fake_sensors(scale: float = 1.0) -> list[PlacedSensor]:
    where = Placement(113.3, 40.09, 1000.0, "terrain")
    return [
        PlacedSensor(SensorSpec(f"X-{i:03d}", kind, kind, "", point=(0.0, 0.0), scale=scale), where)
        for i, kind in enumerate(sorted(KINDS))
    ]


def test_readings_cross_the_thresholds_at_the_intended_rate() -> None:
    sensors = _fake_sensors()
    model = ReadingModel(sensors, seed=3)
    start = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    n = 6000
    total = Counter()
    for i, s in enumerate(sensors):
        states = Counter()
        values = []
        for k in range(n):
            v = model.reading(i, start + dt.timedelta(seconds=30 * k))
            values.append(v)
            states[model.state(i, v)] += 1
        past = (states["warning"] + states["alarm"]) / n
        assert past == pytest.approx(EXCURSION_RATE, rel=0.5), (s.spec.kind, states)
        assert states["alarm"] > 0, s.spec.kind
        assert min(values) >= s.kind.minimum
        assert len(set(values)) > 50  # values vary (noise, daily cycle)
        total += states
    # over every sensor: the intended shares, within sampling noise
    past = (total["warning"] + total["alarm"]) / (n * len(sensors))
    assert past == pytest.approx(EXCURSION_RATE, rel=0.25)
    alarm = total["alarm"] / (total["warning"] + total["alarm"])
    assert alarm == pytest.approx(ALARM_SHARE, abs=0.07)


def test_readings_are_deterministic_and_follow_the_day() -> None:
    sensors = _fake_sensors()
    t = dt.datetime(2026, 5, 1, 0, tzinfo=dt.UTC)
    a = [ReadingModel(sensors, 9).reading(0, t) for _ in range(3)]
    m1, m2 = ReadingModel(sensors, 9), ReadingModel(sensors, 9)
    seq1 = [m1.reading(i % len(sensors), t) for i in range(200)]
    seq2 = [m2.reading(i % len(sensors), t) for i in range(200)]
    assert seq1 == seq2 and a[0] == a[1]
    assert [ReadingModel(sensors, 10).reading(i % 8, t) for i in range(200)] != seq1
    # traffic peaks in the rush hours (local time UTC+8) and is low at night
    hours = np.arange(24.0)
    traffic = daily_shape("traffic", hours)
    assert traffic[8] > 0.8 and traffic[18] > 0.8 and traffic[3] < -0.9
    office = daily_shape("office", hours)
    assert office[13] > 0.9 and office[2] < -0.9
    assert np.all(np.abs(daily_shape("day", hours)) <= 1.0)


def test_silent_sensors() -> None:
    assert silent_sensors(100, 1) == silent_sensors(100, 1)
    assert len(silent_sensors(100, 1)) == 4 and len(silent_sensors(12, 1)) == 1
    assert silent_sensors(5, 1) == set()


class _Sender:
    def __init__(self, stop_after: int | None = None) -> None:
        self.batches: list[list] = []
        self.closed = False
        self.stop_after = stop_after

    def send(self, readings: list) -> tuple[int, int]:
        if self.stop_after is not None and len(self.batches) >= self.stop_after:
            raise KeyboardInterrupt
        self.batches.append(readings)
        return len(readings), 0

    def close(self) -> None:
        self.closed = True


class _Clock:
    def __init__(self) -> None:
        self.t = 1_780_000_000.0

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_feed_sends_at_the_rate_and_silences_some_sensors() -> None:
    sensors = _fake_sensors() * 2  # 16 sensors: one falls silent
    model = ReadingModel(sensors, 1)
    sender, clock = _Sender(), _Clock()
    ids = list(range(100, 100 + len(sensors)))
    stats = feed(model, ids, sender, rate=8.0, duration=2 * SILENT_AFTER, seed=1,
                 now=clock.now, sleep=clock.sleep)  # fmt: skip
    assert sender.closed and stats.sent == stats.accepted
    total = sum(len(b) for b in sender.batches)
    assert total == stats.sent
    assert 8 * 2 * SILENT_AFTER * 0.9 <= total <= 8 * 2 * SILENT_AFTER
    (quiet,) = silent_sensors(len(sensors), 1)
    early = [r for b in sender.batches[: int(SILENT_AFTER) - 1] for r in b]
    late = [r for b in sender.batches[int(SILENT_AFTER) + 1 :] for r in b]
    assert any(r[1] == ids[quiet] for r in early)
    assert not any(r[1] == ids[quiet] for r in late)
    assert {r[0] for r in early} == {s.kind.department for s in sensors}


def test_a_sensor_read_twice_in_a_tick_gets_two_times() -> None:
    sensors = _fake_sensors()
    sender, clock = _Sender(), _Clock()
    feed(ReadingModel(sensors, 1), list(range(8)), sender, 40.0, 3.0, 1,
         now=clock.now, sleep=clock.sleep)  # fmt: skip
    keys = [(r[1], r[2]) for b in sender.batches for r in b]
    assert len(keys) == 120 and len(set(keys)) == 120
    assert max(r[2] for r in sender.batches[0]) <= "2026-05-28T20:26:40.000000Z"


def test_ctrl_c_stops_cleanly() -> None:
    sender, clock = _Sender(stop_after=3), _Clock()
    sensors = _fake_sensors()
    stats = feed(ReadingModel(sensors, 1), list(range(8)), sender, 4.0, None, 1,
                 now=clock.now, sleep=clock.sleep)  # fmt: skip
    assert sender.closed and len(sender.batches) == 3 and stats.sent == 12


def test_datastream_body_carries_thresholds_and_placement() -> None:
    s = _fake_sensors(scale=2.0)[0]
    body = datastream_body(s, 5, 6)
    assert body["properties"]["thresholds"] == {
        "warn_high": s.kind.warn_high * 2,
        "alarm_high": s.kind.alarm_high * 2,
    }
    assert body["properties"]["stale_after"] == s.kind.stale_after
    assert body["unitOfMeasurement"]["symbol"] == s.kind.unit["symbol"]
    loc = body["Thing"]["Locations"][0]["location"]
    assert loc == {"type": "Point", "coordinates": [113.3, 40.09, 1000.0]}
    assert body["Sensor"] == {"@iot.id": 5} and body["ObservedProperty"] == {"@iot.id": 6}


# --- departments and tokens -----------------------------------------------------------------


def _project(tmp_path: Path, sample_city: Path, sample_output: Path) -> Path:
    """A city.toml for the shared sample build, with its own live store."""
    text = sample_city.read_text(encoding="utf-8")
    data = (sample_city.parent / "data").as_posix()
    text = text.replace('dir = "output"', f'dir = "{sample_output.as_posix()}"')
    text = text.replace('"data/', f'"{data}/')
    text += '\n[live]\nstore = "live.sqlite"\n'
    path = tmp_path / "city.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_department_tokens_are_registered_once_and_kept(tmp_path: Path) -> None:
    from layers.departments import add_department
    from layers.store import open_store

    toml = tmp_path / "city.toml"
    toml.write_text('[city]\nname = "t"\n\n[live]\nstore = "live.sqlite"\n', encoding="utf-8")
    first = department_tokens(toml, {"cityadmin": "given.x"}, ["water", "cityadmin"])
    assert first["cityadmin"] == "given.x" and first["water"].startswith("water.")
    saved = tokens_file(str(tmp_path / "live.sqlite"), toml)
    assert saved.is_file() and (os.stat(saved).st_mode & 0o777) == 0o600
    again = department_tokens(toml, {}, ["water"])
    assert again["water"] == first["water"]
    store = open_store(str(tmp_path / "live.sqlite"))
    try:
        add_department(store, "housing", "住建局")
    finally:
        store.close()
    with pytest.raises(ConfigError, match="--token housing=TOKEN"):
        department_tokens(toml, {}, ["housing"])


# --- end to end against the real server ----------------------------------------------------------


@contextlib.contextmanager
def _serve(project: Path, **config: object) -> Iterator[str]:
    from werkzeug.serving import make_server

    from server.blueprints.live import start_live, stop_live
    from server.cli import make_app

    app = make_app(project, TESTING=True, **config)
    start_live(app)  # MQTT ingest, when a broker is configured (as `cim serve` does)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        thread.join(10)
        stop_live(app)
        state = app.extensions.get("cim.live")
        if state is not None:
            state.store.close()


@pytest.mark.slow
def test_simulator_feeds_the_sensorthings_api(
    tmp_path: Path, sample_city: Path, sample_output: Path, placed
) -> None:
    project = _project(tmp_path, sample_city, sample_output)
    with _serve(project) as url:
        t0 = time.monotonic()
        stats = simulate(project, url=url, rate=400.0, duration=3.0, seed=2026, wait=10.0)
        assert time.monotonic() - t0 < 60
        assert stats.sent >= 800 and stats.rejected == 0 and stats.accepted == stats.sent
        sta = StaClient(url)
        base = "/api/sta/v1.1"
        count = sta.request("GET", base + "/Datastreams?$count=true&$top=1")["@iot.count"]
        assert count == len(placed)
        obs = sta.request("GET", base + "/Observations?$count=true&$top=1")["@iot.count"]
        assert obs == stats.accepted
        # a sensor's Thing stands where placement put it, its Datastream has its limits
        key = placed[0].spec.key
        path = "/Datastreams?$expand=Thing($expand=Locations)"
        streams = {(d.get("properties") or {}).get("simulator"): d for d in sta.collection(path)}
        ds = streams[key]
        assert ds["properties"]["thresholds"] == placed[0].kind.thresholds(placed[0].spec.scale)
        coords = ds["Thing"]["Locations"][0]["location"]["coordinates"]
        p = placed[0].placement
        assert coords == pytest.approx([p.lon, p.lat, p.h])
        first = sta.request("GET", base + f"/Datastreams({ds['@iot.id']})/Observations?$top=5")
        assert first["value"] and all(isinstance(o["result"], float) for o in first["value"])
        # owned by the right departments
        from layers.config import live_config
        from layers.store import open_store

        store = open_store(live_config(project).store)
        try:
            with store.transaction() as tx:
                sql = "SELECT department, COUNT(*) FROM datastreams GROUP BY department"
                owners = dict(tx.execute(sql))
        finally:
            store.close()
        want = Counter(s.kind.department for s in placed)
        assert owners == dict(want)
        # a second run registers nothing new
        again = simulate(project, url=url, rate=100.0, duration=1.0, seed=2026)
        assert again.accepted > 0
        count2 = sta.request("GET", base + "/Datastreams?$count=true&$top=1")["@iot.count"]
        assert count2 == count


@pytest.mark.slow
def test_simulator_over_mqtt_reaches_the_store(
    tmp_path: Path, sample_city: Path, sample_output: Path, mosquitto, placed
) -> None:
    import uuid

    project = _project(tmp_path, sample_city, sample_output)
    client_id = f"cim-ingest-{uuid.uuid4().hex[:8]}"
    with _serve(project, LIVE_MQTT=mosquitto.url, LIVE_MQTT_CLIENT_ID=client_id) as url:
        stats = simulate(project, url=url, mqtt=mosquitto.url, rate=300.0, duration=2.0)
        assert stats.sent >= 300 and stats.accepted == stats.sent
        sta = StaClient(url)
        path = "/api/sta/v1.1/Observations?$count=true&$top=1"
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if sta.request("GET", path)["@iot.count"] >= stats.accepted:
                break
            time.sleep(0.2)
        assert sta.request("GET", path)["@iot.count"] == stats.accepted


def test_mqtt_sender_publishes_sensorthings_topics(mosquitto) -> None:
    import paho.mqtt.client as mqtt

    from layers.simulate import MqttSender

    got: list[tuple[str, dict]] = []
    sub = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    sub.on_message = lambda c, u, m: got.append((m.topic, json.loads(m.payload)))
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe("v1.1/+/Observations", qos=1)
    sub.loop_start()
    try:
        time.sleep(0.3)
        sender = MqttSender(mosquitto.url)
        ok, bad = sender.send([("water", 7, "2026-05-01T00:00:00.000Z", 2.5),
                               ("water", 8, "2026-05-01T00:00:01.000Z", 3.5)])  # fmt: skip
        sender.close()
        assert (ok, bad) == (2, 0)
        end = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert sorted(got) == [
        ("v1.1/Datastreams(7)/Observations", {"phenomenonTime": "2026-05-01T00:00:00.000Z",
                                              "result": 2.5}),
        ("v1.1/Datastreams(8)/Observations", {"phenomenonTime": "2026-05-01T00:00:01.000Z",
                                              "result": 3.5}),
    ]  # fmt: skip


def test_sensor_alarms_go_to_the_sensors_own_department() -> None:
    from layers.events.categories import load_categories

    table = load_categories()  # the default table, as the sample city uses it
    assert {sub.department for sub in table} <= set(DEPARTMENTS)  # one list of departments
    for kind in KINDS.values():
        sub = table.for_sensor(kind.property_name)
        assert sub is not None and sub.department == kind.department, (kind.key, sub)
