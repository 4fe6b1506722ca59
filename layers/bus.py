"""The live bus: committed readings and state changes fanned out to whoever listens.

One interface, two implementations:

- :class:`InProcessBus` (the default): thread-safe fan-out inside one server process;
- :class:`MqttBus` (``[live] mqtt = "mqtt://host:port"``): every message goes through
  the broker, so several server processes share one stream (each also hears its own
  messages back, in the broker's order, which is the same for everyone).

A message is a small JSON object (a *delta*: ``{"kind": "observation", "ds": 12,
"value": 3.2, "time": 1700000000000, ...}``); messages are published in batches (a
list: one commit's readings) and delivered in the same batches. Subscribers have
bounded queues: a subscriber that falls behind never blocks the publisher; its queue
is dropped and its next :meth:`Subscription.get` raises :class:`ResyncNeededError`, after
which it must rebuild its state from the store and carry on.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from abc import ABC, abstractmethod
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

from cim.errors import ConfigError

logger = logging.getLogger(__name__)

Message = dict[str, Any]

#: MQTT topic carrying the live deltas between server processes
DELTA_TOPIC = "cim/live/v1/deltas"


class ResyncNeededError(Exception):
    """The subscriber missed messages (it fell behind, or the bus lost its broker)."""


class Subscription:
    """One subscriber's bounded queue of message batches.

    Parameters
    ----------
    bus : Bus
        The bus it belongs to.
    maxsize : int
        Batches held at most; one more and the queue is dropped (see :class:`ResyncNeededError`).
    """

    def __init__(self, bus: Bus, maxsize: int) -> None:
        self._bus = bus
        self.maxsize = maxsize
        self._queue: deque[list[Message]] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._dropped = False
        self.closed = False
        #: how many times this subscriber was dropped for falling behind
        self.drops = 0

    def offer(self, batch: list[Message]) -> None:
        """Queue a batch without ever blocking (publisher side)."""
        with self._cond:
            if self.closed:
                return
            if self._dropped:
                return  # it will resync from the store: later batches are in there too
            if len(self._queue) >= self.maxsize:
                self._queue.clear()
                self._dropped = True
                self.drops += 1
            else:
                self._queue.append(batch)
            self._cond.notify()

    def drop(self) -> None:
        """Ask this subscriber to resync (e.g. the bus lost messages)."""
        with self._cond:
            self._queue.clear()
            self._dropped = True
            self.drops += 1
            self._cond.notify()

    def get(self, timeout: float | None = None) -> list[Message] | None:
        """The next batch, or None after ``timeout`` seconds (or once closed).

        Raises
        ------
        ResyncNeededError
            Once after the subscriber was dropped; the queue then starts afresh.
        """
        with self._cond:
            if not self._queue and not self._dropped and not self.closed:
                self._cond.wait(timeout)
            if self._dropped:
                self._dropped = False
                raise ResyncNeededError("the subscriber fell behind; rebuild from the store")
            return self._queue.popleft() if self._queue else None

    def pending(self) -> int:
        """Batches waiting in the queue."""
        with self._cond:
            return len(self._queue)

    def close(self) -> None:
        """Stop receiving; a waiting :meth:`get` returns None."""
        with self._cond:
            self.closed = True
            self._queue.clear()
            self._cond.notify_all()
        self._bus._remove(self)


class Bus(ABC):
    """Publish batches of messages; subscribe to receive them in order."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._subs_lock = threading.Lock()

    def subscribe(self, maxsize: int = 1024) -> Subscription:
        """A new subscription receiving every batch published from now on."""
        sub = Subscription(self, maxsize)
        with self._subs_lock:
            self._subs = [*self._subs, sub]
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._subs_lock:
            self._subs = [s for s in self._subs if s is not sub]

    def _fan_out(self, batch: list[Message]) -> None:
        for sub in self._subs:  # a copy-on-write list: no lock while offering
            sub.offer(batch)

    def _drop_all(self) -> None:
        for sub in self._subs:
            sub.drop()

    @abstractmethod
    def publish(self, batch: list[Message]) -> None:
        """Send a batch of messages to every subscriber (never blocks on a subscriber)."""

    def close(self) -> None:
        """Release the bus's resources; subscribers stop receiving."""
        for sub in list(self._subs):
            sub.close()


class InProcessBus(Bus):
    """Fan-out between the threads of one process."""

    def publish(self, batch: list[Message]) -> None:
        if batch:
            self._fan_out(batch)


def mqtt_address(url: str) -> tuple[str, int, str | None, str | None, bool]:
    """``(host, port, user, password, tls)`` of an ``mqtt://`` or ``mqtts://`` URL.

    Raises
    ------
    ConfigError
        When the URL is not an MQTT URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"an MQTT broker URL looks like 'mqtt://host:1883', not {url!r}")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ConfigError(f"bad port in the MQTT broker URL {url!r}") from exc
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, user, password, tls


def mqtt_client(url: str, client_id: str, **kw: Any) -> tuple[Any, str, int]:
    """A configured (not yet connected) paho-mqtt ≥ 2 client speaking MQTT 5, and the
    host and port to connect it to.

    Parameters
    ----------
    url : str
        ``mqtt://[user:password@]host[:port]`` (``mqtts://`` for TLS).
    client_id : str
        Fixed for a persistent session, so the broker recognises it after a restart.
    **kw
        Passed to ``paho.mqtt.client.Client``.
    """
    import paho.mqtt.client as mqtt

    host, port, user, password, tls = mqtt_address(url)
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        **kw,
    )
    if user is not None:
        client.username_pw_set(user, password)
    if tls:
        client.tls_set()
    return client, host, port


def connect_properties(persistent: bool, receive_maximum: int = 65535) -> Any:
    """MQTT 5 CONNECT properties: session expiry (persistent sessions) and how many
    unacknowledged QoS 1 messages the broker may have in flight to us."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    if persistent:
        props.SessionExpiryInterval = 0xFFFFFFFF  # never expires: nothing queued is lost
    props.ReceiveMaximum = receive_maximum
    return props


class MqttBus(Bus):
    """The bus over an MQTT broker, shared by every server process connected to it.

    Batches are published as JSON arrays on :data:`DELTA_TOPIC` at QoS 1 and reach the
    local subscribers when they come back from the broker. When the connection drops,
    every subscriber is asked to resync (messages may have been missed meanwhile).

    Parameters
    ----------
    url : str
        The broker (``[live] mqtt``).
    topic : str
        Where the deltas travel.
    """

    def __init__(self, url: str, topic: str = DELTA_TOPIC, connect_timeout: float = 10.0) -> None:
        super().__init__()
        self.topic = topic
        self.url = url
        self._connected = threading.Event()
        self._client, host, port = mqtt_client(url, f"cim-bus-{uuid.uuid4().hex[:12]}")
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.connect_async(
            host, port, keepalive=30, clean_start=True, properties=connect_properties(False)
        )
        self._client.loop_start()
        if not self._connected.wait(connect_timeout):
            logger.warning("live bus: broker %s not reachable yet; retrying", _safe(url))

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            logger.warning("live bus: broker refused the connection: %s", reason)
            return
        client.subscribe(self.topic, qos=1)
        self._connected.set()
        logger.info("live bus connected to %s", _safe(self.url))

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if self._connected.is_set():
            logger.warning("live bus: lost the broker (%s); subscribers resync", reason)
        self._connected.clear()
        self._drop_all()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            batch = json.loads(msg.payload)
        except (ValueError, UnicodeDecodeError):
            logger.warning("live bus: ignored a malformed message on %s", msg.topic)
            return
        if isinstance(batch, list) and batch:
            self._fan_out(batch)

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected.is_set()

    def publish(self, batch: list[Message]) -> None:
        if not batch:
            return
        payload = json.dumps(batch, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        info = self._client.publish(self.topic, payload.encode(), qos=1)
        if info.rc != 0:
            # not connected: the local subscribers would miss it, so they resync
            logger.warning("live bus: publish failed (rc %s); subscribers resync", info.rc)
            self._drop_all()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        super().close()


def open_bus(mqtt_url: str | None = None) -> Bus:
    """The bus for a ``[live] mqtt`` setting: MQTT when a broker is named, else in-process."""
    return MqttBus(mqtt_url) if mqtt_url else InProcessBus()


def _safe(url: str) -> str:
    """The URL without a password, for logs."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
