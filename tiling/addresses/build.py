"""Build the address index (``addresses.sqlite``).

Layout of the SQLite file (one file, no server; read with :class:`AddressIndex`):

``meta(key, value)``
    format version, counts, build parameters.
``admin(name, full, level)``
    gazetteer of administrative names found in the data, full and short forms
    (上海市 and 上海 → 上海市), used to peel administrative levels off queries.
``streets(id, province, city, district, town, name)``
    one row per distinct (administrative area, street); all normalised.
``addresses(id, street_id, number, num_int, building, unit, room, poi, address,
source_id, lon, lat, height, building_id, cell)``
    one row per address point; ``address`` is the original text shown to users,
    ``height`` the WGS84 ellipsoidal roof height of the joined building (base +
    height; NULL when not joined), ``cell`` a 0.002° grid cell for reverse lookup.
``poi_fts``
    FTS5 trigram index of POI names (rowid = address id).
``buildings(rowid, id, top, cell, big, minx, miny, maxx, maxy, wkb)``
    the building footprints (when buildings were given), for the building at a
    coordinate; ``top`` = base + height.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cim.addresses.index import SCHEMA_VERSION
from cim.addresses.normalize import admin_short, normalize, parse_address, parse_normalized
from cim.errors import DatasetIOError
from cim.executor import Executor, make_executor
from tiling.addresses.attach import INSIDE, NEAREST, UNMATCHED, attach_points
from tiling.addresses.config import PART_FIELDS

log = logging.getLogger(__name__)

FORMAT_VERSION = SCHEMA_VERSION
#: grid cell size (degrees) of the reverse-lookup index
CELL_DEG = 0.002
_CELL_STRIDE = 1_000_000
_COMP_FIELDS = (
    "province",
    "city",
    "district",
    "town",
    "street",
    "number",
    "building",
    "unit",
    "room",
    "poi",
)
_PART_SUFFIX = {
    "number": re.compile(r"号$"),
    "building": re.compile(r"(号楼|栋|号院)$"),
    "unit": re.compile(r"单元$"),
    "room": re.compile(r"(室|户)$"),
}
_LEADING_INT = re.compile(r"^(?:\d+弄)?(\d+)")


@dataclass
class AddressRecords:
    """Address points in columns, coordinates already in WGS84 lon/lat.

    Attributes
    ----------
    ids : ndarray of object
        Source ids (strings).
    lon, lat : ndarray of float64
    full : ndarray of object or None
        Full address strings.
    parts : dict of str to ndarray of object
        Structured parts (``province``, ``city``, ``district``, ``street``, ``number``,
        ``building``, ``unit``, ``room``, ``poi``).
    skipped : list of (id, reason, detail)
        Rows of the file the reader could not use at all (not in the columns).
    """

    ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    full: np.ndarray | None = None
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lon)


@dataclass
class BuildResult:
    """What :func:`build_index` did.

    Attributes
    ----------
    count : int
        Addresses written.
    skipped : list of (id, reason, detail)
    attached, inside, nearest : int
        Points joined to a building (of which inside a footprint / nearest).
    unmatched : list of (id, address)
        Points with no building within the match distance (only when buildings given).
    ambiguous : list of (id, address, building_id)
    building_addresses : ndarray of object or None
        Per building row, the tuple of address strings joined to it (the
        ``addresses`` column of the Buildings table: a copy, put in its place).
    seconds : float
    """

    count: int = 0
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    attached: int = 0
    inside: int = 0
    nearest: int = 0
    unmatched: list[tuple[str, str]] = field(default_factory=list)
    ambiguous: list[tuple[str, str, str]] = field(default_factory=list)
    building_addresses: np.ndarray | None = None
    seconds: float = 0.0


def _clean(value: Any) -> str:
    """A cell value as a stripped string ("" for None/NaN)."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        if value.is_integer():
            return str(int(value))
    return str(value).strip()


def _parse_chunk(
    chunk: tuple[int, Sequence[str]],
) -> tuple[int, list[tuple[str, ...]]]:
    """Parse full address strings into component tuples (worker function).

    ``chunk`` is (its start in the input, the strings); the start comes back with the
    result so the caller can put chunks in order whatever order they finish in.
    """
    start, texts = chunk
    cache: dict[str, tuple] = {}
    return start, [parse_normalized(normalize(t), None, cache) for t in texts]


def parse_many(
    texts: Sequence[str],
    jobs: int = 1,
    progress: bool = False,
    executor: Executor | None = None,
) -> list[tuple[str, ...]]:
    """Parse many address strings, on several workers when the input is large.

    Parameters
    ----------
    texts : sequence of str
        Full address strings.
    jobs : int
        Worker processes (used from 50,000 strings on) when no ``executor`` is given.
    progress : bool
        Show a progress bar on stderr.
    executor : Executor, optional
        The build's executor (:mod:`cim.executor`).

    Returns
    -------
    list of tuple
        Components in :class:`~cim.addresses.normalize.Components` field order.
    """
    n = len(texts)
    bar = tqdm(
        total=n,
        desc="addresses",
        unit="addr",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )
    out: list[tuple[str, ...]] = []
    try:
        workers = executor.workers if executor is not None else jobs
        if workers <= 1 or n < 50_000:
            cache: dict[str, tuple] = {}
            step = 50_000
            for i in range(0, n, step):
                out.extend(parse_normalized(normalize(t), None, cache) for t in texts[i : i + step])
                bar.update(min(step, n - i))
            return out
        size = (n + workers * 4 - 1) // (workers * 4)
        chunks = [(i, list(texts[i : i + size])) for i in range(0, n, size)]
        parts: dict[int, list[tuple[str, ...]]] = {}
        own = executor is None
        executor = executor or make_executor(jobs=jobs)
        try:
            for start, part in executor.map(_parse_chunk, chunks):
                parts[start] = part
                bar.update(len(part))
        finally:
            if own:
                executor.close()
        for start in sorted(parts):
            out.extend(parts[start])
        return out
    finally:
        bar.close()


def _part_value(name: str, raw: str) -> str:
    """Normalise one structured part (strip its level marker: 12号 → 12)."""
    s = normalize(raw)
    if not s:
        return ""
    if name in ("province", "city", "district", "street", "poi"):
        return s
    if name == "number":
        c = parse_address(s if re.search(r"[号弄]", s) or not s[:1].isdigit() else s + "号")
        if c.number:
            return c.number
    rx = _PART_SUFFIX.get(name)
    return rx.sub("", s) if rx else s


def _display(full: str, parts: dict[str, str]) -> str:
    """The text shown for an address: the original full string, else the parts joined.

    Chinese parts are concatenated with their level markers (12 → 12号); Latin ones
    are written "number street, poi".
    """
    if full:
        return full
    street = parts.get("street", "")
    number = parts.get("number", "")
    poi = parts.get("poi", "")
    if (street or poi).isascii() and (street or poi):
        head = " ".join(x for x in (number, street) if x)
        return ", ".join(
            x for x in (head, poi, parts.get("district", ""), parts.get("city", "")) if x
        )
    out = []
    for name in PART_FIELDS:
        v = parts.get(name, "")
        if not v:
            continue
        if v.isdigit() and name in ("number", "building", "unit", "room"):
            v += {"number": "号", "building": "栋", "unit": "单元", "room": "室"}[name]
        out.append(v)
    return "".join(out)


def _with_defaults(
    c: tuple[str, ...], d_city: str, d_district: str, has_default_city: bool
) -> tuple[str, ...]:
    """Fill implied city/district (the district only within the default city)."""
    lst = list(c)
    if not lst[1] and d_city:
        lst[1] = d_city
    if not lst[2] and d_district and (not has_default_city or lst[1] == d_city):
        lst[2] = d_district
    return tuple(lst)


def build_index(
    records: AddressRecords,
    path: str | Path,
    *,
    buildings: Any = None,
    match_distance: float = 30.0,
    default_city: str | None = None,
    default_district: str | None = None,
    jobs: int = 1,
    store_footprints: bool = True,
    progress: bool = False,
    executor: Executor | None = None,
) -> BuildResult:
    """Normalise, parse, join to buildings and write ``addresses.sqlite``.

    Parameters
    ----------
    records : AddressRecords
        Address points (WGS84 lon/lat).
    path : str or Path
        SQLite file to write (replaced when present).
    buildings : cim.model.Buildings, optional
        Footprints to join to; their ``addresses`` column is extended in place.
    match_distance : float
        Metres for the nearest-building join of points outside every footprint.
    default_city, default_district : str, optional
        Implied administrative levels for points that lack them.
    jobs : int
        Processes for parsing large inputs.
    store_footprints : bool
        Also store the building footprints, for :meth:`AddressIndex.building_at`
        (the building at a coordinate).
    progress : bool
        Show a progress bar while parsing.
    executor : Executor, optional
        The build's executor for parsing large inputs (else ``jobs`` local processes).

    Returns
    -------
    BuildResult
    """
    t0 = time.perf_counter()
    path = Path(path)
    res = BuildResult()
    n = len(records)
    ids = np.asarray(records.ids, dtype=object)
    lon = np.asarray(records.lon, dtype=np.float64)
    lat = np.asarray(records.lat, dtype=np.float64)

    # --- coordinates -------------------------------------------------------------
    good = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    for i in np.flatnonzero(~good):
        res.skipped.append((str(ids[i]), "bad-coordinates", f"({lon[i]}, {lat[i]})"))

    # --- components --------------------------------------------------------------
    full = [_clean(v) for v in records.full] if records.full is not None else [""] * n
    parsed = (
        parse_many(full, jobs=jobs, progress=progress, executor=executor)
        if records.full is not None
        else None
    )
    log.debug("parsed %d addresses in %.1f s", n, time.perf_counter() - t0)
    raw_parts = {k: [_clean(v) for v in col] for k, col in records.parts.items()}
    d_city = normalize(default_city) if default_city else ""
    d_district = normalize(default_district) if default_district else ""
    comps: list[tuple[str, ...]] = []
    display: list[str] = []
    keep = np.zeros(n, dtype=bool)
    empty = ("",) * len(_COMP_FIELDS)
    if parsed is not None and not raw_parts:
        # fast path: full strings only
        nonempty = np.fromiter((c != empty for c in parsed), dtype=bool, count=n)
        for i in np.flatnonzero(good & ~nonempty):
            res.skipped.append((str(ids[i]), "empty-address", ""))
        keep = good & nonempty
        idx = np.flatnonzero(keep).tolist()
        comps = [parsed[i] for i in idx]
        display = [full[i] for i in idx]
        if d_city or d_district:
            for j, c in enumerate(comps):
                if (not c[1] and d_city) or (not c[2] and d_district):
                    comps[j] = _with_defaults(c, d_city, d_district, bool(default_city))
    else:
        part_cache: dict[tuple[str, str], str] = {}
        for i in range(n):
            c = list(parsed[i]) if parsed is not None else list(empty)
            given = {}
            for name, col in raw_parts.items():
                raw = col[i]
                if raw:
                    given[name] = raw
                    key = (name, raw)
                    v = part_cache.get(key)
                    if v is None:
                        v = part_cache[key] = _part_value(name, raw)
                    c[_COMP_FIELDS.index(name)] = v
            if not any(c):
                if good[i]:
                    res.skipped.append((str(ids[i]), "empty-address", ""))
                continue
            if not good[i]:
                continue
            comps.append(_with_defaults(tuple(c), d_city, d_district, bool(default_city)))
            display.append(_display(full[i], given))
            keep[i] = True
    sel = np.flatnonzero(keep)
    res.count = len(sel)

    # --- buildings ---------------------------------------------------------------
    m = len(sel)
    b_id = np.full(m, None, dtype=object)
    b_top = np.full(m, np.nan)
    if buildings is not None and len(buildings):
        att = attach_points(lon[sel], lat[sel], buildings.footprints, match_distance)
        ok = att.status != UNMATCHED
        bidx = att.building[ok]
        b_id[ok] = buildings.ids[bidx]
        b_top[ok] = (
            np.asarray(buildings.base, dtype=np.float64)[bidx]
            + np.asarray(buildings.height, dtype=np.float64)[bidx]
        )
        res.attached = int(ok.sum())
        res.inside = int((att.status == INSIDE).sum())
        res.nearest = int((att.status == NEAREST).sum())
        for j in np.flatnonzero(~ok):
            res.unmatched.append((str(ids[sel[j]]), display[j]))
        for j in np.flatnonzero(att.ambiguous):
            res.ambiguous.append((str(ids[sel[j]]), display[j], str(b_id[j])))
        # a copy, put in place of the buildings' own: the buildings stage shares that
        # array with the footprints' own addresses (the partitions', the L2 stage's)
        addr_col = buildings.addresses.copy()
        for j in np.flatnonzero(ok):
            k = att.building[j]
            existing = () if addr_col[k] is None else tuple(addr_col[k])
            if display[j] not in existing:
                addr_col[k] = (*existing, display[j])
        buildings.addresses = addr_col
        res.building_addresses = addr_col

    # --- write -------------------------------------------------------------------
    log.debug("components and join ready at %.1f s", time.perf_counter() - t0)
    _write(
        path,
        sel,
        ids,
        lon,
        lat,
        comps,
        display,
        b_id,
        b_top,
        res,
        buildings if store_footprints else None,
    )
    res.seconds = time.perf_counter() - t0
    log.info(
        "address index: %d addresses (%d skipped, %d joined to buildings) in %.1f s → %s",
        res.count,
        len(res.skipped),
        res.attached,
        res.seconds,
        path,
    )
    return res


#: footprints larger than this many cells around their centre are checked always
MAX_BUILDING_RING = 3


def _cells(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Grid cell ids of points (see ``CELL_DEG``)."""
    return np.floor((lon + 180.0) / CELL_DEG).astype(np.int64) * _CELL_STRIDE + np.floor(
        (lat + 90.0) / CELL_DEG
    ).astype(np.int64)


def _write_footprints(con: sqlite3.Connection, buildings: Any) -> int:
    """Store footprints (WKB) with their grid cell for ``building_at`` lookups.

    Returns the ring (in cells) that a lookup must search around a point: the largest
    half-extent of a footprint in cells, capped at ``MAX_BUILDING_RING`` (larger
    footprints are flagged ``big`` and always checked).
    """
    import shapely

    fp = buildings.footprints
    ok = ~(shapely.is_missing(fp) | shapely.is_empty(fp))
    idx = np.flatnonzero(ok)
    b = shapely.bounds(fp[idx])
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2
    half = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 2
    ring_needed = np.ceil(half / CELL_DEG).astype(np.int64)
    big = ring_needed > MAX_BUILDING_RING
    ring = int(min(ring_needed.max(initial=0), MAX_BUILDING_RING))
    top = (
        np.asarray(buildings.base, dtype=np.float64)[idx]
        + np.asarray(buildings.height, dtype=np.float64)[idx]
    )
    wkb = shapely.to_wkb(fp[idx])
    con.execute(
        "CREATE TABLE buildings(rowid INTEGER PRIMARY KEY, id TEXT, top REAL, cell INTEGER,"
        " big INTEGER, minx REAL, miny REAL, maxx REAL, maxy REAL, wkb BLOB)"
    )
    con.executemany(
        "INSERT INTO buildings VALUES (?,?,?,?,?,?,?,?,?,?)",
        zip(
            range(1, len(idx) + 1),
            [str(v) for v in buildings.ids[idx]],
            top.tolist(),
            _cells(cx, cy).tolist(),
            big.astype(int).tolist(),
            b[:, 0].tolist(),
            b[:, 1].tolist(),
            b[:, 2].tolist(),
            b[:, 3].tolist(),
            wkb.tolist(),
            strict=True,
        ),
    )
    con.execute("CREATE INDEX buildings_cell ON buildings(cell)")
    con.execute("CREATE INDEX buildings_big ON buildings(big) WHERE big = 1")
    return ring


def _write(
    path: Path,
    sel: np.ndarray,
    ids: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    comps: list[tuple[str, ...]],
    display: list[str],
    b_id: np.ndarray,
    b_top: np.ndarray,
    res: BuildResult,
    buildings: Any = None,
) -> None:
    """Write the SQLite file (to a temporary name, then moved into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    # streets and gazetteer
    street_ids: dict[tuple[str, ...], int] = {}
    sid = np.empty(len(comps), dtype=np.int64)
    for j, c in enumerate(comps):
        key = (c[0], c[1], c[2], c[3], c[4])
        k = street_ids.get(key)
        if k is None:
            k = street_ids[key] = len(street_ids) + 1
        sid[j] = k
    admin: dict[str, tuple[str, str]] = {}
    levels = ("province", "city", "district", "town")
    for key in street_ids:
        for lvl, name in zip(levels, key[:4], strict=True):
            if name:
                admin.setdefault(name, (name, lvl))
    for name, (full, lvl) in list(admin.items()):
        short = admin_short(name)
        if short != name and short not in admin:
            admin[short] = (full, lvl)
    num_int = np.array(
        [int(mm.group(1)) if (mm := _LEADING_INT.match(c[5])) else -1 for c in comps],
        dtype=np.int64,
    )
    sl = lon[sel]
    sa = lat[sel]
    cell = _cells(sl, sa)
    order = np.lexsort((num_int, sid))  # rows clustered by street for search
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    try:
        con = sqlite3.connect(tmp)
        con.executescript(
            f"""
            PRAGMA journal_mode=OFF;
            PRAGMA synchronous=OFF;
            PRAGMA page_size=8192;
            PRAGMA user_version={SCHEMA_VERSION};
            CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE admin(name TEXT PRIMARY KEY, full TEXT, level TEXT);
            CREATE TABLE streets(id INTEGER PRIMARY KEY, province TEXT, city TEXT,
                district TEXT, town TEXT, name TEXT);
            CREATE TABLE addresses(id INTEGER PRIMARY KEY, street_id INTEGER, number TEXT,
                num_int INTEGER, building TEXT, unit TEXT, room TEXT, poi TEXT,
                address TEXT, source_id TEXT, lon REAL, lat REAL, height REAL,
                building_id TEXT, cell INTEGER);
            CREATE VIRTUAL TABLE poi_fts USING fts5(poi, content='', tokenize='trigram');
            """
        )
        con.executemany(
            "INSERT INTO admin VALUES (?,?,?)", [(k, v[0], v[1]) for k, v in admin.items()]
        )
        con.executemany(
            "INSERT INTO streets VALUES (?,?,?,?,?,?)",
            [(v, *k) for k, v in street_ids.items()],
        )
        ids_s = ids[sel]
        ordl = order.tolist()
        cols = list(zip(*comps, strict=True)) if comps else [()] * len(_COMP_FIELDS)

        def pick(col: Any) -> list:
            return [col[r] for r in ordl]

        top = np.where(np.isnan(b_top), None, b_top).astype(object)
        rows = zip(
            range(1, len(ordl) + 1),
            sid[order].tolist(),
            pick(cols[5]),
            num_int[order].tolist(),
            pick(cols[6]),
            pick(cols[7]),
            pick(cols[8]),
            pick(cols[9]),
            pick(display),
            [str(v) for v in ids_s[order]],
            sl[order].tolist(),
            sa[order].tolist(),
            top[order].tolist(),
            b_id[order].tolist(),
            cell[order].tolist(),
            strict=True,
        )
        t1 = time.perf_counter()
        con.executemany("INSERT INTO addresses VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        log.debug("rows inserted in %.1f s", time.perf_counter() - t1)
        con.executemany(
            "INSERT INTO poi_fts(rowid, poi) VALUES (?, ?)",
            ((int(rank[j]) + 1, comps[j][9]) for j in range(len(comps)) if comps[j][9]),
        )
        log.debug("POIs indexed at %.1f s", time.perf_counter() - t1)
        con.execute("CREATE INDEX addresses_street ON addresses(street_id, num_int)")
        con.execute("CREATE INDEX addresses_cell ON addresses(cell)")
        ring = _write_footprints(con, buildings) if buildings is not None else 0
        meta = {
            "building_ring": ring,
            "footprints": 0 if buildings is None else len(buildings),
            "format": FORMAT_VERSION,
            "count": len(comps),
            "streets": len(street_ids),
            "cell_deg": CELL_DEG,
            "cell_stride": _CELL_STRIDE,
            "attached": res.attached,
        }
        con.executemany("INSERT INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()])
        log.debug("indexes built at %.1f s", time.perf_counter() - t1)
        con.commit()
        con.close()
    except sqlite3.Error as exc:
        raise DatasetIOError(f"cannot write address index ({exc})", path=path) from exc
    os.replace(tmp, path)


__all__ = [
    "AddressRecords",
    "BuildResult",
    "build_index",
    "parse_many",
]
