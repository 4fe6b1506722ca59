"""Where a build's memory goes: each log line tagged with the build process's memory.

Runs ``cim build`` in this process with every log record (INFO and up, the build's own
loggers) printed to stderr with, at that moment, the process's anonymous and file-backed
resident memory (``/proc/self/status`` RssAnon / RssFile, MiB) and the peak of their sum
sampled since the previous line (every 50 ms), with its split. A peak between two lines
belongs to the step that ended at the second one; file-backed pages are those of files
read through a mapping (the last build's repair cache).

    .venv/bin/python bench/memlog.py bench/out/scale_10000000/city.toml --scheduler local:2
    .venv/bin/python bench/memlog.py CITY.toml --change 100     # bench_scale's edit first

``--change N`` changes N footprints of the city's ``buildings.parquet`` as
``bench/bench_scale.py`` does (half another height, half moved by half a metre), so the
build that follows is a rebuild. Linux only. Add ``log.info("...")`` lines in a worktree to
split a step further (a change to the repair's modules makes the next build repair every
row: their code is part of the repair cache's key).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

#: Noisy libraries' loggers left at WARNING.
QUIET = ("distributed", "asyncio", "fsspec", "tornado", "bokeh", "numba")


def resident_mib() -> dict[str, int]:
    """This process's RssAnon, RssFile and RssShmem in MiB."""
    out = {"RssAnon": 0, "RssFile": 0, "RssShmem": 0}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in out:
            out[key] = int(value.split()[0]) // 1024
    return out


class PeakSampler:
    """The largest resident total (and its split) since it was last taken."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.lock = threading.Lock()
        self.peak: tuple[int, dict[str, int]] = (0, resident_mib())
        threading.Thread(target=self._run, daemon=True, name="memlog").start()

    def _run(self) -> None:
        while True:
            now = resident_mib()
            total = sum(now.values())
            with self.lock:
                if total > self.peak[0]:
                    self.peak = (total, now)
            time.sleep(self.interval)

    def take(self) -> tuple[int, dict[str, int]]:
        with self.lock:
            peak, self.peak = self.peak, (0, resident_mib())
        return peak


class TaggedHandler(logging.Handler):
    """Writes each record with the memory now and the peak since the last record."""

    def __init__(self, sampler: PeakSampler, start: float) -> None:
        super().__init__(logging.INFO)
        self.sampler, self.start = sampler, start

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING and record.name.split(".")[0] in QUIET:
            return  # Dask sets its own loggers' levels when it starts
        now = resident_mib()
        total, split = max(self.sampler.take(), (sum(now.values()), now), key=lambda p: p[0])
        sys.stderr.write(
            f"{time.perf_counter() - self.start:7.1f} s  anon {now['RssAnon']:6,d}"
            f"  file {now['RssFile']:6,d}  peak {total:6,d} (anon {split['RssAnon']:,d},"
            f" file {split['RssFile']:,d})  {record.name}: {record.getMessage()[:160]}\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("toml", type=Path)
    parser.add_argument("--scheduler", default="", help="local:N or tcp://... (Dask)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--change", type=int, default=0, help="footprints to change first")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    if args.change:
        from bench.bench_scale import change_footprints

        change_footprints(args.toml.parent / "buildings.parquet", args.change, args.seed)
    start = time.perf_counter()
    logging.getLogger().addHandler(TaggedHandler(PeakSampler(), start))
    logging.getLogger().setLevel(logging.INFO)
    from cim.build import build_project

    result = build_project(
        args.toml,
        jobs=args.jobs,
        scheduler=args.scheduler or None,
        progress=False,
        force=args.force,
    )
    print(f"wall {time.perf_counter() - start:.1f} s; reused: {result.partial}")


if __name__ == "__main__":  # Dask's workers start by spawning: nothing runs on import
    main()
