"""Benchmark: CPU of the L2 tile encoding alone (what the pool workers run).

Builds a synthetic city of N footprints once in-process (``jobs=1``, the inputs of
``bench/bench_l2.py``), keeps every tile task the L2 stage made, with its rows as a
worker reads them from the stage's rows files, then encodes them all again in this
process after a pickle round trip (``tiling.buildings.l2._encode_tile``: WKB →
extrusion → glb → file). Prints
the best CPU seconds of ``--repeat`` passes, per 100,000 buildings, in the build
process and in a fresh process (a pool worker's memory state), and a digest of all
tiles' bytes (equal digests: identical tiles). CPU time, not wall time: the
figure to compare on a shared machine.

    .venv/bin/python bench/bench_l2_encode.py 100000 [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import hashlib
import os
import pickle
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.synthetic import l2_city  # noqa: E402


def capture(n: int) -> list:
    """The L2 tile tasks of a one-job build of the synthetic city of ``n``."""
    import tiling.buildings.l2 as l2
    from cim.build import build_project

    toml = l2_city(n)
    tasks = []
    encode = l2._encode_tile

    def keep(task):
        tasks.append(task.load() if isinstance(task, l2._TileRef) else task)
        return encode(task)

    l2._encode_tile = keep
    try:
        build_project(str(toml), jobs=1, progress=False, force=True)
    finally:
        l2._encode_tile = encode
    return tasks


def encode(tasks: list, repeat: int) -> tuple[float, list]:
    """Best CPU seconds of ``repeat`` passes over ``tasks``, and the last pass's results."""
    import tiling.buildings.l2 as l2

    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        results = [l2._encode_tile(t) for t in tasks]
        best = min(best, time.process_time() - start)
    return best, results


def worker(path: str, repeat: int) -> None:
    """The encoding in a fresh process, as a pool worker runs it (prints its CPU-s)."""
    with open(path, "rb") as f:
        tasks = pickle.load(f)
    print(encode(tasks, repeat)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile by tottime")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.repeat)
    tasks = capture(args.n)
    out = Path(tempfile.mkdtemp(prefix="bench_l2_encode_"))
    try:
        measure(tasks, out, args.repeat, args.profile)
    finally:
        shutil.rmtree(out)  # the bench's own temporary folder


def measure(tasks: list, out: Path, repeat: int, profiled: bool) -> None:
    """Encode ``tasks`` into ``out`` (best of ``repeat``, here and in a fresh process)."""
    import tiling.buildings.l2 as l2

    (out / "content").mkdir()
    tasks = [
        dataclasses.replace(t, shared=dataclasses.replace(t.shared, out_dir=str(out)))
        for t in tasks
    ]
    (out / "tasks.pickle").write_bytes(pickle.dumps(tasks, protocol=5))
    tasks = pickle.loads((out / "tasks.pickle").read_bytes())  # what a worker gets
    buildings = sum(len(t.base) for t in tasks)
    print(f"load average before: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    best, results = encode(tasks, repeat)
    digest = hashlib.blake2b(digest_size=16)
    for key, _ in sorted(results):
        digest.update((out / "content" / f"{l2._content_name(key)}.glb").read_bytes())
    fresh = subprocess.run(
        [sys.executable, __file__, "--worker", str(out / "tasks.pickle"), "--repeat",
         str(repeat)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    alone = float(fresh.stdout.split()[-1])
    print(
        f"{len(tasks)} tiles, {buildings:,} buildings, best of {repeat}: encoding "
        f"{best:.2f} CPU-s in the build process ({best / buildings * 1e5:.2f} per 100,000), "
        f"{alone:.2f} CPU-s in a fresh process like a pool worker "
        f"({alone / buildings * 1e5:.2f} per 100,000); tiles digest {digest.hexdigest()}"
    )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if profiled:
        profile = cProfile.Profile(time.process_time)
        profile.runcall(lambda: [l2._encode_tile(t) for t in tasks])
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
