"""The demo's department layers: two departments bring their own data as they have it.

- **water** (水务局): fire hydrants as a zipped shapefile in CGCS2000 Gauss-Krüger (the
  3-degree zone of the city's centre, e.g. EPSG:4547 at 114° E), text in GBK, without a
  ``.cpg`` (the encoding is detected);
- **cityadmin** (城管局): street furniture as a CSV of GCJ-02 lon/lat copied from a web
  map, with a category style and labels.

Both are generated over the built city's extent (fixed seeds: the same points every
time), written once into a folder next to ``city.toml`` and uploaded through the same
ingest as any upload, each by its own department. Running it again adds nothing: a
department's layer of that name is kept as it is.
"""

from __future__ import annotations

import logging
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cim.errors import NotFoundError

log = logging.getLogger(__name__)

#: where the generated files go, next to city.toml
FOLDER = "demo-layers"
HYDRANT_STYLE: dict[str, Any] = {
    "point": {"icon": "hydrant", "size": 24},
    "label": {"attribute": "名称", "max_distance": 800},
}
FURNITURE_KINDS = ["座椅", "垃圾桶", "路灯", "指示牌"]
FURNITURE_STYLE: dict[str, Any] = {
    "by": {
        "kind": "category",
        "attribute": "类型",
        "categories": {
            "座椅": "#1f77b4",
            "垃圾桶": "#2ca02c",
            "路灯": "#ff7f0e",
            "指示牌": "#9467bd",
        },
    },
    "label": {"attribute": "名称", "max_distance": 600},
    "point": {"size": 9},
}


@dataclass(frozen=True)
class DemoLayer:
    """One demo layer: who uploads it, under which name, from which file."""

    department: str
    name: str
    path: Path
    crs: str | None
    style: dict[str, Any]


def gauss_kruger_zone(lon: float) -> str:
    """The CGCS2000 3-degree Gauss-Krüger CRS (no zone prefix) whose central meridian is
    nearest ``lon``: EPSG:4534 (75° E) to EPSG:4554 (135° E)."""
    zone = round((lon - 75.0) / 3.0)
    return f"EPSG:{4534 + min(max(zone, 0), 20)}"


def _points(extent: tuple[float, ...], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n points inside the middle 80 % of the extent (lon, lat)."""
    w, s, e, north = extent
    rng = np.random.default_rng(seed)
    dx, dy = (e - w) * 0.1, (north - s) * 0.1
    return rng.uniform(w + dx, e - dx, n), rng.uniform(s + dy, north - dy, n)


def write_hydrants(folder: Path, extent: tuple[float, ...], n: int = 300) -> Path:
    """Hydrants as a zipped GBK shapefile in the extent's Gauss-Krüger zone, no .cpg."""
    import pyogrio.raw
    import shapely

    from cim.crs import get_transformer

    lon, lat = _points(extent, n, seed=11)
    crs = gauss_kruger_zone((extent[0] + extent[2]) / 2)
    x, y = get_transformer("EPSG:4326", crs).transform(lon, lat)
    rng = np.random.default_rng(12)
    with tempfile.TemporaryDirectory() as tmp:
        shp = Path(tmp) / "消火栓.shp"
        pyogrio.raw.write(
            str(shp),
            shapely.to_wkb(shapely.points(x, y)),
            [
                np.array([f"消火栓{i + 1:03d}号" for i in range(n)], dtype=object),
                np.array(["地上式", "地下式"], dtype=object)[rng.integers(0, 2, n)],
                rng.uniform(0.15, 0.45, n).round(2),
            ],
            ["名称", "类型", "压力"],
            driver="ESRI Shapefile",
            geometry_type="Point",
            crs=crs,
            encoding="GBK",
        )
        shp.with_suffix(".cpg").unlink(missing_ok=True)
        out = folder / "hydrants.zip"
        with zipfile.ZipFile(out, "x", zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(Path(tmp).iterdir()):
                zf.write(part, part.name)
    return out


def write_furniture(folder: Path, extent: tuple[float, ...], n: int = 400) -> Path:
    """Street furniture as a UTF-8 CSV of GCJ-02 lon/lat (a web map's coordinates)."""
    from cim.crs import wgs84_to_gcj02

    lon, lat = _points(extent, n, seed=21)
    glon, glat = wgs84_to_gcj02(lon, lat)
    kinds = np.random.default_rng(22).integers(0, len(FURNITURE_KINDS), n)
    rows = ["lng,lat,名称,类型"] + [
        f"{glon[i]:.7f},{glat[i]:.7f},街道家具{i + 1:03d},{FURNITURE_KINDS[kinds[i]]}"
        for i in range(n)
    ]
    out = folder / "street_furniture.csv"
    with open(out, "x", encoding="utf-8") as fh:
        fh.write("\n".join(rows) + "\n")
    return out


def demo_files(project_dir: Path, extent: tuple[float, ...]) -> list[DemoLayer]:
    """The two demo layers' files, written once into ``FOLDER`` (kept when present)."""
    folder = project_dir / FOLDER
    folder.mkdir(exist_ok=True)
    hydrants = folder / "hydrants.zip"
    furniture = folder / "street_furniture.csv"
    if not hydrants.exists():
        write_hydrants(folder, extent)
    if not furniture.exists():
        write_furniture(folder, extent)
    return [
        DemoLayer("water", "消火栓", hydrants, None, HYDRANT_STYLE),
        DemoLayer("cityadmin", "街道家具", furniture, "GCJ-02", FURNITURE_STYLE),
    ]


def _extent(output: Path) -> tuple[float, ...]:
    """The built city's extent (west, south, east, north) from its manifest."""
    import json

    try:
        extent = json.loads((output / "manifest.json").read_text(encoding="utf-8"))["extent"]
        return tuple(float(v) for v in extent[:4])
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise NotFoundError(
            "build the city first (cim build): its extent is not known", path=output
        ) from exc


def add_demo_layers(project_path: Path) -> list[tuple[DemoLayer, Any, bool]]:
    """Upload the demo layers of a built city project (each by its own department).

    Departments missing from the live store are registered the way the simulator
    registers them (their tokens kept in its tokens file).

    Returns
    -------
    list of (DemoLayer, LayerInfo, bool)
        Each layer and whether it was added now (False: it was there already).

    Raises
    ------
    NotFoundError
        The project was never built (its extent is not known).
    """
    from cim.config import load_project
    from layers.config import live_config
    from layers.deptlayers.ingest import ingest_file
    from layers.deptlayers.store import DeptLayers
    from layers.simulate import department_tokens
    from layers.store import open_store

    project = load_project(project_path)
    extent = _extent(project.output)
    demos = demo_files(project.root, extent)
    department_tokens(project.path, {}, [d.department for d in demos])
    store = open_store(live_config(project).store)
    out = []
    try:
        layers = DeptLayers(store)
        for demo in demos:
            dept = store.department_row(demo.department)[0]  # type: ignore[index]
            have = [x for x in layers.list(dept, deleted=True) if x.department == dept.id]
            same = [x for x in have if x.name == demo.name]
            if same:
                out.append((demo, same[0], False))
                continue
            with tempfile.TemporaryDirectory(prefix="cim-layer-") as tmp:
                clean = ingest_file(demo.path, Path(tmp), crs=demo.crs)
            info = layers.create(
                dept, clean, name=demo.name, style=demo.style, source=demo.path.name
            )
            log.info("demo layer %s added for %s", demo.name, demo.department)
            out.append((demo, info, True))
    finally:
        store.close()
    return out
