"""From a survey to pipes in 3D: axes, sizes, joints and wells (vectorised).

Each segment's axis runs between its two points at the surveyed elevation of the pipe:
ground elevation minus burial depth at each end (or the elevation the survey gives),
moved from the depth reference (top, centre or bottom of the pipe) to its centre, then
to WGS84 ellipsoidal heights with the project's datum and into the tileset's
east-north-up frame. What cannot be placed is skipped with a reason; what is filled in
is reported as a repair (:data:`REASONS`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from cim.config import PipelinesConfig
from cim.crs import enu_to_ecef_matrix, lonlat_to_enu
from cim.datum import Datum
from cim.pipelines import UTILITIES
from tiling.pipelines.reader import Issue, Survey

log = logging.getLogger(__name__)

#: Reason codes of the build report (repairs, then skips).
REASONS = {
    "missing-id": "id generated from the file name and row",
    "duplicate-id": "a second segment with the same id: renamed id~2",
    "ground-from-dem": "point without ground elevation: taken from the DEM",
    "depth-from-point": "segment end without depth: the point's depth",
    "depth-from-other-end": "segment end without depth: the other end's depth",
    "default-depth": "no depth anywhere: [pipelines] default_depth",
    "default-size": "no readable diameter or section: [pipelines] default_diameter",
    "unknown-utility": "no utility code: 'other'",
    "duplicate-point": "a second point with the same id (skipped)",
    "bad-coordinates": "a point whose coordinates do not fit the CRS (skipped)",
    "dangling-point": "a segment end naming no usable point (skipped)",
    "missing-depth": "no depth or elevation at an end, no default (skipped)",
    "missing-ground": "no ground elevation for a depth (skipped)",
    "zero-length": "both ends at the same place (skipped)",
}
WELL_WORDS = ("井", "MANHOLE", "WELL", "人孔", "手孔")
VALVE_WORDS = ("阀", "VALVE")
SOURCE_WORDS = ("水源", "水厂", "调压站", "门站", "SOURCE")
ZERO_LENGTH_M = 0.01


def _has(words: tuple[str, ...], text: np.ndarray) -> np.ndarray:
    """Whether each text holds one of ``words`` (each distinct text looked at once)."""
    uniq, inverse = np.unique(text.astype(str), return_inverse=True)
    hit = np.array([any(w in u.upper() for w in words) for u in uniq], dtype=bool)
    return hit[inverse] if len(text) else np.zeros(0, dtype=bool)


@dataclass
class PipeModel:
    """The placed network: kept points and segments with frame coordinates.

    Point arrays are indexed by point row; ``seg_start``/``seg_end`` are point rows.
    Heights: ``*_h`` WGS84 ellipsoidal, ``*_axis`` orthometric (as surveyed).
    """

    frame: np.ndarray
    origin: tuple[float, float, float]
    # points
    pt_ids: np.ndarray
    pt_lon: np.ndarray
    pt_lat: np.ndarray
    pt_ground: np.ndarray
    pt_ground_h: np.ndarray
    pt_depth: np.ndarray
    pt_feature: np.ndarray
    pt_utility: np.ndarray
    pt_valve: np.ndarray
    pt_well: np.ndarray
    pt_source: np.ndarray
    pt_well_size: np.ndarray
    pt_well_depth: np.ndarray
    # segments
    ids: np.ndarray
    seg_start: np.ndarray
    seg_end: np.ndarray
    utility: np.ndarray
    start_depth: np.ndarray
    end_depth: np.ndarray
    start_axis: np.ndarray
    end_axis: np.ndarray
    a: np.ndarray  # (n, 3) frame metres
    b: np.ndarray
    width: np.ndarray  # metres (outer)
    height: np.ndarray
    rectangular: np.ndarray
    section: np.ndarray
    text: dict[str, np.ndarray]
    flow: np.ndarray

    @property
    def length(self) -> np.ndarray:
        """3D length of each segment, metres."""
        return np.linalg.norm(self.b - self.a, axis=1)


def _index_points(survey: Survey, issues: list[Issue]) -> np.ndarray:
    """Rows of the points to keep: first of each id, with usable coordinates."""
    pts = survey.points
    ids = pts.ids.astype(str)
    _, first = np.unique(ids, return_index=True)
    keep = np.zeros(len(ids), dtype=bool)
    keep[first] = True
    for i in np.flatnonzero(~keep).tolist():
        issues.append(
            (ids[i], "duplicate-point", "another point has this id: the first is kept", False)
        )
    return np.flatnonzero(keep & np.isfinite(pts.lon) & np.isfinite(pts.lat))


def _rename_duplicates(ids: np.ndarray, issues: list[Issue]) -> np.ndarray:
    ids = ids.astype(object).copy()
    text = ids.astype(str)
    order = np.argsort(text, kind="stable")
    s = text[order]
    dup = np.flatnonzero(np.r_[False, s[1:] == s[:-1]])
    seen: dict[str, int] = {}
    for k in dup.tolist():
        i = int(order[k])
        n = seen.get(text[i], 1) + 1
        seen[text[i]] = n
        ids[i] = f"{text[i]}~{n}"
        issues.append((ids[i], "duplicate-id", f"id {text[i]!r} used before: renamed", True))
    return ids


def _lookup(ids: np.ndarray, *keys: np.ndarray) -> list[np.ndarray]:
    """Row of each key in ``ids`` (unique), -1 where absent; ``ids`` sorted once."""
    ids = ids.astype(str)
    order = np.argsort(ids)
    out = []
    for k in keys:
        k = k.astype(str)
        if not len(ids):
            out.append(np.full(len(k), -1, dtype=np.int64))
            continue
        pos = np.minimum(np.searchsorted(ids, k, sorter=order), len(ids) - 1)
        rows = order[pos]
        out.append(np.where(ids[rows] == k, rows, -1))
    return out


def _ends_depth(
    survey: Survey, si: np.ndarray, ei: np.ndarray, cfg: PipelinesConfig, issues: list[Issue]
) -> tuple[np.ndarray, np.ndarray]:
    """Depth at both ends after the fall-backs; NaN where none (elevations may still do)."""
    seg, pts = survey.segments, survey.points
    ds, de = seg.start_depth.copy(), seg.end_depth.copy()
    given_s, given_e = np.isfinite(seg.start_elev), np.isfinite(seg.end_elev)
    for d, idx, given, which in ((ds, si, given_s, "start"), (de, ei, given_e, "end")):
        miss = np.flatnonzero(~np.isfinite(d) & ~given)
        from_point = pts.depth[idx[miss]]
        ok = np.isfinite(from_point)
        d[miss[ok]] = from_point[ok]
        issues += [
            (
                seg.ids[i],
                "depth-from-point",
                f"{which}: {v:g} m, the depth of point {pts.ids[idx[i]]}",
                True,
            )
            for i, v in zip(miss[ok].tolist(), from_point[ok].tolist(), strict=True)
        ]
    for d, other, given, which in ((ds, de, given_s, "start"), (de, ds, given_e, "end")):
        miss = np.flatnonzero(~np.isfinite(d) & ~given & np.isfinite(other))
        d[miss] = other[miss]
        issues += [
            (seg.ids[i], "depth-from-other-end", f"{which}: {other[i]:g} m", True)
            for i in miss.tolist()
        ]
    if cfg.default_depth is not None:
        for d, given, which in ((ds, given_s, "start"), (de, given_e, "end")):
            miss = np.flatnonzero(~np.isfinite(d) & ~given)
            d[miss] = cfg.default_depth
            issues += [
                (seg.ids[i], "default-depth", f"{which}: {cfg.default_depth:g} m", True)
                for i in miss.tolist()
            ]
    return ds, de


def build_model(
    survey: Survey, cfg: PipelinesConfig, datum: Datum
) -> tuple[PipeModel, list[Issue]]:
    """Place the survey's segments in 3D; what cannot be placed is an issue.

    Returns
    -------
    model : PipeModel
    issues : list of (id, reason, detail, repaired)
        The reader's issues plus this step's (``repaired`` False: skipped).

    Raises
    ------
    InputDataError
        When no segment can be placed.
    """
    from cim.errors import InputDataError

    issues = list(survey.issues)
    seg, pts = survey.segments, survey.points
    keep_pts = _index_points(survey, issues)
    if not len(keep_pts):
        raise InputDataError("no pipe point has usable coordinates (see the skipped items)")
    seg_ids = _rename_duplicates(seg.ids, issues)
    seg.ids = seg_ids
    start_row, end_row = _lookup(pts.ids[keep_pts], seg.start, seg.end)
    si = keep_pts[np.maximum(start_row, 0)]
    ei = keep_pts[np.maximum(end_row, 0)]
    dangling = (start_row < 0) | (end_row < 0)
    ok = ~dangling
    for i in np.flatnonzero(dangling).tolist():
        issues.append(
            (
                seg_ids[i],
                "dangling-point",
                f"start {seg.start[i]!r} / end {seg.end[i]!r}: no usable point",
                False,
            )
        )
    same = ok & (seg.start.astype(str) == seg.end.astype(str))
    for i in np.flatnonzero(same).tolist():
        issues.append(
            (seg_ids[i], "zero-length", f"starts and ends at point {seg.start[i]}", False)
        )
    ok &= ~same
    # sizes
    width, height = seg.width.copy(), seg.height.copy()
    nosize = ok & ~(np.isfinite(width) & (width > 0) & np.isfinite(height) & (height > 0))
    width[nosize] = height[nosize] = cfg.default_diameter
    issues += [
        (seg_ids[i], "default-size", f"size {seg.section[i]!r}: DN{cfg.default_diameter:g}", True)
        for i in np.flatnonzero(nosize).tolist()
    ]
    width_m, height_m = width / 1000.0, height / 1000.0
    # utility: the segment's, else its start point's, else "other"
    utility = seg.utility.copy()
    none = utility == None  # noqa: E711
    utility[none] = pts.utility[si[none]]
    none = ok & (utility == None)  # noqa: E711
    utility[utility == None] = "other"  # noqa: E711
    issues += [
        (seg_ids[i], "unknown-utility", "no utility code: 'other'", True)
        for i in np.flatnonzero(none).tolist()
    ]
    # elevations at the depth reference, then the pipe centre
    ds, de = _ends_depth(survey, si, ei, cfg, issues)
    ref_s = np.where(np.isfinite(seg.start_elev), seg.start_elev, pts.ground[si] - ds)
    ref_e = np.where(np.isfinite(seg.end_elev), seg.end_elev, pts.ground[ei] - de)
    no_depth = ok & (
        (~np.isfinite(ds) & ~np.isfinite(seg.start_elev))
        | (~np.isfinite(de) & ~np.isfinite(seg.end_elev))
    )
    for i in np.flatnonzero(no_depth).tolist():
        issues.append(
            (seg_ids[i], "missing-depth", "no burial depth or elevation at an end", False)
        )
    ok &= ~no_depth
    no_ground = ok & ~(np.isfinite(ref_s) & np.isfinite(ref_e))
    for i in np.flatnonzero(no_ground).tolist():
        where = pts.ids[si[i]] if not np.isfinite(ref_s[i]) else pts.ids[ei[i]]
        issues.append(
            (seg_ids[i], "missing-ground", f"no ground elevation at point {where}", False)
        )
    ok &= ~no_ground
    shift = {"top": -0.5, "centre": 0.0, "bottom": 0.5}[cfg.depth_reference] * height_m
    axis_s, axis_e = ref_s + shift, ref_e + shift
    rows = np.flatnonzero(ok)
    if not len(rows):
        raise InputDataError("no pipe segment could be placed (see the skipped items)")
    # the frame: centre of the kept points, median pipe height
    used = np.unique(np.concatenate([si[rows], ei[rows]]))
    lon0 = float((pts.lon[used].min() + pts.lon[used].max()) / 2)
    lat0 = float((pts.lat[used].min() + pts.lat[used].max()) / 2)
    hs = datum.to_ellipsoidal(axis_s[rows], pts.lon[si[rows]], pts.lat[si[rows]])
    he = datum.to_ellipsoidal(axis_e[rows], pts.lon[ei[rows]], pts.lat[ei[rows]])
    h0 = float(np.median(hs))
    frame = enu_to_ecef_matrix(lon0, lat0, h0)
    a = lonlat_to_enu(pts.lon[si[rows]], pts.lat[si[rows]], hs, frame)
    b = lonlat_to_enu(pts.lon[ei[rows]], pts.lat[ei[rows]], he, frame)
    zero = np.linalg.norm(b - a, axis=1) < ZERO_LENGTH_M
    for i in rows[zero].tolist():
        issues.append(
            (seg_ids[i], "zero-length", f"{seg.start[i]} and {seg.end[i]} are within 1 cm", False)
        )
    rows, a, b = rows[~zero], a[~zero], b[~zero]
    if not len(rows):
        raise InputDataError("no pipe segment could be placed (see the skipped items)")
    # points: renumber the used ones
    used = np.unique(np.concatenate([si[rows], ei[rows]]))
    new = np.full(len(pts), -1, dtype=np.int64)
    new[used] = np.arange(len(used))
    feature = pts.feature[used].astype(object)
    ground_h = datum.to_ellipsoidal(pts.ground[used], pts.lon[used], pts.lat[used])
    sources = _has(SOURCE_WORDS, feature) | np.isin(
        pts.ids[used].astype(str), [str(s) for s in cfg.sources]
    )
    model = PipeModel(
        frame=frame,
        origin=(lon0, lat0, h0),
        pt_ids=pts.ids[used].astype(object),
        pt_lon=pts.lon[used],
        pt_lat=pts.lat[used],
        pt_ground=pts.ground[used],
        pt_ground_h=ground_h,
        pt_depth=pts.depth[used],
        pt_feature=feature,
        pt_utility=np.where(pts.utility[used] == None, "", pts.utility[used]).astype(object),  # noqa: E711
        pt_valve=_has(VALVE_WORDS, feature),
        pt_well=_has(WELL_WORDS, feature) & cfg.wells,
        pt_source=sources,
        pt_well_size=pts.well_size[used],
        pt_well_depth=pts.well_depth[used],
        ids=seg_ids[rows].astype(object),
        seg_start=new[si[rows]],
        seg_end=new[ei[rows]],
        utility=utility[rows].astype(object),
        start_depth=np.where(np.isfinite(ds[rows]), ds[rows], pts.ground[si[rows]] - ref_s[rows]),
        end_depth=np.where(np.isfinite(de[rows]), de[rows], pts.ground[ei[rows]] - ref_e[rows]),
        start_axis=axis_s[rows],
        end_axis=axis_e[rows],
        a=a,
        b=b,
        width=width_m[rows],
        height=height_m[rows],
        rectangular=seg.rectangular[rows],
        section=seg.section[rows].astype(object),
        text={k: v[rows] for k, v in seg.text.items()},
        flow=seg.flow[rows],
    )
    unknown = sorted({str(u) for u in model.utility} - set(UTILITIES))
    if unknown:  # pragma: no cover - utilities_of only returns known keys
        log.warning("unknown utilities %s", unknown)
    return model, issues
