"""Readings in over MQTT: the SensorThings topics, stored before they are acknowledged.

When ``[live] mqtt`` names a broker, the server subscribes to
``v1.1/Datastreams(ID)/Observations`` (and the ``v1.0`` form) at QoS 1, in a
*persistent* session (MQTT 5, fixed client id, a session that never expires), with
manual acknowledgement: a message is acknowledged (PUBACK) only after the readings it
carries are committed to the store (or rejected for good). A server killed before that
leaves the message unacknowledged in its session, and the broker delivers it again
when the server reconnects; the store recognises a reading it already holds (same
datastream, phenomenon time and result), so nothing is stored twice.

A message's payload is an Observation as in the SensorThings MQTT extension
(``{"result": 3.2, "phenomenonTime": "2024-05-01T08:00:00Z"}``) or, as an extension, a
JSON array of them. A reading without ``phenomenonTime`` is stamped with the time the
server received it; such a reading cannot be recognised when it is redelivered after
a crash, so senders that need exactly-once should send ``phenomenonTime``.

Messages are stored in batches (up to ``batch_max`` messages, or what arrived within
``batch_wait`` seconds), one transaction each, then acknowledged together in the order
they arrived. Bad readings are rejected with a reason and counted (see
:func:`layers.ingest.ingest`); they never hold a batch back.

The network side is :class:`layers.mqtt_wire.IngestClient`: paho-mqtt with PUBLISH
packets read in bulk from a buffered socket and the PUBACKs of a batch sent in one
write (paho's per-message path cost 60–150 µs of CPU per message).

Who may publish to which datastream is the broker's business (mosquitto's
``acl_file``): the server stores what arrives on the topics.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from cim.errors import CimError
from layers.bus import connect_properties
from layers.ingest import BatchOutcome, ReadingColumns, ingest_columns
from layers.mqtt_wire import IngestClient, Publish, ingest_client
from layers.sta.times import format_instant
from layers.store.base import Department, Store

logger = logging.getLogger(__name__)

#: the SensorThings MQTT topics (``+`` spans one level: ``Datastreams(12)``)
TOPICS = ("v1.1/+/Observations", "v1.0/+/Observations")
_TOPIC = re.compile(r"^(?:\$share/[^/]+/)?v1\.[01]/Datastreams\((\d+)\)/Observations$")

#: the principal MQTT readings are stored as (the broker's ACLs decide who publishes)
MQTT_PRINCIPAL = Department("mqtt", "MQTT ingest", role="admin")


@dataclass
class Announced:
    """A stored reading, as :meth:`layers.live.LiveHub.publish_committed` takes it."""

    datastream_id: int
    phenomenon_time: int
    result: Any


@dataclass
class Stored:
    """The store's verdict on an announced reading."""

    id: int
    duplicate: bool


@dataclass
class IngestCounters:
    """What the MQTT ingest did since it started."""

    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    acked: int = 0
    store_errors: int = 0
    #: seconds spent checking, committing and acknowledging (the rest is waiting)
    busy_s: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "messages": self.messages,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "batches": self.batches,
            "acked": self.acked,
            "storeErrors": self.store_errors,
            "busySeconds": round(self.busy_s, 3),
            "reasons": dict(self.reasons),
        }


#: optional Observation members → :class:`ReadingColumns` columns
_OPTIONAL = (
    ("resultTime", "result_time"),
    ("resultQuality", "result_quality"),
    ("validTime", "valid_time"),
    ("parameters", "parameters"),
)


def parse_message(
    topic: str, payload: bytes, received_us: int
) -> tuple[ReadingColumns | None, str | None]:
    """The readings of one MQTT message as columns, or a reason why it carries none.

    The payload is parsed by orjson (the standard parser where orjson refuses, e.g. the
    ``NaN`` token some devices send, so that reading alone is rejected by the checks).
    The checks themselves are :func:`layers.ingest.check`'s, for the whole batch at
    once. :func:`parse_messages` does the same for many messages.

    Parameters
    ----------
    topic : str
        ``v1.1/Datastreams(ID)/Observations``.
    payload : bytes
        An Observation in JSON, or a JSON array of them.
    received_us : int
        When it arrived (µs), the phenomenon time of readings that carry none.

    Returns
    -------
    (ReadingColumns or None, str or None)
        The readings (an item that is no Observation gets a missing result: rejected by
        the checks), or None and the reason.
    """
    cols, why = parse_messages([(topic, payload, received_us)])
    if why[0] is not None:
        return None, why[0]
    return cols, None


#: the members every Observation may carry without a column of its own
_PLAIN = frozenset(("result", "phenomenonTime"))


def _datastream_of(topic: str, cache: dict[str, int | None]) -> int | None:
    ds = cache.get(topic, -1)
    if ds == -1:
        m = _TOPIC.match(topic)
        ds = cache[topic] = None if m is None else int(m.group(1))
    return ds  # type: ignore[return-value]


def _loads(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:
            return json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return _MALFORMED


_MALFORMED = object()
_TOPICS_SEEN: dict[str, int | None] = {}


def parse_messages(
    messages: list[tuple[str, bytes, int]],
) -> tuple[ReadingColumns, list[str | None]]:
    """The readings of many MQTT messages as one batch of columns.

    One pass over the messages, appending to the columns directly (no object per
    message or per reading); a column for an optional member (``resultTime``,
    ``FeatureOfInterest``, ...) is made only when some reading carries it.

    Parameters
    ----------
    messages : list of (topic, payload, received_us)

    Returns
    -------
    (ReadingColumns, list of str or None)
        The readings of every message that carries some, in order, and per message
        None or the reason it carries none (not a SensorThings topic, not JSON).
    """
    ds_col: list[Any] = []
    results: list[Any] = []
    times: list[Any] = []
    extras: list[tuple[int, dict]] = []  # readings with members beyond _PLAIN
    why: list[str | None] = []
    cache = _TOPICS_SEEN if len(_TOPICS_SEEN) < 100_000 else {}
    for topic, payload, received_us in messages:
        ds = _datastream_of(topic, cache)
        if ds is None:
            why.append(f"not a SensorThings Observations topic: {topic!r}")
            continue
        body = _loads(payload)
        if body is _MALFORMED:
            why.append("malformed: the payload is not JSON")
            continue
        why.append(None)
        for it in body if type(body) is list else (body,):
            if type(it) is not dict:
                it = {}  # no Observation: a missing result, rejected by the checks
            ds_col.append(ds)
            results.append(it.get("result"))
            times.append(it.get("phenomenonTime") or format_instant(received_us))
            if not it.keys() <= _PLAIN:
                extras.append((len(results) - 1, it))
    cols = ReadingColumns(ds_col, results)
    cols.phenomenon_time = times
    if extras:
        _optional_columns(cols, extras)
    return cols, why


def _optional_columns(cols: ReadingColumns, extras: list[tuple[int, dict]]) -> None:
    present: set[str] = set().union(*(it for _, it in extras))
    n = len(cols)
    for member, column in _OPTIONAL:
        if member in present:
            values: list[Any] = [None] * n
            for i, it in extras:
                values[i] = it.get(member)
            setattr(cols, column, values)
    if "FeatureOfInterest" in present:
        fois: list[Any] = [None] * n
        for i, it in extras:
            f = it.get("FeatureOfInterest")
            fois[i] = f.get("@iot.id") if type(f) is dict else None
        cols.foi_id = fois


class MqttIngest:
    """Subscribe to the SensorThings topics and store what arrives, ack after commit.

    Parameters
    ----------
    store : Store
        The live store.
    url : str
        The broker, ``mqtt://host:port``.
    client_id : str
        Fixed, so the broker keeps this server's session (and its unacknowledged
        messages) across restarts. Two server processes need two ids (or ``share``).
    on_commit : callable, optional
        ``on_commit(rows, results)`` after each commit, before the acknowledgements
        (:meth:`layers.live.LiveHub.publish_committed`).
    batch_max : int
        Messages per transaction at most (each carries one reading or an array).
    batch_wait : float
        Seconds to wait for more messages before committing a partial batch.
    share : str, optional
        An MQTT 5 shared-subscription group: the broker spreads the messages over the
        server processes subscribed in the group.
    """

    def __init__(
        self,
        store: Store,
        url: str,
        client_id: str = "cim-ingest",
        on_commit: Callable[[list[Announced], list[Stored]], None] | None = None,
        batch_max: int = 5000,
        batch_wait: float = 0.01,
        share: str | None = None,
    ) -> None:
        self.store = store
        self.url = url
        self.client_id = client_id
        self.on_commit = on_commit
        self.batch_max = batch_max
        self.batch_wait = batch_wait
        self.topics = [f"$share/{share}/{t}" if share else t for t in TOPICS]
        self.counters = IngestCounters()
        self._queue: deque[Publish] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._client: IngestClient | None = None
        self._worker: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> MqttIngest:
        """Connect (in the background, retrying) and start storing."""
        client, host, port = ingest_client(self.url, self.client_id)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publishes = self._on_publishes
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.connect_async(
            host, port, keepalive=30, clean_start=False, properties=connect_properties(True)
        )
        self._client = client
        self._worker = threading.Thread(target=self._work, name="mqtt-ingest", daemon=True)
        self._worker.start()
        client.loop_start()
        return self

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        """Whether the subscription is in place within ``timeout`` seconds."""
        return self._subscribed.wait(timeout)

    def stop(self) -> None:
        """Stop: messages not yet committed stay unacknowledged (the broker keeps them)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(30)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    # --- paho callbacks (its network thread: never block here) --------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            logger.warning("MQTT ingest: the broker refused the connection: %s", reason)
            return
        client.subscribe([(t, 1) for t in self.topics])
        logger.info(
            "MQTT ingest: connected as %s (session %s)",
            self.client_id,
            "resumed" if flags.session_present else "new",
        )

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._subscribed.clear()
        if not self._stop.is_set():
            logger.warning("MQTT ingest: lost the broker (%s); reconnecting", reason)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        item = Publish(msg.mid, msg.qos, msg.topic, msg.payload, time.time_ns() // 1000)
        with self._cond:
            self._queue.append(item)
            if len(self._queue) >= self.batch_max:
                self._cond.notify()

    def _on_publishes(self, client: IngestClient, batch: list[Publish]) -> None:
        with self._cond:
            self._queue.extend(batch)
            if len(self._queue) >= self.batch_max:
                self._cond.notify()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        if all(not c.is_failure for c in codes):
            self._subscribed.set()
        else:
            logger.warning("MQTT ingest: the broker refused the subscription: %s", codes)

    # --- the worker ---------------------------------------------------------------------

    def _take(self) -> list[Publish]:
        """The next batch: up to ``batch_max`` messages, waiting ``batch_wait`` for more."""
        with self._cond:
            if not self._queue:
                self._cond.wait(0.2)
            if not self._queue:
                return []
            if len(self._queue) < self.batch_max and self.batch_wait:
                self._cond.wait(self.batch_wait)
            n = min(len(self._queue), self.batch_max)
            return [self._queue.popleft() for _ in range(n)]

    def _work(self) -> None:
        while not self._stop.is_set():
            batch = self._take()
            if not batch:
                continue
            t0 = time.perf_counter()
            if not self._store(batch):
                return  # stopping before the commit: leave them unacknowledged
            self.counters.busy_s += time.perf_counter() - t0

    def _store(self, batch: list[Publish]) -> bool:
        """Commit a batch's readings, announce them, then acknowledge its messages."""
        bad: dict[str, int] = {}
        found, reasons = parse_messages([(m.topic, m.payload, m.received_us) for m in batch])
        if reasons.count(None) != len(reasons):
            for m, why in zip(batch, reasons, strict=True):
                if why is not None:
                    key = why.split(":")[0]
                    bad[key] = bad.get(key, 0) + 1
                    logger.info("MQTT ingest: rejected a message on %s: %s", m.topic, why)
        cols = found if len(found) else None
        outcome = self._commit(cols, bad)
        if outcome is None:
            return False
        self._count(batch, outcome, bad)
        if self.on_commit is not None and cols is not None:
            rows, results = _announcements(cols, outcome)
            if rows:
                try:
                    self.on_commit(rows, results)
                except Exception:  # the readings are stored: a live-view failure must not
                    logger.exception("MQTT ingest: announcing a batch failed")
        client = self._client
        client.ack_many([m.mid for m in batch if m.qos == 1])  # one write for the batch
        for m in batch:
            if m.qos == 2:
                client.ack(m.mid, 2)
        self.counters.acked += len(batch)
        return True

    def _commit(self, cols: ReadingColumns | None, bad: dict[str, int]) -> BatchOutcome | None:
        """Store the readings, retrying while the store fails; None when stopping."""
        delay = 0.1
        while True:
            try:
                if cols is not None:
                    outcome = ingest_columns(self.store, MQTT_PRINCIPAL, cols)
                else:
                    outcome = BatchOutcome([], [], [], [])
                if bad:
                    self.store.count_rejections(bad)
                return outcome
            except (CimError, OSError, RuntimeError) as exc:
                self.counters.store_errors += 1
                logger.warning("MQTT ingest: the store failed (%s); retrying", exc)
            except Exception as exc:  # database driver errors: keep the messages, retry
                self.counters.store_errors += 1
                logger.warning("MQTT ingest: the store failed (%r); retrying", exc)
            if self._stop.wait(delay):
                return None
            delay = min(delay * 2, 5.0)

    def _count(self, batch: list[Publish], outcome: BatchOutcome, bad: dict[str, int]) -> None:
        c = self.counters
        c.messages += len(batch)
        c.batches += 1
        for key, n in bad.items():
            c.rejected += n
            c.reasons[key] = c.reasons.get(key, 0) + n
        errors = len(outcome.errors) - outcome.errors.count(None)
        duplicates = outcome.duplicate.count(True)
        c.rejected += errors
        c.duplicates += duplicates
        c.stored += len(outcome) - errors - duplicates
        if errors:
            for e in outcome.errors:
                if e is not None:
                    key = e.split(":")[0][:60]
                    c.reasons[key] = c.reasons.get(key, 0) + 1


def _announcements(
    cols: ReadingColumns, outcome: BatchOutcome
) -> tuple[list[Announced], list[Stored]]:
    """The readings stored for the first time, with their stored phenomenon times."""
    times = outcome.times or [None] * len(outcome)
    fresh = [
        i
        for i, (oid, dup) in enumerate(zip(outcome.ids, outcome.duplicate, strict=True))
        if oid is not None and not dup
    ]
    ds, results, ids = cols.datastream_id, cols.result, outcome.ids
    rows = [Announced(ds[i], times[i], results[i]) for i in fresh]  # type: ignore[arg-type]
    return rows, [Stored(ids[i], False) for i in fresh]  # type: ignore[arg-type]
