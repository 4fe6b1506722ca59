"""A paho-mqtt client that receives PUBLISH packets in bulk and acknowledges in bulk.

paho-mqtt reads a packet with at least three ``recv`` calls (one byte of command, the
length byte by byte, then the rest), goes back to ``select`` after every packet, and
builds an ``MQTTMessage`` with a parsed ``Properties`` object for each; acknowledging
one message queues one PUBACK and wakes its network thread through a socket pair. At
one reading per message that costs 60–150 µs of CPU per message on a modest core,
and the many GIL hand-overs between that thread and the thread that commits readings
make it worse (the storing thread holds the GIL while the network thread waits for it
after every system call).

:class:`IngestClient` keeps paho for everything (connection, session, subscriptions,
keep-alive, reconnects) but:

- reads the socket through :class:`BufferedSocket`, one ``recv`` of up to 256 KiB at a
  time; ``pending()`` tells paho's loop not to wait in ``select`` while bytes are
  buffered (the protocol paho already uses for TLS and WebSocket sockets);
- takes every complete PUBLISH at QoS 0 or 1 at the head of that buffer in one pass and
  hands them to ``on_publishes`` as one list of :class:`Publish` (other packets, QoS 2
  and a packet not yet complete go through paho's own reader);
- :meth:`IngestClient.ack_many` queues the PUBACKs of a whole batch as one write.

Relies on paho-mqtt 2.x internals (``_packet_read``, ``_in_packet``, ``_packet_queue``);
setup.cfg pins ``paho-mqtt>=2,<3`` and the tests exercise the path against mosquitto.
"""

from __future__ import annotations

import logging
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt

from layers.bus import mqtt_address

logger = logging.getLogger(__name__)

_PUBLISH = 0x30
_PUBACK = 0x40
_READ_SIZE = 256 * 1024
_PUBACK_PACK = struct.Struct("!BBH").pack


class Publish(NamedTuple):
    """One PUBLISH received: packet id (0 at QoS 0), QoS, topic, payload, and when it
    was read (µs since the epoch)."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received_us: int


class BufferedSocket:
    """A socket read ahead in large chunks; paho asks ``pending()`` before ``select``.

    Parameters
    ----------
    sock : socket-like
        The connected (non-blocking) socket; everything but ``recv`` and ``pending``
        is passed through to it.
    """

    __slots__ = ("_inner_pending", "_sock", "buf", "pos")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.buf = b""
        self.pos = 0
        # a TLS socket holds decrypted bytes of its own that select cannot see
        self._inner_pending = getattr(sock, "pending", None)

    def recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes, from the buffer first (one real ``recv`` when empty)."""
        pos = self.pos
        if pos >= len(self.buf):
            data = self._sock.recv(max(bufsize, _READ_SIZE))
            if len(data) <= bufsize:
                return data
            self.buf, pos = data, 0
        end = min(pos + bufsize, len(self.buf))
        self.pos = end
        return self.buf[pos:end]

    def fill(self) -> int:
        """Read what the socket has when the buffer is empty; the bytes now buffered.

        Raises ``BlockingIOError`` when nothing is there, ``ConnectionError`` when the
        peer closed the connection.
        """
        if self.pos < len(self.buf):
            return len(self.buf) - self.pos
        try:
            data = self._sock.recv(_READ_SIZE)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as err:
            raise BlockingIOError from err
        if not data:
            raise ConnectionError("the broker closed the connection")
        self.buf, self.pos = data, 0
        return len(data)

    def pending(self) -> int:
        """Bytes received and not yet read (here, or inside a TLS socket)."""
        inner = self._inner_pending() if self._inner_pending is not None else 0
        return len(self.buf) - self.pos + inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """An MQTT variable byte integer at ``pos``: (value, next position), or (-1, pos)."""
    value = 0
    shift = 0
    for i in range(pos, min(pos + 4, end)):
        b = buf[i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i + 1
        shift += 7
    return -1, pos


def take_publishes(
    buf: bytes, pos: int, v5: bool, received_us: int = 0
) -> tuple[list[Publish], int]:
    """The complete PUBLISH packets at QoS 0/1 from ``pos`` on, and where they stop.

    Stops at the first packet that is something else, QoS 2, malformed or not yet
    complete: paho's own reader takes it from there.

    Parameters
    ----------
    buf : bytes
        Received bytes.
    pos : int
        Where the next packet starts.
    v5 : bool
        MQTT 5 (a property block after the packet id).
    received_us : int
        The time stamp every :class:`Publish` gets.

    Returns
    -------
    (list of Publish, int)
    """
    out: list[Publish] = []
    end = len(buf)
    while pos + 2 <= end:
        first = buf[pos]
        qos = (first >> 1) & 3
        if first & 0xF0 != _PUBLISH or qos == 2:
            break
        length, body = _varint(buf, pos + 1, end)
        if length < 0 or body + length > end:
            break
        stop = body + length
        tlen = (buf[body] << 8) | buf[body + 1] if length >= 2 else -1
        p = body + 2 + tlen
        mid = 0
        if qos:
            if tlen < 0 or p + 2 > stop:
                break
            mid = (buf[p] << 8) | buf[p + 1]
            p += 2
        if v5:
            plen, p = _varint(buf, p, stop)
            if plen < 0:
                break
            p += plen
        if tlen < 0 or p > stop:
            break
        try:
            topic = buf[body + 2 : body + 2 + tlen].decode()
        except UnicodeDecodeError:
            break  # paho decides what a bad topic means
        out.append(Publish(mid, qos, topic, buf[p:stop], received_us))
        pos = stop
    return out, pos


class IngestClient(mqtt.Client):
    """paho's client with bulk reading of PUBLISH packets and bulk acknowledgement.

    Set ``on_publishes(client, list[Publish])``: it is called in paho's network thread
    with the messages in the order they arrived; acknowledge QoS 1 messages with
    :meth:`ack_many` (manual acknowledgement is switched on). Messages paho reads itself
    (QoS 2, or while a packet is split across reads) still go to ``on_message``.
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.manual_ack_set(True)
        self.on_publishes: Callable[[IngestClient, list[Publish]], None] | None = None

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if self._transport == "websockets":
            return sock
        return BufferedSocket(sock)

    def _packet_read(self) -> mqtt.MQTTErrorCode:
        sock = self._sock
        if (
            type(sock) is not BufferedSocket
            or self._in_packet["command"] != 0
            or self.on_publishes is None
        ):
            return super()._packet_read()
        try:
            sock.fill()
        except BlockingIOError:
            return mqtt.MQTTErrorCode.MQTT_ERR_AGAIN
        except OSError as err:  # ConnectionError included
            logger.info("MQTT: the connection failed while reading: %s", err)
            return mqtt.MQTTErrorCode.MQTT_ERR_CONN_LOST
        now_us = time.time_ns() // 1000
        batch, sock.pos = take_publishes(sock.buf, sock.pos, self._protocol == mqtt.MQTTv5, now_us)
        if batch:
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
            self.on_publishes(self, batch)
        if sock.pending():  # another kind of packet, or one not complete yet
            return super()._packet_read()
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: list[int]) -> None:
        """Acknowledge QoS 1 messages (PUBACK, reason success) in one write."""
        if not mids:
            return
        data = b"".join([_PUBACK_PACK(_PUBACK, 2, m) for m in mids])
        self._packet_queue(_PUBACK, data, 0, 0)


def ingest_client(url: str, client_id: str) -> tuple[IngestClient, str, int]:
    """An :class:`IngestClient` speaking MQTT 5 for ``url``, and its host and port.

    The same settings as :func:`layers.bus.mqtt_client` (credentials, TLS).

    Parameters
    ----------
    url : str
        ``mqtt://[user:password@]host[:port]`` (``mqtts://`` for TLS).
    client_id : str
        Fixed for a persistent session.
    """
    host, port, user, password, tls = mqtt_address(url)
    client = IngestClient(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    if user is not None:
        client.username_pw_set(user, password)
    if tls:
        client.tls_set()
    return client, host, port
