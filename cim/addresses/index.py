"""Search an address index: exact and fuzzy lookup, reverse lookup.

Usage::

    from cim.addresses import AddressIndex
    idx = AddressIndex("output/addresses.sqlite")
    idx.search("平城市古城区鼓楼东街12号", limit=10)   # -> list[Candidate]
    idx.reverse(116.39, 39.91, limit=5)               # -> list[Candidate]

Score (0–100) of a candidate for a query, over the components the query has::

    score = 100 * Σ w_c · s_c / Σ w_c  −  1 per extra building/unit/room level
                                          the candidate has and the query lacks

with weights w: street 40, number 30, POI 30, district 8, city 6, province 4,
town 4, building 6, unit 4, room 3, and similarities s in [0, 1]:

- street, POI, administrative names: mean of the rapidfuzz normalised Indel and OSA
  (edit distance counting a transposition as one edit) similarities of the
  normalised strings (POI: the better of that and 0.95 × partial similarity;
  administrative names are compared without their level suffix, 浦东 = 浦东新区);
  a street query also matches a POI name (× 0.9) and the other way round;
- number: 1 equal, 0.5 same leading integer (12 vs 12-1), else 0;
- a component the candidate lacks: 0 for street/number/POI, 0.6 for an
  administrative level (implied, not contradicted), 0.7 for building/unit/room
  (the house-level point stands for all its flats).

The index object is safe to share between threads: every thread gets its own
read-only SQLite connection; the in-memory street list and gazetteer are immutable.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sqlite3
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, Indel

from cim.addresses.normalize import (
    Components,
    admin_short,
    normalize,
    parse_address,
    peel_admin,
)
from cim.errors import DatasetIOError, NotFoundError

log = logging.getLogger(__name__)

#: version of the ``addresses.sqlite`` layout and of its normalised keys, stored as
#: ``PRAGMA user_version`` by the build (``tiling.addresses.build``); an index of
#: another version is refused: its keys would not match this normaliser's.
#: 2: accents folded on Latin letters, street-first Latin parsing, user_version set.
SCHEMA_VERSION = 2

WEIGHTS: dict[str, float] = {
    "street": 40.0,
    "number": 30.0,
    "poi": 30.0,
    "district": 8.0,
    "city": 6.0,
    "province": 4.0,
    "town": 4.0,
    "building": 6.0,
    "unit": 4.0,
    "room": 3.0,
}
#: longest query text looked at, and most candidates returned
MAX_QUERY_CHARS = 200
MAX_LIMIT = 1000
#: street ids kept after the name and admin pre-ranking, and the margin (score
#: points, before normalisation) below the best street within which they are kept
STREET_CANDIDATES = 40
STREET_MARGIN = 20.0
MISSING_ADMIN = 0.6
MISSING_DETAIL = 0.7
EXTRA_DETAIL_PENALTY = 1.0
_ADMIN_LEVELS = ("province", "city", "district", "town")
_NO_ADMIN = ("", "", "", "")
_FIELDS = tuple(f.name for f in dataclasses.fields(Components))
_COLS = (
    "a.id, a.street_id, a.number, a.num_int, a.building, a.unit, a.room, a.poi, a.address,"
    " a.source_id, a.lon, a.lat, a.height, a.building_id"
)
EARTH_RADIUS = 6371008.8


@dataclass(frozen=True)
class Candidate:
    """One search or reverse-lookup result.

    Attributes
    ----------
    id : int
        Row id in the index.
    address : str
        The address as given in the source data.
    score : float
        0–100 (see the module docstring); for reverse lookups, 100 at the point
        falling to 0 at 1 km.
    components : dict
        Normalised components (province, city, district, town, street, number,
        building, unit, room, poi), non-empty ones only.
    lon, lat : float
        The address point (WGS84).
    height : float or None
        Where to fly to: WGS84 ellipsoidal height of the joined building's roof
        (base + height); None when the address has no building.
    building_id : str or None
        Id of the building the address is joined to.
    source_id : str
        Id of the address point in the source file.
    distance : float or None
        Metres from the query point (reverse lookups only).
    """

    id: int
    address: str
    score: float
    components: dict[str, str] = field(compare=False)
    lon: float
    lat: float
    height: float | None
    building_id: str | None
    source_id: str = ""
    distance: float | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "address": self.address,
            "score": self.score,
            "components": dict(self.components),
            "lon": self.lon,
            "lat": self.lat,
            "height": self.height,
            "building_id": self.building_id,
            "source_id": self.source_id,
            "distance": self.distance,
        }


def _sim(a: str, b: str) -> float:
    """Name similarity: mean of the Indel ratio and the OSA (edit distance with
    transpositions) similarity, so that swapped characters count as one typo."""
    if a == b:
        return 1.0
    return 0.5 * (Indel.normalized_similarity(a, b) + OSA.normalized_similarity(a, b))


@lru_cache(maxsize=65536)
def _admin_sim(q: str, c: str) -> float:
    if q == c:
        return 1.0
    return max(_sim(q, c), _sim(admin_short(q), admin_short(c)))


def _poi_sim(q: str, c: str) -> float:
    if not q or not c:
        return 0.0
    if q == c:
        return 1.0
    return max(_sim(q, c), 0.95 * fuzz.partial_ratio(q, c) / 100.0)


def _number_sim(q: str, c: str, q_int: int, c_int: int) -> float:
    if q == c:
        return 1.0
    if q_int >= 0 and q_int == c_int:
        return 0.5
    return 0.0


def _leading_int(s: str) -> int:
    digits = ""
    for ch in s.split("弄")[-1] if "弄" in s else s:
        if ch.isdigit():
            digits += ch
        else:
            break
    return int(digits) if digits else -1


class AddressIndex:
    """Read-only access to an ``addresses.sqlite`` file.

    Parameters
    ----------
    path : str or Path
        The index written by the address stage.

    Raises
    ------
    NotFoundError
        When the file does not exist.
    DatasetIOError
        When it is not an address index.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise NotFoundError("address index not found", path=self.path)
        self._local = threading.local()
        try:
            con = self._con()
            check_schema(con, self.path)
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            self.count = int(meta.get("count", 0))
            self._cell_deg = float(meta.get("cell_deg", 0.002))
            self._cell_stride = int(meta.get("cell_stride", 1_000_000))
            self._admin: dict[str, str] = dict(
                con.execute("SELECT name, full FROM admin").fetchall()
            )
            full_only = {k: v for k, v in self._admin.items() if k == v}
            self._admin_full = full_only if len(full_only) < len(self._admin) else self._admin
            self._footprints = int(meta.get("footprints", 0))
            self._building_ring = int(meta.get("building_ring", 0))
            streets = con.execute(
                "SELECT id, province, city, district, town, name FROM streets ORDER BY id"
            ).fetchall()
        except sqlite3.Error as exc:
            raise DatasetIOError(f"not an address index ({exc})", path=self.path) from exc
        self._street_admin: dict[int, tuple[str, str, str, str]] = {}
        self._street_name: dict[int, str] = {}
        by_name: dict[str, list[int]] = {}
        for sid, prov, city, dist, town, name in streets:
            self._street_admin[sid] = (prov, city, dist, town)
            self._street_name[sid] = name
            if name:
                by_name.setdefault(name, []).append(sid)
        self._names: list[str] = list(by_name)
        self._name_ids: list[list[int]] = [by_name[n] for n in self._names]
        postings: dict[str, list[int]] = {}
        for i, name in enumerate(self._names):
            for ch in set(name):
                postings.setdefault(ch, []).append(i)
        self._char_postings = {c: np.asarray(v, dtype=np.int32) for c, v in postings.items()}
        # per city: its street names and their street ids (searching a city's streets
        # first keeps fuzzy lookup fast and precise in a national index)
        per_city: dict[str, dict[str, list[int]]] = {}
        for sid, _prov, city, _dist, _town, name in streets:
            if name and city:
                per_city.setdefault(city, {}).setdefault(name, []).append(sid)
        self._city_names: dict[str, tuple[list[str], list[list[int]]]] = {
            c: (list(d), list(d.values())) for c, d in per_city.items()
        }
        log.debug("address index %s: %d addresses, %d streets", path, self.count, len(streets))

    # --- connections -----------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            con = sqlite3.connect(uri, uri=True)
            con.execute("PRAGMA query_only=1")
            con.execute("PRAGMA cache_size=-32000")
            self._local.con = con
        return con

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def __enter__(self) -> AddressIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- search ----------------------------------------------------------------------
    def parse(self, query: str) -> Components:
        """Parse a query with this index's gazetteer of administrative names.

        Administrative names written after the street ("鼓楼东街12号 平城市古城区")
        are recognised too.
        """
        return self._parse_with(query, self._admin)

    def _parse_with(self, query: str, known: dict[str, str]) -> Components:
        q = parse_address(query, known)
        if q.poi and known:
            levels, rest = peel_admin(q.poi, known, allow_all=True)
            if levels and not rest and not any(getattr(q, lvl) for lvl in levels):
                q = dataclasses.replace(q, poi="", **levels)
        return q

    def search(self, query: str, limit: int = 10) -> list[Candidate]:
        """Find the addresses that best match ``query``.

        Parameters
        ----------
        query : str
            Any address text: full, partial, with typos, traditional characters,
            Chinese numerals, full-width characters, or Latin script.
        limit : int
            Most candidates returned.

        Returns
        -------
        list of Candidate
            Best first (score, then id).
        """
        if not isinstance(query, str) or not query.strip():
            return []
        queries = self._interpretations(query[:MAX_QUERY_CHARS])
        if not queries:
            return []
        limit = max(1, min(int(limit), MAX_LIMIT))
        rows: dict[int, tuple] = {}
        con = self._con()
        for q in queries:
            self._collect(con, q, rows, limit)
        scored = [(max(self._score(q, r) for q in queries), rid) for rid, r in rows.items()]
        scored.sort(key=lambda x: (-x[0], x[1]))
        return [self._candidate(rows[rid], score) for score, rid in scored[:limit]]

    def _interpretations(self, query: str) -> list[Components]:
        """The readings of a query that are searched; each candidate keeps its best.

        - the parse with the gazetteer;
        - the parse without short administrative names: a short name (浦东 for
          浦东新区) at the start of a query may instead begin a street (浦东南路);
        - the same for the text after a colon ("火情：平城区鼓楼东街12号").
        """
        texts = [query]
        # a message such as "火情：平城区鼓楼东街12号": the address follows the colon
        for colon in ("：", ":"):
            if colon in query:
                tail = query.rsplit(colon, 1)[1].strip()
                if tail:
                    texts.append(tail)
                break
        out: list[Components] = []
        for text in texts:
            q = self.parse(text)
            if any((q.street, q.number, q.poi)) and q not in out:
                out.append(q)
            if self._admin_full is not self._admin:
                q2 = self._parse_with(text, self._admin_full)
                if q2 not in out and any((q2.street, q2.number, q2.poi)):
                    out.append(q2)
        return out

    def _collect(self, con: sqlite3.Connection, q: Components, rows: dict, limit: int) -> None:
        """Add the rows that may match ``q`` to ``rows``."""
        street_text = q.street or (q.poi if not q.number else "")
        if street_text:
            sids = self._street_candidates(q, street_text)
            if sids:
                self._fetch_street_rows(con, q, sids, rows, limit)
        poi_text = q.poi or (q.street if not q.number else "")
        if poi_text and (len(rows) < limit or not q.street):
            self._fetch_poi_rows(con, poi_text, rows, limit)
        if not rows and not q.street and (q.number or len(q.poi) <= 4):
            # a bare house number ("B2", "3F", "12号"): points that have no street
            for r in con.execute(
                f"SELECT {_COLS} FROM addresses a WHERE a.number = ? LIMIT 200",
                (q.number or q.poi,),
            ):
                rows[r[0]] = r

    def _street_candidates(self, q: Components, text: str) -> list[int]:
        """Street ids whose name (and admin area) best match the query.

        Names are searched within the query's city when it names a known one (then
        everywhere when nothing there is close); each street is then ranked by its
        name similarity plus its administrative agreement, as in the final score.
        """
        if not self._names:
            return []
        hits: list[tuple[str, float, int]] = []
        ids: list[list[int]] = self._name_ids
        scope = self._city_names.get(q.city) if q.city else None
        if scope is not None:
            names, ids = scope
            hits = process.extract(text, names, scorer=fuzz.ratio, limit=40, score_cutoff=45)
        if not hits or hits[0][1] < 70:
            ids = self._name_ids
            hits = self._extract_global(text)
        if not hits:
            return []
        qa = [
            (i, WEIGHTS[lvl], getattr(q, lvl))
            for i, lvl in enumerate(_ADMIN_LEVELS)
            if getattr(q, lvl)
        ]
        out: list[tuple[float, int]] = []
        for name, _sim_indel, k in hits:
            base = WEIGHTS["street"] * _sim(text, name)
            for sid in ids[k]:
                admin = self._street_admin[sid]
                a = base
                for i, w, v in qa:
                    cv = admin[i]
                    a += w * (_admin_sim(v, cv) if cv else MISSING_ADMIN)
                out.append((a, sid))
        out.sort(reverse=True)
        best = out[0][0]
        return [sid for a, sid in out[:STREET_CANDIDATES] if a >= best - STREET_MARGIN]

    def _extract_global(self, text: str) -> list[tuple[str, float, int]]:
        """Fuzzy street-name lookup over all names, with a character prefilter.

        Only names sharing at least two distinct characters with the query (one for
        queries of one or two characters) are compared: a single typo in a name of
        three or more characters always leaves two shared.
        """
        if len(self._names) < 5000:
            return process.extract(text, self._names, scorer=fuzz.ratio, limit=40, score_cutoff=45)
        post = [self._char_postings[c] for c in set(text) if c in self._char_postings]
        if not post:
            return []
        counts = np.bincount(np.concatenate(post), minlength=len(self._names))
        need = 2 if len(text) >= 3 else 1
        sub = np.flatnonzero(counts >= need)
        if not len(sub):
            return []
        names = [self._names[i] for i in sub.tolist()]
        hits = process.extract(text, names, scorer=fuzz.ratio, limit=40, score_cutoff=45)
        return [(name, score, int(sub[k])) for name, score, k in hits]

    def _fetch_street_rows(
        self, con: sqlite3.Connection, q: Components, sids: list[int], rows: dict, limit: int
    ) -> None:
        marks = ",".join("?" * len(sids))
        found: list[tuple] = []
        n = _leading_int(q.number) if q.number else -1
        if q.number:
            if n >= 0:
                sql = (
                    f"SELECT {_COLS} FROM addresses a WHERE a.street_id IN ({marks})"
                    " AND a.num_int = ? LIMIT 2000"
                )
                found = con.execute(sql, (*sids, n)).fetchall()
            else:
                sql = (
                    f"SELECT {_COLS} FROM addresses a WHERE a.street_id IN ({marks})"
                    " AND a.number = ? LIMIT 2000"
                )
                found = con.execute(sql, (*sids, q.number)).fetchall()
        if len(found) < limit:
            # the street's nearest numbers (or its first addresses when none was asked)
            top = sids[:5]
            sql = (
                f"SELECT {_COLS} FROM addresses a WHERE a.street_id IN"
                f" ({','.join('?' * len(top))}) ORDER BY abs(a.num_int - ?), a.id LIMIT ?"
            )
            found += con.execute(sql, (*top, max(n, 0), max(limit * 2, 20))).fetchall()
        for r in found:
            rows[r[0]] = r

    def _fetch_poi_rows(self, con: sqlite3.Connection, text: str, rows: dict, limit: int) -> None:
        if len(text) < 3:
            return
        grams = {text[i : i + 3] for i in range(len(text) - 2)}
        match = " OR ".join('"' + g.replace('"', '""') + '"' for g in sorted(grams))
        try:
            ids = [
                r[0]
                for r in con.execute(
                    "SELECT rowid FROM poi_fts WHERE poi_fts MATCH ? ORDER BY rank LIMIT ?",
                    (match, max(limit * 4, 40)),
                )
            ]
        except sqlite3.OperationalError as exc:  # pragma: no cover - odd query text
            log.debug("poi search %r failed: %s", text, exc)
            return
        if ids:
            marks = ",".join("?" * len(ids))
            for r in con.execute(f"SELECT {_COLS} FROM addresses a WHERE a.id IN ({marks})", ids):
                rows[r[0]] = r

    def _score(self, q: Components, r: tuple) -> float:
        """Score (0–100) of index row ``r`` for query ``q`` (module docstring)."""
        sid, number, num_int, bldg, unit, room, poi = r[1:8]
        admin = self._street_admin.get(sid, _NO_ADMIN)
        street = self._street_name.get(sid, "")
        total = 0.0
        weight = 0.0
        if q.street:
            s = _sim(q.street, street) if street else 0.0
            if poi:
                s = max(s, 0.9 * _poi_sim(q.street, poi))
            total += WEIGHTS["street"] * s
            weight += WEIGHTS["street"]
        if q.poi:
            s = _poi_sim(q.poi, poi)
            if street and not q.street:
                s = max(s, 0.9 * _sim(q.poi, street))
            if not q.street and not q.number and number == q.poi:
                s = 1.0  # a bare house number read as text ("B2", "3F")
            total += WEIGHTS["poi"] * s
            weight += WEIGHTS["poi"]
        if q.number:
            total += WEIGHTS["number"] * _number_sim(
                q.number, number, _leading_int(q.number), num_int
            )
            weight += WEIGHTS["number"]
        for i, lvl in enumerate(_ADMIN_LEVELS):
            v = getattr(q, lvl)
            if v:
                total += WEIGHTS[lvl] * (_admin_sim(v, admin[i]) if admin[i] else MISSING_ADMIN)
                weight += WEIGHTS[lvl]
        penalty = 0.0
        for lvl, cv in (("building", bldg), ("unit", unit), ("room", room)):
            v = getattr(q, lvl)
            if v:
                total += WEIGHTS[lvl] * ((1.0 if v == cv else 0.0) if cv else MISSING_DETAIL)
                weight += WEIGHTS[lvl]
            elif cv:
                penalty += EXTRA_DETAIL_PENALTY
        return max(0.0, 100.0 * total / weight - penalty) if weight else 0.0

    def _candidate(self, r: tuple, score: float, distance: float | None = None) -> Candidate:
        """A :class:`Candidate` from index row ``r``."""
        (
            rid,
            sid,
            number,
            _num_int,
            bldg,
            unit,
            room,
            poi,
            address,
            source_id,
            lon,
            lat,
            height,
            building_id,
        ) = r
        admin = self._street_admin.get(sid, _NO_ADMIN)
        values = (*admin, self._street_name.get(sid, ""), number, bldg, unit, room, poi)
        return Candidate(
            id=int(rid),
            address=address,
            score=round(score, 2),
            components={k: v for k, v in zip(_FIELDS, values, strict=True) if v},
            lon=float(lon),
            lat=float(lat),
            height=None if height is None else float(height),
            building_id=building_id,
            source_id=source_id,
            distance=distance,
        )

    # --- reverse ---------------------------------------------------------------------
    def building_at(self, lon: float, lat: float) -> tuple[str, float] | None:
        """The building whose footprint contains a point.

        Parameters
        ----------
        lon, lat : float
            WGS84 degrees.

        Returns
        -------
        (building_id, top) or None
            ``top`` is the fly-to height (base + height, WGS84 ellipsoidal); None
            when no footprint contains the point or the index has no footprints.
        When footprints overlap, the smallest wins.
        """
        if not self._footprints or not (math.isfinite(lon) and math.isfinite(lat)):
            return None
        cd = self._cell_deg
        ix = math.floor((lon + 180.0) / cd)
        iy = math.floor((lat + 90.0) / cd)
        r = self._building_ring
        cells = [
            (ix + dx) * self._cell_stride + iy + dy
            for dx in range(-r, r + 1)
            for dy in range(-r, r + 1)
        ]
        marks = ",".join("?" * len(cells))
        rows = (
            self._con()
            .execute(
                f"SELECT id, top, wkb FROM buildings WHERE (cell IN ({marks}) OR big = 1)"
                " AND minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?",
                (*cells, lon, lon, lat, lat),
            )
            .fetchall()
        )
        if not rows:
            return None
        geoms = shapely.from_wkb([r[2] for r in rows])
        inside = np.flatnonzero(shapely.intersects_xy(geoms, lon, lat))
        if not len(inside):
            return None
        best = int(inside[np.argmin(shapely.area(geoms[inside]))])
        top = rows[best][1]
        return str(rows[best][0]), (None if top is None else float(top))

    def reverse(
        self, lon: float, lat: float, limit: int = 5, max_distance: float = 1000.0
    ) -> list[Candidate]:
        """The addresses nearest to a point, nearest first.

        Parameters
        ----------
        lon, lat : float
            WGS84 degrees.
        limit : int
            Most candidates returned.
        max_distance : float
            Metres searched around the point.

        Returns
        -------
        list of Candidate
            With ``distance`` (metres) set. When the index holds footprints and the
            point lies in a building, that building's addresses come first (see
            :meth:`building_at`); the rest are nearest first.
        """
        lon, lat = float(lon), float(lat)
        if not (math.isfinite(lon) and math.isfinite(lat)):
            return []
        limit = max(1, min(int(limit), MAX_LIMIT))
        con = self._con()
        cd = self._cell_deg
        ix = math.floor((lon + 180.0) / cd)
        iy = math.floor((lat + 90.0) / cd)
        cell_m = cd * 111_195.0 * max(math.cos(math.radians(lat)), 0.01)
        max_ring = max(1, math.ceil(max_distance / cell_m))
        found: list[tuple] = []
        for ring in range(max_ring + 1):
            cells = [
                (ix + dx) * self._cell_stride + iy + dy
                for dx in range(-ring, ring + 1)
                for dy in range(-ring, ring + 1)
                if max(abs(dx), abs(dy)) == ring
            ]
            marks = ",".join("?" * len(cells))
            found.extend(
                con.execute(f"SELECT {_COLS} FROM addresses a WHERE a.cell IN ({marks})", cells)
            )
            # every point within ring * cell_m has been seen
            if len(found) >= limit and self._kth_distance(found, lon, lat, limit) <= ring * cell_m:
                break
        dist = [(_distance(lon, lat, r[10], r[11]), r) for r in found]
        dist = [x for x in dist if x[0] <= max_distance]
        here = self.building_at(lon, lat)
        here_id = here[0] if here else None
        # the addresses of the building at the point come first, then by distance
        dist.sort(key=lambda x: (x[1][13] != here_id or here_id is None, x[0], x[1][0]))
        out = []
        for d, r in dist[: max(1, int(limit))]:
            score = max(0.0, 100.0 * (1.0 - d / max_distance))
            out.append(self._candidate(r, score, round(d, 2)))
        return out

    @staticmethod
    def _kth_distance(rows: list[tuple], lon: float, lat: float, k: int) -> float:
        d = sorted(_distance(lon, lat, r[10], r[11]) for r in rows)
        return d[k - 1]


def check_schema(con: sqlite3.Connection, path: Path) -> None:
    """Refuse an index written for another :data:`SCHEMA_VERSION`.

    Raises
    ------
    DatasetIOError
        One line naming the file, both versions and the fix (rebuild).
    """
    (version,) = con.execute("PRAGMA user_version").fetchone()
    if version != SCHEMA_VERSION:
        older = "an older" if version < SCHEMA_VERSION else "a newer"
        raise DatasetIOError(
            f"address index of schema version {version} (written by {older} toolkit); this"
            f" toolkit reads version {SCHEMA_VERSION}: rebuild it with `cim build --force"
            " CITY.toml`",
            path=path.name,
        )


def _distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS * math.asin(min(1.0, math.sqrt(a)))


__all__ = ["SCHEMA_VERSION", "WEIGHTS", "AddressIndex", "Candidate", "check_schema", "normalize"]
