"""Roof and building geometry throughput (L3): buildings per second for mixed forms.

An old-town mix of footprints (mostly rectangles of random size and orientation, some
L, U, T, courtyards and octagons) and roof forms (硬山 courtyard houses, 歇山/庑殿 halls,
some 重檐, 攒尖 pavilions, western forms, flat roofs), built one by one with
:func:`tiling.l3.roofs.build_building`, then as the L3 stage builds them: the batch
(:func:`tiling.l3.roofs.batch.build_batch`: directional roofs on rectangles, central
ones on convex footprints) and the rest one by one. Prints buildings/s (wall clock and
CPU) of both, the split rectangle / convex / skeleton, triangles per building and the
fallbacks taken. On a loaded machine the figures are lower bounds.

Run::

    .venv/bin/python bench/bench_l3_roofs.py [--buildings 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np
import shapely
from shapely import affinity
from shapely.geometry import Polygon, box

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tiling.l3.roofs import RoofForm, RoofSpec, build_building
from tiling.l3.roofs.batch import build_batch

F = RoofForm
#: (form, weight) of the old-town mix
FORMS = [
    (F.YINGSHAN, 35),
    (F.XUANSHAN, 8),
    (F.JUANPENG, 4),
    (F.XIESHAN, 5),
    (F.WUDIAN, 3),
    (F.CHONGYAN_XIESHAN, 1),
    (F.CHONGYAN_WUDIAN, 1),
    (F.CUANJIAN_4, 2),
    (F.CUANJIAN_8, 1),
    (F.GABLED, 12),
    (F.HIPPED, 10),
    (F.HALF_HIPPED, 2),
    (F.PYRAMIDAL, 2),
    (F.MANSARD, 2),
    (F.SHED, 2),
    (F.FLAT, 10),
]
SHAPES = [("rectangle", 80), ("L", 7), ("U", 3), ("T", 3), ("courtyard", 3), ("octagon", 4)]


def footprint(kind: str, rng: np.random.Generator) -> Polygon:
    """A footprint of the given kind, random size and orientation, around the origin."""
    w, d = rng.uniform(6, 16), rng.uniform(5, 10)
    if kind == "rectangle":
        g = box(0, 0, w + d, d)
    elif kind == "L":
        g = Polygon([(0, 0), (w + d, 0), (w + d, d), (d, d), (d, w + d), (0, w + d)])
    elif kind == "U":
        a = w + 2 * d
        g = Polygon([(0, 0), (a, 0), (a, a), (a - d, a), (a - d, d), (d, d), (d, a), (0, a)])
    elif kind == "T":
        a = w + 2 * d
        s, t = (a - d) / 2, (a + d) / 2
        g = Polygon([(0, 0), (a, 0), (a, d), (t, d), (t, a), (s, a), (s, d), (0, d)])
    elif kind == "courtyard":
        a = w + 2 * d
        g = Polygon(box(0, 0, a, a).exterior.coords, [box(d, d, a - d, a - d).exterior.coords])
    else:
        r = 0.5 * (w + d) / 2
        g = Polygon([(r * np.cos(t), r * np.sin(t)) for t in np.arange(8) * np.pi / 4])
    return affinity.rotate(g, rng.uniform(0, 180), origin="centroid")


def spec(form: RoofForm, rng: np.random.Generator) -> RoofSpec:
    """Eave 3–12 m, roof height from the form (half the time) or given."""
    temple = form in (F.XIESHAN, F.WUDIAN, F.CHONGYAN_XIESHAN, F.CHONGYAN_WUDIAN)
    return RoofSpec(
        form,
        eave_height=float(rng.uniform(3, 12)),
        roof_height=None if rng.random() < 0.5 else float(rng.uniform(2, 6)),
        podium_height=float(rng.uniform(0.6, 1.8)) if temple else 0.0,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--buildings", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    forms, fw = zip(*FORMS, strict=True)
    shapes, sw = zip(*SHAPES, strict=True)
    jobs = [
        (
            footprint(shapes[rng.choice(len(shapes), p=np.array(sw) / sum(sw))], rng),
            spec(forms[rng.choice(len(forms), p=np.array(fw) / sum(fw))], rng),
        )
        for _ in range(args.buildings)
    ]
    build_building(*jobs[0])  # warm imports
    by_kind: dict[str, list[float]] = collections.defaultdict(list)
    fallbacks: collections.Counter = collections.Counter()
    tris = 0
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    for fp, sp in jobs:
        t = time.process_time()
        m = build_building(fp, sp)
        kind = "skeleton"
        if len(fp.interiors) == 0 and len(fp.exterior.coords) == 5:
            kind = "rectangle"
        elif fp.area >= 0.999 * shapely.convex_hull(fp).area:
            kind = "convex"
        by_kind[kind].append(time.process_time() - t)
        tris += len(m.triangles)
        for f in m.fallbacks:
            fallbacks[f.split(":")[0].split(" (")[0]] += 1
    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    n = len(jobs)
    print(f"buildings: {n}  wall {wall:.2f} s  cpu {cpu:.2f} s")
    print(
        f"throughput: {n / wall:.0f} buildings/s (wall)  {n / cpu:.0f} buildings/s (cpu, one core)"
    )
    for kind, ts in sorted(by_kind.items()):
        print(f"  {kind:9s} {len(ts):6d} buildings  {1e3 * np.mean(ts):6.2f} ms cpu each")
    print(f"triangles per building: {tris / n:.0f}")
    print(f"fallbacks: {sum(fallbacks.values())} entries")
    for what, count in fallbacks.most_common(8):
        print(f"  {count:6d}  {what}")
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    batched = build_batch([fp for fp, _ in jobs], [sp for _, sp in jobs])
    t_batch = time.process_time() - t_cpu
    for (fp, sp), m in zip(jobs, batched, strict=True):
        if m is None:
            build_building(fp, sp)
    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    took = sum(m is not None for m in batched)
    print(
        f"batched path: {n / wall:.0f} buildings/s (wall)  {n / cpu:.0f} buildings/s (cpu, one "
        f"core); {took} in the batch at {1e3 * t_batch / max(took, 1):.2f} ms cpu each"
    )


if __name__ == "__main__":
    main()
