"""Queries over the built city: names, conditions, polygons, statistics, coordinates.

The read side of ``buildings.parquet`` (:class:`cim.outputs.BuildingTable`) answers
the operation view's queries (CJJ/T 315 §4.3.5.1):

- :func:`search_buildings`: building names (substring, pinyin syllables ``huayansi``
  and initials ``hys``) and building ids (exact, then prefix);
- :func:`parse_conditions` / :func:`select`: combined attribute conditions, a small
  language (``use = 住宅 AND height > 30 AND floors >= 5``) or a JSON list of
  ``{"field", "op", "value"}``; evaluated on numpy columns, never as SQL;
- :func:`select` with a polygon: the buildings in a drawn polygon;
- :func:`statistics`: count, footprint and floor area, heights, per use and roof type,
  and a height histogram, over any selection or the whole city;
- :func:`parse_coordinates`: a coordinate typed in WGS84 / CGCS2000 degrees (decimal
  or DMS), Gauss-Krüger metres with or without the zone prefix, or after an explicit
  ``EPSG:xxxx``.

The per-table columns (numpy arrays, metric areas, pinyin keys) are computed once per
table object and cached; a rebuilt table is a new object (``BuildOutputs`` reopens it).
"""

from __future__ import annotations

import bisect
import logging
import math
import re
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from cim.errors import CRSError, InputDataError

log = logging.getLogger(__name__)

__all__ = [
    "Condition",
    "Located",
    "QueryColumns",
    "columns",
    "parse_conditions",
    "parse_coordinates",
    "parse_polygon",
    "pinyin_keys",
    "search_buildings",
    "select",
    "statistics",
]

_M_PER_DEG = 111_195.0
#: metres per floor used for the floor area of buildings without a floor count
FLOOR_HEIGHT_FALLBACK = 3.0
#: upper bounds (metres) of the height histogram's classes; the last is open
HEIGHT_BINS = (10.0, 20.0, 30.0, 50.0, 100.0)
STRING_FIELDS = ("id", "name", "use", "roof_type")
NUMBER_FIELDS = ("height", "floors", "base", "top", "area")
MAX_CONDITIONS = 20
#: Chinese field names accepted in conditions (the viewer's Chinese interface)
FIELD_ALIASES = {
    "编号": "id",
    "名称": "name",
    "用途": "use",
    "屋顶": "roof_type",
    "屋顶类型": "roof_type",
    "高度": "height",
    "层数": "floors",
    "基底": "base",
    "基底高程": "base",
    "顶高": "top",
    "面积": "area",
    "基底面积": "area",
}
_OP_WORDS = {"包含": "contains", "开头": "startswith", "属于": "in", "介于": "between"}


# --- per-table columns -------------------------------------------------------------------
@dataclass(frozen=True)
class QueryColumns:
    """Columns of one building table prepared for queries (read-only arrays)."""

    strings: dict[str, np.ndarray]  # object arrays of str ("" when unknown)
    numbers: dict[str, np.ndarray]  # float64, NaN when unknown
    area_m2: np.ndarray  # footprint area, m² (local equirectangular scale per building)
    floors_est: np.ndarray  # floors, else height / FLOOR_HEIGHT_FALLBACK (≥ 1)
    names: list[str]  # distinct non-empty names
    name_rows: list[np.ndarray]  # rows per distinct name
    sorted_ids: list[str]
    sorted_rows: np.ndarray


_CACHE: weakref.WeakKeyDictionary[Any, QueryColumns] = weakref.WeakKeyDictionary()
_PINYIN: weakref.WeakKeyDictionary[Any, list[tuple[str, str]]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _pinyin_keys(name: str) -> tuple[str, str]:
    """(syllables joined, initials) of a name; non-Chinese characters kept lower-cased."""
    from pypinyin import Style, lazy_pinyin

    # Style.NORMAL: no tones; a non-Chinese run (letters, digits) comes back as one part
    parts = [re.sub(r"[^0-9a-z]", "", p.lower()) for p in lazy_pinyin(name, style=Style.NORMAL)]
    return "".join(parts), "".join(p[0] for p in parts if p)


def columns(table: Any) -> QueryColumns:
    """The query columns of a :class:`cim.outputs.BuildingTable`, computed once per table."""
    with _CACHE_LOCK:
        cached = _CACHE.get(table)
        if cached is not None:
            return cached
    cols = table._cols
    strings = {f: np.array([v or "" for v in cols[f]], dtype=object) for f in STRING_FIELDS}
    height = np.asarray(cols["height"], dtype=np.float64)
    base = np.asarray(cols["base"], dtype=np.float64)
    floors = np.array([np.nan if v is None else v for v in cols["floors"]], dtype=np.float64)
    # metres² from degrees²: the east-west degree shrinks with the cosine of the latitude
    cy = shapely.get_coordinates(shapely.centroid(table.footprints))[:, 1]
    area = np.asarray(table.areas, dtype=np.float64) * _M_PER_DEG**2 * np.cos(np.radians(cy))
    est = np.where(
        np.isfinite(floors) & (floors > 0),
        floors,
        np.maximum(1.0, np.round(height / FLOOR_HEIGHT_FALLBACK)),
    )
    numbers = {"height": height, "floors": floors, "base": base, "top": base + height, "area": area}
    name_arr = strings["name"]
    named = np.flatnonzero(name_arr != "")
    uniq, inverse = np.unique(name_arr[named].astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    splits = np.cumsum(np.bincount(inverse, minlength=len(uniq)))[:-1]
    name_rows = np.split(named[order], splits) if len(uniq) else []
    names = [str(n) for n in uniq]
    id_order = np.argsort(strings["id"].astype(str), kind="stable")
    result = QueryColumns(
        strings=strings,
        numbers=numbers,
        area_m2=area,
        floors_est=est,
        names=names,
        name_rows=name_rows,
        sorted_ids=[str(strings["id"][i]) for i in id_order],
        sorted_rows=id_order,
    )
    with _CACHE_LOCK:
        _CACHE[table] = result
    log.debug("query columns: %d buildings, %d distinct names", len(height), len(names))
    return result


def pinyin_keys(table: Any) -> list[tuple[str, str]]:
    """(syllables, initials) per distinct name of :func:`columns`, once per table.

    Separate from :func:`columns` because loading pypinyin's dictionaries takes
    seconds: only the first pinyin query pays it.
    """
    with _CACHE_LOCK:
        cached = _PINYIN.get(table)
    if cached is None:
        cached = [_pinyin_keys(n) for n in columns(table).names]
        with _CACHE_LOCK:
            _PINYIN[table] = cached
    return cached


# --- name / id / pinyin search -------------------------------------------------------------
@dataclass(frozen=True)
class BuildingHit:
    """One building found by name or id: its row, a score 0–100 and how it matched."""

    row: int
    score: float
    match: str  # "id", "name", "pinyin", "initials"


def _score_text(q: str, text: str, exact: float, prefix: float, inner: float) -> float:
    if text == q:
        return exact
    if text.startswith(q):
        return prefix
    return inner if q in text else 0.0


def search_buildings(table: Any, query: str, limit: int = 10) -> list[BuildingHit]:
    """Buildings whose name or id matches ``query``, best first.

    Scores: id exact 100, id prefix 70; name exact 100, name prefix 95, name substring
    90; pinyin syllables (``huayansi``) 85 / 80 / 75; pinyin initials (``hys``, at
    least two letters) 80 / 75 / 65 (exact / prefix / substring). Shorter names win
    ties (the query covers more of them).

    Parameters
    ----------
    table : cim.outputs.BuildingTable
    query : str
    limit : int

    Returns
    -------
    list of BuildingHit
    """
    q = query.strip()
    if not q or limit <= 0:
        return []
    cols = columns(table)
    best: dict[int, BuildingHit] = {}

    def add(row: int, score: float, match: str) -> None:
        if score > 0 and (row not in best or best[row].score < score):
            best[row] = BuildingHit(int(row), score, match)

    row = table.row_of(q)
    if row is not None:
        add(row, 100.0, "id")
    if re.fullmatch(r"[0-9A-Za-z_\-.:]{3,}", q):
        i = bisect.bisect_left(cols.sorted_ids, q)
        while i < len(cols.sorted_ids) and cols.sorted_ids[i].startswith(q) and len(best) < limit:
            add(int(cols.sorted_rows[i]), 70.0, "id")
            i += 1
    latin = re.sub(r"[\s']", "", q.lower())
    pinyin = re.fullmatch(r"[a-z]{2,}", latin) is not None
    keys = pinyin_keys(table) if pinyin else []
    scored: list[tuple[float, int, str]] = []
    for k, name in enumerate(cols.names):
        score, match = _score_text(q, name, 100.0, 95.0, 90.0), "name"
        if not score and pinyin:
            full, initials = keys[k]
            score, match = _score_text(latin, full, 85.0, 80.0, 75.0), "pinyin"
            if not score:
                score, match = _score_text(latin, initials, 80.0, 75.0, 65.0), "initials"
        if score:
            scored.append((score, k, match))
    scored.sort(key=lambda s: (-s[0], len(cols.names[s[1]]), cols.names[s[1]]))
    for score, k, match in scored[: max(limit, 1) * 2]:
        for r in cols.name_rows[k][:limit]:
            add(int(r), score, match)
    hits = sorted(best.values(), key=lambda h: (-h.score, len(cols.strings["name"][h.row]), h.row))
    return hits[:limit]


# --- attribute conditions ----------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """One attribute condition: ``field op value``."""

    field: str
    op: str
    value: Any

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"field": self.field, "op": self.op, "value": self.value}


_NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "between")
_STRING_OPS = ("=", "!=", "in", "contains", "startswith")
_OP_ALIASES = {"==": "=", "<>": "!=", "≠": "!=", "≥": ">=", "≤": "<=", "like": "contains"}


def _condition(field: str, op: str, value: Any) -> Condition:
    field = str(field).strip()
    field = FIELD_ALIASES.get(field, field.lower())
    op = str(op).strip().lower()
    op = _OP_ALIASES.get(op, _OP_WORDS.get(op, op))
    if field in NUMBER_FIELDS:
        if op not in _NUMBER_OPS:
            raise InputDataError(f"{field}: operator {op!r} is not one of {', '.join(_NUMBER_OPS)}")
        return Condition(field, op, _number_value(field, op, value))
    if field in STRING_FIELDS:
        if op not in _STRING_OPS:
            raise InputDataError(f"{field}: operator {op!r} is not one of {', '.join(_STRING_OPS)}")
        if op == "in":
            values = value if isinstance(value, list) else _split_list(str(value))
            return Condition(field, op, [str(v) for v in values])
        if isinstance(value, (list, dict)):
            raise InputDataError(f"{field} {op}: the value must be text")
        return Condition(field, op, str(value))
    known = ", ".join(STRING_FIELDS + NUMBER_FIELDS)
    raise InputDataError(f"unknown field {field[:40]!r} (fields: {known})")


def _to_float(field: str, v: Any) -> float:
    try:
        out = float(v)
    except (TypeError, ValueError):
        raise InputDataError(f"{field}: {str(v)[:40]!r} is not a number") from None
    if not math.isfinite(out):
        raise InputDataError(f"{field}: {str(v)[:40]!r} is not a finite number")
    return out


def _number_value(field: str, op: str, value: Any) -> Any:
    if op in ("in", "between"):
        values = value if isinstance(value, list) else _split_list(str(value))
        nums = [_to_float(field, v) for v in values]
        if op == "between" and len(nums) != 2:
            raise InputDataError(f"{field} between: give two numbers (low and high)")
        return nums
    return _to_float(field, value)


def _split_list(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    parts = re.split(r"\s*(?:,|，|\band\b)\s*", text, flags=re.IGNORECASE)
    return [p.strip().strip("'\"") for p in parts if p.strip()]


def parse_conditions(spec: Any) -> list[Condition]:
    """Conditions from text (``a = x AND b > 3``) or a JSON list of dicts.

    Text: conditions joined by ``AND`` (or ``并且``/``且``/``&&``); each is ``field op
    value`` with ``op`` one of ``= != < <= > >= in contains startswith between`` (or
    包含, 开头, 属于, 介于); values may be quoted; ``in (a, b)`` and ``between 10 and 20``
    (``介于 10 至 20``). Fields: id, name, use, roof_type (text) and height, floors,
    base, top, area (numbers), or their Chinese names (:data:`FIELD_ALIASES`:
    ``用途 = 住宅 且 高度 > 30``).

    Raises
    ------
    InputDataError
        On an unknown field or operator, a bad value, or more than
        :data:`MAX_CONDITIONS` conditions.
    """
    if spec is None or spec == "" or spec == []:
        return []
    if isinstance(spec, str):
        out = _parse_text(spec)
    elif isinstance(spec, list):
        out = []
        for item in spec:
            if not isinstance(item, dict) or not {"field", "op", "value"} <= set(item):
                raise InputDataError('each condition is {"field": ..., "op": ..., "value": ...}')
            out.append(_condition(item["field"], item["op"], item["value"]))
    else:
        raise InputDataError("conditions are a text or a list of {field, op, value}")
    if len(out) > MAX_CONDITIONS:
        raise InputDataError(f"at most {MAX_CONDITIONS} conditions")
    return out


def _parse_text(text: str) -> list[Condition]:
    parts = re.split(r"\s+and\s+|\s*(?:&&|并且|且)\s*", text.strip(), flags=re.IGNORECASE)
    out: list[Condition] = []
    # "height between 10 and 20" was split at its "and": glue such parts back
    merged: list[str] = []
    for part in parts:
        if merged and re.search(r"\bbetween\s+[^\s]+$", merged[-1], re.IGNORECASE):
            merged[-1] += f" and {part}"
        else:
            merged.append(part)
    for part in merged:
        m = re.fullmatch(
            r"\s*([A-Za-z_]+|[\u4e00-\u9fff]+?)\s*(==|!=|<>|>=|<=|=|<|>|≠|≥|≤|in\b|contains\b|"
            r"startswith\b|like\b|between\b|包含|开头|属于|介于)\s*(.+?)\s*",
            part,
            re.IGNORECASE,
        )
        if not m:
            raise InputDataError(
                f"cannot read the condition {part[:60]!r}: write field operator value,"
                " e.g. height > 30"
            )
        field, op, raw = m.groups()
        value: Any = raw
        if op.lower() in ("between", "介于"):
            value = [
                v for v in re.split(r"\s+and\s+|\s*[,，]\s*|\s*(?:至|到)\s*", raw, flags=re.I) if v
            ]
        elif len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            value = raw[1:-1]
        out.append(_condition(field, op, value))
    return out


def _mask(cols: QueryColumns, cond: Condition) -> np.ndarray:
    if cond.field in NUMBER_FIELDS:
        a = cols.numbers[cond.field]
        v = cond.value
        with np.errstate(invalid="ignore"):
            if cond.op == "in":
                return np.isin(a, np.asarray(v, dtype=np.float64))
            if cond.op == "between":
                lo, hi = sorted(v)
                return (a >= lo) & (a <= hi)
            return {
                "=": lambda: a == v,
                "!=": lambda: np.isfinite(a) & (a != v),
                "<": lambda: a < v,
                "<=": lambda: a <= v,
                ">": lambda: a > v,
                ">=": lambda: a >= v,
            }[cond.op]()
    s = cols.strings[cond.field]
    if cond.op == "=":
        return s == cond.value
    if cond.op == "!=":
        return s != cond.value
    if cond.op == "in":
        return np.isin(s, np.asarray(cond.value, dtype=object))
    text = s.astype(str)
    if cond.op == "contains":
        return np.char.find(text, cond.value) >= 0
    return np.char.startswith(text, cond.value)


# --- selection ---------------------------------------------------------------------------
def parse_polygon(value: Any) -> Any:
    """A lon/lat polygon from GeoJSON (Polygon, MultiPolygon, Feature) or a ring list.

    Raises
    ------
    InputDataError
        When it is not a valid polygon with at least three distinct corners.
    """
    import json

    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    try:
        if isinstance(value, list):
            ring = np.asarray(value, dtype=np.float64)
            if ring.ndim != 2 or ring.shape[1] < 2 or len(ring) < 3:
                raise ValueError("a ring of at least three [lon, lat] points")
            geom = shapely.Polygon(ring[:, :2])
        elif isinstance(value, dict) and value.get("type") in ("Polygon", "MultiPolygon"):
            geom = shapely.from_geojson(json.dumps(value))
        else:
            raise ValueError("a GeoJSON Polygon or a list of [lon, lat]")
    except (ValueError, TypeError, shapely.errors.GEOSException) as exc:
        raise InputDataError(f"polygon: {exc}") from None
    xy = shapely.get_coordinates(geom)
    if not len(xy) or not np.isfinite(xy).all() or geom.area <= 0:
        raise InputDataError("polygon: empty, degenerate or not finite")
    if (np.abs(xy[:, 0]) > 180).any() or (np.abs(xy[:, 1]) > 90).any():
        raise InputDataError("polygon: coordinates are WGS84 lon/lat degrees")
    return shapely.make_valid(geom) if not geom.is_valid else geom


def select(
    table: Any,
    polygon: Any = None,
    conditions: list[Condition] | None = None,
    predicate: str = "intersects",
) -> np.ndarray:
    """Rows (sorted) of the buildings in a polygon and meeting every condition.

    Parameters
    ----------
    table : cim.outputs.BuildingTable
    polygon : shapely geometry, optional
        lon/lat; None: the whole city.
    conditions : list of Condition, optional
        All must hold (AND).
    predicate : {"intersects", "within", "centroid"}
        A footprint that touches the polygon, lies wholly in it, or whose centroid
        lies in it.
    """
    cols = columns(table)
    n = len(table)
    mask = np.ones(n, dtype=bool)
    if predicate not in ("intersects", "within", "centroid"):
        raise InputDataError("predicate is one of intersects, within, centroid")
    if polygon is not None:
        hits = table.tree.query(polygon, predicate="intersects")
        if predicate == "within":
            hits = hits[shapely.within(table.footprints[hits], polygon)]
        elif predicate == "centroid":
            hits = hits[shapely.within(shapely.centroid(table.footprints[hits]), polygon)]
        inside = np.zeros(n, dtype=bool)
        inside[hits] = True
        mask &= inside
    for cond in conditions or []:
        mask &= _mask(cols, cond)
    return np.flatnonzero(mask)


def _group(keys: np.ndarray, rows: np.ndarray, cols: QueryColumns) -> dict[str, dict[str, float]]:
    if not rows.size:
        return {}
    uniq, inv = np.unique(keys[rows].astype(str), return_inverse=True)
    count = np.bincount(inv, minlength=len(uniq))
    area = np.bincount(inv, weights=cols.area_m2[rows], minlength=len(uniq))
    floor = np.bincount(inv, weights=(cols.area_m2 * cols.floors_est)[rows], minlength=len(uniq))
    order = np.argsort(-count, kind="stable")
    return {
        str(uniq[i]): {
            "count": int(count[i]),
            "area": round(float(area[i]), 1),
            "floor_area": round(float(floor[i]), 1),
        }
        for i in order
    }


def statistics(table: Any, rows: np.ndarray | None = None) -> dict[str, Any]:
    """Statistics over rows of the table (all rows when None).

    Returns
    -------
    dict
        ``count``; ``area`` (footprints, m²); ``floor_area`` (m²: footprint × floors,
        or × height / :data:`FLOOR_HEIGHT_FALLBACK` where floors are unknown);
        ``height`` ``{min, mean, max}`` (metres above ground, None when empty);
        ``by_use`` and ``by_roof_type`` ``{value: {count, area, floor_area}}`` (most
        frequent first; ``""`` is unknown); ``height_histogram`` ``[{min, max, count}]``
        with the classes of :data:`HEIGHT_BINS` (the last ``max`` is None).
    """
    cols = columns(table)
    rows = np.arange(len(table)) if rows is None else np.asarray(rows, dtype=np.int64)
    h = cols.numbers["height"][rows]
    edges = np.array((0.0, *HEIGHT_BINS, np.inf))
    hist = np.histogram(np.clip(h, 0.0, None), bins=edges)[0] if rows.size else np.zeros(6, int)
    finite = h[np.isfinite(h)]
    return {
        "count": int(rows.size),
        "area": round(float(cols.area_m2[rows].sum()), 1),
        "floor_area": round(float((cols.area_m2 * cols.floors_est)[rows].sum()), 1),
        "height": {
            "min": float(finite.min()) if finite.size else None,
            "mean": round(float(finite.mean()), 2) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
        },
        "by_use": _group(cols.strings["use"], rows, cols),
        "by_roof_type": _group(cols.strings["roof_type"], rows, cols),
        "height_histogram": [
            {
                "min": float(edges[i]),
                "max": None if math.isinf(edges[i + 1]) else float(edges[i + 1]),
                "count": int(hist[i]),
            }
            for i in range(len(edges) - 1)
        ],
    }


# --- coordinates -------------------------------------------------------------------------
@dataclass(frozen=True)
class Located:
    """A typed coordinate converted to WGS84."""

    lon: float
    lat: float
    crs: str  # the CRS the input was read in (EPSG code, "GCJ-02", "BD-09")
    x: float
    y: float
    how: str  # "degrees", "dms", "gauss-kruger", "explicit"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "lon": self.lon,
            "lat": self.lat,
            "crs": self.crs,
            "x": self.x,
            "y": self.y,
            "how": self.how,
        }


_NUM = r"[-+]?\d+(?:\.\d+)?"
_DMS = re.compile(
    r"(?P<deg>\d+(?:\.\d+)?)\s*(?:°|度|d)\s*(?:(?P<min>\d+(?:\.\d+)?)\s*(?:['′’]|分|m)\s*)?"
    r"(?:(?P<sec>\d+(?:\.\d+)?)\s*(?:\"|″|”|''|秒|s)\s*)?(?P<hem>[NSEW北南东西])?",
    re.IGNORECASE,
)
_EXPLICIT = re.compile(
    r"^\s*(EPSG\s*:\s*\d{4,5}|GCJ-?02|BD-?09|CGCS2000|WGS84)\b[\s,:;]*(.*)$", re.I
)


def gauss_kruger_crs(x: float, y: float, centre_lon: float | None) -> tuple[str, float, float]:
    """The CGCS2000 Gauss-Krüger EPSG code of easting/northing metres, and (x, y) ordered.

    An easting with a zone prefix (``38501234.5``) names its zone: zones 25–45 are the
    3° zones EPSG:4513–4533, zones 13–23 the 6° zones EPSG:4491–4501. Without the
    prefix (``501234.5``) the 3° zone of ``centre_lon`` (the city) is taken, EPSG:4534–4554.
    Northing first (the surveyors' X, Y order) is accepted and swapped.

    Raises
    ------
    CRSError
        When the numbers do not look like Gauss-Krüger metres in China.
    """
    if x >= 1e7 or y >= 1e7:  # the easting carries its zone: the larger number
        east, north = max(x, y), min(x, y)
    else:  # eastings stay under 1,000 km; northings in China are over 1,000 km
        east, north = min(x, y), max(x, y)
    if not 0 < north < 6.5e6:
        raise CRSError(f"{north:.1f} is not a Gauss-Krüger northing in China")
    if east >= 1e7:
        zone = int(east // 1e6)
        if 25 <= zone <= 45:
            return f"EPSG:{4513 + zone - 25}", east, north
        if 13 <= zone <= 23:
            return f"EPSG:{4491 + zone - 13}", east, north
        raise CRSError(f"zone {zone} of easting {east:.1f} is no CGCS2000 Gauss-Krüger zone")
    if not 0 < east < 1e6:
        raise CRSError(f"{east:.1f} is not a Gauss-Krüger easting")
    if centre_lon is None:
        raise CRSError("a Gauss-Krüger easting without its zone prefix needs the city's zone")
    cm = round(centre_lon / 3.0) * 3
    if not 75 <= cm <= 135:
        raise CRSError(f"longitude {centre_lon:.3f} is outside China's Gauss-Krüger zones")
    return f"EPSG:{4534 + (cm - 75) // 3}", east, north


def _dms_value(m: re.Match[str]) -> float:
    value = float(m["deg"]) + float(m["min"] or 0) / 60 + float(m["sec"] or 0) / 3600
    return -value if (m["hem"] or "").upper() in ("S", "W", "南", "西") else value


def _degrees(text: str) -> tuple[float, float, str] | None:
    """(lon, lat, how) from decimal or DMS degrees, or None."""
    if re.search(r"[°度′'″\"]|\d\s*[dms]\b", text):
        found = [m for m in _DMS.finditer(text) if m["deg"]]
        if len(found) != 2:
            return None
        (v1, h1), (v2, h2) = ((_dms_value(m), (m["hem"] or "").upper()) for m in found)
        lat_first = h1 in ("N", "S", "北", "南") or h2 in ("E", "W", "东", "西")
        lon, lat = (v2, v1) if lat_first else (v1, v2)
        return lon, lat, "dms"
    nums = re.findall(_NUM, text)
    if len(nums) != 2 or re.sub(rf"{_NUM}|[\s,，;；]", "", text):
        return None
    a, b = float(nums[0]), float(nums[1])
    if abs(a) <= 90 and 90 < abs(b) <= 180:  # "lat, lon" when only that order fits
        a, b = b, a
    return a, b, "degrees"


def parse_coordinates(
    text: str, crs: str | None = None, centre_lon: float | None = None
) -> Located | None:
    """Read a typed coordinate; None when ``text`` is not one.

    Accepted: ``113.30, 40.09`` (lon, lat; ``40.09, 113.30`` when only that order
    fits), DMS ``113°18'0"E 40°5'24"N``, Gauss-Krüger ``38501234.5 3345678.9`` (zone
    prefix) or ``501234.5, 4438000`` (the city's zone), and an explicit CRS first:
    ``EPSG:4547 501234.5 4438000``, ``GCJ-02 113.3 40.09``. ``crs`` (a CRS chosen in
    the viewer's list) applies to plain numbers; ``"auto"`` or None detects.

    Raises
    ------
    CRSError
        When the text is a coordinate but cannot be converted, or lands off the Earth.
    """
    from cim.crs import is_special, parse_crs, to_lonlat

    text = text.strip()
    m = _EXPLICIT.match(text)
    if m:
        crs, text = m.group(1).replace(" ", "").upper(), m.group(2)
        crs = {"CGCS2000": "EPSG:4490", "WGS84": "EPSG:4326"}.get(crs, crs)
        crs = {"GCJ02": "GCJ-02", "BD09": "BD-09"}.get(crs, crs)
    if crs and crs.lower() == "auto":
        crs = None
    nums = re.findall(_NUM, text)
    if crs:
        deg = _degrees(text)
        if deg is not None and (is_special(crs) or parse_crs(crs).is_geographic):
            x, y, how = deg
        elif len(nums) == 2 and not re.sub(rf"{_NUM}|[\s,，;；]", "", text):
            x, y, how = float(nums[0]), float(nums[1]), "explicit"
            if not is_special(crs) and not parse_crs(crs).is_geographic and x > y:
                x, y = y, x  # northing typed first (X, Y); eastings are the smaller number
        else:
            return None
        lon, lat = (float(v[0]) for v in to_lonlat(np.array([x]), np.array([y]), crs))
        return _checked(Located(lon, lat, crs, x, y, "explicit" if m else how))
    deg = _degrees(text)
    # plain integers ("12 34") are more likely a house number than degrees
    plain = deg is not None and deg[2] == "degrees" and "." not in text
    if deg is not None and not plain and abs(deg[0]) <= 180 and abs(deg[1]) <= 90:
        lon, lat, how = deg
        return _checked(Located(lon, lat, "EPSG:4326", lon, lat, how))
    if len(nums) == 2 and not re.sub(rf"{_NUM}|[\s,，;；]", "", text):
        a, b = float(nums[0]), float(nums[1])
        if max(abs(a), abs(b)) < 1e5:
            return None  # small numbers: an address number or an id, not metres
        code, east, north = gauss_kruger_crs(a, b, centre_lon)
        lon, lat = (float(v[0]) for v in to_lonlat(np.array([east]), np.array([north]), code))
        return _checked(Located(lon, lat, code, east, north, "gauss-kruger"))
    return None


def _checked(loc: Located) -> Located:
    if not (math.isfinite(loc.lon) and math.isfinite(loc.lat)) or abs(loc.lat) > 90:
        raise CRSError(f"({loc.x}, {loc.y}) in {loc.crs} is not on the Earth")
    if abs(loc.lon) > 180:
        raise CRSError(f"longitude {loc.lon:.3f} out of range")
    return loc
