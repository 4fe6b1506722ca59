"""Benchmark: live delivery latency from acknowledgement to the SSE client.

Target: p99 ≤ 100 ms with 500 clients connected and 2,000 readings/s flowing.

A child process runs the server as ``cim serve`` does (the app under waitress, 16
worker threads: the streams are handed over to the fan-out of ``server.sse``;
``--thread-per-stream`` measures the old way, one waitress thread per stream) over a
SQLite store with ``--streams`` datastreams, and a feeder thread that commits
``--rate`` readings/s in batches every ``--batch-ms`` (larger ones when a commit took
longer than that, so that the rate flows; ``layers.ingest.ingest``, as the
SensorThings API does; the store's commit listener hands them to
``LiveHub.publish_committed``; with ``--mqtt`` the readings go through a mosquitto
broker of the bench's own to the server's MQTT ingest instead). Each delta carries
``ack``, the wall-clock time right after its commit,
before the sender is acknowledged. ``--clients`` SSE connections, spread over
``--client-procs`` processes, read the stream; the latency of a delta is its arrival
time minus its ``ack``. Prints p50/p90/p99/max, deltas delivered and missed, and
resyncs; and the server-side time to build the snapshot of every datastream.

    .venv/bin/python bench/bench_live_stream.py                    # 500 clients, 2000/s
    .venv/bin/python bench/bench_live_stream.py --clients 100 --seconds 10
    .venv/bin/python bench/bench_live_stream.py --streams 10000 --clients 10   # snapshot
    .venv/bin/python bench/bench_live_stream.py --no-alarm-cases   # alarms open no cases

Besides the latency it prints the CPU of the server process (per second and per
reading fed) and of the bench's own client processes, and the load average: on a
shared machine the wall-clock figures say more about the neighbours than the code.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
DEPTS = ("water", "police", "traffic", "energy")


# --- shared helpers (also used by bench_live_mqtt.py) ----------------------------------


def make_world(store: Any, n: int) -> list[int]:
    """``n`` sensors (Thing + Location + Datastream) over four departments on a grid
    around the sample city; thresholds on every datastream. Returns datastream ids."""
    from layers.sta.model import ENTITY_SETS
    from layers.sta.write import Creator
    from layers.store import Department

    ids = []
    side = max(1, int(n**0.5))
    with store.transaction(write=True) as tx:
        creator = Creator(tx, Department("boss", "boss", role="admin"))
        sensor = creator.create(
            ENTITY_SETS["Sensors"],
            {"name": "probe", "description": "", "encodingType": "text/html", "metadata": "-"},
        )
        props = [
            creator.create(
                ENTITY_SETS["ObservedProperties"],
                {
                    "name": f"property {k}",
                    "definition": f"http://example.org/{k}",
                    "description": "",
                },
            )
            for k in range(len(DEPTS))
        ]
        for i in range(n):
            k = i % len(DEPTS)
            lon, lat = 113.0 + (i % side) * 0.001, 37.8 + (i // side) * 0.001
            thing = creator.create(
                ENTITY_SETS["Things"],
                {"name": f"sensor {i}", "description": "", "Locations": [{
                    "name": "here", "description": "", "encodingType": "application/geo+json",
                    "location": {"type": "Point", "coordinates": [lon, lat]}}]},
            )  # fmt: skip
            ds = creator.create(
                ENTITY_SETS["Datastreams"],
                {"name": f"sensor {i}", "description": "", "observationType": MEASUREMENT,
                 "unitOfMeasurement": {"name": "metre", "symbol": "m", "definition": "m"},
                 "properties": {"thresholds": {"warn_high": 80, "alarm_high": 95}},
                 "Thing": {"@iot.id": thing}, "Sensor": {"@iot.id": sensor},
                 "ObservedProperty": {"@iot.id": props[k]}},
            )  # fmt: skip
            tx.execute("UPDATE datastreams SET department = ? WHERE id = ?", [DEPTS[k], ds])
            ids.append(ds)
    return ids


@dataclass
class BenchBroker:
    """A mosquitto of the bench's own."""

    url: str
    proc: subprocess.Popen

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_broker(folder: Path) -> BenchBroker:
    """Start mosquitto in ``folder`` on a free port (persistent sessions, no queue limit)."""
    import pwd

    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(exe, os.X_OK):
        sys.exit("mosquitto is not installed (Debian: mosquitto; scripts/setup.sh --browser)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
        f"persistence true\npersistence_location {folder}/\nmax_queued_messages 0\n"
        "max_inflight_messages 0\nset_tcp_nodelay true\n"
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return BenchBroker(f"mqtt://127.0.0.1:{port}", proc)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("mosquitto did not start")


# --- the server child ------------------------------------------------------------------


def serve_child(args: argparse.Namespace) -> None:
    """The server process: waitress + the app + the feeder; prints JSON lines."""
    from server import create_app
    from server.blueprints.live import live_runtime
    from server.wsgi import create_server

    if args.switch_ms:
        sys.setswitchinterval(args.switch_ms / 1000)
    app = create_app(
        {
            "LIVE_NOTIFY_INTERVAL": None if args.notify_ms < 0 else args.notify_ms / 1000,
            "LIVE_STORE": args.store,
            "THREADS": args.clients + 16 if args.thread_per_stream else 16,
            "LIVE_STREAM_FANOUT": not args.thread_per_stream,
            "LIVE_STREAM_THREADS": args.fanout_threads,
            "LIVE_MAX_STREAMS": args.clients + 8,
            "CONNECTION_LIMIT": args.clients + 200,
            "LIVE_MQTT": args.mqtt or "",
            "EVENTS_FROM_ALARMS": not args.no_alarm_cases,
        }
    )
    rt = live_runtime(app)
    srv = create_server(app, "127.0.0.1", 0)
    print(json.dumps({"port": srv.effective_port}), flush=True)
    threading.Thread(target=feed, args=(rt, args), daemon=True).start()
    srv.run()


def feed(rt: Any, args: argparse.Namespace) -> None:
    import numpy as np

    from layers.ingest import Reading, ingest
    from layers.live import StreamFilter
    from layers.sta.times import format_instant
    from layers.store import Department

    hub, store = rt.hub, rt.hub.store
    end = time.monotonic() + 300
    while rt.streams < args.clients and time.monotonic() < end:
        time.sleep(0.05)
    snap, snap_cpu, snap_bytes = [], [], 0
    for k in range(6):
        if k >= 3:  # every datastream changed since the last snapshot: no cached text
            for e in hub.entries.values():
                e._text = None
        t0, c0 = time.perf_counter(), time.thread_time()
        text = hub.snapshot_event(StreamFilter(), False)[0]
        snap.append(time.perf_counter() - t0)
        snap_cpu.append(time.thread_time() - c0)
        snap_bytes = len(text.encode())
    ids = sorted(hub.entries)
    admin = Department("boss", "boss", role="admin")
    pub = None
    if args.mqtt:
        from layers.bus import mqtt_client

        pub, host, port = mqtt_client(args.mqtt, "bench-feeder")
        pub.max_inflight_messages_set(0)  # unlimited: paho rescans its queue per ack below that
        pub.connect(host, port)
        pub.loop_start()
    period = args.batch_ms / 1000
    per_batch = max(1, round(args.rate * period))
    commit_ms = []
    fed = 0
    t_start = time.time()
    cpu0, wall0 = time.process_time(), time.monotonic()
    t_first = t_next = time.monotonic()
    t_end = t_next + args.seconds
    rnd = random.Random(1)
    while time.monotonic() < t_end:
        # the readings due by now: a commit slower than the period (a loaded machine)
        # makes the next batch larger, so the rate asked for is the rate that flows
        due = int(args.rate * (time.monotonic() - t_first)) + per_batch - fed
        n = min(max(due, 0), max(per_batch, int(args.rate)))
        now = time.time_ns() // 1000
        readings = [
            Reading(rnd.choice(ids), round(rnd.uniform(0, 100), 2), format_instant(now + j))
            for j in range(n)
        ]
        t0 = time.perf_counter()
        if pub is not None:
            for r in readings:
                body = json.dumps({"result": r.result, "phenomenonTime": r.phenomenon_time})
                pub.publish(f"v1.1/Datastreams({r.datastream_id})/Observations", body, qos=1)
        elif readings:  # what the SensorThings API does; the store announces the commit
            ingest(store, admin, readings)
        commit_ms.append((time.perf_counter() - t0) * 1000)
        fed += n
        t_next += period
        time.sleep(max(0.0, t_next - time.monotonic()))
    cm = np.array(commit_ms)
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    print(
        json.dumps(
            {
                "fed": fed,
                "start": t_start * 1000,
                "end": time.time() * 1000,
                "snapshot_ms": [round(s * 1000, 1) for s in snap],
                "snapshot_cpu_ms": [round(s * 1000, 1) for s in snap_cpu],
                "snapshot_bytes": snap_bytes,
                "streams": len(ids),
                "commit_p50": float(np.percentile(cm, 50)),
                "commit_p99": float(np.percentile(cm, 99)),
                "head": hub.head,
                "cpu_per_s": cpu / wall,
                "load": os.getloadavg()[0],
                "fanout": None if rt._fanout is None else rt._fanout.stats(),
                "hub": hub.stats(),
            }
        ),
        flush=True,
    )


# --- the SSE clients -------------------------------------------------------------------

_ACK = re.compile(rb'"ack":([0-9.]+)')


def client_proc(port: int, n: int, probes: int, stop: Any, out: str, ready: Any) -> None:
    """``n`` SSE connections in one selector loop; ``probes`` of them (spread evenly)
    parse every delta and save (ack, latency) pairs, the others read and count bytes
    (so that the clients' own parsing does not delay what they measure)."""
    import numpy as np

    # the clients stand for screens on other machines: their wake-ups must not preempt
    # the server on the cores they share here (each send to a waiting client would
    # otherwise hand the CPU to it, which a server on its own host never sees)
    if hasattr(os, "SCHED_BATCH"):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    sel = selectors.DefaultSelector()
    req = b"GET /api/live/stream HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"
    tails: dict[int, bytes] = {}
    every = max(1, n // max(1, probes))
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, data=i % every == 0)
        tails[s.fileno()] = b""
    ready.set()
    cpu0, wall0 = time.process_time(), time.monotonic()
    acks: list[Any] = []
    lats: list[Any] = []
    snapshots = 0
    received = 0
    while not stop.is_set():
        for key, _ in sel.select(0.2):
            sock = key.fileobj
            try:
                data = sock.recv(1 << 20)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            now = time.time() * 1000
            if not data:
                sel.unregister(sock)
                continue
            received += len(data)
            if not key.data:
                continue  # not a probe
            fd = sock.fileno()  # type: ignore[union-attr]
            data = tails[fd] + data
            cut = data.rfind(b"\n") + 1
            whole, tails[fd] = data[:cut], data[cut:]
            snapshots += whole.count(b'"resync":true')
            found = _ACK.findall(whole)
            if found:
                a = np.array(list(map(float, found)))
                acks.append(a)
                lats.append(now - a)
    a = np.concatenate(acks) if acks else np.zeros(0)
    lat = np.concatenate(lats) if lats else np.zeros(0)
    cpu_per_s = (time.process_time() - cpu0) / max(time.monotonic() - wall0, 1e-9)
    np.savez(out, ack=a, lat=lat, snapshots=snapshots, received=received, cpu_per_s=cpu_per_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--rate", type=float, default=2000, help="readings per second")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--warmup", type=float, default=2, help="seconds not measured")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--batch-ms", type=float, default=10)
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--probes", type=int, default=50, help="clients that parse and measure")
    ap.add_argument("--switch-ms", type=float, default=0, help="sys.setswitchinterval (ms)")
    ap.add_argument(
        "--notify-ms",
        type=float,
        default=-1,
        help="LIVE_NOTIFY_INTERVAL (ms; 0: a pass per wake-up; default: the app's, 20)",
    )
    ap.add_argument("--mqtt", action="store_true", help="feed through a mosquitto broker")
    ap.add_argument("--fanout-threads", type=int, default=2, help="LIVE_STREAM_THREADS")
    ap.add_argument(
        "--no-alarm-cases",
        action="store_true",
        help="EVENTS_FROM_ALARMS = false: alarms open no city-event cases (one write each)",
    )
    ap.add_argument(
        "--thread-per-stream", action="store_true", help="one waitress thread per stream (old)"
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        serve_child(args)
        return
    import numpy as np

    from layers.store import open_store

    folder = Path(tempfile.mkdtemp(prefix="cim-bench-live-"))
    broker = start_broker(folder) if args.mqtt else None
    child = None
    try:
        store_path = str(folder / "live.sqlite")
        t0 = time.perf_counter()
        store = open_store(store_path)
        make_world(store, args.streams)
        store.close()
        print(f"{args.streams} datastreams created in {time.perf_counter() - t0:.1f} s")
        cmd = [sys.executable, __file__, "--child", "--store", store_path,
               "--clients", str(args.clients), "--rate", str(args.rate),
               "--seconds", str(args.seconds), "--batch-ms", str(args.batch_ms),
               "--switch-ms", str(args.switch_ms), "--notify-ms", str(args.notify_ms),
               "--fanout-threads", str(args.fanout_threads)]  # fmt: skip
        if args.no_alarm_cases:
            cmd.append("--no-alarm-cases")
        if args.thread_per_stream:
            cmd.append("--thread-per-stream")
        if broker is not None:
            cmd += ["--mqtt", broker.url]
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT)
        assert child.stdout is not None
        port = json.loads(child.stdout.readline())["port"]
        ctx = mp.get_context("fork")
        stop = ctx.Event()
        procs, outs = [], []
        per = [args.clients // args.client_procs] * args.client_procs
        per[0] += args.clients - sum(per)
        for k, n in enumerate(per):
            out = str(folder / f"client{k}.npz")
            ready = ctx.Event()
            p = ctx.Process(
                target=client_proc,
                args=(port, n, args.probes // args.client_procs, stop, out, ready),
            )
            p.start()
            ready.wait(120)
            procs.append(p)
            outs.append(out)
        print(f"{args.clients} SSE clients connected; feeding {args.rate:.0f} readings/s "
              f"for {args.seconds:.0f} s")  # fmt: skip
        stats = json.loads(child.stdout.readline())
        time.sleep(2)  # the last deltas arrive
        stop.set()
        for p in procs:
            p.join(60)
    finally:
        if child is not None:
            child.kill()
            child.wait()
        if broker is not None:
            broker.stop()
    parts = [np.load(o) for o in outs if os.path.exists(o)]
    ack = np.concatenate([p["ack"] for p in parts])
    lat = np.concatenate([p["lat"] for p in parts])
    snapshots = sum(int(p["snapshots"]) for p in parts)
    mbytes = sum(int(p["received"]) for p in parts) / 1e6
    client_cpu = sum(float(p["cpu_per_s"]) for p in parts)
    window = (ack >= stats["start"] + args.warmup * 1000) & (ack <= stats["end"])
    lw = lat[window]
    probes = max(1, min(args.probes, args.clients))
    fed_measured = int(window.sum()) / probes
    sw, sc = stats["snapshot_ms"], stats["snapshot_cpu_ms"]
    mb = stats["snapshot_bytes"] / 1e6
    print(f"server: snapshot of {stats['streams']} datastreams ({mb:.2f} MB): unchanged "
          f"{min(sw[:3])} ms wall / {min(sc[:3])} ms CPU; every value changed "
          f"{min(sw[3:])}-{max(sw[3:])} ms wall / {min(sc[3:])}-{max(sc[3:])} ms CPU "
          f"(target <= 100 ms: {'MET' if max(sc[3:]) <= 100 else 'NOT MET'} in CPU time, "
          f"{'MET' if max(sw[3:]) <= 100 else 'NOT MET'} in wall-clock time)")  # fmt: skip
    print(f"feeder commits: p50 {stats['commit_p50']:.1f} ms, p99 {stats['commit_p99']:.1f} ms; "
          f"{stats['fed']:,} readings fed ({stats['fed'] / args.seconds:,.0f}/s)")  # fmt: skip
    fed_per_s = stats["fed"] / args.seconds
    print(f"server process CPU per reading fed: {stats['cpu_per_s'] / fed_per_s * 1e6:.0f} µs "
          f"(store, hub, alarm cases unless --no-alarm-cases, fan-out to {args.clients} "
          f"streams)")  # fmt: skip
    print(f"server process CPU while feeding: {stats['cpu_per_s']:.2f} s per s (feeder, "
          f"commits, hub, stream writers); the bench's {len(parts)} client processes "
          f"{client_cpu:.2f} s per s; load average {stats['load']:.1f} on "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    print(f"server hub (ack → ring): {stats['hub']}")
    if stats.get("fanout"):
        print(f"server fan-out: {stats['fanout']}")
    deliveries = len(lat)
    expected = stats["fed"] * probes
    print(f"readings delivered to the {probes} probe clients: {deliveries:,} of {expected:,} "
          f"({100 * deliveries / max(1, expected):.1f}%); {mbytes:,.0f} MB to all clients; "
          f"resync snapshots (probes): {snapshots}")  # fmt: skip
    if len(lw):
        p50, p90, p99 = np.percentile(lw, [50, 90, 99])
        print(f"latency ack → SSE client ({args.clients} clients, {args.rate:.0f} readings/s, "
              f"{fed_measured:,.0f} measured per probe): p50 {p50:.1f} ms, p90 {p90:.1f} ms, "
              f"p99 {p99:.1f} ms, max {lw.max():.1f} ms")  # fmt: skip
        print("target p99 <= 100 ms:", "MET" if p99 <= 100 else "NOT MET")
    else:
        print("no deltas measured")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
