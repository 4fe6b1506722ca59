"""Underground networks of the sample city: water, drainage, gas and power (地下管线).

Each utility runs under the streets of the old town (main streets, 东仓街/西仓街, the
gate passages; not the narrow lanes) and the modern grid, at a fixed offset from the
centre line (so lines of crossing streets meet at one point: a junction), surveyed every
50 m or less. Ground elevations are the DEM's surface (:func:`cim.sample._rasters.dem_height`)
as a surveyor would level them (centimetres); pipes lie at plausible depths to their
top: water 1.2-1.6 m, gas 0.9-1.2 m, power ducts 0.7-0.9 m, drainage 1.8-2.6 m with a
manhole at every point (the flow follows the falling ground, towards the river).

Written as two GBK CSV tables with the Chinese column names of CJJ 61 surveys (管点.csv
with coordinates, 管线.csv linking 起点点号/终点点号) — the reader must find the columns
and the encoding by itself. Two rows are deliberately incomplete (:data:`BAD_PIPES`).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np
import shapely

from cim.sample import _layout as lay
from cim.sample._rasters import dem_height

log = logging.getLogger(__name__)

#: street kinds that carry networks (lanes are too narrow)
KINDS = ("old_main", "old_street", "gate", "road", "minor")
#: survey interval along a street, metres
SPACING = 50.0
#: lines run this far past a street's ends, so they meet the crossing street's lines
REACH = 20.0


class UtilityPlan(NamedTuple):
    """How one utility is laid."""

    code: str  # point id prefix (CJJ 61 code)
    name: str  # 管线类型
    offset: float  # metres from the street centre line (east of N-S, north of E-W streets)
    depth: tuple[float, float]  # range of the depth to the pipe's top
    size: dict[str, str]  # street kind → 管径 or B×H section
    material: str
    extra: dict[str, str]  # 压力 / 电压 / 孔数 ...


PLANS = (
    UtilityPlan(
        "JS",
        "给水",
        2.5,
        (1.2, 1.6),
        {
            "road": "DN400",
            "minor": "DN300",
            "old_main": "DN300",
            "old_street": "DN200",
            "gate": "DN300",
        },
        "球墨铸铁",
        {"压力": "0.3MPa"},
    ),
    UtilityPlan(
        "PS",
        "排水",
        0.0,
        (1.8, 2.6),
        {
            "road": "DN800",
            "minor": "DN600",
            "old_main": "1200×1000",
            "old_street": "DN500",
            "gate": "DN600",
        },
        "钢筋混凝土",
        {},
    ),
    UtilityPlan(
        "RQ",
        "燃气",
        -2.5,
        (0.9, 1.2),
        {
            "road": "DN300",
            "minor": "DN200",
            "old_main": "DN200",
            "old_street": "DN160",
            "gate": "DN200",
        },
        "PE",
        {"压力": "中压0.2MPa"},
    ),
    UtilityPlan(
        "DL",
        "电力",
        4.0,
        (0.7, 0.9),
        {
            "road": "800×500",
            "minor": "600×400",
            "old_main": "600×400",
            "old_street": "400×300",
            "gate": "600×400",
        },
        "PVC排管",
        {"电压": "10kV", "孔数": "12"},
    ),
)

#: the deliberately incomplete rows: (segment id, what is wrong)
BAD_PIPES = (
    ("JSL0007", "起点埋深 blank and the point's 埋深 blank: depth from the other end"),
    ("RQL0011", "终点点号 names a point that was never surveyed (dangling)"),
)
#: the point without a ground elevation (taken from the DEM by the build)
BAD_POINT = ("DL0005", "地面高程 blank: the build takes the DEM's")


def _corridors(streets: lay.Streets, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Utility lines under the streets (local metres) and each line's (kind, name)."""
    lines, kinds = [], []
    h = lay.CITY_HALF
    for kind, name, coords in zip(streets.kinds, streets.names, streets.coords, strict=True):
        if kind not in KINDS:
            continue
        (x0, y0), (x1, y1) = coords[0], coords[-1]
        if y0 == y1:  # east-west: extend to close the gaps at crossings and the drum tower
            lo, hi = min(x0, x1) - REACH, max(x0, x1) + REACH
            pts = [(max(lo, -h), y0 + offset), (min(hi, h), y0 + offset)]
        else:
            lo, hi = min(y0, y1) - REACH, max(y0, y1) + REACH
            pts = [(x0 + offset, max(lo, -h)), (x0 + offset, min(hi, h))]
        lines.append(shapely.LineString(pts))
        kinds.append((kind, name))
    tags = np.empty(len(kinds), dtype=object)
    tags[:] = kinds
    return np.array(lines, dtype=object), tags


def _network(streets: lay.Streets, plan: UtilityPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Survey points (x, y) and segments (point rows, street (kind, name)) of one utility."""
    lines, kinds = _corridors(streets, plan.offset)
    noded = shapely.get_parts(shapely.union_all(lines))  # split where lines cross
    tree = shapely.STRtree(lines)
    mids = shapely.line_interpolate_point(noded, 0.5, normalized=True)
    owner = tree.query_nearest(mids, all_matches=False)[1]
    coords, seg_kind = [], []
    for part, kind in zip(noded, kinds[owner], strict=True):
        n = max(1, int(np.ceil(part.length / SPACING)))
        pts = shapely.get_coordinates(
            shapely.line_interpolate_point(part, np.linspace(0, 1, n + 1), normalized=True)
        )
        coords.append(np.stack([pts[:-1], pts[1:]], axis=1))
        seg_kind += [kind] * n
    ends = np.concatenate(coords).reshape(-1, 2)
    key = np.round(ends * 100.0).astype(np.int64)  # one point per centimetre
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    order = np.lexsort((ends[first, 0], -ends[first, 1]))  # number points north to south
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    xy = ends[first][order]
    segs = rank[inverse.ravel()].reshape(-1, 2)
    return xy, segs, np.array(seg_kind, dtype=object)


def make_pipelines(
    streets: lay.Streets, rng: np.random.Generator, origin: tuple[float, float]
) -> tuple[list[list[str]], list[list[str]]]:
    """Rows of the point and segment tables (header first); coordinates + ``origin``."""
    points = [["点号", "x", "y", "地面高程", "埋深", "附属物", "井径", "井深", "管线类型"]]
    segments = [
        [
            "管线编号",
            "起点点号",
            "终点点号",
            "起点埋深",
            "终点埋深",
            "管径",
            "材质",
            "埋设方式",
            "压力",
            "电压",
            "孔数",
            "管线类型",
            "所在道路",
        ]
    ]
    for plan in PLANS:
        xy, segs, kind = _network(streets, plan)
        n = len(xy)
        ground = np.round(dem_height(xy[:, 0], xy[:, 1]), 2)
        depth = np.round(rng.uniform(*plan.depth, n), 2)
        degree = np.bincount(segs.ravel(), minlength=n)
        ids = np.array([f"{plan.code}{i + 1:04d}" for i in range(n)], dtype=object)
        feature, size, well_depth = _features(plan, degree, xy, rng)
        for i in range(n):
            level = "" if ids[i] == BAD_POINT[0] else f"{ground[i]:.2f}"
            row = [
                ids[i],
                f"{xy[i, 0] + origin[0]:.3f}",
                f"{xy[i, 1] + origin[1]:.3f}",
                level,
                f"{depth[i]:.2f}",
                feature[i],
                size[i],
                f"{depth[i] + well_depth[i]:.2f}" if size[i] else "",
                plan.name,
            ]
            points.append(row)
        for k, (s, e) in enumerate(segs.tolist()):
            sid = f"{plan.code}L{k + 1:04d}"
            ds, de = f"{depth[s]:.2f}", f"{depth[e]:.2f}"
            end_id = ids[e]
            if sid == BAD_PIPES[0][0]:
                ds = ""
                points[1 + _offset(points, plan) + s][4] = ""
            if sid == BAD_PIPES[1][0]:
                end_id = f"{plan.code}9999"
            street_kind, street = kind[k]
            segments.append(
                [
                    sid,
                    ids[s],
                    end_id,
                    ds,
                    de,
                    plan.size[street_kind],
                    plan.material,
                    "直埋" if plan.code != "DL" else "排管",
                    plan.extra.get("压力", ""),
                    plan.extra.get("电压", ""),
                    plan.extra.get("孔数", ""),
                    plan.name,
                    street,
                ]
            )
    return points, segments


def _offset(points: list[list[str]], plan: UtilityPlan) -> int:
    """Row (0-based, header excluded) of the first point of ``plan``'s utility."""
    return next(i for i, r in enumerate(points[1:]) if r[0].startswith(plan.code))


def _features(
    plan: UtilityPlan, degree: np.ndarray, xy: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """附属物 of each point, its well size (m, "" when no well) and the well below the pipe."""
    n = len(degree)
    feature = np.where(
        degree >= 4,
        "四通",
        np.where(degree == 3, "三通", np.where(degree == 1, "预留口", "直线点")),
    )
    feature = feature.astype(object)
    size = np.full(n, "", dtype=object)
    below = np.full(n, 0.6)
    if plan.code == "PS":
        feature[:] = "检查井"
        size[:] = "1.0"
        below[:] = 1.2
    elif plan.code == "DL":
        well = (degree >= 3) | (np.arange(n) % 4 == 0)
        feature[well] = "工作井"
        size[well] = "1.2"
    else:
        valve = (degree >= 3) | (rng.uniform(size=n) < 0.25)
        feature[valve] = "阀门"
        if plan.code == "JS":
            hydrant = ~valve & (rng.uniform(size=n) < 0.2)
            feature[hydrant] = "消火栓"
            feature[int(np.argmin(xy[:, 0] + 1e-3 * np.abs(xy[:, 1] + 1200.0)))] = "水厂"
        else:
            feature[int(np.argmax(xy[:, 1] - 1e-3 * np.abs(xy[:, 0])))] = "调压站"
    return feature, size, below


def write_pipelines(
    folder: Path, streets: lay.Streets, rng: np.random.Generator, origin: tuple[float, float]
) -> tuple[Path, Path]:
    """Write ``管点.csv`` and ``管线.csv`` (GBK) into ``folder``; return both paths."""
    points, segments = make_pipelines(streets, rng, origin)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, rows in (("管点.csv", points), ("管线.csv", segments)):
        path = folder / name
        with path.open("w", encoding="gbk", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
        out.append(path)
    log.info("sample pipelines: %d points, %d segments", len(points) - 1, len(segments) - 1)
    return out[0], out[1]


#: the ``[pipelines]`` section of the sample city.toml
TOML = """
[pipelines]                     # underground networks (GBK CSV, Chinese column names)
points = "data/pipelines/管点.csv"
segments = "data/pipelines/管线.csv"
crs = "{crs}"
depth_reference = "top"         # surveyed depths reach the top of the pipe (管顶)
joints = "mitre"
"""
