"""``cim simulate``: a live sample city for the demo, through the standard interfaces only.

It registers the sensors of :mod:`layers.catalogue` through the OGC SensorThings API
(plain HTTP, HTTP Basic with each department's id and token), each Thing owned by its
department, each Datastream with its unit, observed property, thresholds and
``stale_after``; then it feeds readings: a daily cycle, AR(1) noise, occasional
excursions past the warning and alarm thresholds, and a few sensors that fall silent
(and so go stale). Readings go out as ``CreateObservations`` batches over HTTP, or
over MQTT to ``v1.1/Datastreams(ID)/Observations`` (QoS 1). Everything is
deterministic for a ``--seed``, apart from the clock. Beside the readings it files
cases through ``/api/events`` and moves them through their lifecycle
(:mod:`layers.simulate_events`, ``--events-per-hour``).

Tokens: ``--token DEPT=TOKEN`` wins; otherwise the simulator registers the department
in the project's live store (``[live]``) and keeps the token it was shown in a file
next to the store (``*.simulator-tokens.json``, mode 0600). It never renews or revokes a
department it did not create.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import logging
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cim.errors import CimError, ConfigError, DatasetIOError, InputDataError
from layers.catalogue import DEPARTMENTS, KINDS, PlacedSensor, is_sample_city, place_sensors
from layers.simulate_events import (
    ADMIN,
    CENTER,
    EVENTS_PER_HOUR,
    NAMES,
    STEP_SECONDS,
    EventRunner,
    EventStats,
    categories_of,
    grant_command_roles,
    plan_departments,
    plan_events,
    sample_places,
    sensor_places,
)
from layers.thresholds import Thresholds, classify

log = logging.getLogger(__name__)

#: share of readings past the warning threshold (warning or alarm)
EXCURSION_RATE = 0.04
#: share of the excursions that reach the alarm threshold
ALARM_SHARE = 0.25
#: mean length of an excursion, in readings of that sensor
EPISODE_READINGS = 4.0
#: share of sensors that fall silent (at least one when there are ten or more)
SILENT_SHARE = 0.04
#: seconds after the start when the silent sensors stop reporting
SILENT_AFTER = 60.0
#: the local time zone of the daily cycles (China Standard Time)
LOCAL_UTC_OFFSET_H = 8.0
OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
STA_PATH = "/api/sta/v1.1"
MQTT_TOPIC = "v1.1/Datastreams({})/Observations"


# --- readings ---------------------------------------------------------------------------------


def daily_shape(shape: str, hour: np.ndarray | float) -> np.ndarray:
    """A daily cycle in [-1, 1] at local ``hour`` (0-24).

    ``flat``: 0; ``day``: one peak at 14:00; ``traffic``: rush hours at 08:00 and
    18:00; ``air``: peaks at 08:00 and 21:00; ``office``: working hours 09:00-18:00.
    """
    h = np.asarray(hour, dtype=np.float64)

    def bump(centre: float, width: float) -> np.ndarray:
        d = (h - centre + 12.0) % 24.0 - 12.0
        return np.exp(-0.5 * (d / width) ** 2)

    if shape == "day":
        return np.cos((h - 14.0) / 24.0 * 2 * np.pi)
    if shape == "traffic":
        return 2.0 * np.maximum(bump(8.0, 1.3), bump(18.0, 1.6)) + 0.6 * bump(13.0, 3.0) - 1.0
    if shape == "air":
        return 2.0 * np.maximum(bump(8.0, 1.5), bump(21.0, 2.0)) - 1.0
    if shape == "office":
        return 2.0 / (1 + np.exp(-3 * (h - 8.5))) / (1 + np.exp(3 * (h - 18.5))) - 1.0
    return np.zeros_like(h)


@dataclass
class _Track:
    noise: float = 0.0
    left: int = 0
    level: str = "normal"
    u: float = 0.5


class ReadingModel:
    """Readings of many sensors: deterministic for a seed, given the times asked for.

    Parameters
    ----------
    sensors : list of PlacedSensor
    seed : int
    excursion_rate, alarm_share, episode : float
        Share of readings past the warning threshold, share of those past the alarm
        threshold, and the mean length of an excursion in readings.
    """

    def __init__(
        self,
        sensors: list[PlacedSensor],
        seed: int,
        excursion_rate: float = EXCURSION_RATE,
        alarm_share: float = ALARM_SHARE,
        episode: float = EPISODE_READINGS,
    ) -> None:
        self.sensors = sensors
        self.rngs = [np.random.default_rng([seed, 11, i]) for i in range(len(sensors))]
        self.tracks = [_Track() for _ in sensors]
        self.alarm_share = alarm_share
        self.episode = max(1.0, episode)
        # normal runs and episodes alternate: solve for the start probability that
        # gives the asked share of readings inside episodes
        f = min(max(excursion_rate, 0.0), 0.99)
        self.p_start = f / (self.episode * (1.0 - f) + f)

    def thresholds(self, i: int) -> Thresholds:
        """Sensor ``i``'s thresholds (scaled), as the store classifies with."""
        t = self.sensors[i].kind.thresholds(self.sensors[i].spec.scale)
        return Thresholds(warn_high=t["warn_high"], alarm_high=t["alarm_high"])

    def reading(self, i: int, when: dt.datetime) -> float:
        """The next reading of sensor ``i`` at ``when`` (UTC)."""
        s = self.sensors[i]
        k, scale = s.kind, s.spec.scale
        rng, tr = self.rngs[i], self.tracks[i]
        t = self.thresholds(i)
        assert t.warn_high is not None and t.alarm_high is not None
        band = t.alarm_high - t.warn_high
        if tr.left == 0 and rng.random() < self.p_start:
            tr.left = int(rng.geometric(1.0 / self.episode))
            tr.level = "alarm" if rng.random() < self.alarm_share else "warning"
            tr.u = float(rng.uniform(0.1, 0.9))
        # AR(1) noise keeps consecutive readings close
        tr.noise = 0.8 * tr.noise + 0.6 * float(rng.normal()) * k.noise * scale
        if tr.left > 0:
            tr.left -= 1
            jitter = float(rng.uniform(-0.05, 0.05))
            if tr.level == "alarm":
                value = t.alarm_high + (0.1 + 0.4 * tr.u + jitter) * band
            else:
                value = t.warn_high + (0.1 + 0.75 * tr.u + jitter) * band
        else:
            hour = (when.hour + when.minute / 60.0 + LOCAL_UTC_OFFSET_H) % 24.0
            value = scale * (k.base + k.amplitude * float(daily_shape(k.shape, hour))) + tr.noise
            value = min(max(value, k.minimum * scale), t.warn_high - 0.05 * band)
        return round(value, k.decimals)

    def state(self, i: int, value: float) -> str:
        """The state the store gives ``value`` of sensor ``i``."""
        return classify(value, self.thresholds(i))


def silent_sensors(n: int, seed: int, share: float = SILENT_SHARE) -> set[int]:
    """Indices of the sensors that fall silent (deterministic for a seed)."""
    if n == 0:
        return set()
    k = max(1 if n >= 10 else 0, round(n * share))
    rng = np.random.default_rng([seed, 13])
    return {int(i) for i in rng.choice(n, size=k, replace=False)}


# --- SensorThings over HTTP ------------------------------------------------------------------


class StaError(CimError):
    """The SensorThings server refused a request or cannot be reached."""


@dataclass
class StaClient:
    """A minimal SensorThings API client (urllib; no dependency).

    Parameters
    ----------
    url : str
        The server, e.g. ``http://127.0.0.1:8000`` (the API is under ``/api/sta/v1.1``).
    tokens : dict
        Department id -> token, sent as HTTP Basic (id, token).
    timeout : float
        Seconds per request.
    """

    url: str
    tokens: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0

    def request(self, method: str, path: str, body: Any = None, dept: str | None = None) -> Any:
        """One request; the decoded JSON answer (None when empty)."""
        url = path if path.startswith("http") else self.url.rstrip("/") + path
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if dept is not None:
            cred = base64.b64encode(f"{dept}:{self.tokens[dept]}".encode()).decode()
            req.add_header("Authorization", f"Basic {cred}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace").replace("\n", " ")
            raise StaError(f"{method} {path[:120]}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise StaError(f"cannot reach {self.url} ({exc})") from None
        return json.loads(raw) if raw.strip() else None

    def collection(self, path: str) -> Iterable[dict[str, Any]]:
        """Every entity of a collection, following ``@iot.nextLink``."""
        nxt: str | None = STA_PATH + path
        while nxt:
            page = self.request("GET", nxt)
            yield from page.get("value", [])
            nxt = page.get("@iot.nextLink")


def wait_for_server(url: str, timeout: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait until ``url``/api/health answers 200.

    Raises
    ------
    StaError
        When it does not within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    health = url.rstrip("/") + "/api/health"
    while True:
        try:
            with urllib.request.urlopen(health, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise StaError(f"the server at {url} did not answer /api/health within {timeout:g} s")
        sleep(0.5)


def register(client: StaClient, sensors: list[PlacedSensor]) -> list[int]:
    """Create (or find) every sensor's Thing and Datastream; their Datastream ids.

    Sensors registered by an earlier run (``properties.simulator`` of the Thing) are
    reused, so running the simulator again adds nothing twice.
    """
    known = _known_datastreams(client)
    kinds_needed = {s.spec.kind for s in sensors if s.spec.key not in known}
    refs = _metadata(client, kinds_needed)
    ids = []
    created = 0
    for s in sensors:
        if s.spec.key in known:
            ids.append(known[s.spec.key])
            continue
        sensor_id, prop_id = refs[s.spec.kind]
        body = datastream_body(s, sensor_id, prop_id)
        ds = client.request("POST", STA_PATH + "/Datastreams", body, dept=s.kind.department)
        ids.append(int(ds["@iot.id"]))
        created += 1
    log.info(
        "%d sensors: %d registered now, %d known already",
        len(sensors),
        created,
        len(sensors) - created,
    )
    return ids


def _known_datastreams(client: StaClient) -> dict[str, int]:
    out: dict[str, int] = {}
    for ds in client.collection("/Datastreams?$top=1000"):
        key = (ds.get("properties") or {}).get("simulator")
        if isinstance(key, str):
            out.setdefault(key, int(ds["@iot.id"]))
    return out


def _metadata(client: StaClient, kinds: set[str]) -> dict[str, tuple[int, int]]:
    """(Sensor id, ObservedProperty id) per kind, created by its department when new."""
    found: dict[str, dict[str, int]] = {"Sensors": {}, "ObservedProperties": {}}
    for coll in found:
        for e in client.collection(f"/{coll}?$top=1000"):
            key = (e.get("properties") or {}).get("simulator")
            if isinstance(key, str):
                found[coll].setdefault(key, int(e["@iot.id"]))
    out = {}
    for key in sorted(kinds):
        k = KINDS[key]
        if key not in found["Sensors"]:
            body = {
                "name": k.sensor,
                "description": f"{k.thing}: {k.sensor}",
                "encodingType": "text/plain",
                "metadata": k.sensor,
                "properties": {"simulator": key},
            }
            e = client.request("POST", STA_PATH + "/Sensors", body, dept=k.department)
            found["Sensors"][key] = int(e["@iot.id"])
        if key not in found["ObservedProperties"]:
            body = {
                "name": k.property_name,
                "definition": k.property_definition,
                "description": k.property_description,
                "properties": {"simulator": key},
            }
            e = client.request("POST", STA_PATH + "/ObservedProperties", body, dept=k.department)
            found["ObservedProperties"][key] = int(e["@iot.id"])
        out[key] = (found["Sensors"][key], found["ObservedProperties"][key])
    return out


def datastream_body(s: PlacedSensor, sensor_id: int, property_id: int) -> dict[str, Any]:
    """The deep-insert body of a sensor's Datastream with its Thing and Location."""
    k, p = s.kind, s.placement
    placement = p.to_json()
    return {
        "name": f"{s.spec.name} {k.property_name}",
        "description": f"{k.property_description} ({k.unit['symbol']})",
        "observationType": OM_MEASUREMENT,
        "unitOfMeasurement": dict(k.unit),
        "properties": {
            "thresholds": k.thresholds(s.spec.scale),
            "stale_after": k.stale_after,
            "simulator": s.spec.key,
            "kind": k.key,
        },
        "Thing": {
            "name": s.spec.name,
            "description": f"{k.thing}: {s.spec.name} ({s.spec.where})",
            "properties": {
                "simulator": s.spec.key,
                "kind": k.key,
                "department": k.department,
                "placement": placement,
            },
            "Locations": [
                {
                    "name": s.spec.where or s.spec.name,
                    "description": p.address or s.spec.where or s.spec.name,
                    "encodingType": "application/geo+json",
                    "location": p.to_geojson(),
                    "properties": {"placement": placement},
                }
            ],
        },
        "Sensor": {"@iot.id": sensor_id},
        "ObservedProperty": {"@iot.id": property_id},
    }


# --- tokens ---------------------------------------------------------------------------------------


def tokens_file(store: str, project: Path) -> Path:
    """Where the simulator keeps the tokens of the departments it registered."""
    from layers.config import is_postgres_url

    if is_postgres_url(store):
        return project.parent / "simulator-tokens.json"
    return Path(store).with_suffix(".simulator-tokens.json")


def department_tokens(
    project: Path,
    given: dict[str, str],
    needed: Iterable[str],
    names: dict[str, str] | None = None,
    admins: Iterable[str] = (),
) -> dict[str, str]:
    """A token per needed department: given ones, else ones the simulator registered
    (``names``: their display names; ``admins``: those registered as admin).

    Raises
    ------
    ConfigError
        When a department exists in the store and the simulator does not know its token.
    """
    admins = set(admins)
    names = {**DEPARTMENTS, **(names or {})}
    missing = [d for d in sorted(set(needed) | admins) if d not in given]
    tokens = dict(given)
    if not missing:
        return tokens
    from layers.config import live_config
    from layers.departments import add_department, authenticate
    from layers.store import open_store

    live = live_config(project)
    path = tokens_file(live.store, project)
    saved = _read_tokens(path)
    store = open_store(live.store)
    try:
        for dept in missing:
            if dept in saved and authenticate(store, saved[dept], dept) is not None:
                tokens[dept] = saved[dept]
                continue
            if store.department_row(dept) is not None:
                raise ConfigError(
                    f"department {dept!r} exists and the simulator does not know its token: "
                    f"pass --token {dept}=TOKEN (or `cim departments renew {project} {dept}`)"
                )
            name = names.get(dept, dept)
            saved[dept] = tokens[dept] = add_department(store, dept, name, admin=dept in admins)
            log.info("registered department %s (%s)", dept, name)
            _write_tokens(path, saved)
    finally:
        store.close()
    return tokens


def _read_tokens(path: Path) -> dict[str, str]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DatasetIOError(f"cannot read the simulator's tokens ({exc})", path=path) from exc
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


def _write_tokens(path: Path, tokens: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(tokens, f, indent=1)
    os.replace(tmp, path)


# --- senders --------------------------------------------------------------------------------------


Reading = tuple[str, int, str, float]  # department, datastream id, ISO time, value


class HttpSender:
    """``CreateObservations`` batches, one per department per tick."""

    def __init__(self, client: StaClient) -> None:
        self.client = client

    def send(self, readings: list[Reading]) -> tuple[int, int]:
        """Send; (accepted, rejected)."""
        by_dept: dict[str, dict[int, list[list[Any]]]] = {}
        for dept, ds, when, value in readings:
            by_dept.setdefault(dept, {}).setdefault(ds, []).append([when, value])
        ok = bad = 0
        for dept, streams in by_dept.items():
            body = [
                {
                    "Datastream": {"@iot.id": ds},
                    "components": ["phenomenonTime", "result"],
                    "dataArray": rows,
                }
                for ds, rows in streams.items()
            ]
            answer = self.client.request("POST", STA_PATH + "/CreateObservations", body, dept)
            for item in answer or []:
                if isinstance(item, str) and item.startswith("error"):
                    bad += 1
                    log.debug("rejected: %s", item)
                else:
                    ok += 1
        return ok, bad

    def close(self) -> None:
        """Nothing to release."""


class MqttSender:
    """One message per reading to ``v1.1/Datastreams(ID)/Observations`` at QoS 1."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        import uuid

        from layers.bus import mqtt_client

        self.client, host, port = mqtt_client(url, f"cim-simulate-{uuid.uuid4().hex[:10]}")
        self.client.connect(host, port)
        self.client.loop_start()
        self.timeout = timeout

    def send(self, readings: list[Reading]) -> tuple[int, int]:
        """Publish and wait for the broker's acknowledgements; (acknowledged, failed)."""
        infos = []
        for _dept, ds, when, value in readings:
            payload = json.dumps({"phenomenonTime": when, "result": value})
            infos.append(self.client.publish(MQTT_TOPIC.format(ds), payload, qos=1))
        ok = 0
        deadline = time.monotonic() + self.timeout
        for info in infos:
            try:
                info.wait_for_publish(max(0.01, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                continue
            ok += bool(info.is_published())
        return ok, len(infos) - ok

    def close(self) -> None:
        """Disconnect from the broker."""
        self.client.loop_stop()
        self.client.disconnect()


# --- the run ------------------------------------------------------------------------------------


@dataclass
class RunStats:
    """What a run sent."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    states: Counter = field(default_factory=Counter)
    events: EventStats | None = None


def feed(
    model: ReadingModel,
    datastreams: list[int],
    sender: Any,
    rate: float,
    duration: float | None,
    seed: int,
    *,
    tick: float = 1.0,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    log_every: float = 10.0,
) -> RunStats:
    """Send ``rate`` readings per second, round robin over the sensors, until
    ``duration`` seconds passed (None: until interrupted). Ctrl-C stops cleanly."""
    n = len(model.sensors)
    stats = RunStats()
    if n == 0:
        return stats
    order = np.random.default_rng([seed, 17]).permutation(n)
    silent = silent_sensors(n, seed)
    start = last_log = last = now()
    credit, pos = rate * tick, 0
    try:
        while duration is None or now() - start < duration:
            t0 = now()
            # credit for the time that really passed: a slow send does not lower the rate
            credit += rate * (t0 - last)
            last = t0
            batch: list[Reading] = []
            quiet = t0 - start >= SILENT_AFTER
            count = min(int(credit), 100_000)
            for j in range(count):
                i = int(order[pos % n])
                pos += 1
                if quiet and i in silent:
                    continue
                # spread over the last tick: a sensor read twice in one tick gets two times
                when = dt.datetime.fromtimestamp(t0 - tick * (count - 1 - j) / count, dt.UTC)
                stamp = when.isoformat(timespec="microseconds").replace("+00:00", "Z")
                value = model.reading(i, when)
                stats.states[model.state(i, value)] += 1
                batch.append((model.sensors[i].kind.department, datastreams[i], stamp, value))
            credit -= int(credit)
            if batch:
                ok, bad = sender.send(batch)
                stats.sent += len(batch)
                stats.accepted += ok
                stats.rejected += bad
            if now() - last_log >= log_every:
                last_log = now()
                _log_progress(stats, now() - start)
            sleep(max(0.0, tick - (now() - t0)))
    except KeyboardInterrupt:
        log.info("interrupted: stopping")
    finally:
        sender.close()
    _log_progress(stats, now() - start)
    return stats


def _log_progress(stats: RunStats, elapsed: float) -> None:
    log.info(
        "%.0f s: %d readings sent, %d accepted, %d rejected (warning %d, alarm %d)",
        elapsed,
        stats.sent,
        stats.accepted,
        stats.rejected,
        stats.states["warning"],
        stats.states["alarm"],
    )


def simulate(
    project: Path,
    url: str = "http://127.0.0.1:8000",
    mqtt: str | None = None,
    rate: float = 50.0,
    duration: float | None = None,
    seed: int = 2026,
    tokens: dict[str, str] | None = None,
    wait: float | None = None,
    events_per_hour: float = EVENTS_PER_HOUR,
    event_step: float = STEP_SECONDS,
) -> RunStats:
    """Register the catalogue's sensors on a served city and feed them readings.

    Parameters
    ----------
    project : Path
        The city.toml (its build output places the sensors; its live store holds the
        departments).
    url : str
        The server.
    mqtt : str, optional
        ``mqtt://host:port``: send readings over MQTT instead of HTTP.
    rate : float
        Readings per second, all sensors together.
    duration : float, optional
        Seconds to run; None: until interrupted.
    seed : int
        Seed of the catalogue and of the readings.
    tokens : dict, optional
        Department id -> token, for departments registered elsewhere.
    wait : float, optional
        Seconds to wait for the server's ``/api/health`` first.
    events_per_hour : float
        Cases filed per hour through ``/api/events`` (:mod:`layers.simulate_events`);
        0: none.
    event_step : float
        Mean seconds between two steps of a case's lifecycle.
    """
    from cim.config import load_project
    from cim.outputs import BuildOutputs
    from layers.catalogue import catalogue

    if rate <= 0 or not math.isfinite(rate):
        raise InputDataError(f"--rate must be a positive number of readings per second, not {rate}")
    if events_per_hour < 0 or not math.isfinite(events_per_hour):
        raise InputDataError(f"--events-per-hour must be 0 or more, not {events_per_hour}")
    proj = load_project(project)
    outputs = BuildOutputs(proj.output)
    sensors = place_sensors(catalogue(outputs, seed), outputs)
    log.info("%d sensors placed on %s", len(sensors), proj.name)
    if wait:
        wait_for_server(url, wait)
    depts = {s.kind.department for s in sensors}
    table = categories_of(proj) if events_per_hour else None
    admins: set[str] = set()
    if table is not None:
        depts |= plan_departments(table) | {CENTER}
        admins = set() if ADMIN in (tokens or {}) else {ADMIN}
    given = tokens or {}
    client = StaClient(url, department_tokens(proj.path, given, depts, NAMES, admins))
    ids = register(client, sensors)
    per_sensor = len(sensors) / rate
    slowest = min((s.kind.stale_after for s in sensors), default=math.inf)
    if per_sensor * 2 > slowest:
        log.warning(
            "at %g readings/s each sensor reports every %.0f s: some will look stale "
            "(stale_after %.0f s); raise --rate",
            rate,
            per_sensor,
            slowest,
        )
    cases = None
    if table is not None:
        grant_command_roles(client)
        places = sample_places() if is_sample_city(outputs) else sensor_places(sensors)
        plan = plan_events(table, places, seed, events_per_hour, event_step)
        cases = _CaseThread(EventRunner(client, plan), duration)
        log.info("filing about %g cases per hour through /api/events", events_per_hour)
    sender = MqttSender(mqtt) if mqtt else HttpSender(client)
    log.info("feeding %g readings/s over %s (Ctrl-C stops)", rate, "MQTT" if mqtt else "HTTP")
    try:
        stats = feed(ReadingModel(sensors, seed), ids, sender, rate, duration, seed)
    finally:
        if cases is not None:
            cases.stop()
    if cases is not None:
        stats.events = cases.runner.stats
        ev = stats.events
        log.info("cases: %d reported, %d closed, %d actions refused, %d open",
                 ev.reported, ev.closed, ev.failed, len(ev.open_ids))  # fmt: skip
    return stats


class _CaseThread:
    """The cases of a run, played in a thread beside the readings."""

    def __init__(self, runner: EventRunner, duration: float | None) -> None:
        self.runner = runner
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(duration,), name="cim-simulate-events", daemon=True
        )
        self._thread.start()

    def _run(self, duration: float | None) -> None:
        try:
            self.runner.run(duration, self._stop)
        except Exception:  # the readings go on; the log says why the cases stopped
            log.exception("simulated cases stopped")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


# --- command line ---------------------------------------------------------------------------


def simulate_command(sub: argparse._SubParsersAction) -> None:
    """Add ``cim simulate`` to the ``cim`` parser (entry point ``cim.commands``)."""
    p = sub.add_parser("simulate", help="register sample sensors and feed them live readings")
    p.add_argument("project", type=Path, help="city.toml (built)")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the server (cim serve)")
    p.add_argument("--mqtt", help="send readings to this broker, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--rate", type=float, default=50.0, help="readings per second (default 50)")
    p.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    p.add_argument("--seed", type=int, default=2026, help="seed of sensors, readings and cases")
    p.add_argument(
        "--events-per-hour",
        type=float,
        default=EVENTS_PER_HOUR,
        metavar="N",
        help=f"cases filed per hour through /api/events (default {EVENTS_PER_HOUR:g}; 0: none)",
    )
    p.add_argument(
        "--event-step",
        type=float,
        default=STEP_SECONDS,
        metavar="S",
        help=f"mean seconds between two steps of a case (default {STEP_SECONDS:g})",
    )
    p.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="DEPT=TOKEN",
        help="a department's token (repeatable); others are registered",
    )
    p.add_argument(
        "--wait-for-server",
        action="store_true",
        help="wait for the server's /api/health first (see --wait-timeout)",
    )
    p.add_argument(
        "--wait-timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="seconds --wait-for-server waits (default 120)",
    )
    p.set_defaults(func=_cmd_simulate)


def _cmd_simulate(args: argparse.Namespace) -> int:
    tokens = {}
    for item in args.token:
        dept, sep, token = item.partition("=")
        if not sep or not dept or not token:
            raise ConfigError(f"--token takes DEPT=TOKEN, not {item!r}")
        tokens[dept] = token
    simulate(
        args.project,
        url=args.url,
        mqtt=args.mqtt,
        rate=args.rate,
        duration=args.duration,
        seed=args.seed,
        tokens=tokens,
        wait=args.wait_timeout if args.wait_for_server else None,
        events_per_hour=args.events_per_hour,
        event_step=args.event_step,
    )
    return 0
