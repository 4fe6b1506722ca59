"""Peak memory (PSS) and CPU seconds of a process and all its descendants (Linux /proc).

The benchmarks run a build in a fresh process and sample its whole tree (pool workers,
a fork server, Dask workers) every ``interval`` seconds. CPU seconds are the sum over
every process seen of its last sampled user + system time: a process that ends between
two samples loses at most ``interval`` seconds. On a shared machine the CPU seconds are
the figure to compare; wall time depends on what else runs.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: PSS is read again when the tree's RSS grew by this fraction, else at most this often
#: (``smaps_rollup`` walks every page table: ~0.1 s for a 1 GB process, and a sampler
#: reading it 10 times a second took half a core from the build it measured)
PSS_GROWTH, PSS_EVERY_S = 0.02, 1.0


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return out


def pss_mb(pid: int) -> float:
    """Proportional set size of one process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mb(pid: int) -> float:
    """Resident set size of one process in MB (``statm``: cheap, unlike ``smaps_rollup``)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


class Monitor:
    """Samples a process tree in a thread until the root process ends.

    Attributes
    ----------
    peak_pss_mb : float
        Largest PSS of the whole tree at one sample.
    peak_process_mb : float
        Largest PSS of a single process.
    cpu_s : float
        CPU seconds of every process of the tree (see the module docstring).
    own_cpu_s : float
        CPU seconds of the sampler itself (not in :attr:`cpu_s`).
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval = pid, interval
        self.peak_pss_mb = self.peak_process_mb = 0.0
        self.own_cpu_s = 0.0
        self._cpu: dict[tuple[int, float], float] = {}
        self._pss_at = (0.0, 0.0)  # the tree's RSS and the time at the last PSS reading
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def cpu_s(self) -> float:
        return sum(self._cpu.values())

    def _run(self) -> None:
        start = time.thread_time()
        while Path(f"/proc/{self.pid}").exists() and _alive(self.pid):
            self.sample()
            self.own_cpu_s = time.thread_time() - start
            time.sleep(self.interval)

    def sample(self) -> None:
        pids = tree(self.pid)
        for p in pids:
            c = cpu_s(p)
            if c is not None:
                self._cpu[(p, _start(p))] = c
        # PSS (the expensive figure) only while the tree grows, else once a second:
        # PSS never exceeds RSS, so a peak PSS comes with an RSS that grew
        rss, now = sum(rss_mb(p) for p in pids), time.monotonic()
        last_rss, last_t = self._pss_at
        if rss < last_rss * (1 + PSS_GROWTH) and now - last_t < PSS_EVERY_S:
            return
        self._pss_at = (max(rss, last_rss), now)
        sizes = [pss_mb(p) for p in pids]
        self.peak_pss_mb = max(self.peak_pss_mb, sum(sizes))
        self.peak_process_mb = max(self.peak_process_mb, max(sizes, default=0.0))

    def join(self) -> None:
        """Wait for the sampler (after the root process was waited for)."""
        self._thread.join()


def _start(pid: int) -> float:
    # (pid, start time) names a process even when pids are reused
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return float(stat[stat.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return 0.0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"  # a zombie has ended
