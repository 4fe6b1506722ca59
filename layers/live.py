"""The live stream hub: the latest value and state of every datastream, and the deltas
since, for the Server-Sent Events endpoint (``/api/live/stream``).

One :class:`LiveHub` per server process:

- it loads every datastream (place, department, observed property, thresholds, latest
  reading) from the store once, then keeps that table current from the bus;
- committed readings go out through :meth:`LiveHub.publish_committed` → the bus
  (MQTT, so that several processes share them) → the hub's dispatcher thread; with an
  in-process bus the committing thread applies them itself (one thread hand-off less
  between the commit and the screens). Applying numbers each delta (``seq``), updates
  the table, detects state changes (:mod:`layers.states`) and appends the delta,
  serialised once, to a ring buffer;
- a stream client (:meth:`LiveHub.stream`) gets a snapshot, then reads the ring from
  its own cursor: no per-client queue, so a slow client costs nothing until it falls
  out of the ring, and then it gets a fresh snapshot marked ``resync``.

Event ids are ``EPOCH:SEQ``: EPOCH names this hub's numbering (it changes when the
process restarts or the hub lost bus messages), so a ``Last-Event-ID`` from another
numbering never resumes silently with a gap: it gets a snapshot marked ``resync``.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from cim.errors import InputDataError
from layers.bus import Bus, InProcessBus, ResyncNeededError
from layers.states import STALE, Thresholds, Transition, classify, state_at, transition

logger = logging.getLogger(__name__)


class LiveStore(Protocol):
    """What the hub needs of the live store (:class:`layers.store.Store` fits)."""

    def transaction(self, write: bool = False) -> Any:
        """A context manager yielding a transaction with ``execute``."""


class CommittedRow(Protocol):
    """A stored reading (:class:`layers.store.ObservationRow` fits)."""

    datastream_id: int
    phenomenon_time: int
    result: Any


class CommitResult(Protocol):
    """What the store did with it (:class:`layers.store.InsertResult` fits)."""

    id: int
    duplicate: bool


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


_FAST_KINDS = frozenset(("observation", "state"))


def _delta_json(delta: dict[str, Any]) -> str:
    """A reading's or state change's delta as JSON, by orjson: every reading makes one or
    two and the standard encoder took ~15x the time. Anything else, a non-finite value
    (orjson would write null; the standard encoder refuses) or what orjson cannot encode
    goes through :func:`_dumps`, the strict one."""
    value = delta.get("value")
    if delta.get("kind") in _FAST_KINDS and not (type(value) is float and not math.isfinite(value)):
        try:
            return orjson.dumps(delta).decode()
        except TypeError:  # orjson.JSONEncodeError: integers beyond 64 bits, odd keys
            pass
    return _dumps(delta)


def _scalar_json(v: Any) -> str:
    """JSON of a reading's value or a state: numbers and None without a call to the
    encoder (the repr of an int or a finite float is its JSON text)."""
    if v is None:
        return "null"
    kind = type(v)
    if kind is int or (kind is float and math.isfinite(v)):
        return repr(v)
    return _dumps(v)


def now_us() -> int:
    """Now, in µs since the epoch."""
    return time.time_ns() // 1000


@dataclass
class StreamEntry:
    """One datastream as the live view sees it (times in µs since the epoch)."""

    id: int
    name: str = ""
    department: str | None = None
    prop_id: int | None = None
    prop: str | None = None
    unit: str | None = None
    lon: float | None = None
    lat: float | None = None
    h: float | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    stale_after: float | None = None
    value: Any = None
    time: int | None = None
    state: str | None = None
    _text: str | None = field(default=None, repr=False, compare=False)
    _static: str | None = field(default=None, repr=False, compare=False)

    def public(self) -> dict[str, Any]:
        """The JSON object of snapshots (``time`` in ms since the epoch)."""
        return {
            "ds": self.id,
            "name": self.name,
            "dept": self.department,
            "propId": self.prop_id,
            "prop": self.prop,
            "unit": self.unit,
            "lon": self.lon,
            "lat": self.lat,
            "h": self.h,
            "value": self.value,
            "time": None if self.time is None else self.time // 1000,
            "state": self.state,
            "thresholds": {k: v for k, v in self.thresholds._asdict().items() if v is not None},
            "staleAfter": self.stale_after,
        }

    def text(self) -> str:
        """:meth:`public` as JSON, cached until the entry changes.

        A reading changes only ``value``, ``time`` and ``state``: the rest (the
        datastream's metadata, which changes only by a reload that makes a new entry)
        is serialised once and kept, so that a snapshot of 10,000 datastreams, most of
        them changed since the last one, formats three fields per entry, not fourteen.
        """
        if self._text is None:
            if self._static is None:
                meta = self.public()
                for k in ("value", "time", "state"):
                    del meta[k]
                self._static = _dumps(meta)[:-1] + ","
            t = "null" if self.time is None else str(self.time // 1000)
            self._text = (
                f'{self._static}"value":{_scalar_json(self.value)},"time":{t},'
                f'"state":{_scalar_json(self.state)}}}'
            )
        return self._text

    def key(self) -> tuple:
        """What filters look at: (lon, lat, department, property id, property name)."""
        return (self.lon, self.lat, self.department, self.prop_id, self.prop)


# --- reading datastreams from the store ------------------------------------------------

_STREAMS_SQL = """
SELECT d.id, d.name, d.department, d.observed_property_id, op.name, d.unit_of_measurement,
       d.warn_low, d.warn_high, d.alarm_low, d.alarm_high, d.stale_after,
       d.last_value, d.last_time,
       (SELECT l.location FROM thing_locations tl JOIN locations l ON l.id = tl.location_id
        WHERE tl.thing_id = d.thing_id ORDER BY l.id DESC LIMIT 1)
FROM datastreams d LEFT JOIN observed_properties op ON op.id = d.observed_property_id
"""


def load_streams(
    store: LiveStore, ids: Iterable[int] | None = None, now: int | None = None
) -> dict[int, StreamEntry]:
    """Datastreams with their place and latest reading, by id.

    Parameters
    ----------
    store : LiveStore
    ids : iterable of int, optional
        Only these (default: all).
    now : int, optional
        The moment states are computed at (µs; default now), so stale ones show stale.
    """
    now = now_us() if now is None else now
    out: dict[int, StreamEntry] = {}
    wanted = None if ids is None else sorted(set(ids))
    chunks = [None] if wanted is None else [wanted[i : i + 500] for i in range(0, len(wanted), 500)]
    for chunk in chunks:
        sql, params = _STREAMS_SQL, []
        if chunk is not None:
            sql += f"WHERE d.id IN ({','.join('?' * len(chunk))})"
            params = chunk
        with store.transaction() as tx:
            rows = tx.execute(sql, params)
        for row in rows:
            entry = _entry(row, now)
            out[entry.id] = entry
    return out


def _entry(row: tuple, now: int) -> StreamEntry:
    (ds, name, dept, prop_id, prop, unit, wl, wh, al, ah, stale, last, last_t, loc) = row
    lon, lat, h = place_of(loc)
    value = json.loads(last) if last is not None else None
    thresholds = Thresholds(*(None if v is None else float(v) for v in (wl, wh, al, ah)))
    stale_after = None if stale is None else float(stale)
    last_t = None if last_t is None else int(last_t)
    return StreamEntry(
        id=int(ds),
        name=name or "",
        department=dept,
        prop_id=None if prop_id is None else int(prop_id),
        prop=prop,
        unit=_unit_symbol(unit),
        lon=lon,
        lat=lat,
        h=h,
        thresholds=thresholds,
        stale_after=stale_after,
        value=value,
        time=last_t,
        state=state_at(value, last_t, thresholds, stale_after, now),
    )


def _unit_symbol(text: str | None) -> str | None:
    if not text:
        return None
    try:
        unit = json.loads(text)
    except ValueError:
        return None
    if isinstance(unit, dict):
        return unit.get("symbol") or unit.get("name")
    return None


def place_of(geojson_text: str | None) -> tuple[float | None, float | None, float | None]:
    """lon, lat and height of a Location's GeoJSON (a non-point gives its centroid)."""
    if not geojson_text:
        return None, None, None
    try:
        geo = json.loads(geojson_text)
        if isinstance(geo, dict) and geo.get("type") == "Feature":
            geo = geo.get("geometry")
        if isinstance(geo, dict) and geo.get("type") == "Point":
            c = geo["coordinates"]
            return float(c[0]), float(c[1]), (float(c[2]) if len(c) > 2 else None)
        import shapely

        centre = shapely.from_geojson(_dumps(geo)).centroid
        return float(centre.x), float(centre.y), None
    except Exception:  # a location we cannot place: the stream still shows, unplaced
        return None, None, None


# --- filters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamFilter:
    """Which datastreams a client sees: a bounding box, departments, observed
    properties (each None: no restriction)."""

    bbox: tuple[float, float, float, float] | None = None
    departments: frozenset[str] | None = None
    properties: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        """Whether the filter lets every datastream through."""
        return self.bbox is None and self.departments is None and self.properties is None

    def matches(self, key: tuple) -> bool:
        """Whether a datastream with :meth:`StreamEntry.key` ``key`` passes."""
        lon, lat, dept, prop_id, prop = key
        if self.departments is not None and dept not in self.departments:
            return False
        if (
            self.properties is not None
            and (prop is not None or prop_id is not None)  # deltas without one pass
            and prop not in self.properties
            and str(prop_id) not in self.properties
        ):
            return False
        if self.bbox is not None:
            if lon is None or lat is None:
                return False
            w, s, e, n = self.bbox
            if not s <= lat <= n:
                return False
            # W > E: the box crosses the antimeridian
            return (w <= lon <= e) if w <= e else (lon >= w or lon <= e)
        return True

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> StreamFilter:
        """From query arguments ``bbox=W,S,E,N``, ``department=a,b``, ``property=x,y``
        (observed property names or ids).

        Raises
        ------
        InputDataError
            On a malformed bounding box.
        """
        bbox = None
        if args.get("bbox"):
            try:
                w, s, e, n = (float(v) for v in str(args["bbox"]).split(","))
            except ValueError:
                raise InputDataError(
                    f"bbox must be W,S,E,N in degrees, not {args['bbox']!r}"
                ) from None
            if not all(math.isfinite(v) for v in (w, s, e, n)) or s > n:
                raise InputDataError(f"bbox must be W,S,E,N with S <= N, not {args['bbox']!r}")
            bbox = (w, s, e, n)
        return cls(bbox, _names(args.get("department")), _names(args.get("property")))


def _names(raw: str | None) -> frozenset[str] | None:
    if not raw:
        return None
    return frozenset(v.strip() for v in raw.split(",") if v.strip()) or None


# --- the hub ---------------------------------------------------------------------------


def _meta(e: StreamEntry) -> tuple:
    """What a ``stream`` delta announces when it changes."""
    return (e.name, e.department, e.prop_id, e.prop, e.unit, e.lon, e.lat, e.h,
            e.thresholds, e.stale_after)  # fmt: skip


@dataclass
class _Delta:
    seq: int
    key: tuple
    text: str


class _Ring:
    """One numbering of deltas: its epoch, the slots, the newest seq.

    Written under the hub's lock only (slot first, then ``head``); read without a lock by
    the stream clients, who check afterwards that what they read was not overwritten.
    """

    def __init__(self, size: int) -> None:
        self.epoch = uuid.uuid4().hex[:8]
        self.size = size
        self.slots: list[_Delta | None] = [None] * size
        self.head = 0  # seq of the newest delta


class _Waker:
    """Wakes every waiting stream client at once; each waits on a lock of its own, so
    that waking 500 clients is not 500 turns at one shared lock (as with a Condition)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiting: list[threading.Lock] = []

    def wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Block until woken with ``ready()`` true, or ``timeout``; returns ``ready()``."""
        if ready():
            return True
        end = time.monotonic() + timeout
        while True:
            lock = threading.Lock()
            lock.acquire()
            with self._mutex:
                self._waiting.append(lock)
            if ready():  # registered first, checked second: no wake-up is lost
                return True
            left = end - time.monotonic()
            if left <= 0 or not lock.acquire(timeout=left):
                with self._mutex:
                    if lock in self._waiting:
                        self._waiting.remove(lock)
                return ready()
            if ready():
                return True

    def wake_all(self) -> None:
        """Wake everyone waiting now."""
        with self._mutex:
            waiting, self._waiting = self._waiting, []
        for lock in waiting:
            lock.release()


class LiveHub:
    """The latest state of every datastream and the recent deltas, for stream clients.

    Parameters
    ----------
    store : LiveStore
        Where datastreams and their latest readings come from.
    bus : Bus
        Where committed readings travel (publish with :meth:`publish_committed`).
    ring_size : int
        Deltas kept for resuming clients (``Last-Event-ID``); older → a fresh snapshot.
    notify_interval : float
        Seconds between wake-ups of the stream clients at most: deltas arriving closer
        together are delivered together, which bounds the wake-ups per second per
        client under load (the cost of a few ms of latency).
    stale_interval : float
        Seconds between checks for datastreams gone stale.
    refresh_interval : float
        Seconds between reloads of the datastreams' metadata (places, thresholds,
        departments changed over the SensorThings API); 0 disables.
    """

    def __init__(
        self,
        store: LiveStore,
        bus: Bus,
        ring_size: int = 65536,
        notify_interval: float = 0.02,
        stale_interval: float = 1.0,
        refresh_interval: float = 60.0,
    ) -> None:
        self.store = store
        self.bus = bus
        self.ring_size = ring_size
        self.notify_interval = notify_interval
        self.stale_interval = stale_interval
        self.refresh_interval = refresh_interval
        self._lock = threading.RLock()
        self._waker = _Waker()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._r = _Ring(ring_size)
        self.entries: dict[int, StreamEntry] = {}
        self._listeners: list[Callable[[Transition], None]] = []
        self._background: list[Callable[[Transition], None]] = []
        self._later: queue.SimpleQueue[Transition] | None = None
        self._threads: list[threading.Thread] = []
        self._sub = None
        self._shared: dict[tuple[str, int, int], str] = {}
        self._count_lock = threading.Lock()
        self._wakeups: list[Callable[[], None]] = []
        self.clients = 0
        # batches applied, and their delay from acknowledgement to the ring (ms): sum, max
        self._lag = [0, 0.0, 0.0]

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> LiveHub:
        """Load the datastreams and start the dispatcher, notifier and stale timer."""
        self._sub = self.bus.subscribe(maxsize=100_000)
        entries = load_streams(self.store)
        for entry in entries.values():
            entry.text()  # the first screen's snapshot finds them serialised
        with self._lock:
            self.entries = entries
        for target, name in (
            (self._dispatch_loop, "live-dispatch"),
            (self._notify_loop, "live-notify"),
            (self._timer_loop, "live-timer"),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        logger.info("live hub: %d datastreams", len(self.entries))
        return self

    def close(self) -> None:
        """Stop the threads; stream clients end at their next wake-up."""
        self._stop.set()
        if self._sub is not None:
            self._sub.close()
        self._dirty.set()
        self._waker.wake_all()
        for t in self._threads:
            t.join(5)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._stop.is_set()

    def on_transition(
        self, callback: Callable[[Transition], None], background: bool = False
    ) -> None:
        """Call ``callback(transition)`` on every state change this hub sees.

        ``background``: from a thread of the hub's own, one transition after another,
        for a callback that writes to the store (opening a case on an alarm): it must not
        hold up the deltas of every screen while it waits for the database.
        """
        if not background:
            self._listeners.append(callback)
            return
        if self._later is None:
            self._later = queue.SimpleQueue()
            t = threading.Thread(target=self._later_loop, name="live-hub-listeners", daemon=True)
            t.start()
            self._threads.append(t)
        self._background.append(callback)

    # --- publishing ---------------------------------------------------------------------

    def publish_committed(
        self, rows: Sequence[CommittedRow], results: Sequence[CommitResult]
    ) -> None:
        """Announce readings just committed to the store (duplicates are skipped).

        Call it after the commit and before acknowledging the readings' sender, so
        that an acknowledged reading is on its way to every screen. With an in-process
        bus (one server process) the readings are ringed right here, in the caller's
        thread; otherwise they travel over the bus to every server's hub.
        """
        ack = time.time() * 1000.0
        batch = []
        for row, res in zip(rows, results, strict=True):
            if res.duplicate:
                continue
            batch.append(
                {
                    "kind": "observation",
                    "ds": row.datastream_id,
                    "obs": res.id,
                    "value": row.result,
                    "time": row.phenomenon_time // 1000,
                    "ack": round(ack, 1),
                }
            )
        if not batch:
            return
        if isinstance(self.bus, InProcessBus) and self._sub is not None:
            # the hub is the bus's only reader in this process: ring the readings here,
            # in the committing thread, which holds the GIL already; through the bus the
            # dispatcher thread had to wait for a turn first (on a loaded machine a whole
            # scheduling slice, tens to hundreds of ms between the commit and the ring)
            self.apply(batch)
        else:
            self.bus.publish(batch)

    # --- the dispatcher -----------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        assert self._sub is not None
        while not self._stop.is_set():
            try:
                batch = self._sub.get(timeout=0.5)
            except ResyncNeededError:
                self.reset("the hub fell behind the bus")
                continue
            if not batch:
                continue
            try:
                self.apply(batch)
            except Exception:  # a bad message must not stop the stream for everyone
                logger.exception("live hub: could not apply a batch of %d", len(batch))

    def apply(self, batch: list[dict[str, Any]]) -> None:
        """Apply a batch of bus messages: update the table, number and ring the deltas."""
        unknown = {
            m["ds"]
            for m in batch
            if m.get("kind") == "observation" and isinstance(m.get("ds"), int)
        } - self.entries.keys()
        found = load_streams(self.store, unknown) if unknown else {}  # outside the lock
        transitions: list[Transition] = []
        with self._lock:
            for ds, entry in found.items():  # created since the hub started
                if ds not in self.entries:
                    self.entries[ds] = entry
                    self._stream_delta(entry)
            for msg in batch:
                if msg.get("kind") == "observation":
                    transitions.extend(self._apply_observation(msg))
                elif isinstance(msg.get("kind"), str):
                    self._pass_through(msg)
        self._signal()
        self._note_lag(batch)
        self._tell(transitions)

    def _note_lag(self, batch: list[dict[str, Any]]) -> None:
        ack = batch[0].get("ack")
        if isinstance(ack, int | float):
            lag = time.time() * 1000.0 - ack
            self._lag[0] += 1
            self._lag[1] += lag
            self._lag[2] = max(self._lag[2], lag)

    def stats(self) -> dict[str, Any]:
        """Batches applied and their delay from acknowledgement (the commit) to the
        ring, mean and longest (ms): the bus and the dispatcher's share of the latency."""
        n, total, most = self._lag
        return {
            "batches": n,
            "ackToRingMeanMs": round(total / n, 3) if n else None,
            "ackToRingMaxMs": round(most, 3),
        }

    def _apply_observation(self, msg: dict[str, Any]) -> list[Transition]:
        entry = self.entries.get(msg.get("ds"))  # type: ignore[arg-type]
        if entry is None:
            return []  # deleted meanwhile
        t_us = int(msg["time"]) * 1000
        value = msg.get("value")
        out: list[Transition] = []
        newest = entry.time is None or t_us >= entry.time
        state = classify(value, entry.thresholds) if newest else entry.state
        # compact: where the datastream is and what it measures came with the snapshot
        # (or a "stream" delta), so each reading carries only what changes
        delta = {
            "seq": self._r.head + 1,
            "kind": "observation",
            "ds": entry.id,
            "value": value,
            "time": msg["time"],
            "state": state,
            "ack": msg.get("ack"),
        }
        if not newest:
            delta["late"] = True  # older than the latest: the snapshot is unchanged
        self._ring_append(entry, delta)
        if newest:
            old = entry.state
            entry.value, entry.time, entry.state, entry._text = value, t_us, state, None
            change = transition(entry.id, old, state, value, t_us)
            if change is not None:
                self._state_delta(entry, change)
                out.append(change)
        return out

    def _state_delta(self, entry: StreamEntry, change: Transition) -> None:
        delta = {
            "seq": self._r.head + 1,
            "kind": "state",
            "ds": entry.id,
            "state": change.new,
            "from": change.old,
            "value": entry.value,
            "time": None if entry.time is None else entry.time // 1000,
        }
        self._ring_append(entry, delta)

    def _stream_delta(self, entry: StreamEntry, kind: str = "stream") -> None:
        """A datastream appeared or changed (``stream``: its full entry) or went
        (``removed``)."""
        delta: dict[str, Any] = {"seq": self._r.head + 1, "kind": kind, "ds": entry.id}
        if kind == "stream":
            delta.update(entry.public())
        self._ring_append(entry, delta)

    def _pass_through(self, msg: dict[str, Any]) -> None:
        """Another kind of delta (e.g. ``event`` from the events API): numbered and
        streamed as it is, filtered by its ``lon``/``lat`` and ``department``."""
        dept = msg.get("department", msg.get("dept"))
        lon, lat = msg.get("lon"), msg.get("lat")
        key = (
            lon if isinstance(lon, int | float) else None,
            lat if isinstance(lat, int | float) else None,
            dept,
            None,
            None,
        )
        try:
            text = _dumps({"seq": self._r.head + 1, **msg})
        except (TypeError, ValueError):
            logger.warning("live hub: dropped a %r delta that is not JSON", msg.get("kind"))
            return
        self._append(key, text)

    def _ring_append(self, entry: StreamEntry, delta: dict[str, Any]) -> None:
        self._append(entry.key(), _delta_json(delta))

    def _append(self, key: tuple, text: str) -> None:
        r = self._r
        seq = r.head + 1
        r.slots[seq % r.size] = _Delta(seq, key, text)
        r.head = seq  # after the slot: a lock-free reader never sees an empty one

    def _tell(self, transitions: list[Transition]) -> None:
        for change in transitions:
            for callback in self._listeners:
                try:
                    callback(change)
                except Exception:
                    logger.exception("live hub: a state listener failed")
            if self._later is not None:
                self._later.put(change)

    def _later_loop(self) -> None:
        assert self._later is not None
        while True:
            try:
                change = self._later.get(timeout=0.5)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            for callback in self._background:
                try:
                    callback(change)
                except Exception:
                    logger.exception("live hub: a background state listener failed")

    def reset(self, why: str) -> None:
        """Start a new numbering from the store (clients get a ``resync`` snapshot)."""
        logger.warning("live hub: resync (%s)", why)
        fresh = load_streams(self.store)
        for entry in fresh.values():
            entry.text()
        with self._lock:
            self.entries = fresh
            self._r = _Ring(self.ring_size)
        self._signal()

    # --- timers -------------------------------------------------------------------------

    def _timer_loop(self) -> None:
        next_refresh = time.monotonic() + self.refresh_interval
        while not self._stop.wait(self.stale_interval):
            try:
                self.sweep_stale()
                if self.refresh_interval and time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + self.refresh_interval
                    self.refresh()
            except Exception:
                logger.exception("live hub: timer failed")

    def sweep_stale(self, now: int | None = None) -> list[Transition]:
        """Mark datastreams without a reading for longer than their ``stale_after``
        stale (a ``state`` delta each); returns the transitions."""
        now = now_us() if now is None else now
        changes = []
        with self._lock:
            for entry in self.entries.values():
                if entry.stale_after is None or entry.time is None or entry.state == STALE:
                    continue
                new = state_at(entry.value, entry.time, entry.thresholds, entry.stale_after, now)
                change = transition(entry.id, entry.state, new, entry.value, entry.time)
                if change is not None:
                    entry.state, entry._text = change.new, None
                    self._state_delta(entry, change)
                    changes.append(change)
        if changes:
            self._signal()
            self._tell(changes)
        return changes

    def refresh(self) -> None:
        """Reload the datastreams' metadata (place, thresholds, names, departments):
        a ``stream`` delta for each new or changed one, ``removed`` for deleted ones."""
        fresh = load_streams(self.store)
        old = self.entries
        for ds, entry in fresh.items():  # outside the lock: keep or make the metadata text
            cur = old.get(ds)
            if cur is not None and cur._static is not None and _meta(cur) == _meta(entry):
                entry._static = cur._static
            else:
                entry.text()
        with self._lock:
            for ds, cur in self.entries.items():
                if ds not in fresh:
                    self._stream_delta(cur, "removed")
            for ds, entry in fresh.items():
                cur = self.entries.get(ds)
                if (
                    cur is not None
                    and cur.time is not None
                    and (entry.time is None or cur.time > entry.time)
                ):
                    # the bus is ahead of the store read: keep the newer reading
                    entry.value, entry.time, entry.state = cur.value, cur.time, cur.state
                    entry._text = None
                if cur is None or _meta(cur) != _meta(entry):
                    self._stream_delta(entry)
            self.entries = fresh
        self._signal()

    # --- waking stream clients ----------------------------------------------------------

    def _signal(self) -> None:
        # the fan-out's writers straight away: a wake-up is one byte on a socket, and
        # each writer coalesces what arrives during its pass into the next one, so going
        # through the notifier (a thread hand-off, then its interval) only added latency
        for wake in list(self._wakeups):
            wake()
        self._dirty.set()

    def _notify_loop(self) -> None:
        # thread-per-stream clients only: ``notify_interval`` bounds their wake-ups
        while not self._stop.is_set():
            self._dirty.wait()
            self._dirty.clear()
            self._waker.wake_all()
            if self.notify_interval:
                time.sleep(self.notify_interval)

    def add_wakeup(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the thread that ringed them, at once; it must not
        block) whenever new deltas are in the ring: how a selector-based writer
        (:mod:`server.sse`) learns of them without a thread waiting per client."""
        self._wakeups.append(callback)

    def remove_wakeup(self, callback: Callable[[], None]) -> None:
        """Undo :meth:`add_wakeup`."""
        if callback in self._wakeups:
            self._wakeups.remove(callback)

    def client_opened(self) -> None:
        """Count a stream client served outside :meth:`stream`."""
        with self._count_lock:
            self.clients += 1

    def client_closed(self) -> None:
        """Undo :meth:`client_opened`."""
        with self._count_lock:
            self.clients -= 1

    def wait(self, cursor: int, epoch: str, timeout: float) -> bool:
        """Block until there are deltas after ``cursor`` (or a new epoch), or timeout."""
        return self._waker.wait(
            lambda: self._r.head > cursor or self._r.epoch != epoch or self._stop.is_set(),
            timeout,
        )

    @property
    def head(self) -> int:
        """The seq of the newest delta."""
        return self._r.head

    @property
    def epoch(self) -> str:
        """The current numbering's name (the first half of event ids)."""
        return self._r.epoch

    # --- reading -----------------------------------------------------------------------

    def snapshot(self, filt: StreamFilter) -> tuple[str, int, list[str]]:
        """``(epoch, seq, entry JSON texts)``: the state of every datastream that
        passes ``filt``, as of delta ``seq``."""
        with self._lock:
            texts = [
                e.text() for e in self.entries.values() if filt.everything or filt.matches(e.key())
            ]
            return self._r.epoch, self._r.head, texts

    def read(self, epoch: str, cursor: int, filt: StreamFilter) -> tuple[list[str], int] | None:
        """Delta texts after ``cursor`` passing ``filt`` and the seq read up to; None
        when ``cursor`` is no longer in the ring (or belongs to another epoch)."""
        r = self._r  # no lock: see _Ring
        head, slots, size = r.head, r.slots, r.size
        if epoch != r.epoch or cursor > head or cursor < head - size:
            return None
        items = [slots[s % size] for s in range(cursor + 1, head + 1)]
        if r.head > cursor + size:
            return None  # the dispatcher wrapped round meanwhile: some slots are newer
        if filt.everything:
            texts = [d.text for d in items if d is not None]
        else:
            texts = [d.text for d in items if d is not None and filt.matches(d.key)]
        return texts, head

    def _delta_event(
        self, epoch: str, cursor: int, head: int, texts: list[str], shared: bool
    ) -> str:
        """The ``delta`` event for ``texts``; unfiltered clients woken together share
        one copy (they were all at the same cursor)."""
        if not shared:
            return f"id: {epoch}:{head}\nevent: delta\ndata: [{','.join(texts)}]\n\n"
        key = (epoch, cursor, head)
        text = self._shared.get(key)
        if text is None:
            text = f"id: {epoch}:{head}\nevent: delta\ndata: [{','.join(texts)}]\n\n"
            if len(self._shared) >= 256:
                self._shared.clear()
            self._shared[key] = text
        return text

    def resume_point(self, last_event_id: str | None) -> int | None:
        """The cursor for a ``Last-Event-ID``, or None when it cannot resume here."""
        if not last_event_id:
            return None
        epoch, _, seq = last_event_id.strip().partition(":")
        r = self._r
        if epoch != r.epoch or not seq.isdigit():
            return None
        cursor = int(seq)
        if cursor > r.head or cursor < r.head - r.size:
            return None
        return cursor

    def open_stream(
        self, filt: StreamFilter, last_event_id: str | None = None, retry_ms: int = 3000
    ) -> tuple[list[str], str, int]:
        """The first chunks of a stream (the ``retry`` hint, and a snapshot unless
        ``last_event_id`` resumes in the ring), and the epoch and cursor it continues
        from."""
        r = self._r
        chunks = [f"retry: {retry_ms}\n\n"]
        cursor = self.resume_point(last_event_id)
        epoch = r.epoch
        if cursor is None:
            chunk, epoch, cursor = self.snapshot_event(filt, bool(last_event_id))
            chunks.append(chunk)
        return chunks, epoch, cursor

    def stream(
        self,
        filt: StreamFilter | None = None,
        last_event_id: str | None = None,
        heartbeat: float = 15.0,
        retry_ms: int = 3000,
    ) -> Iterator[str]:
        """The Server-Sent Events of one client, as text chunks.

        A ``snapshot`` event (``{"resync": bool, "seq", "streams": [...]}``) unless
        ``last_event_id`` resumes in the ring, then ``delta`` events (a JSON array of
        deltas each), every event with ``id: EPOCH:SEQ``; a comment line (and the
        current id) every ``heartbeat`` seconds of silence.
        """
        filt = filt or StreamFilter()
        with self._count_lock:
            self.clients += 1
        try:
            chunks, epoch, cursor = self.open_stream(filt, last_event_id, retry_ms)
            yield from chunks
            while not self._stop.is_set():
                woke = self.wait(cursor, epoch, heartbeat)
                text, epoch, head = self.next_event(filt, epoch, cursor, not woke)
                if text is not None:
                    yield text
                    # at most one write per client per interval: under load, fewer and
                    # larger writes (each costs a thread switch and a system call)
                    if self.notify_interval and head != cursor:
                        time.sleep(self.notify_interval)
                cursor = head
        finally:
            with self._count_lock:
                self.clients -= 1

    def next_event(
        self, filt: StreamFilter, epoch: str, cursor: int, beat: bool
    ) -> tuple[str | None, str, int]:
        """What a client at ``cursor`` gets next: (event text or None, epoch, cursor
        after it). A snapshot when it fell out of the ring; a keepalive with its id
        when ``beat`` and nothing else is due."""
        got = self.read(epoch, cursor, filt)
        if got is None:  # fell out of the ring, or a new numbering
            return self.snapshot_event(filt, True)
        texts, head = got
        if texts:
            return self._delta_event(epoch, cursor, head, texts, filt.everything), epoch, head
        if beat:
            # an id without data moves the client's Last-Event-ID; no event fires
            return f": keepalive\nid: {epoch}:{head}\n\n", epoch, head
        return None, epoch, head

    def snapshot_event(self, filt: StreamFilter, resync: bool) -> tuple[str, str, int]:
        """The ``snapshot`` event's text, its epoch and seq."""
        epoch, seq, texts = self.snapshot(filt)
        head = f'{{"resync":{"true" if resync else "false"},"seq":{seq},"streams":['
        data = head + ",".join(texts) + "]}"
        return f"id: {epoch}:{seq}\nevent: snapshot\ndata: {data}\n\n", epoch, seq
