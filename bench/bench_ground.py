"""Buildings on the ground: wall bottoms against the *decoded* terrain mesh.

For the sample city and for a real DEM (Hakone, ASTER GDEM 1″) with synthetic
footprints inside it, across its edges and outside it, builds the project (buildings,
terrain, L2), decodes the finest terrain tiles under every footprint and prints:
buildings checked, the largest height of a wall bottom (base − wall skirt) above the
mesh, how many are more than 0.5 m above it, and how many lie outside the DEM. The
same figures without the skirt show what the skirt is for.

Run::

    .venv/bin/python bench/bench_ground.py [--buildings 5000] [--jobs 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cim.build import build_project
from cim.config import load_project
from cim.raster import DemMosaic
from cim.report import StageReport
from cim.sample import write_sample
from tiling.buildings.ground import set_base_elevation
from tiling.buildings.prepare import read_buildings
from tiling.terrain.check import ground_gaps, probe_footprints

REPO = Path(__file__).resolve().parents[1]
HAKONE = REPO / "sample_data/realdata/dem/hakone_aster_gdem_1arcsec_4326.tif"
KEEP_SECTIONS = ("city", "output", "datum", "buildings", "terrain")


def sample_project(folder: Path) -> Path:
    """The sample city with only the sections the check needs (no imagery, addresses)."""
    toml = write_sample(folder)
    text = toml.read_text(encoding="utf-8")
    parts = re.split(r"(?m)^(?=\[)", text)
    kept = [p for p in parts if not p.startswith("[") or p[1:].split("]")[0] in KEEP_SECTIONS]
    out = folder / "ground.toml"
    out.write_text("".join(kept).replace('dir = "output"', 'dir = "ground_out"'), "utf-8")
    return out


def dem_project(folder: Path, dem: Path, n: int, seed: int = 1) -> Path:
    """A project of ``n`` probe footprints around a DEM (EPSG:4326 GeoJSON)."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = DemMosaic([dem]).bounds_lonlat()
    polys = probe_footprints(bounds, n, seed)
    features = [
        {
            "type": "Feature",
            "properties": {"id": f"p{i}", "height": 12.0},
            "geometry": json.loads(shapely.to_geojson(g)),
        }
        for i, g in enumerate(polys)
    ]
    (folder / "footprints.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features}), "utf-8"
    )
    toml = folder / "city.toml"
    toml.write_text(
        '[city]\nname = "probe"\ncrs = "EPSG:4326"\n[datum]\ngeoid_offset = 36.5\n'
        '[buildings]\npath = "footprints.geojson"\nid = "id"\n'
        f'[terrain]\npaths = ["{dem.resolve().as_posix()}"]\n',
        "utf-8",
    )
    return toml


def measure(toml: Path, jobs: int) -> dict[str, float]:
    """Build the project, then the figures of its buildings against its terrain."""
    t0 = time.perf_counter()
    result = build_project(toml, jobs=jobs, progress=False)
    seconds = time.perf_counter() - t0
    project = load_project(toml)
    report = StageReport("buildings")
    buildings = read_buildings(project, report)
    skirt = set_base_elevation(buildings, project, report)
    built = json.loads((result.output / "build-report.json").read_text("utf-8"))
    assert built["stages"]["buildings"]["counts"]["wall_skirt_m"] == round(skirt, 3)
    terrain = result.output / "terrain"
    with_skirt = ground_gaps(terrain, buildings.footprints, buildings.base, skirt)
    without = ground_gaps(terrain, buildings.footprints, buildings.base, 0.0)
    return {
        "build_s": seconds,
        "buildings": with_skirt.buildings,
        "outside": report.counts["outside_dem"],
        "skirt": skirt,
        "max_gap": with_skirt.max_gap_m,
        "floating": with_skirt.floating,
        "max_gap_no_skirt": without.max_gap_m,
        "floating_no_skirt": without.floating,
        "levels": ",".join(str(z) for z in sorted(with_skirt.levels) if z >= 0),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--buildings", type=int, default=5000, help="probe footprints on Hakone")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", type=Path, help="build here and keep the outputs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_ground_"))
    try:
        rows = {
            "sample city": measure(sample_project(root / "sample"), args.jobs),
            f"Hakone ASTER + {args.buildings} probes": measure(
                dem_project(root / "hakone", HAKONE, args.buildings), args.jobs
            ),
        }
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    head = (
        f"{'project':32} {'checked':>8} {'outside':>8} {'skirt m':>8} {'max gap m':>10} "
        f"{'> 0.5 m':>8} {'no skirt: max':>14} {'> 0.5 m':>8} {'levels':>7} {'build s':>8}"
    )
    print("wall bottom (base − skirt) above the decoded terrain mesh, per building")
    print(head)
    for name, r in rows.items():
        print(
            f"{name:32} {r['buildings']:8d} {r['outside']:8d} {r['skirt']:8.2f} "
            f"{r['max_gap']:10.2f} {r['floating']:8d} {r['max_gap_no_skirt']:14.2f} "
            f"{r['floating_no_skirt']:8d} {r['levels']:>7} {r['build_s']:8.1f}"
        )
    print(
        "target: 0 buildings more than 0.5 m above the mesh:",
        "met" if all(r["floating"] == 0 for r in rows.values()) else "NOT met",
    )
    sys.exit(0 if all(r["floating"] == 0 for r in rows.values()) else 1)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
