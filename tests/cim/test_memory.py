"""Memory a build freed goes back to the system between its steps."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cim import memory


def _resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or memory._malloc_trim() is None,
    reason="malloc_trim is glibc's",
)
def test_free_pages_below_the_heap_top_go_back_to_the_system() -> None:
    # 200 MB of malloc'd blocks, then one block above them that stays: freeing the
    # others leaves free pages under the heap's top, which glibc keeps on its own
    blocks = [bytearray(4096) for _ in range(50_000)]
    pin = bytearray(4096)
    for block in blocks:
        block[0] = 1  # touched: resident
    del blocks
    kept = _resident_mb()
    memory.release_unused()
    assert kept - _resident_mb() > 100
    assert len(pin) == 4096


def test_release_works_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    memory.release_unused()  # Arrow's pool alone: no error
