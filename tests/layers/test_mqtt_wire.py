"""The bulk MQTT reader and acknowledger (layers.mqtt_wire): packet parsing on its own,
and against a real mosquitto: every message once, in order, acknowledged in bulk so
that a reconnect gets nothing again."""

from __future__ import annotations

import struct
import threading
import time
import uuid

from mqtt_fixtures import Broker

from layers.bus import connect_properties, mqtt_client
from layers.mqtt_wire import BufferedSocket, IngestClient, Publish, ingest_client, take_publishes


def publish_packet(topic: str, payload: bytes, qos: int, mid: int = 0, v5: bool = True) -> bytes:
    """A PUBLISH packet as a broker sends it (no properties)."""
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t
    if qos:
        body += struct.pack("!H", mid)
    if v5:
        body += b"\x00"  # property length 0
    body += payload
    return bytes([0x30 | (qos << 1)]) + varint(len(body)) + body


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_take_publishes_reads_consecutive_packets_and_stops_where_paho_must_take_over():
    big = b"x" * 300  # a two-byte remaining length
    buf = (
        publish_packet("v1.1/Datastreams(1)/Observations", b'{"result":1}', 1, mid=7)
        + publish_packet("a/b", big, 0)
        + publish_packet("v1.1/Datastreams(2)/Observations", b"[]", 1, mid=65535)
    )
    got, pos = take_publishes(buf, 0, True, 42)
    assert pos == len(buf)
    assert got == [
        Publish(7, 1, "v1.1/Datastreams(1)/Observations", b'{"result":1}', 42),
        Publish(0, 0, "a/b", big, 42),
        Publish(65535, 1, "v1.1/Datastreams(2)/Observations", b"[]", 42),
    ]
    # an incomplete packet, a QoS 2 one and another packet type stop the pass there
    whole = publish_packet("t", b"12345", 1, mid=3)
    for tail in (whole[:-1], publish_packet("t", b"1", 2, mid=4), b"\xd0\x00"):
        got, pos = take_publishes(whole + tail, 0, True)
        assert [p.mid for p in got] == [3] and pos == len(whole)
    # MQTT 3.1.1 has no property block
    v3 = publish_packet("t/u", b"p", 1, mid=9, v5=False)
    assert take_publishes(v3, 0, False) == ([Publish(9, 1, "t/u", b"p", 0)], len(v3))
    # properties are skipped, not taken for payload
    props = b"\x03\x00\x10application/json"
    t = b"\x00\x01t"
    body = t + b"\x00\x05" + varint(len(props)) + props + b"42"
    pkt = b"\x32" + varint(len(body)) + body
    assert take_publishes(pkt, 0, True)[0] == [Publish(5, 1, "t", b"42", 0)]


class FakeSocket:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.asked: list[int] = []

    def recv(self, n: int) -> bytes:
        self.asked.append(n)
        if not self.chunks:
            raise BlockingIOError
        data = self.chunks.pop(0)
        assert len(data) <= n
        return data

    def fileno(self) -> int:
        return 99


def test_buffered_socket_serves_small_reads_from_one_large_one():
    raw = FakeSocket([b"abcdefgh", b"ij"])
    sock = BufferedSocket(raw)
    assert sock.recv(1) == b"a" and sock.pending() == 7
    assert sock.recv(3) == b"bcd"
    assert sock.recv(10) == b"efgh"  # what is buffered, never more than asked
    assert sock.pending() == 0
    assert sock.recv(10) == b"ij"  # an empty buffer: one real read
    assert len(raw.asked) == 2 and min(raw.asked) >= 256 * 1024
    assert sock.fileno() == 99  # the rest is the socket's
    try:
        sock.recv(1)
    except BlockingIOError:
        pass
    else:
        raise AssertionError("an empty socket must raise BlockingIOError")


def _subscriber(url: str, cid: str) -> IngestClient:
    client, host, port = ingest_client(url, cid)
    subscribed = threading.Event()
    client.on_connect = lambda c, *a: c.subscribe("wire/+/t", 1)
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect(host, port, clean_start=False, properties=connect_properties(True))
    client.loop_start()
    assert subscribed.wait(10)
    return client


def test_bulk_read_and_ack_against_mosquitto(mosquitto: Broker):
    cid = f"wire-{uuid.uuid4().hex[:8]}"
    sub = _subscriber(mosquitto.url, cid)  # creates the persistent session
    sub.disconnect()
    sub.loop_stop()
    pub, host, port = mqtt_client(mosquitto.url, f"pub-{uuid.uuid4().hex[:8]}")
    pub.max_inflight_messages_set(0)
    pub.max_queued_messages_set(0)
    pub.connect(host, port)
    pub.loop_start()
    n = 4000
    # sizes from a few bytes to 1,000: packets straddle the 256 KiB reads
    infos = [pub.publish(f"wire/{i % 7}/t", str(i).encode() * (1 + i % 250), 1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(30)
    pub.loop_stop()
    pub.disconnect()

    got: list[Publish] = []
    bulk_calls = []
    done = threading.Event()

    def on_publishes(client: IngestClient, batch: list[Publish]) -> None:
        bulk_calls.append(len(batch))
        got.extend(batch)
        client.ack_many([p.mid for p in batch])
        if len(got) >= n:
            done.set()

    def on_message(client, userdata, msg) -> None:  # what paho reads itself
        got.append(Publish(msg.mid, msg.qos, msg.topic, msg.payload, 0))
        client.ack(msg.mid, msg.qos)
        if len(got) >= n:
            done.set()

    client, host, port = ingest_client(mosquitto.url, cid)
    client.on_publishes = on_publishes
    client.on_message = on_message
    client.connect(host, port, clean_start=False, properties=connect_properties(True))
    client.loop_start()
    try:
        assert done.wait(60), f"{len(got)} of {n} arrived"
        payloads = [p.payload for p in got]
        assert payloads == [str(i).encode() * (1 + i % 250) for i in range(n)]
        assert [p.topic for p in got[:8]] == [f"wire/{i % 7}/t" for i in range(8)]
        assert len(bulk_calls) < n / 10  # read in bulk, not one call per message
    finally:
        time.sleep(0.3)  # the acknowledgements leave
        client.disconnect()
        client.loop_stop()
    again: list[Publish] = []
    client, host, port = ingest_client(mosquitto.url, cid)
    client.on_publishes = lambda c, batch: again.extend(batch)
    client.on_message = lambda c, u, m: again.append(m)
    client.connect(host, port, clean_start=False, properties=connect_properties(True))
    client.loop_start()
    time.sleep(1.0)
    client.disconnect()
    client.loop_stop()
    assert again == [], "acknowledged messages were delivered again"


def test_buffered_socket_counts_what_a_tls_socket_holds_and_maps_its_want_read():
    import ssl

    class TlsLike(FakeSocket):
        def pending(self) -> int:
            return 5  # decrypted, not yet read: select would not see it

        def recv(self, n: int) -> bytes:
            if not self.chunks:
                raise ssl.SSLWantReadError()
            return super().recv(n)

    sock = BufferedSocket(TlsLike([b"abc"]))
    assert sock.pending() == 5
    assert sock.fill() == 3 and sock.pending() == 8
    sock.pos = 3
    try:
        sock.fill()
    except BlockingIOError:
        pass
    else:
        raise AssertionError("a TLS want-read must read as 'nothing yet'")
