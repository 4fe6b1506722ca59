"""The live bus: in-process fan-out and MQTT between processes (layers.bus)."""

from __future__ import annotations

import threading
import time

import pytest

from cim.errors import ConfigError
from layers.bus import InProcessBus, MqttBus, ResyncNeededError, mqtt_address, open_bus


def drain(sub, n: int, timeout: float = 5.0) -> list:
    out: list = []
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        batch = sub.get(timeout=0.2)
        if batch:
            out.extend(batch)
    return out


def test_in_process_fan_out_in_order():
    bus = InProcessBus()
    a, b = bus.subscribe(), bus.subscribe()
    for i in range(100):
        bus.publish([{"i": i}, {"i": i, "second": True}])
    bus.publish([])  # nothing to send
    for sub in (a, b):
        got = drain(sub, 200)
        assert [m["i"] for m in got] == [i for i in range(100) for _ in (0, 1)]
        assert sub.get(timeout=0.01) is None
    bus.close()


def test_subscribers_only_get_what_comes_after_they_subscribe():
    bus = InProcessBus()
    early = bus.subscribe()
    bus.publish([{"n": 1}])
    late = bus.subscribe()
    bus.publish([{"n": 2}])
    assert [m["n"] for m in drain(early, 2)] == [1, 2]
    assert [m["n"] for m in drain(late, 1)] == [2]


def test_a_slow_subscriber_never_blocks_the_publisher_and_is_asked_to_resync():
    bus = InProcessBus()
    slow = bus.subscribe(maxsize=10)
    fast = bus.subscribe(maxsize=100_000)
    got: list = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            batch = fast.get(timeout=0.1)
            if batch:
                got.extend(batch)

    t = threading.Thread(target=reader)
    t.start()
    start = time.monotonic()
    for i in range(20_000):
        bus.publish([{"i": i}])
    assert time.monotonic() - start < 5.0  # the slow one never read: no blocking
    end = time.monotonic() + 5
    while len(got) < 20_000 and time.monotonic() < end:
        time.sleep(0.01)
    stop.set()
    t.join()
    assert [m["i"] for m in got] == list(range(20_000))
    assert slow.pending() == 0  # its queue was dropped, not kept growing
    with pytest.raises(ResyncNeededError):
        slow.get(timeout=0.1)
    assert slow.drops == 1
    bus.publish([{"i": "after"}])  # after the resync it receives again
    assert drain(slow, 1) == [{"i": "after"}]


def test_concurrent_publishers_keep_each_ones_order():
    bus = InProcessBus()
    sub = bus.subscribe(maxsize=100_000)

    def publish(name: str) -> None:
        for i in range(2000):
            bus.publish([{"p": name, "i": i}])

    threads = [threading.Thread(target=publish, args=(str(k),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = drain(sub, 8000)
    assert len(got) == 8000
    for k in range(4):
        assert [m["i"] for m in got if m["p"] == str(k)] == list(range(2000))


def test_closed_subscription_returns_none_and_receives_nothing():
    bus = InProcessBus()
    sub = bus.subscribe()
    waiter: list = []
    t = threading.Thread(target=lambda: waiter.append(sub.get(timeout=5)))
    t.start()
    time.sleep(0.05)
    sub.close()
    t.join(2)
    assert waiter == [None]
    bus.publish([{"x": 1}])
    assert sub.pending() == 0


def test_mqtt_address():
    assert mqtt_address("mqtt://broker") == ("broker", 1883, None, None, False)
    assert mqtt_address("mqtts://u:p%40ss@b.example:9999") == ("b.example", 9999, "u", "p@ss", True)
    assert mqtt_address("mqtts://b")[1] == 8883
    for bad in ("http://x:1883", "mqtt://", "mqtt://x:notaport"):
        with pytest.raises(ConfigError):
            mqtt_address(bad)


def test_open_bus_picks_the_implementation():
    assert isinstance(open_bus(None), InProcessBus)


def test_mqtt_bus_shares_one_stream_between_processes(mosquitto):
    # two buses on one broker stand for two server processes
    one, two = MqttBus(mosquitto.url), MqttBus(mosquitto.url)
    try:
        assert one.connected and two.connected
        time.sleep(0.2)  # the subscriptions settle
        s1, s2 = one.subscribe(), two.subscribe()
        for i in range(50):
            (one if i % 2 else two).publish([{"i": i, "text": "水位"}])
        got1, got2 = drain(s1, 50), drain(s2, 50)
        assert [m["i"] for m in got1] == [m["i"] for m in got2]  # the broker's order, shared
        assert sorted(m["i"] for m in got1) == list(range(50))
        assert got1[0]["text"] == "水位"
    finally:
        one.close()
        two.close()


def test_mqtt_bus_losing_the_broker_asks_subscribers_to_resync(tmp_path):
    from mqtt_fixtures import start_broker

    with start_broker(tmp_path) as broker:
        bus = MqttBus(broker.url)
        sub = bus.subscribe()
        broker.proc.terminate()
        broker.proc.wait(10)
        end = time.monotonic() + 10
        raised = False
        while time.monotonic() < end and not raised:
            try:
                sub.get(timeout=0.2)
            except ResyncNeededError:
                raised = True
        bus.close()
    assert raised
