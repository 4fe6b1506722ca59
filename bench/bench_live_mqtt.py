"""Benchmark: MQTT ingest throughput, committed before acknowledged (target ≥ 20,000/s).

Starts a mosquitto broker of its own (Debian's ``mosquitto``) in a temporary folder and
a live store (SQLite in the same folder, then a throw-away PostgreSQL from Debian's
binaries as the tests start it; ``--stores sqlite`` for one, or ``--store
postgresql://...`` for a database of yours) with
``--streams`` datastreams. The ingest connects once to create its persistent session
and stops; ``--readings`` readings are then published at QoS 1 (one reading per
message, or ``--per-message`` in a JSON array) while it is away, so the broker holds
them all; then the ingest starts again and the time from its start until every
reading is committed and acknowledged gives readings/s: the ingest's own pace, not
the publisher's. Before that, one message goes through the whole path (imports and
caches warm, as in a running server). Prints readings/s (wall), the CPU seconds of the
ingest process and of the broker over the same interval, the load average, batches,
and the check that the store holds exactly ``--readings`` observations.

    .venv/bin/python bench/bench_live_mqtt.py
    .venv/bin/python bench/bench_live_mqtt.py --readings 200000 --per-message 10
    .venv/bin/python bench/bench_live_mqtt.py --stores sqlite --readings 20000
    .venv/bin/python bench/bench_live_mqtt.py --store postgresql://user@127.0.0.1:5432/db
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "layers"))


# QoS 1 messages the publisher leaves unconfirmed at once (MQTT ids are 16-bit)
_MAX_OUTSTANDING = 50_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--per-message", type=int, default=1)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--batch-max", type=int, default=5000)
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--store", help="an existing empty postgresql:// database instead")
    args = ap.parse_args()
    stores = args.stores.split(",")
    if args.store:
        run(args.store, args)
        return
    if "sqlite" in stores:
        with tempfile.TemporaryDirectory() as d:
            run(str(Path(d) / "live.sqlite"), args)
    if "postgresql" in stores:
        from pgserver import pg_missing, start_pg, stop_pg

        why = pg_missing()
        if why:
            print(f"postgresql: skipped ({why})", file=sys.stderr)
            return
        server = start_pg()
        try:
            pid_file = server.folder / "data" / "postmaster.pid"
            run(server.fresh_database(), args, int(pid_file.read_text().split()[0]))
        finally:
            stop_pg(server)


def run(store_url: str, args: argparse.Namespace, db_pid: int | None = None) -> None:
    """Publish while the ingest is away, then time the ingest storing it all."""
    from bench_live_ingest import tree_cpu_seconds
    from bench_live_stream import make_world, start_broker

    from layers.bus import mqtt_client
    from layers.mqtt_ingest import MqttIngest
    from layers.store import open_store

    folder = Path(tempfile.mkdtemp(prefix="cim-bench-mqtt-"))
    broker = start_broker(folder)
    try:
        store = open_store(store_url)
        ds = make_world(store, args.streams)
        cid = "bench-ingest"
        ingest = MqttIngest(store, broker.url, client_id=cid, batch_max=args.batch_max).start()
        assert ingest.wait_subscribed(), "the ingest could not subscribe"
        warm_up(ingest, broker.url, ds[0])
        ingest.stop()
        warm = ingest.counters.stored

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
            if m >= _MAX_OUTSTANDING:  # message ids wrap at 65,535: paho refuses a reused one
                infos[m - _MAX_OUTSTANDING].wait_for_publish(120)
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

        db0 = tree_cpu_seconds(db_pid) if db_pid else 0.0
        t0, cpu0, bcpu0 = time.perf_counter(), _cpu(), _proc_cpu(broker.proc.pid)
        ingest = MqttIngest(store, broker.url, client_id=cid, batch_max=args.batch_max).start()
        while ingest.counters.acked < len(infos) and time.perf_counter() - t0 < 600:
            time.sleep(0.005)
        dt = time.perf_counter() - t0
        cpu, bcpu = _cpu() - cpu0, _proc_cpu(broker.proc.pid) - bcpu0
        db = tree_cpu_seconds(db_pid) - db0 if db_pid else None
        ingest.stop()
        n += warm
        with store.transaction() as tx:
            stored = int(tx.scalar("SELECT count(*) FROM observations"))
        c = ingest.counters
        print(
            f"MQTT ingest ({store.dialect}, {k} per message): {c.stored:,} readings committed "
            f"and acknowledged in {dt:.2f} s = {c.stored / dt:,.0f} readings/s "
            f"({c.batches} batches, {c.duplicates} duplicates, {c.rejected} rejected; "
            f"the storing thread busy {c.busy_s:.2f} s)"
        )
        db_text = "" if db is None else f"; PostgreSQL {db / max(c.stored, 1) * 1e6:.1f} µs/reading"
        print(
            f"CPU: ingest process {cpu:.2f} s = {cpu / max(c.stored, 1) * 1e6:.1f} µs/reading "
            f"({c.stored / max(cpu, 1e-9):,.0f} readings per CPU-second); broker {bcpu:.2f} s"
            f"{db_text}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        print(f"store holds {stored:,} observations (expected {n:,}): "
              f"{'OK' if stored == n else 'MISMATCH'}")  # fmt: skip
        store.close()
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


def warm_up(ingest: object, url: str, datastream: int) -> None:
    """One reading through broker, ingest and store before the timed part."""
    from layers.bus import mqtt_client

    pub, host, port = mqtt_client(url, "bench-warm-up")
    pub.connect(host, port)
    pub.loop_start()
    body = json.dumps({"result": 1.0, "phenomenonTime": "2020-01-01T00:00:00Z"}).encode()
    pub.publish(f"v1.1/Datastreams({datastream})/Observations", body, 1).wait_for_publish(30)
    deadline = time.monotonic() + 30
    while ingest.counters.acked < 1 and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    pub.loop_stop()
    pub.disconnect()


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
