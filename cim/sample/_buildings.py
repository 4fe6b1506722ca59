"""Building table of the sample city: ids, the height/floor cases, the bad features."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import shapely

from cim.sample._layout import BAD_PROBLEMS, WALL_OUT

log = logging.getLogger(__name__)

#: Probabilities of (both, height only, floors only, neither) inside / outside the wall.
CASE_P_OLD = (0.20, 0.22, 0.55, 0.03)
CASE_P_NEW = (0.45, 0.30, 0.23, 0.02)
CASES = ("both", "height", "floors", "neither")


@dataclass
class BuildingTable:
    """Final per-building columns (local metres; the writer shifts to Gauss-Krüger).

    ``true_height`` is the height used for the orthophoto shadows; ``height`` and
    ``floors`` are what the file says (NaN = missing).
    """

    ids: np.ndarray
    geoms: np.ndarray
    kind: np.ndarray
    use: np.ndarray
    roof: np.ndarray
    name: np.ndarray
    street: np.ndarray
    height: np.ndarray
    floors: np.ndarray
    true_height: np.ndarray
    case: np.ndarray
    bad: np.ndarray  # problem name or ""

    def __len__(self) -> int:
        return len(self.ids)


def _bowtie(g: shapely.Geometry) -> shapely.Geometry:
    x0, y0, x1, y1 = shapely.bounds(g)
    return shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1), (x0, y0)])


def _dup_vertex(g: shapely.Geometry) -> shapely.Geometry:
    c = shapely.get_coordinates(g)
    return shapely.Polygon(np.vstack([c[:2], c[1:2], c[2:]]))


def _sliver(g: shapely.Geometry) -> shapely.Geometry:
    x0, y0, _, _ = shapely.bounds(g)
    return shapely.box(x0 + 3, y0 + 4, x0 + 3.1, y0 + 12)


def _multi(g: shapely.Geometry) -> shapely.Geometry:
    x0, y0, x1, y1 = shapely.bounds(g)
    return shapely.MultiPolygon([shapely.box(x0, y0, x0 + 6, y1), shapely.box(x0 + 8, y0, x1, y1)])


def make_table(
    cols: dict[str, np.ndarray], rng: np.random.Generator, dup_target: int
) -> BuildingTable:
    """Give ids, decide which height fields are present, corrupt the bad features.

    Parameters
    ----------
    cols : dict
        Columns from :meth:`Plan.columns`.
    rng : numpy Generator
        Seeded generator.
    dup_target : int
        Row whose id the ``duplicate_id`` feature copies.
    """
    geoms = cols["geoms"].copy()
    n = len(geoms)
    ids = np.array([f"PC{i + 1:06d}" for i in range(n)], dtype=object)
    kind = cols["kind"]
    true_h = cols["height"].copy()
    floors_true = cols["floors"].copy()
    cx, cy = shapely.get_x(shapely.centroid(geoms)), shapely.get_y(shapely.centroid(geoms))
    old = (np.abs(cx) < WALL_OUT + 3) & (np.abs(cy) < WALL_OUT + 3)
    u = rng.uniform(size=n)
    cum_old, cum_new = np.cumsum(CASE_P_OLD), np.cumsum(CASE_P_NEW)
    case_idx = np.where(old, np.searchsorted(cum_old, u), np.searchsorted(cum_new, u))
    case_idx = np.minimum(case_idx, 3)
    fixed = cols["fixed"]
    # notables and the known shops: both given (floors NaN where the table says None)
    case_idx[fixed] = 0
    case = np.array(CASES, dtype=object)[case_idx]
    height = np.where(np.isin(case_idx, (0, 1)), true_h, np.nan)
    floors = np.where(np.isin(case_idx, (0, 2)), floors_true, np.nan)
    # notables without a floor count are "height only"
    case[(case == "both") & np.isnan(floors)] = "height"
    bad = np.full(n, "", dtype=object)
    rows = np.flatnonzero(kind == "bad")
    for r, (problem, _) in zip(rows, BAD_PROBLEMS, strict=True):
        bad[r] = problem
        g = geoms[r]
        if problem == "bowtie":
            geoms[r] = _bowtie(g)
        elif problem == "duplicate_id":
            ids[r] = ids[dup_target]
        elif problem == "duplicate_vertex":
            geoms[r] = _dup_vertex(g)
        elif problem == "sliver":
            geoms[r] = _sliver(g)
        elif problem == "z_coordinate":
            geoms[r] = shapely.force_3d(g, 1045.0)
        elif problem == "negative_height":
            height[r] = -5.0
        elif problem == "absurd_height":
            height[r] = 9999.0
        elif problem == "multipolygon":
            geoms[r] = _multi(g)
        elif problem == "null_geometry":
            geoms[r] = None
        # duplicate_geometry: the layout already copied the previous footprint
    bad_rows = bad != ""
    height[bad_rows & ~np.isin(bad, ("negative_height", "absurd_height"))] = 7.0
    floors[bad_rows] = 2.0
    case[bad_rows] = "both"
    return BuildingTable(
        ids=ids,
        geoms=geoms,
        kind=kind,
        use=cols["use"],
        roof=cols["roof"],
        name=cols["name"],
        street=cols["street"],
        height=height,
        floors=floors,
        true_height=np.where(np.isnan(true_h), 6.0, true_h),
        case=case,
        bad=bad,
    )


#: Roof materials and colours of the old town's notable halls (name → material, colour).
HALL_ROOFS = {
    "大雄宝殿": ("glazed_tile", "黄"),
    "大成殿": ("glazed_tile", "黄"),
    "善化寺大雄宝殿": ("glazed_tile", "绿"),
    "天王殿": ("glazed_tile", "绿"),
    "薄伽教藏殿": ("glazed_tile", "绿"),
    "三圣殿": ("glazed_tile", "绿"),
    "普贤阁": ("glazed_tile", "绿"),
    "文殊阁": ("glazed_tile", "绿"),
    "大成门": ("glazed_tile", "黄"),
    "鼓楼": ("glazed_tile", "绿"),
}
#: Podiums (台基, m): halls and the drum tower's base; gate towers stand on the wall.
PODIUMS = {
    "鼓楼": 8.0,
    "大雄宝殿": 1.8,
    "大成殿": 1.5,
    "善化寺大雄宝殿": 1.5,
    "三圣殿": 1.2,
    "薄伽教藏殿": 1.2,
    "天王殿": 1.0,
    "府署大堂": 1.0,
}
GATE_PODIUM = 10.0


def l3_attributes(b: BuildingTable) -> dict[str, np.ndarray]:
    """Roof material, colour and podium height for the L3 models (from kind and name).

    Halls get glazed tiles (yellow for the main halls of 华严寺 and 文庙, green
    elsewhere), old houses, shops and the other temple buildings grey tiles, the
    podiums of the halls and the drum tower's base a height; the rest stays empty.
    """
    n = len(b)
    material = np.full(n, None, dtype=object)
    colour = np.full(n, None, dtype=object)
    podium = np.full(n, np.nan)
    old = np.isin(b.kind, ("courtyard", "house_old", "shop_old", "temple", "gate", "tower_old"))
    chinese = np.array([not str(r).isascii() for r in b.roof], dtype=bool)
    tiled = old & chinese
    material[tiled] = "tile"
    colour[tiled] = "灰"
    names = b.name.tolist()
    for i in np.flatnonzero(np.isin(b.kind, ("temple", "gate", "tower_old"))).tolist():
        if names[i] in HALL_ROOFS:
            material[i], colour[i] = HALL_ROOFS[names[i]]
        podium[i] = PODIUMS.get(names[i], GATE_PODIUM if b.kind[i] == "gate" else 0.6)
    return {"roof_material": material, "roof_colour": colour, "podium_height": podium}
