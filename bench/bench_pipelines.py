"""Benchmark of the pipelines stage: a surveyed network of ~100,000 segments → 3D Tiles.

Usage::

    .venv/bin/python bench/bench_pipelines.py                  # ~100,000 segments, -j 2
    .venv/bin/python bench/bench_pipelines.py --lines 30 --jobs 1 --validate 0

The survey is synthetic: four utilities (water, drainage, gas, power) under a square grid
of streets 150 m apart, surveyed every 50 m (GBK CSV point and segment tables with
Chinese column names, as the sample city's), a gently sloping ground. The whole
``cim build`` is timed (reading, placing, tiling, the network file); the pipelines
stage's own time comes from the manifest, its steps' (read, model, tiles, network)
from the build report. Wall and CPU seconds are both printed: CPU of this process and,
apart, of the pool's workers, so a run on a busy machine still says what the work
costs. Target: 100,000 segments ≤ 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ORIGIN = (440300.0, 4439750.0)
UTILITIES = (
    ("JS", "给水", 2.5, "DN300", 1.4),
    ("PS", "排水", 0.0, "DN600", 2.2),
    ("RQ", "燃气", -2.5, "DN200", 1.1),
    ("DL", "电力", 4.0, "600×400", 0.8),
)


def write_survey(folder: Path, lines: int, spacing: float = 150.0, step: float = 50.0) -> int:
    """Point and segment tables of the grid network; returns the segment count."""
    rng = np.random.default_rng(7)
    per = round(spacing / step)
    n = (lines - 1) * per  # steps along each street
    pts_rows, seg_rows = [], []
    for code, name, off, size, depth in UTILITIES:
        k = np.arange(n + 1)
        along = k * step + off
        across = np.arange(lines) * spacing + off
        # horizontal streets (points (along, across)), then vertical ones (across, along)
        hx, hy = np.meshgrid(along, across)
        vx, vy = np.meshgrid(across, along)
        xy = np.concatenate(
            [np.column_stack([hx.ravel(), hy.ravel()]), np.column_stack([vx.ravel(), vy.ravel()])]
        )
        key = np.round(xy * 100).astype(np.int64)
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
        grid = inverse.reshape(2, lines, n + 1)
        starts = np.concatenate([grid[0, :, :-1].ravel(), grid[1, :, :-1].ravel()])
        ends = np.concatenate([grid[0, :, 1:].ravel(), grid[1, :, 1:].ravel()])
        p = xy[first]
        ground = 1040.0 + 0.002 * p[:, 1] + 0.5 * np.sin(p[:, 0] / 300.0)
        d = depth + rng.uniform(-0.2, 0.2, len(p))
        ids = np.char.add(code, np.arange(len(p)).astype(str))
        feature = np.where(rng.uniform(size=len(p)) < 0.2, "阀门", "").astype(object)
        if code == "PS":
            feature[:] = "检查井"
        for i in range(len(p)):
            pts_rows.append(
                f"{ids[i]},{p[i, 0] + ORIGIN[0]:.3f},{p[i, 1] + ORIGIN[1]:.3f},"
                f"{ground[i]:.2f},{d[i]:.2f},{feature[i]},{name}"
            )
        for j, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            seg_rows.append(f"{code}L{j},{ids[s]},{ids[e]},{d[s]:.2f},{d[e]:.2f},{size},{name}")
    (folder / "管点.csv").write_bytes(
        ("点号,x,y,地面高程,埋深,附属物,管线类型\n" + "\n".join(pts_rows) + "\n").encode("gbk")
    )
    (folder / "管线.csv").write_bytes(
        (
            "管线编号,起点点号,终点点号,起点埋深,终点埋深,管径,管线类型\n"
            + "\n".join(seg_rows)
            + "\n"
        ).encode("gbk")
    )
    return len(seg_rows)


class TreeCPU:
    """CPU seconds of this process and of its descendants, apart, and where the rest went.

    The pool's workers sit under the fork server, so ``RUSAGE_CHILDREN`` misses them: a
    thread samples the process tree every ``interval`` s and keeps each process's last
    figures (a worker's last ~0.25 s before it ends may be missed: lower bounds). Besides
    user + sys seconds, Linux's ``schedstat`` of every thread gives the seconds spent
    runnable but waiting for a CPU (the machine is busy), and ``/proc/stat`` the
    machine's idle, I/O-wait and steal time over the run: wall − CPU − waiting for a
    CPU is what was spent blocked (I/O, pipes, locks).
    """

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.seen: dict[int, tuple[float, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.main = self.children = self.main_wait = self.children_wait = 0.0
        self.machine: dict[str, float] = {}
        self._own = 0.0

    def _sample(self) -> None:
        me = psutil.Process(os.getpid())
        for proc in [me, *me.children(recursive=True)]:
            try:
                t = proc.cpu_times()
            except psutil.Error:  # ended between the listing and the read
                continue
            self.seen[proc.pid] = (t.user + t.system, _run_queue_wait(proc.pid))

    def _run(self) -> None:
        start = time.thread_time()
        while not self._stop.wait(self.interval):
            self._sample()
        self._own = time.thread_time() - start  # the sampling itself is not the build's

    def __enter__(self) -> TreeCPU:
        self._sample()
        self._before = dict(self.seen)
        self._stat = _proc_stat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        after = _proc_stat()
        self.machine = {k: after[k] - self._stat.get(k, 0.0) for k in after}
        spent = {
            pid: (
                cpu - self._before.get(pid, (0.0, 0.0))[0],
                wait - self._before.get(pid, (0, 0))[1],
            )
            for pid, (cpu, wait) in self.seen.items()
        }
        self.main, self.main_wait = spent.pop(os.getpid(), (0.0, 0.0))
        self.main -= self._own
        self.children = sum(c for c, _ in spent.values())
        self.children_wait = sum(w for _, w in spent.values())


def _run_queue_wait(pid: int) -> float:
    """Seconds the threads of ``pid`` were runnable but waiting for a CPU (0: unknown)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return total / 1e9


def _proc_stat() -> dict[str, float]:
    """The machine's CPU seconds so far: busy, idle, iowait, steal (all CPUs)."""
    try:
        with open("/proc/stat") as fh:
            f = [int(v) for v in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = f
    return {
        "busy": (user + nice + system + irq + softirq) / tick,
        "idle": idle / tick,
        "iowait": iowait / tick,
        "steal": steal / tick,
    }


def khronos_validator(folder: Path, count: int) -> str:
    """Errors and warnings of the Khronos glTF validator on the ``count`` largest glbs."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[1]
    script = root / "tests" / "tools" / "validate_gltf.mjs"
    if not shutil.which("node") or not (root / "node_modules" / "gltf-validator").is_dir():
        return "not installed (npm ci at the repository root)"
    glbs = sorted(folder.rglob("*.glb"), key=lambda p: p.stat().st_size, reverse=True)[:count]
    out = subprocess.run(
        ["node", str(script), *map(str, glbs)], capture_output=True, text=True, cwd=root
    )
    if out.returncode:
        return f"failed: {out.stderr.strip()[:300]}"
    reports = json.loads(out.stdout)
    errors = sum(r["errors"] for r in reports)
    warnings = sum(r["warnings"] for r in reports)
    return f"{errors} errors, {warnings} warnings in the {len(reports)} largest glbs"


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--lines", type=int, default=67, help="streets per direction (67: ~100k segments)"
    )
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the output folder")
    ap.add_argument(
        "--validate", type=int, default=12, help="glbs for the Khronos validator, largest first"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_pipelines_"))
    (tmp / "data").mkdir()
    t0 = time.perf_counter()
    segments = write_survey(tmp / "data", args.lines)
    print(f"survey: {segments:,} segments written in {time.perf_counter() - t0:.1f} s")
    (tmp / "city.toml").write_text(
        '[city]\nname = "bench"\ncrs = "EPSG:4547"\n[datum]\ngeoid_offset = -20.0\n'
        '[pipelines]\npoints = "data/管点.csv"\nsegments = "data/管线.csv"\n',
        encoding="utf-8",
    )
    load = os.getloadavg()
    with TreeCPU() as cpu:
        t0 = time.perf_counter()
        # the imports count: a real `cim build` pays them too (every stage is discovered)
        from cim.build import build_project

        result = build_project(tmp / "city.toml", jobs=args.jobs, progress=False, force=True)
        wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    from tiling.validate import check_tileset

    stage = result.manifest["stages"]["pipelines"]
    layer = result.manifest["layers"]["pipelines"]
    report = json.loads((result.output / "build-report.json").read_text())["stages"]["pipelines"]
    problems = check_tileset(result.output / "tiles/pipelines/tileset.json", max_contents=20)
    print(
        f"pipelines stage: {stage['written']:,} of {stage['read']:,} segments in "
        f"{stage['seconds']:.1f} s; target ≤ 30 s: {'met' if stage['seconds'] <= 30 else 'NOT met'}"
    )
    print(
        f"whole build (imports included, -j {args.jobs}): {wall:.1f} s wall, "
        f"{cpu.main + cpu.children:.1f} s CPU ({cpu.main:.1f} s this process, "
        f"{cpu.children:.1f} s workers); waiting for a CPU: {cpu.main_wait:.1f} s this "
        f"process, {cpu.children_wait:.1f} s workers"
    )
    m = cpu.machine
    if m:
        print(
            f"machine over the build ({os.cpu_count()} CPUs × {wall:.1f} s): busy "
            f"{m['busy']:.1f} s (ours {cpu.main + cpu.children:.1f}), idle {m['idle']:.1f} s, "
            f"I/O wait {m['iowait']:.1f} s, steal {m['steal']:.1f} s"
        )
    steps = report["counts"].get("timings", {})
    print(
        "stage steps (wall / CPU of the thread that ran it; the workers' encoding CPU is "
        "under 'workers' above): "
        + ", ".join(f"{k} {v['wall']:.1f} / {v['cpu']:.1f} s" for k, v in steps.items())
    )
    print(
        f"tiles: {layer['tiles']:,}, {layer['bytes'] / 1e6:.1f} MB, max tile "
        f"{report['counts']['max_tile_bytes'] / 1e3:.0f} kB, {report['counts']['triangles']:,} "
        f"triangles, {layer['points']:,} points, {layer['wells']:,} wells, "
        f"{layer['valves']:,} valves"
    )
    print(f"tileset check: {'ok' if not problems else problems[:3]}")
    print(f"glTF validator: {khronos_validator(result.output / 'tiles/pipelines', args.validate)}")
    print(
        f"load average before / after: {load[0]:.1f} / {load_after[0]:.1f} ({os.cpu_count()} "
        "CPUs): on a shared machine the wall figures are lower bounds; CPU seconds travel"
    )
    if args.keep:
        print(f"output kept in {result.output}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
