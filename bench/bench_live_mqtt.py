"""Benchmark: MQTT ingest throughput, committed before acknowledged (target ≥ 20,000/s).

Starts a mosquitto broker of its own (Debian's ``mosquitto``) in a temporary folder and
a live store (SQLite in the same folder, or ``--store postgresql://...``) with
``--streams`` datastreams. The ingest connects once to create its persistent session
and stops; ``--readings`` readings are then published at QoS 1 (one reading per
message, or ``--per-message`` in a JSON array) while it is away, so the broker holds
them all; then the ingest starts again and the time from its start until every
reading is committed and acknowledged gives readings/s: the ingest's own pace, not
the publisher's. Prints readings/s, batches, and the check that the store holds
exactly ``--readings`` observations.

    .venv/bin/python bench/bench_live_mqtt.py
    .venv/bin/python bench/bench_live_mqtt.py --readings 200000 --per-message 10
    .venv/bin/python bench/bench_live_mqtt.py --store postgresql://user@127.0.0.1:5432/db
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--per-message", type=int, default=1)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--batch-max", type=int, default=5000)
    ap.add_argument("--store", help="a postgresql:// URL (default: SQLite in a temp folder)")
    args = ap.parse_args()

    from bench_live_stream import make_world, start_broker

    from layers.bus import mqtt_client
    from layers.mqtt_ingest import MqttIngest
    from layers.store import open_store

    folder = Path(tempfile.mkdtemp(prefix="cim-bench-mqtt-"))
    broker = start_broker(folder)
    try:
        store = open_store(args.store or str(folder / "live.sqlite"))
        ds = make_world(store, args.streams)
        cid = "bench-ingest"
        ingest = MqttIngest(store, broker.url, client_id=cid, batch_max=args.batch_max).start()
        assert ingest.wait_subscribed(), "the ingest could not subscribe"
        ingest.stop()

        pub, host, port = mqtt_client(broker.url, "bench-publisher")
        pub.max_inflight_messages_set(0)  # unlimited: paho rescans its queue per ack below that
        pub.max_queued_messages_set(0)
        pub.connect(host, port)
        pub.loop_start()
        t0 = time.perf_counter()
        base = 1_700_000_000
        infos = []
        k = args.per_message
        for m in range(args.readings // k):
            items = []
            for j in range(k):
                i = m * k + j
                sec, frac = divmod(i, 1000)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + sec))
                items.append({"result": (i % 1000) / 10, "phenomenonTime": f"{stamp}.{frac:03d}Z"})
            payload = json.dumps(items[0] if k == 1 else items).encode()
            infos.append(
                pub.publish(f"v1.1/Datastreams({ds[m % len(ds)]})/Observations", payload, 1)
            )
        for info in infos:
            info.wait_for_publish(120)
        n = len(infos) * k
        print(f"published {n} readings in {len(infos)} messages "
              f"({n / (time.perf_counter() - t0):,.0f}/s); the ingest was away")  # fmt: skip
        pub.loop_stop()
        pub.disconnect()

        t0 = time.perf_counter()
        ingest = MqttIngest(store, broker.url, client_id=cid, batch_max=args.batch_max).start()
        while ingest.counters.acked < len(infos) and time.perf_counter() - t0 < 600:
            time.sleep(0.01)
        dt = time.perf_counter() - t0
        ingest.stop()
        with store.transaction() as tx:
            stored = int(tx.scalar("SELECT count(*) FROM observations"))
        c = ingest.counters
        print(
            f"MQTT ingest ({store.dialect}): {c.stored:,} readings committed and "
            f"acknowledged in {dt:.2f} s = {c.stored / dt:,.0f} readings/s "
            f"({c.batches} batches, {c.duplicates} duplicates, {c.rejected} rejected; "
            f"the storing thread busy {c.busy_s:.2f} s)"
        )
        print(f"store holds {stored:,} observations (expected {n:,}): "
              f"{'OK' if stored == n else 'MISMATCH'}")  # fmt: skip
        store.close()
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
