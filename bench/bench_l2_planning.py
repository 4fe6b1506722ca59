"""Benchmark: CPU of the L2 writer's own work in the build process (not the encoding).

Reads a built city's building partitions (under the output folder of e.g.
``bench/bench_scale.py 1000000``) and times, in CPU seconds (best of ``--repeat``),
each planning step of :func:`tiling.buildings.l2.write_l2`: fitting the footprints,
the property table, the ranking, the byte estimate, the hierarchy, the row hashes and
tile digests, the tile tasks, ``tileset.json`` and ``tiles-index.json``. With
``--previous`` (a copy of that output's ``tiles/l2``) it also runs the whole writer as
a rebuild where ``--changed`` heights changed (the tiles of unchanged buildings are
hard-linked), and prints its CPU in this process and the wall. CPU time, not wall
time: the figure to compare on a shared machine.

    .venv/bin/python bench/bench_l2_planning.py bench/out/scale_1000000/output \
        [--previous COPY_OF_TILES_L2] [--changed 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import inspect
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best CPU seconds of ``repeat`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        times.append(time.process_time() - t)
    return min(times), out


def _text(buildings: Any) -> dict[str, Any]:
    """The text columns in Arrow, as a caller that read the partitions has them."""
    import pyarrow as pa

    return {k: pa.array(getattr(buildings, "ids" if k == "id" else k).tolist()) for k in
            ("id", "name", "use", "roof_type")}  # fmt: skip


def _xxh3(wkb: Any) -> Any:
    from tiling.buildings.rowhash import xxh3_hashes

    return xxh3_hashes(wkb)


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes the keyword ``name`` (the benchmark runs on older code too)."""
    return name in inspect.signature(fn).parameters


def _tile_order(l2: Any, nodes: list) -> tuple[Any, list[tuple[int, int]]]:
    """The writer's tile order and ranges (inline in older code)."""
    import numpy as np

    if hasattr(l2, "_tile_order"):
        return l2._tile_order(nodes)
    order = np.concatenate([n.members for n in nodes])
    counts = np.array([len(n.members) for n in nodes])
    starts = np.concatenate([[0], np.cumsum(counts)])
    return order, [(int(starts[i]), int(starts[i + 1])) for i in range(len(nodes))]


def phases(work: Path, repeat: int) -> None:
    """Per-step CPU of the planning on the city under ``work``."""
    import numpy as np
    import shapely

    import tiling.buildings.l2 as l2
    from cim.report import StageReport
    from tiling.buildings.hierarchy import build_hierarchy
    from tiling.buildings.partitions import partition_index, read_partitions_for_tiles

    buildings, wkb, centres = read_partitions_for_tiles(work)
    bounds = tuple(partition_index(work)["bounds"])
    n = len(buildings)
    print(f"{n:,} buildings")
    options = l2.L2Options()
    rows: list[tuple[str, float]] = []

    def step(name: str, fn: Callable[[], Any]) -> Any:
        cpu, out = best(fn, repeat)
        rows.append((name, cpu))
        return out

    report = StageReport("l2")
    step(
        "areas+vertex_counts (worker side)",
        lambda: (
            shapely.area(buildings.footprints),
            shapely.get_num_coordinates(buildings.footprints),
        ),
    )
    areas = shapely.area(buildings.footprints)
    counts = shapely.get_num_coordinates(buildings.footprints)
    b2, fitted, coords = step("_fit_footprints", lambda: l2._fit_footprints(buildings, report))
    if _accepts(l2._fit_footprints, "vertex_counts"):
        step(
            "_fit_footprints(vertex_counts)",
            lambda: l2._fit_footprints(buildings, report, vertex_counts=counts),
        )
    wkb2, centres2 = l2._footprint_arrays(b2, wkb, centres, fitted)
    props, columns, chars, arrow = step(
        "_property_table", lambda: l2._property_table(b2, StageReport("l2"))
    )
    text = _text(buildings)
    if _accepts(l2.write_l2, "text"):
        step(
            "_property_table(text)",
            lambda: l2._property_table(b2, StageReport("l2"), l2._given_text(text, b2)),
        )
    frame, _ = l2._frame(b2, bounds)
    centre_xy, size, vertices = step("_ranking", lambda: l2._ranking(b2, frame, centres2, coords))
    if _accepts(l2._ranking, "areas"):
        step("_ranking(areas)", lambda: l2._ranking(b2, frame, centres2, coords, areas=areas))
    row_bytes = step("_row_bytes", lambda: l2._row_bytes(columns, props, chars, vertices, options))
    nodes = step(
        "build_hierarchy",
        lambda: build_hierarchy(
            centre_xy,
            size,
            vertices,
            max_features=options.max_features_per_tile,
            max_vertices=options.max_vertices_per_tile,
            row_bytes=row_bytes,
            max_bytes=l2.PLANNING_SHARE * options.max_tile_bytes,
        ),
    )
    order, ranges = step("tile order", lambda: _tile_order(l2, nodes))
    jobs_list = [l2._TileJob(nd.key, a, b) for nd, (a, b) in zip(nodes, ranges, strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        shared = l2._TileFrame(frame, props, options, tmp)
        tasks = l2._Tasks(shared, b2, columns, order, wkb2, arrow)
        digests = step("_Tasks.digests", lambda: tasks.digests(jobs_list))
        if _accepts(l2.write_l2, "footprint_hashes"):
            from tiling.buildings.rowhash import BytesHashes, xxh3_hashes

            hashed = l2._Tasks(
                shared, b2, columns, order, wkb2, arrow, BytesHashes(xxh3_hashes(wkb2))
            )
            step("_Tasks.digests(footprint_hashes)", lambda: hashed.digests(jobs_list))
        # the largest tiles (those a changed building most likely falls in), made and
        # pickled as the pool's feeder thread does (its CPU is this process's)
        some = sorted(jobs_list, key=lambda j: j.start - j.stop)[:110]
        step(
            "_Tasks.make+pickle x110",
            lambda: [pickle.dumps(tasks.make(j, digests[j.key])) for j in some],
        )
        results = {
            j.key: {
                "hash": digests[j.key],
                "bytes": 1000,
                "triangles": 10,
                "lo": np.full(3, -1.0 - i),
                "hi": np.full(3, 1.0 + i),
            }
            for i, j in enumerate(jobs_list)
        }
        out = Path(tmp)
        step(
            "_tileset+write",
            lambda: l2._tileset(options, nodes, results, frame, b2).write(out / "tileset.json"),
        )
        step("_write_index", lambda: l2._write_index(out, results))
    for name, cpu in rows:
        print(f"{name:36s} {cpu:7.3f} s CPU")


def rebuild(work: Path, previous: Path, changed: int) -> None:
    """The whole writer as a rebuild where ``changed`` heights changed."""
    import numpy as np
    import shapely

    from tiling.buildings.l2 import L2Options, write_l2
    from tiling.buildings.partitions import partition_index, read_partitions_for_tiles

    buildings, wkb, centres = read_partitions_for_tiles(work)
    bounds = tuple(partition_index(work)["bounds"])
    rng = np.random.default_rng(11)
    pick = rng.choice(len(buildings), changed, replace=False)
    buildings.height[pick] += 1.0
    areas = shapely.area(buildings.footprints)
    counts = shapely.get_num_coordinates(buildings.footprints)
    with tempfile.TemporaryDirectory(dir=previous.parent) as tmp:
        for given in (False, True):
            out = Path(tmp) / f"l2-{given}"
            if given and not _accepts(write_l2, "footprint_hashes"):
                continue
            extra = (
                {
                    "areas": areas,
                    "vertex_counts": counts,
                    "footprint_hashes": _xxh3(wkb),
                    "text": _text(buildings),
                }
                if given
                else {}
            )
            t, c = time.perf_counter(), time.process_time()
            fig = write_l2(
                buildings,
                out,
                L2Options(),
                jobs=2,
                previous=previous,
                wkb=wkb,
                centres=centres,
                bounds=bounds,
                **extra,
            )
            print(
                f"write_l2 rebuild (areas, counts, hashes, text given: {given}): wall "
                f"{time.perf_counter() - t:.2f} s, build-process CPU "
                f"{time.process_time() - c:.2f} s, {fig['tiles_reused']} of "
                f"{fig['tiles']} tiles reused"
            )
            shutil.rmtree(out)


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", type=Path, help="an output folder (its building partitions)")
    ap.add_argument("--previous", type=Path, help="a copy of that output's tiles/l2")
    ap.add_argument("--changed", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-phases", action="store_true")
    args = ap.parse_args()
    if not args.no_phases:
        phases(args.work, args.repeat)
    if args.previous is not None:
        rebuild(args.work, args.previous, args.changed)


if __name__ == "__main__":
    main()
