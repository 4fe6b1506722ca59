"""The deterministic sample city 平城 (Pingcheng).

A fictional walled old town (古城区: courtyard houses whose courtyards are holes in the
footprint, temple halls, a drum tower at the centre crossroads, lanes, wall and moat)
inside a modern district (新城区: a road grid, towers, slabs, urban villages,
industry, parks) with a river (御河) in a valley east of the old town. Placed in the
real Datong basin (113.3°E 40.09°N) in CGCS2000 / 3-degree Gauss-Krüger CM 114E
(EPSG:4547).

:func:`write_sample` writes the footprints (GeoPackage), a DEM and an orthophoto
(GeoTIFF), address points (CSV), the old-town district polygon (GeoJSON) and a
``city.toml`` that ties them together. The output is byte-for-byte identical for a
given seed.

The deliberately bad features are listed in :data:`BAD_FEATURES`.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyogrio
import shapely

from cim.sample import _layout as lay
from cim.sample._addresses import CITY, Addresses, make_addresses
from cim.sample._buildings import BuildingTable, l3_attributes, make_table
from cim.sample._pipelines import TOML as PIPELINES_TOML
from cim.sample._pipelines import write_pipelines
from cim.sample._rasters import write_dem, write_ortho

__all__ = [
    "BAD_FEATURES",
    "CRS",
    "KNOWN_ADDRESS",
    "KNOWN_BUILDING_ID",
    "ORIGIN",
    "BadFeature",
    "write_sample",
]

log = logging.getLogger(__name__)

#: CRS of every sample file: CGCS2000 / 3-degree Gauss-Kruger CM 114E.
CRS = "EPSG:4547"
#: Gauss-Krüger coordinates of the drum tower (鼓楼), the local origin (≈113.30°E 40.09°N).
ORIGIN = (440300.0, 4439750.0)
#: Constant geoid undulation written to [datum] (EGM96 N, approximate, see city.toml).
GEOID_OFFSET = -20.0

_N_NOTABLE = len(lay.NOTABLE_OLD) + len(lay.NOTABLE_NEW)
_SHOP_X = 22.0 + 12.0 * np.arange(62)
_N_SHOPS = 2 * int((np.abs(_SHOP_X + 5.5 - 400.0) > 12.0).sum())

#: An address that always exists, on a fixed building (the 6th shop on the north side
#: of 鼓楼东街, counted from the drum tower).
KNOWN_ADDRESS = "平城市古城区鼓楼东街12号"
#: Id of the building that carries :data:`KNOWN_ADDRESS` (same for every seed).
KNOWN_BUILDING_ID = f"PC{_N_NOTABLE + 5 + 1:06d}"
_FIRST_SHOP_ID = f"PC{_N_NOTABLE + 1:06d}"


class BadFeature(NamedTuple):
    """A deliberately broken feature of the sample footprints."""

    id: str
    problem: str
    description: str


#: The deliberately bad features (ids are the same for every seed).
BAD_FEATURES: list[BadFeature] = [
    BadFeature(
        _FIRST_SHOP_ID if problem == "duplicate_id" else f"PC{_N_NOTABLE + _N_SHOPS + k + 1:06d}",
        problem,
        description,
    )
    for k, (problem, description) in enumerate(lay.BAD_PROBLEMS)
]


def _shift(geoms: np.ndarray) -> np.ndarray:
    """Local metres -> Gauss-Krüger (keeps None and Z)."""
    out = geoms.copy()
    ok = ~shapely.is_missing(out)
    z = ok.copy()
    z[ok] = shapely.has_z(out[ok])
    flat = ok & ~z
    out[flat] = shapely.transform(out[flat], lambda c: c + np.asarray(ORIGIN), include_z=False)
    out[z] = shapely.transform(out[z], lambda c: c + np.asarray([*ORIGIN, 0.0]), include_z=True)
    return out


def _l3_columns(b: BuildingTable) -> dict[str, pa.Array]:
    """The L3 roof attributes (:func:`cim.sample._buildings.l3_attributes`) as columns."""
    attrs = l3_attributes(b)
    podium = attrs["podium_height"]
    return {
        "roof_material": pa.array(attrs["roof_material"].tolist(), pa.string()),
        "roof_colour": pa.array(attrs["roof_colour"].tolist(), pa.string()),
        "podium_height": pa.array(podium, pa.float64(), mask=np.isnan(podium)),
    }


def _write_buildings(path: Path, b: BuildingTable, addr: Addresses) -> None:
    full = addr.full
    baddr = np.full(len(b), None, dtype=object)
    has = addr.building >= 0
    baddr[addr.building[has]] = full[has]
    geoms = _shift(b.geoms)
    wkb = shapely.to_wkb(geoms, output_dimension=3)
    floors = b.floors
    table = pa.table(
        {
            "id": pa.array(b.ids.tolist(), pa.string()),
            "height": pa.array(b.height, pa.float64(), mask=np.isnan(b.height)),
            "floors": pa.array(
                np.nan_to_num(floors).astype(np.int32), pa.int32(), mask=np.isnan(floors)
            ),
            "use": pa.array(b.use.tolist(), pa.string()),
            "name": pa.array([s or None for s in b.name.tolist()], pa.string()),
            "roof_type": pa.array(b.roof.tolist(), pa.string()),
            **_l3_columns(b),
            "address": pa.array(baddr.tolist(), pa.string()),
            "geom": pa.array(wkb.tolist(), pa.binary()),
        }
    )
    if path.exists():
        path.unlink()
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2026-01-01T00:00:00.000Z"})
    try:
        pyogrio.write_arrow(
            table,
            path,
            layer="buildings",
            driver="GPKG",
            geometry_name="geom",
            geometry_type="Unknown",
            crs=CRS,
            encoding="UTF-8",
        )
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})


def _write_addresses(path: Path, a: Addresses) -> None:
    full = a.full
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["x", "y", "address", "city", "district", "street", "number", "poi"])
        for i in range(len(a.x)):
            w.writerow(
                [
                    f"{a.x[i] + ORIGIN[0]:.2f}",
                    f"{a.y[i] + ORIGIN[1]:.2f}",
                    full[i],
                    CITY,
                    a.district[i],
                    a.street[i],
                    f"{a.number[i]}号",
                    a.poi[i],
                ]
            )


def _write_old_town(path: Path) -> None:
    from cim.crs import get_transformer

    square = shapely.segmentize(lay.square(lay.WALL_OUT), 50.0)
    c = shapely.get_coordinates(square) + np.asarray(ORIGIN)
    lon, lat = get_transformer(CRS, "EPSG:4326").transform(c[:, 0], c[:, 1])
    ring = [[round(float(x), 7), round(float(y), 7)] for x, y in zip(lon, lat, strict=True)]
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "古城区", "city": "平城", "kind": "walled old town"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        ],
    }
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _write_streets(path: Path, s: lay.Streets) -> None:
    from cim.crs import get_transformer

    tr = get_transformer(CRS, "EPSG:4326")
    feats = []
    for name, kind, width, district, coords in zip(
        s.names, s.kinds, s.widths, s.districts, s.coords, strict=True
    ):
        c = np.asarray(coords) + np.asarray(ORIGIN)
        lon, lat = tr.transform(c[:, 0], c[:, 1])
        feats.append(
            {
                "type": "Feature",
                "properties": {"name": name, "kind": kind, "width": width, "district": district},
                "geometry": {
                    "type": "LineString",
                    "coordinates": [
                        [round(float(x), 7), round(float(y), 7)]
                        for x, y in zip(lon, lat, strict=True)
                    ],
                },
            }
        )
    doc = {"type": "FeatureCollection", "features": feats}
    path.write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")


_TOML = """\
# Sample city 平城 generated by `cim sample` (cim.sample.write_sample, seed {seed}).
# Fictional; placed in the Datong basin, Shanxi (≈113.30°E 40.09°N).
[city]
name = "平城"
crs = "{crs}"    # CGCS2000 / 3-degree Gauss-Kruger CM 114E

[output]
dir = "output"

[datum]
heights = "orthometric"
# Constant EGM96 geoid undulation N for the Datong area. Approximate value read off
# the NGA EGM96 global geoid (N ≈ -20 m around 40°N 113°E); use a geoid grid
# (geoid_grid) for real projects.
geoid_offset = {geoid}

[buildings]
path = "data/buildings.gpkg"
layer = "buildings"
crs = "{crs}"
id = "id"
height = "height"
floors = "floors"
floor_height = 3.0
default_height = 10.0
name = "name"
use = "use"
roof_type = "roof_type"         # also 硬山, 歇山, 重檐庑殿... (docs/l3.md)
roof_material = "roof_material" # L3: tile, glazed_tile...
roof_colour = "roof_colour"     # L3: 灰, 黄, 绿, #RRGGBB
podium_height = "podium_height" # L3: 台基 under the walls, m
address = "address"

[terrain]
paths = ["data/dem.tif"]
crs = "{crs}"

[imagery]
paths = ["data/ortho.tif"]
crs = "{crs}"
format = "webp"

[addresses]
path = "data/addresses.csv"
crs = "{crs}"
x = "x"
y = "y"
full = "address"
city = "city"
district = "district"
street = "street"
number = "number"
poi = "poi"

[l3]
district = "data/old_town.geojson"
"""


def write_sample(dest: Path, *, seed: int = 2026) -> Path:
    """Generate the sample city into ``dest``.

    Parameters
    ----------
    dest : Path
        Folder to write into (created if needed). Writes ``city.toml`` and
        ``data/{buildings.gpkg, dem.tif, ortho.tif, addresses.csv, old_town.geojson,
        streets.geojson, bad_features.json}``.
    seed : int
        Seed of the random generator; the same seed gives byte-identical files.

    Returns
    -------
    Path
        ``dest / "city.toml"``.
    """
    t0 = time.perf_counter()
    dest = Path(dest)
    data = dest / "data"
    data.mkdir(parents=True, exist_ok=True)
    rng_plan, rng_tab, rng_addr, rng_img = (np.random.default_rng([seed, k]) for k in range(4))
    plan, streets, _river = lay.make_plan(rng_plan)
    cols = plan.columns()
    first_shop = int(np.flatnonzero(cols["kind"] == "shop_old")[0])
    table = make_table(cols, rng_tab, dup_target=first_shop)
    addr = make_addresses(table, streets, rng_addr)
    known = int(np.flatnonzero(table.ids == KNOWN_BUILDING_ID)[0])
    got = addr.full[addr.building == known]
    if list(got) != [KNOWN_ADDRESS]:  # pragma: no cover - guards the layout
        raise RuntimeError(f"sample layout changed: {KNOWN_BUILDING_ID} has {list(got)}")
    log.info("sample city: %d buildings, %d addresses", len(table), len(addr.x))
    _write_buildings(data / "buildings.gpkg", table, addr)
    _write_addresses(data / "addresses.csv", addr)
    _write_old_town(data / "old_town.geojson")
    _write_streets(data / "streets.geojson", streets)
    bad = [f._asdict() for f in BAD_FEATURES]
    (data / "bad_features.json").write_text(
        json.dumps(bad, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    write_dem(data / "dem.tif", ORIGIN, CRS)
    write_ortho(
        data / "ortho.tif", ORIGIN, CRS, table, streets, plan.grounds, cols["trees"], rng_img
    )
    write_pipelines(data / "pipelines", streets, np.random.default_rng([seed, 4]), ORIGIN)
    toml = dest / "city.toml"
    text = _TOML.format(seed=seed, crs=CRS, geoid=GEOID_OFFSET) + PIPELINES_TOML.format(crs=CRS)
    toml.write_text(text, encoding="utf-8")
    log.info("sample city written to %s in %.1f s", dest, time.perf_counter() - t0)
    return toml
