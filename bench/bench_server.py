"""Benchmark: static tile serving to 500 concurrent keep-alive clients on loopback.

Starts ``cim serve``'s WSGI stack (the Flask app under :func:`server.wsgi.create_server`,
waitress with the server config's connection settings) in a child process. Then
``--clients`` asyncio clients (default 500) first all connect, so that every
connection is open at once (the live view keeps one per screen), and then each
fetches ``--requests`` tile files on its keep-alive HTTP/1.1 connection (glb,
terrain, imagery: every file under tiles/, terrain/ and imagery/ of the output,
round robin). Fails unless every client got every answer. Prints requests/s, MB/s,
p50/p99 latency, and the same for 304 (ETag revalidation).

    .venv/bin/python bench/bench_server.py                        # build the sample city
    .venv/bin/python bench/bench_server.py --project demo/city.toml --clients 500 --requests 20
    .venv/bin/python bench/bench_server.py --fixture
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys
from server import create_app
from server.wsgi import create_server
cfg = json.loads(sys.argv[1])
import logging
logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth" notes
create_server(create_app(cfg["config"]), "127.0.0.1", cfg["port"]).run()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _output(args: argparse.Namespace, tmp: Path) -> Path:
    if args.fixture:
        spec = importlib.util.spec_from_file_location(
            "bench_fixture_city", ROOT / "tests" / "server" / "fixture_city.py"
        )
        assert spec and spec.loader
        fx = importlib.util.module_from_spec(spec)
        sys.modules["bench_fixture_city"] = fx
        spec.loader.exec_module(fx)
        return fx.write_fixture_output(tmp / "output")
    from cim.build import build_project
    from cim.config import load_project

    if args.project:
        return load_project(args.project).output
    from cim.sample import write_sample

    project = write_sample(tmp / "sample")
    build_project(project, jobs=2, progress=False)
    return load_project(project).output


def _paths(output: Path) -> list[str]:
    paths = []
    for sub in ("tiles", "terrain", "imagery"):
        for p in sorted((output / sub).rglob("*")):
            if p.is_file():
                paths.append("/data/" + p.relative_to(output).as_posix())
    if not paths:
        raise SystemExit(f"no tiles under {output}")
    random.Random(0).shuffle(paths)  # the mix of glb, terrain and imagery a view requests
    return paths


async def _client(
    port: int,
    paths: list[str],
    start: int,
    n: int,
    etags: dict[str, str] | None,
    connected: list[int],
    go: asyncio.Event,
) -> tuple[list[float], int, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    connected[0] += 1
    await go.wait()  # every client holds its connection before any asks
    latencies: list[float] = []
    nbytes = 0
    not_modified = 0
    for i in range(n):
        path = paths[(start + i) % len(paths)]
        extra = f"If-None-Match: {etags[path]}\r\n" if etags and path in etags else ""
        t = time.perf_counter()
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n{extra}\r\n"
        writer.write(request.encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        close = False
        for line in head.split(b"\r\n"):
            low = line.lower()
            if low.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            elif low.startswith(b"connection:") and b"close" in low:
                close = True
        if length and status != 304:
            await reader.readexactly(length)
        if close:  # waitress closes the connection after a 304 (no Content-Length)
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        latencies.append(time.perf_counter() - t)
        nbytes += length
        if status == 304:
            not_modified += 1
        elif status != 200:
            raise RuntimeError(f"{path}: HTTP {status}")
    writer.close()
    await writer.wait_closed()
    return latencies, nbytes, not_modified


async def _load(
    port: int, paths: list[str], clients: int, per_client: int, etags: dict[str, str] | None
) -> dict[str, Any]:
    connected = [0]
    go = asyncio.Event()
    tasks = [
        asyncio.create_task(_client(port, paths, c * 7, per_client, etags, connected, go))
        for c in range(clients)
    ]
    deadline = time.perf_counter() + 30
    while connected[0] < clients and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    held = connected[0]
    go.set()
    t = time.perf_counter()
    results = await asyncio.gather(*tasks)
    wall = time.perf_counter() - t
    lat = sorted(x for r in results for x in r[0])
    total = len(lat)
    if held < clients or total != clients * per_client:
        raise SystemExit(
            f"FAILED: {held}/{clients} connections held, {total}/{clients * per_client} answers"
        )
    return {
        "held": held,
        "requests": total,
        "seconds": wall,
        "rps": total / wall,
        "mb_s": sum(r[1] for r in results) / wall / 1e6,
        "p50_ms": statistics.median(lat) * 1000,
        "p99_ms": lat[int(0.99 * (total - 1))] * 1000,
        "not_modified": sum(r[2] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", help="a built city.toml (default: build the sample city)")
    parser.add_argument("--fixture", action="store_true", help="use the tiny generated city")
    parser.add_argument(
        "--clients", type=int, default=500, help="concurrent keep-alive connections"
    )
    parser.add_argument("--requests", type=int, default=20, help="per client")
    parser.add_argument("--threads", type=int, default=16, help="waitress threads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        output = _output(args, Path(tmpdir))
        paths = _paths(output)
        port = _free_port()
        config = {"OUTPUT_DIR": str(output), "THREADS": args.threads}
        config["CONNECTION_LIMIT"] = max(1000, args.clients + 100)
        cfg = {"config": config, "port": port}
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(cfg)], cwd=ROOT, env=dict(os.environ)
        )
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            etags = {}
            conn = http.client.HTTPConnection("127.0.0.1", port)
            for p in paths:  # one keep-alive connection, HEAD: ETags without bodies
                conn.request("HEAD", p, headers={"Accept-Encoding": "gzip"})
                resp = conn.getresponse()
                resp.read()
                etags[p] = resp.headers["ETag"]
            conn.close()
            sizes = [(output / p[len("/data/") :]).stat().st_size for p in paths]
            print(
                f"{len(paths)} tile files, mean {statistics.mean(sizes) / 1e3:.1f} kB; "
                f"{args.clients} clients x {args.requests} requests; waitress "
                f"{args.threads} threads; {os.cpu_count()} cpus, "
                f"load {os.getloadavg()[0]:.2f}"
            )
            for name, tags in (("GET 200", None), ("revalidate 304", etags)):
                r = asyncio.run(_load(port, paths, args.clients, args.requests, tags))
                print(
                    f"{name}: {r['held']} connections held, all answered: "
                    f"{r['requests']} requests in {r['seconds']:.2f} s = "
                    f"{r['rps']:.0f} req/s, {r['mb_s']:.1f} MB/s, p50 {r['p50_ms']:.1f} ms, "
                    f"p99 {r['p99_ms']:.1f} ms, 304s {r['not_modified']}"
                )
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
