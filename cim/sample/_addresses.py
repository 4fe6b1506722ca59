"""Address points of the sample city (Chinese door-plate addresses).

Every addressed building gets one point inside its footprint (``point_on_surface``),
a street (given for the notable buildings and the main-street shops, otherwise the
nearest lane in the old town or the nearest road in the modern district) and a number:
along each street, odd numbers on the right-hand side and even numbers on the left,
counting from the street's start (the drum tower for the old main streets).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import shapely

from cim.sample._buildings import BuildingTable
from cim.sample._layout import GU, WALL_OUT, XIN, Streets, river_x

log = logging.getLogger(__name__)

CITY = "平城市"
#: Kinds of buildings that get an address (villages: a share of them).
_ADDRESSED = {
    "courtyard",
    "house_old",
    "shop_old",
    "temple",
    "tower_old",
    "gate",
    "slab",
    "tower",
    "office",
    "public",
    "podium",
    "shop",
    "shed",
    "village",
}
#: Points of interest without a building (parks, wetland): (poi, x, y) local metres.
_POIS = [
    ("太和公园", -1950.0, -1350.0),
    ("城墙遗址公园", -1050.0, 750.0),
    ("平城公园", 1050.0, 450.0),
    ("御河湿地公园", float(river_x(600.0)) - 48.0, 600.0),
]


@dataclass
class Addresses:
    """Address points (local metres) and their parts."""

    x: np.ndarray
    y: np.ndarray
    district: np.ndarray
    street: np.ndarray
    number: np.ndarray
    poi: np.ndarray
    building: np.ndarray  # row in the building table, -1 for none
    where: np.ndarray  # "inside", "near" (just outside its building), "none"

    @property
    def full(self) -> np.ndarray:
        """Full address strings, e.g. 平城市古城区鼓楼东街12号."""
        return np.array(
            [
                f"{CITY}{d}{s}{n}号"
                for d, s, n in zip(self.district, self.street, self.number, strict=True)
            ],
            dtype=object,
        )


def make_addresses(
    b: BuildingTable, streets: Streets, rng: np.random.Generator, n_near: int = 8
) -> Addresses:
    """Address every non-trivial building and a few places without one.

    Parameters
    ----------
    b : BuildingTable
        The buildings (local metres).
    streets : Streets
        Named streets.
    rng : numpy Generator
        Seeded generator.
    n_near : int
        How many points are moved just outside their building.
    """
    geoms = b.geoms
    valid = ~shapely.is_missing(geoms) & (b.bad == "")
    area = np.zeros(len(b))
    area[valid] = shapely.area(geoms[valid])
    sel = valid & np.isin(b.kind, list(_ADDRESSED)) & (area > 30.0)
    sel &= (b.kind != "village") | (rng.uniform(size=len(b)) < 0.3)
    sel &= (b.kind != "temple") | (b.street != "")
    rows = np.flatnonzero(sel)
    pts = shapely.point_on_surface(geoms[rows])
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    where = np.full(len(rows), "inside", dtype=object)
    # a few points just outside their building (east of it)
    cand = np.flatnonzero(np.isin(b.kind[rows], ("slab", "tower", "shop")))
    near = np.sort(rng.choice(cand, size=min(n_near, len(cand)), replace=False))
    x[near] = shapely.bounds(geoms[rows[near]])[:, 2] + 1.5
    where[near] = "near"
    street_names = np.array(streets.names, dtype=object)
    kinds = np.array(streets.kinds, dtype=object)
    lines = streets.lines
    name_to_idx = {nm: i for i, nm in enumerate(streets.names)}
    sidx = np.full(len(rows), -1, dtype=np.int64)
    given = b.street[rows] != ""
    sidx[given] = [name_to_idx[s] for s in b.street[rows][given]]
    old = (np.abs(x) < WALL_OUT) & (np.abs(y) < WALL_OUT)
    for mask, allowed in (
        (~given & old, ("lane", "old_street")),
        (~given & ~old, ("road", "minor")),
    ):
        cand_streets = np.flatnonzero(np.isin(kinds, allowed))
        tree = shapely.STRtree(lines[cand_streets])
        q = np.flatnonzero(mask)
        hit = tree.query_nearest(shapely.points(x[q], y[q]), all_matches=False)
        sidx[q[hit[0]]] = cand_streets[hit[1]]
    building = rows.copy()
    poi = np.where(b.name[rows] != "", b.name[rows], "").astype(object)
    # places without a building
    px = [p[1] for p in _POIS]
    py = [p[2] for p in _POIS]
    tree_all = shapely.STRtree(lines[np.isin(kinds, ("road", "minor"))])
    road_idx = np.flatnonzero(np.isin(kinds, ("road", "minor")))
    hit = tree_all.query_nearest(shapely.points(px, py), all_matches=False)
    extra_s = list(road_idx[hit[1]])
    extra_poi = [p[0] for p in _POIS]
    # every street gets at least one address: a bus stop beside it
    missing = sorted(set(range(len(lines))) - set(sidx.tolist()) - set(extra_s))
    for i in missing:
        mid = shapely.line_interpolate_point(lines[i], 0.5, normalized=True)
        c = np.asarray(streets.coords[i])
        d = c[-1] - c[0]
        nrm = np.array([d[1], -d[0]]) / np.hypot(*d)  # right-hand side
        off = streets.widths[i] / 2 + 1.5
        px.append(shapely.get_x(mid) + nrm[0] * off)
        py.append(shapely.get_y(mid) + nrm[1] * off)
        extra_s.append(i)
        extra_poi.append(f"{streets.names[i]}公交站")
    ne = len(extra_s)
    x = np.concatenate([x, px])
    y = np.concatenate([y, py])
    sidx = np.concatenate([sidx, np.asarray(extra_s, dtype=np.int64)])
    poi = np.concatenate([poi, np.asarray(extra_poi, dtype=object)])
    building = np.concatenate([building, np.full(ne, -1)])
    where = np.concatenate([where, np.full(ne, "none", dtype=object)])
    # house numbers: position along the street; odd right, even left
    pts = shapely.points(x, y)
    pos = shapely.line_locate_point(lines[sidx], pts)
    p0 = shapely.line_interpolate_point(lines[sidx], np.maximum(pos - 0.5, 0.0))
    p1 = shapely.line_interpolate_point(lines[sidx], pos + 0.5)
    dx, dy = shapely.get_x(p1) - shapely.get_x(p0), shapely.get_y(p1) - shapely.get_y(p0)
    q = shapely.line_interpolate_point(lines[sidx], pos)
    cross = dx * (y - shapely.get_y(q)) - dy * (x - shapely.get_x(q))
    left = (cross > 0).astype(np.int64)
    order = np.lexsort((x, y, pos, left, sidx))
    key = sidx[order] * 2 + left[order]
    start = np.r_[0, np.flatnonzero(np.diff(key)) + 1]
    rank = np.arange(len(order)) - np.repeat(start, np.diff(np.r_[start, len(order)]))
    number = np.empty(len(order), dtype=np.int64)
    number[order] = 2 * rank + 1 + left[order]
    district = np.where((np.abs(x) < WALL_OUT + 2) & (np.abs(y) < WALL_OUT + 2), GU, XIN)
    out = Addresses(
        x=x[order],
        y=y[order],
        district=district[order].astype(object),
        street=street_names[sidx[order]],
        number=number[order],
        poi=poi[order],
        building=building[order],
        where=where[order],
    )
    log.debug("%d addresses (%d near, %d without building)", len(out.x), len(near), ne)
    return out
