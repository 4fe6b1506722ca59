"""Underground pipelines (地下管线): utilities, clearance rules and the network's read side.

The policy every side shares lives here:

- the utilities (给水 water, 排水 drainage, 燃气 gas, 热力 heat, 电力 power, 通信 telecom,
  工业 industrial, 综合管廊 utility tunnel), the codes and names surveys use for them
  (CJJ 61 / CJJ/T 269 codes such as ``JS``, ``PS``, ``RQ``) and their colours after the
  national convention (water sky blue, drainage brown, gas pink, heat orange, power
  red, telecom green, industrial black);
- the minimum clearances (净距) between utilities and to building foundations, after
  GB 50289-2016 tables 4.1.9 (horizontal) and 4.1.14 (vertical): one value per pair,
  refined where a pipe's attributes give its class (water by diameter, gas by pressure
  after GB 50028-2006 table 6.3.3-1, cables and heat pipes by how they are laid);
- :class:`PipeNetwork`, the read side of ``pipelines/network.sqlite`` written by the
  pipelines stage: connected pipes upstream or downstream of a pipe, burst analysis
  (爆管分析: the valves to close and the pipes cut off) and clearance checks. The
  graph work is networkx's.

Coordinates in the network file are metres in the tileset's east-north-up frame (its
origin is in the file's ``meta``), heights WGS84 ellipsoidal like the tiles, depths and
ground elevations as surveyed (orthometric).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import shapely

from cim.errors import DatasetIOError, InputDataError, NotFoundError

log = logging.getLogger(__name__)

#: where the pipelines stage writes the network, relative to the output folder
NETWORK_FILE = "pipelines/network.sqlite"
#: version of the network file's tables (``PRAGMA user_version``)
NETWORK_VERSION = 1


@dataclass(frozen=True)
class Utility:
    """One kind of underground network."""

    key: str
    name: str  # Chinese name shown in the viewer
    colour: str  # "#rrggbb", after the national convention (CJJ 61)
    codes: tuple[str, ...]  # codes and names found in surveys (upper-cased for matching)
    gravity: bool = False  # flows by slope (drainage), not by pressure


UTILITIES: dict[str, Utility] = {
    u.key: u
    for u in (
        Utility(
            "water",
            "给水",
            "#00bfff",
            ("JS", "GS", "SS", "给水", "上水", "供水", "自来水", "WATER"),
        ),
        Utility(
            "drainage",
            "排水",
            "#8b4513",
            ("PS", "YS", "WS", "HS", "排水", "雨水", "污水", "合流", "DRAINAGE", "SEWER", "STORM"),
            gravity=True,
        ),
        Utility(
            "gas",
            "燃气",
            "#ff4fc8",
            ("RQ", "MQ", "TR", "YH", "燃气", "煤气", "天然气", "液化气", "GAS"),
        ),
        Utility(
            "heat", "热力", "#ff8c00", ("RL", "RS", "ZQ", "热力", "热水", "蒸汽", "供热", "HEAT")
        ),
        Utility(
            "power",
            "电力",
            "#ff0000",
            ("DL", "GD", "LD", "XH", "电力", "供电", "路灯", "信号", "POWER", "ELECTRIC"),
        ),
        Utility(
            "telecom",
            "通信",
            "#00c000",
            (
                "TX",
                "DX",
                "LT",
                "YD",
                "WT",
                "DS",
                "通信",
                "电信",
                "联通",
                "移动",
                "网通",
                "广电",
                "有线电视",
                "TELECOM",
            ),
        ),
        Utility("industrial", "工业", "#1a1a1a", ("GY", "工业", "INDUSTRIAL")),
        Utility("tunnel", "综合管廊", "#9e9e9e", ("GL", "ZH", "综合管廊", "管廊", "TUNNEL")),
        Utility("other", "其他", "#7f7f7f", ("QT", "BM", "其他", "不明", "OTHER")),
    )
}
_BY_CODE = {code: u.key for u in UTILITIES.values() for code in (u.key.upper(), *u.codes)}


def utility_of(value: Any) -> str | None:
    """The utility key for a survey's code or name (``JS``, ``给水管``, ``water``), or None.

    Exact codes first, then the longest Chinese name contained in the value
    (``雨水管线`` → drainage), then a two-letter code prefix (``JS_POINT`` → water).
    """
    text = str(value or "").strip().upper()
    if not text:
        return None
    if text in _BY_CODE:
        return _BY_CODE[text]
    names = sorted((c for c in _BY_CODE if not c.isascii()), key=len, reverse=True)
    for name in names:
        if name in text:
            return _BY_CODE[name]
    head = text[:2]
    if head.isalpha() and head.isascii() and head in _BY_CODE and not text[2:3].isalpha():
        return _BY_CODE[head]
    return None


def utilities_of(values: Iterable[Any]) -> np.ndarray:
    """:func:`utility_of` for a column (each distinct value is parsed once); None unknown."""
    arr = np.asarray(list(values), dtype=object)
    uniq, inverse = np.unique(arr.astype(str), return_inverse=True)
    keys = np.array(
        [utility_of(u) if u not in ("None", "nan") else None for u in uniq], dtype=object
    )
    return keys[inverse] if len(arr) else np.array([], dtype=object)


# --- clearances (GB 50289-2016 table 4.1.9 / 4.1.14, GB 50028-2006 table 6.3.3-1) ------

#: Horizontal clearance (m) between the outer walls of two utilities' pipes, and to a
#: building's foundation ("building"), after GB 50289-2016 table 4.1.9, used when the
#: pipes' classes are unknown or the standard does not split the pair: where it splits
#: by pressure or diameter, the stricter value of the common classes (water d > 200 mm,
#: medium-pressure gas) is taken. :data:`HORIZONTAL_BY_CLASS` refines them by class.
HORIZONTAL_CLEARANCE: dict[tuple[str, str], float] = {
    ("building", "water"): 3.0,
    ("building", "drainage"): 2.5,
    ("building", "gas"): 1.5,
    ("building", "heat"): 3.0,
    ("building", "power"): 0.6,
    ("building", "telecom"): 1.0,
    ("drainage", "water"): 1.5,
    ("gas", "water"): 0.5,
    ("heat", "water"): 1.5,
    ("power", "water"): 0.5,
    ("telecom", "water"): 1.0,
    ("drainage", "gas"): 1.2,
    ("drainage", "heat"): 1.5,
    ("drainage", "power"): 0.5,
    ("drainage", "telecom"): 1.0,
    ("gas", "heat"): 1.0,
    ("gas", "power"): 0.5,
    ("gas", "telecom"): 1.0,
    ("heat", "power"): 2.0,
    ("heat", "telecom"): 1.0,
    ("power", "telecom"): 0.5,
}
#: Vertical clearance (m) where two pipes cross, after GB 50289-2016 table 4.1.14.
VERTICAL_CLEARANCE: dict[tuple[str, str], float] = {
    ("water", "water"): 0.15,
    ("drainage", "water"): 0.4,
    ("drainage", "drainage"): 0.15,
    ("heat", "water"): 0.15,
    ("drainage", "heat"): 0.15,
    ("gas", "water"): 0.15,
    ("drainage", "gas"): 0.15,
    ("gas", "heat"): 0.15,
    ("gas", "gas"): 0.15,
    ("telecom", "water"): 0.15,
    ("drainage", "telecom"): 0.15,
    ("heat", "telecom"): 0.25,
    ("gas", "telecom"): 0.15,
    ("telecom", "telecom"): 0.25,
    ("power", "water"): 0.5,
    ("drainage", "power"): 0.5,
    ("heat", "power"): 0.5,
    ("gas", "power"): 0.5,
    ("power", "telecom"): 0.5,
    ("power", "power"): 0.5,
}


#: Gas pressure classes (GB 50028-2006 §6.1.6): upper bound of each class in MPa (low:
#: P < 0.01, medium B: 0.01 ≤ P ≤ 0.2, ...). Above 1.6 MPa is high pressure, which the
#: clearance tables do not cover: checked with the sub-high A values (a floor).
GAS_PRESSURE_CLASSES: tuple[tuple[str, float], ...] = (
    ("low", 0.01),
    ("medium-b", 0.2),
    ("medium-a", 0.4),
    ("sub-high-b", 0.8),
    ("sub-high-a", 1.6),
)
#: Pressure class names in surveys, most specific first ("中压" alone: the stricter A).
_PRESSURE_NAMES: tuple[tuple[str, str], ...] = (
    ("次高压A", "sub-high-a"),
    ("次高压B", "sub-high-b"),
    ("中压A", "medium-a"),
    ("中压B", "medium-b"),
    ("次高压", "sub-high-a"),
    ("高压", "high"),
    ("中压", "medium-a"),
    ("低压", "low"),
)
#: How cables and heat pipes are laid (CJJ 61 埋设方式), as the clearance tables split it.
LAYING_NAMES: tuple[tuple[str, str], ...] = (
    ("直埋", "direct"),
    ("DIRECT", "direct"),
    ("排管", "conduit"),
    ("管块", "conduit"),
    ("保护管", "conduit"),
    ("导管", "conduit"),
    ("套管", "conduit"),
    ("穿管", "conduit"),
    ("管埋", "conduit"),
    ("管道", "conduit"),
    ("CONDUIT", "conduit"),
    ("管沟", "trench"),
    ("地沟", "trench"),
    ("沟道", "trench"),
    ("电缆沟", "trench"),
    ("TRENCH", "trench"),
)
#: The classes each utility's clearances depend on.
CLASSES: dict[str, tuple[str, ...]] = {
    "water": ("d<=200", "d>200"),
    "gas": (*(c for c, _ in GAS_PRESSURE_CLASSES), "high"),
    "power": ("direct", "conduit", "trench"),
    "telecom": ("direct", "conduit", "trench"),
    "heat": ("direct", "trench"),
}
#: A class the tables have no value of, and the class whose values it takes.
_CLASS_FALLBACK = {"gas:high": "gas:sub-high-a"}
#: Water supply by diameter (d ≤ 200 mm, d > 200 mm), GB 50289-2016 table 4.1.9.
_WATER_ROWS: dict[str, tuple[float, float]] = {
    "building": (1.0, 3.0),
    "drainage": (1.0, 1.5),
}
#: Gas by pressure class (low, medium B, medium A, sub-high B, sub-high A), after the gas
#: code's table of distances from buried gas pipes (GB 50028-2006 table 6.3.3-1). To
#: buildings: the foundation for low and medium pressure, the outer wall (where the pipe
#: meets the ground) for sub-high.
_GAS_ROWS: dict[str, tuple[float, float, float, float, float]] = {
    "building": (0.7, 1.0, 1.5, 5.0, 13.5),
    "water": (0.5, 0.5, 0.5, 1.0, 1.5),
    "drainage": (1.0, 1.2, 1.2, 1.5, 2.0),
    "power:direct": (0.5, 0.5, 0.5, 1.0, 1.5),
    "power:conduit": (1.0, 1.0, 1.0, 1.0, 1.5),
    "telecom:direct": (0.5, 0.5, 0.5, 1.0, 1.5),
    "telecom:conduit": (1.0, 1.0, 1.0, 1.0, 1.5),
    "heat:direct": (1.0, 1.0, 1.0, 1.5, 2.0),
    "heat:trench": (1.0, 1.5, 1.5, 2.0, 4.0),
}
#: the gas class the pair defaults assume when a gas pipe's pressure is unknown
_GAS_ASSUMED = "medium-a"


def _utility_part(side: str) -> str:
    return side.split(":", 1)[0]


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The order-free key of a pair (``building`` first, else by utility, then class).

    A side is a utility (``gas``) or a utility and its class (``gas:sub-high-a``).
    """
    if b == "building":
        a, b = b, a
    if a == "building":
        return (a, b)
    ka, kb = (_utility_part(a), a), (_utility_part(b), b)
    return (a, b) if ka <= kb else (b, a)


def _by_class() -> dict[tuple[str, str], float]:
    """The horizontal minimums that depend on classes, with their one-sided summaries.

    A gas class against a utility whose class is unknown takes the strictest of that
    utility's classes; an unknown gas pressure against a known class takes the
    pressure the pair defaults assume (medium A).
    """
    out: dict[tuple[str, str], float] = {}
    gas = [c for c, _ in GAS_PRESSURE_CLASSES]
    for other, values in _GAS_ROWS.items():
        for cls, v in zip(gas, values, strict=True):
            out[pair_key(f"gas:{cls}", other)] = v
            plain = _utility_part(other)
            if plain != other:
                key = pair_key(f"gas:{cls}", plain)
                out[key] = max(out.get(key, 0.0), v)
        if ":" in other:
            out[pair_key("gas", other)] = values[gas.index(_GAS_ASSUMED)]
    for other, (small, large) in _WATER_ROWS.items():
        out[pair_key("water:d<=200", other)] = small
        out[pair_key("water:d>200", other)] = large
    return out


#: Horizontal minimums (m) by class; see :func:`required_clearance` for the look-up.
HORIZONTAL_BY_CLASS: dict[tuple[str, str], float] = _by_class()


def gas_pressure_class(value: Any) -> str | None:
    """The pressure class of a gas pipe from its surveyed 压力, or None when unknown.

    Class names first (``中压B``, ``次高压A``, ``medium-b``), then a pressure with its
    unit (``0.2MPa``, ``400kPa``, ``2000Pa``), then a bare class name (``中压`` is taken
    as the stricter A). A bare number has no unit to trust: unknown.
    """
    text = str(value or "").strip()
    if not text or text.lower() in ("none", "nan"):
        return None
    upper = text.upper().replace(" ", "").replace("级", "")
    if upper.lower() in CLASSES["gas"]:
        return upper.lower()
    for name, cls in _PRESSURE_NAMES[:4]:
        if name in upper:
            return cls
    number = re.search(r"(\d+(?:\.\d+)?)(MPA|KPA|PA)(?![A-Z])", upper)
    if number:
        mpa = float(number.group(1)) * {"MPA": 1.0, "KPA": 1e-3, "PA": 1e-6}[number.group(2)]
        if mpa < GAS_PRESSURE_CLASSES[0][1]:
            return "low"
        for cls, top in GAS_PRESSURE_CLASSES[1:]:
            if mpa <= top:
                return cls
        return "high"
    for name, cls in _PRESSURE_NAMES[4:]:
        if name in upper:
            return cls
    return None


def laying_class(value: Any) -> str | None:
    """``direct``, ``conduit`` or ``trench`` from a surveyed 埋设方式, or None."""
    upper = str(value or "").strip().upper()
    if upper.lower() in ("direct", "conduit", "trench"):
        return upper.lower()
    for name, cls in sorted(LAYING_NAMES, key=lambda p: len(p[0]), reverse=True):
        if name in upper:
            return cls
    return None


def diameter_class(value: Any) -> str | None:
    """``d<=200`` or ``d>200`` (mm) from a diameter in mm, or a written class."""
    text = str(value or "").strip().lower().replace(" ", "").replace("≤", "<=").replace("mm", "")
    if text.lstrip("d") in ("<=200", ">200"):
        return "d" + text.lstrip("d")
    try:
        mm = float(text)
    except ValueError:
        return None
    return None if not np.isfinite(mm) or mm <= 0 else ("d<=200" if mm <= 200.0 else "d>200")


def pipe_class(
    utility: str, *, diameter_mm: Any = None, pressure: Any = None, laying: Any = None
) -> str:
    """The class a pipe's clearances depend on (``""``: none or unknown).

    Water by diameter, gas by pressure, power, telecom and heat by how they are laid.
    """
    if utility == "water":
        cls = diameter_class(diameter_mm)
    elif utility == "gas":
        cls = gas_pressure_class(pressure)
    elif utility in CLASSES:
        cls = laying_class(laying)
        cls = cls if cls in CLASSES[utility] else None
    else:
        cls = None
    return cls or ""


def segment_classes(
    utility: np.ndarray, width_m: np.ndarray, pressure: np.ndarray, laying: np.ndarray
) -> np.ndarray:
    """:func:`pipe_class` of every segment (each distinct combination parsed once)."""
    mm = np.round(np.asarray(width_m, dtype=np.float64) * 1000.0, 1)
    combos = list(
        zip(
            np.asarray(utility, dtype=object).astype(str).tolist(),
            mm.tolist(),
            np.asarray(pressure, dtype=object).astype(str).tolist(),
            np.asarray(laying, dtype=object).astype(str).tolist(),
            strict=True,
        )
    )
    memo: dict[tuple[str, float, str, str], str] = {}
    for c in set(combos):
        memo[c] = pipe_class(c[0], diameter_mm=c[1], pressure=c[2], laying=c[3])
    return np.array([memo[c] for c in combos], dtype=object)


def _sides(utility: str, cls: str) -> list[str]:
    """The table keys a pipe answers to, most specific first."""
    if not cls:
        return [utility]
    side = f"{utility}:{cls}"
    fallback = _CLASS_FALLBACK.get(side)
    return [side, fallback, utility] if fallback else [side, utility]


def required_clearance(
    tables: dict[str, Any], kind: str, a: str, class_a: str, b: str, class_b: str
) -> float:
    """The minimum clearance (m) in force between two pipes (or ``building`` and a pipe).

    Parameters
    ----------
    tables : dict
        :func:`clearance_tables`' result (``horizontal``, ``vertical``, ``overrides``).
    kind : {"horizontal", "vertical"}
    a, b : str
        Utilities (or ``building``).
    class_a, class_b : str
        Their classes (:func:`pipe_class`; ``""`` unknown).

    Returns
    -------
    float
        The project's override when one names the pair (its most specific key wins),
        else the default of the most specific key; NaN when no minimum applies.
        Keys are tried with both classes, with one, then with none.
    """
    keys = [
        "/".join(pair_key(sa, sb))
        for sa, sb in sorted(
            ((sa, sb) for sa in _sides(a, class_a) for sb in _sides(b, class_b)),
            key=lambda p: -(":" in p[0]) - (":" in p[1]),
        )
    ]
    for table in ((tables.get("overrides") or {}).get(kind) or {}, tables.get(kind) or {}):
        for key in keys:
            if key in table:
                return float(table[key])
    return float("nan")


def _parse_side(text: str, key: str) -> str:
    """A side of an override key: ``gas``, ``燃气``, ``gas:次高压A``, ``water:d>200``."""
    name, _, cls_text = text.strip().partition(":")
    utility = (
        "building" if name.strip().lower() in ("building", "建筑", "建筑物") else (utility_of(name))
    )
    if utility is None:
        raise InputDataError(
            f"[pipelines] clearance key {key!r}: name two utilities, e.g. 'water/gas'"
        )
    if not cls_text:
        return utility
    parse = {
        "water": diameter_class,
        "gas": gas_pressure_class,
    }.get(utility, laying_class)
    cls = parse(cls_text) if utility in CLASSES else None
    if cls is None or cls not in CLASSES.get(utility, ()):
        allowed = ", ".join(CLASSES.get(utility, ())) or "none"
        raise InputDataError(
            f"[pipelines] clearance key {key!r}: unknown class {cls_text!r} of {utility} "
            f"(classes: {allowed})"
        )
    return f"{utility}:{cls}"


def _parse_key(key: str) -> str:
    text = str(key)
    # "water/gas"; the older "water-gas" too (class names hold hyphens: only without ":")
    parts = text.split("/") if "/" in text or ":" in text else text.split("-")
    if len(parts) != 2:
        raise InputDataError(
            f"[pipelines] clearance key {key!r}: name two utilities, e.g. 'water/gas'"
        )
    return "/".join(pair_key(_parse_side(parts[0], text), _parse_side(parts[1], text)))


def clearance_tables(
    horizontal: dict[str, float] | None = None, vertical: dict[str, float] | None = None
) -> dict[str, dict[str, float]]:
    """The defaults and a project's overrides (keys ``"water/gas"``, ``"gas:次高压A/building"``).

    Returns
    -------
    dict
        ``horizontal`` and ``vertical``: every default (per pair, and horizontal per
        class) with the overrides written over them, keys ``"a/b"``; ``overrides``:
        the project's own, by kind, which :func:`required_clearance` tries first.

    Raises
    ------
    InputDataError
        An override names an unknown utility or class.
    """
    out: dict[str, Any] = {"overrides": {}}
    for kind, defaults, overrides in (
        ("horizontal", {**HORIZONTAL_CLEARANCE, **HORIZONTAL_BY_CLASS}, horizontal or {}),
        ("vertical", VERTICAL_CLEARANCE, vertical or {}),
    ):
        own = {_parse_key(k): float(v) for k, v in overrides.items()}
        out[kind] = {**{"/".join(k): float(v) for k, v in defaults.items()}, **own}
        out["overrides"][kind] = own
    return out


# --- the network file (read side) ---------------------------------------------------


@dataclass(frozen=True)
class _Segments:
    ids: np.ndarray
    utility: np.ndarray
    start: np.ndarray
    end: np.ndarray
    a: np.ndarray  # (n, 3) axis start, frame metres
    b: np.ndarray  # (n, 3) axis end
    width: np.ndarray  # outer width, m (diameter for circular pipes)
    height: np.ndarray  # outer height, m
    cls: np.ndarray  # clearance class (pipe_class: "d>200", "medium-b", "direct"...; "")


class PipeNetwork:
    """The pipe network of a build (``pipelines/network.sqlite``), with its queries.

    Parameters
    ----------
    path : Path
        The network file.

    Raises
    ------
    NotFoundError
        The build has no pipelines.
    DatasetIOError
        The file cannot be read or is of another version.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise NotFoundError("this city has no pipelines (pipelines/network.sqlite)")
        try:
            self._db = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False
            )
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            self.meta = {
                k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM meta")
            }
        except sqlite3.Error as exc:
            raise DatasetIOError(f"pipe network cannot be read ({exc})", path=self.path) from exc
        if version != NETWORK_VERSION:
            raise DatasetIOError(
                f"pipe network is version {version}, this toolkit reads {NETWORK_VERSION}: rebuild",
                path=self.path,
            )
        self._lock = threading.Lock()
        self._db.row_factory = sqlite3.Row
        self._load()

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def _load(self) -> None:
        rows = self._db.execute(
            "SELECT id, utility, start, end_, ax, ay, az, bx, by, bz, width, height, "
            "pressure, laying FROM segments ORDER BY rowid"
        ).fetchall()
        cols = list(zip(*rows, strict=True)) if rows else [[]] * 14
        f = lambda k: np.asarray(cols[k], dtype=np.float64)  # noqa: E731
        self.segments = _Segments(
            ids=np.asarray(cols[0], dtype=object),
            utility=np.asarray(cols[1], dtype=object),
            start=np.asarray(cols[2], dtype=object),
            end=np.asarray(cols[3], dtype=object),
            a=np.column_stack([f(4), f(5), f(6)]) if rows else np.zeros((0, 3)),
            b=np.column_stack([f(7), f(8), f(9)]) if rows else np.zeros((0, 3)),
            width=f(10),
            height=f(11),
            cls=segment_classes(
                np.asarray(cols[1], dtype=object),
                f(10),
                np.asarray(cols[12], dtype=object),
                np.asarray(cols[13], dtype=object),
            ),
        )
        self._row = {s: i for i, s in enumerate(self.segments.ids.tolist())}
        points = self._db.execute("SELECT id, valve, source FROM points").fetchall()
        self.valves = {p["id"] for p in points if p["valve"]}
        self.sources = {p["id"] for p in points if p["source"]}
        graph = nx.MultiGraph()
        graph.add_nodes_from(p["id"] for p in points)
        graph.add_edges_from(
            zip(
                self.segments.start.tolist(),
                self.segments.end.tolist(),
                self.segments.ids.tolist(),
                strict=True,
            )
        )
        self.graph = graph
        self._directed: dict[str, nx.MultiDiGraph] = {}
        self._lines: np.ndarray | None = None
        self._tree: shapely.STRtree | None = None

    # --- look-ups ----------------------------------------------------------------------
    def row(self, segment_id: str) -> int:
        """Row of a segment (raises NotFoundError)."""
        row = self._row.get(str(segment_id))
        if row is None:
            raise NotFoundError(f"no pipe segment {str(segment_id)[:100]!r}")
        return row

    def segment(self, segment_id: str) -> dict[str, Any]:
        """One segment's attributes as surveyed and computed."""
        self.row(segment_id)
        with self._lock:
            r = self._db.execute(
                "SELECT * FROM segments WHERE id = ?", (str(segment_id),)
            ).fetchone()
        out = dict(r)
        out["end"] = out.pop("end_")
        return out

    def point(self, point_id: str) -> dict[str, Any]:
        """One point's attributes (raises NotFoundError)."""
        with self._lock:
            r = self._db.execute("SELECT * FROM points WHERE id = ?", (str(point_id),)).fetchone()
        if r is None:
            raise NotFoundError(f"no pipe point {str(point_id)[:100]!r}")
        return dict(r)

    def summary(self) -> dict[str, Any]:
        """Counts per utility and the clearance tables in force."""
        keys, counts = np.unique(self.segments.utility.astype(str), return_counts=True)
        return {
            "segments": len(self.segments.ids),
            "points": self.graph.number_of_nodes(),
            "valves": len(self.valves),
            "sources": sorted(self.sources),
            "utilities": {
                k: {
                    "segments": int(c),
                    "name": UTILITIES[k].name if k in UTILITIES else k,
                    "colour": UTILITIES[k].colour if k in UTILITIES else "#7f7f7f",
                }
                for k, c in zip(keys.tolist(), counts.tolist(), strict=True)
            },
            "clearance": self.meta.get("clearance", {}),
        }

    # --- connectivity ------------------------------------------------------------------
    def _utility_graph(self, utility: str) -> nx.MultiGraph:
        keep = [
            (u, v, k)
            for u, v, k in self.graph.edges(keys=True)
            if self.segments.utility[self._row[k]] == utility
        ]
        return self.graph.edge_subgraph(keep)

    def directed(self, utility: str) -> tuple[nx.MultiDiGraph, str]:
        """The utility's network oriented by flow, and how the flow was decided.

        Gravity networks (drainage) flow from the higher axis end to the lower one;
        pressure networks flow away from their sources (shortest paths by length);
        without sources the direction is unknown and every pipe is both ways.
        """
        with self._lock:
            if utility in self._directed:
                return self._directed[utility], self.meta.get(f"flow:{utility}", "unknown")
        seg = self.segments
        rows = np.flatnonzero(seg.utility == utility)
        graph = nx.MultiDiGraph()
        gravity = UTILITIES.get(utility, UTILITIES["other"]).gravity
        sources = [s for s in self.sources if s in self.graph]
        if gravity:
            how = "slope"
            down = seg.a[rows, 2] >= seg.b[rows, 2]
            for r, d in zip(rows.tolist(), down.tolist(), strict=True):
                u, v = (seg.start[r], seg.end[r]) if d else (seg.end[r], seg.start[r])
                graph.add_edge(u, v, key=seg.ids[r])
        elif sources:
            how = "sources"
            und = self._utility_graph(utility)
            length = {
                (u, v, k): float(np.linalg.norm(seg.b[self._row[k]] - seg.a[self._row[k]]))
                for u, v, k in und.edges(keys=True)
            }
            nx.set_edge_attributes(und, length, "length")
            starts = [s for s in sources if s in und]
            dist = (
                nx.multi_source_dijkstra_path_length(und, starts, weight="length") if starts else {}
            )
            for r in rows.tolist():
                u, v = seg.start[r], seg.end[r]
                if dist.get(v, np.inf) < dist.get(u, np.inf):
                    u, v = v, u
                graph.add_edge(u, v, key=seg.ids[r])
        else:
            how = "unknown"
            for r in rows.tolist():
                graph.add_edge(seg.start[r], seg.end[r], key=seg.ids[r])
                graph.add_edge(seg.end[r], seg.start[r], key=seg.ids[r])
        with self._lock:
            self._directed[utility] = graph
            self.meta[f"flow:{utility}"] = how
        return graph, how

    def connected(self, segment_id: str, direction: str = "downstream") -> dict[str, Any]:
        """The pipes connected to a segment upstream, downstream or both ways.

        Parameters
        ----------
        segment_id : str
        direction : {"downstream", "upstream", "both"}
            Along the flow (see :meth:`directed`), against it, or every pipe of the
            same utility reachable through the network.

        Returns
        -------
        dict
            ``segment``, ``utility``, ``direction``, ``flow`` (``slope``, ``sources`` or
            ``unknown``), ``segments`` (ids, the segment itself excluded) and ``points``.
        """
        if direction not in ("downstream", "upstream", "both"):
            raise InputDataError("direction must be downstream, upstream or both")
        r = self.row(segment_id)
        seg = self.segments
        utility = str(seg.utility[r])
        graph, how = self.directed(utility)
        if direction == "both":
            und = self._utility_graph(utility)
            nodes = nx.node_connected_component(und, seg.start[r])
            edges = {k for _, _, k in und.edges(nodes, keys=True)}
        else:
            u, v = next((a, b) for a, b, k in graph.edges(keys=True) if k == seg.ids[r])
            if direction == "downstream":
                nodes = nx.descendants(graph, v) | {v}
                edges = {k for _, _, k in graph.out_edges(nodes, keys=True)}
            else:
                nodes = nx.ancestors(graph, u) | {u}
                edges = {k for _, _, k in graph.in_edges(nodes, keys=True)}
        edges.discard(seg.ids[r])
        return {
            "segment": seg.ids[r],
            "utility": utility,
            "direction": direction,
            "flow": how,
            "segments": sorted(edges),
            "points": sorted(nodes),
        }

    def burst(self, segment_id: str) -> dict[str, Any]:
        """Burst analysis (爆管分析) of a segment.

        The search spreads from the burst pipe through the network of its utility and
        stops at valves: the valves met are the ones to close, the pipes inside them
        are isolated. Closing them also cuts off every pipe no longer connected to a
        source (``[pipelines] sources``; without sources: to the largest part of the
        network that remains).

        Returns
        -------
        dict
            ``segment``, ``utility``, ``valves`` (point ids to close), ``isolated``
            (segment ids inside the valves, the burst pipe included), ``cut_off``
            (segments left without supply outside them), ``supply`` (``sources`` or
            ``largest-part``) and ``closable`` (False when no valve bounds the burst or a
            source lies inside the valves: closing them does not stop the flow).
        """
        r = self.row(segment_id)
        seg = self.segments
        utility = str(seg.utility[r])
        und = self._utility_graph(utility)
        ends = {seg.start[r], seg.end[r]}
        open_ends = [n for n in ends if n not in self.valves]
        inner = und.subgraph(n for n in und if n not in self.valves)
        region: set[str] = set()
        for n in open_ends:
            region |= nx.node_connected_component(inner, n)
        valves = {n for n in ends if n in self.valves}
        valves |= {m for n in region for m in und.neighbors(n) if m in self.valves}
        isolated = {k for _, _, k in und.edges(region, keys=True)} | {seg.ids[r]}
        rest = nx.MultiGraph(und)
        rest.remove_nodes_from(valves | region)
        sources = [s for s in self.sources if s in rest]
        if sources:
            supply = "sources"
            fed = set().union(*(nx.node_connected_component(rest, s) for s in sources))
        else:
            supply = "largest-part"
            parts = sorted(nx.connected_components(rest), key=len, reverse=True)
            fed = set(parts[0]) if parts else set()
        cut = {
            k
            for u, v, k in und.edges(keys=True)
            if k not in isolated and not (u in fed or v in fed)
        }
        return {
            "segment": seg.ids[r],
            "utility": utility,
            "valves": sorted(valves),
            "isolated": sorted(isolated),
            "cut_off": sorted(cut),
            "supply": supply,
            "closable": bool(valves) and not (region & self.sources),
        }

    # --- clearances --------------------------------------------------------------------
    def _plan(self) -> tuple[np.ndarray, shapely.STRtree]:
        if self._tree is None:
            seg = self.segments
            coords = np.stack([seg.a[:, :2], seg.b[:, :2]], axis=1)
            self._lines = shapely.linestrings(coords)
            self._tree = shapely.STRtree(self._lines)
        assert self._lines is not None
        return self._lines, self._tree

    def clearances(
        self,
        rows: np.ndarray,
        *,
        footprints: np.ndarray | None = None,
        footprint_ids: np.ndarray | None = None,
        limit: int = 1000,
    ) -> dict[str, Any]:
        """Clearance violations of the segments ``rows`` (净距检查).

        Between pipes of other utilities (and pipes of one utility when a minimum is
        set for that pair): where their plans cross, the vertical gap between the
        outer walls at the crossing against the vertical minimum; elsewhere the
        horizontal gap between the outer walls against the horizontal minimum. To
        building foundations (``footprints`` in frame metres): the horizontal gap from
        the pipe's wall to the footprint.

        Returns
        -------
        dict
            ``checked`` (segments), ``violations`` (up to ``limit``, worst first:
            ``a``, ``b`` (segment or ``building:<id>``), ``kind``, ``clearance``,
            ``required``, ``at`` ([x, y] frame metres)) and ``count``.
        """
        tables = self.meta.get("clearance") or clearance_tables()
        seg = self.segments
        lines, tree = self._plan()
        between_pipes = [
            v
            for kind in ("horizontal", "vertical")
            for table in (tables.get(kind) or {}, (tables.get("overrides") or {}).get(kind) or {})
            for k, v in table.items()
            if not k.startswith("building/")
        ]
        reach = max([*between_pipes, 0.0]) + float(np.max(seg.width, initial=0.0))
        found: list[dict[str, Any]] = []
        left, right = tree.query(lines[rows], predicate="dwithin", distance=reach)
        i, j = rows[left], right
        keep = (i != j) & ~(np.isin(j, rows) & (j < i))  # each pair once
        i, j = i[keep], j[keep]
        shared = (
            (seg.start[i] == seg.start[j])
            | (seg.start[i] == seg.end[j])
            | (seg.end[i] == seg.start[j])
            | (seg.end[i] == seg.end[j])
        )
        i, j = i[~shared], j[~shared]
        if len(i):
            found += self._pipe_pairs(i, j, lines, tables)
        if footprints is not None and len(footprints):
            found += self._buildings(rows, lines, footprints, footprint_ids, tables)
        found.sort(key=lambda v: v["clearance"] - v["required"])
        return {"checked": len(rows), "count": len(found), "violations": found[:limit]}

    def _required(self, tables: dict, kind: str, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """The minimum between segments ``i`` and ``j`` (each class pair looked up once)."""
        seg = self.segments
        combos = list(
            zip(
                seg.utility[i].tolist(),
                seg.cls[i].tolist(),
                seg.utility[j].tolist(),
                seg.cls[j].tolist(),
                strict=True,
            )
        )
        memo = {c: required_clearance(tables, kind, *c) for c in set(combos)}
        return np.array([memo[c] for c in combos], dtype=np.float64)

    def _pipe_pairs(
        self, i: np.ndarray, j: np.ndarray, lines: np.ndarray, tables: dict
    ) -> list[dict[str, Any]]:
        seg = self.segments
        crossing = shapely.crosses(lines[i], lines[j]) | shapely.intersects(lines[i], lines[j])
        out: list[dict[str, Any]] = []
        # horizontal: wall-to-wall distance in plan
        gap = shapely.distance(lines[i], lines[j]) - (seg.width[i] + seg.width[j]) / 2.0
        req_h = self._required(tables, "horizontal", i, j)
        bad = ~crossing & np.isfinite(req_h) & (gap < req_h)
        near = shapely.shortest_line(lines[i[bad]], lines[j[bad]])
        mid = shapely.get_coordinates(shapely.line_interpolate_point(near, 0.5, normalized=True))
        for n, (a, b, g, q) in enumerate(zip(i[bad], j[bad], gap[bad], req_h[bad], strict=True)):
            out.append(self._violation(a, b, "horizontal", g, q, mid[n]))
        # vertical: heights of both axes where the plans cross
        req_v = self._required(tables, "vertical", i, j)
        cross = np.flatnonzero(crossing & np.isfinite(req_v))
        if len(cross):
            pts = shapely.intersection(lines[i[cross]], lines[j[cross]])
            pts = shapely.centroid(pts)
            za = self._height_at(i[cross], pts, lines)
            zb = self._height_at(j[cross], pts, lines)
            vgap = np.abs(za - zb) - (seg.height[i[cross]] + seg.height[j[cross]]) / 2.0
            bad_v = vgap < req_v[cross]
            xy = shapely.get_coordinates(pts[bad_v])
            for n, (a, b, g, q) in enumerate(
                zip(i[cross][bad_v], j[cross][bad_v], vgap[bad_v], req_v[cross][bad_v], strict=True)
            ):
                out.append(self._violation(a, b, "vertical", g, q, xy[n]))
        return out

    def _height_at(self, rows: np.ndarray, pts: np.ndarray, lines: np.ndarray) -> np.ndarray:
        seg = self.segments
        t = shapely.line_locate_point(lines[rows], pts, normalized=True)
        return seg.a[rows, 2] + t * (seg.b[rows, 2] - seg.a[rows, 2])

    def _buildings(
        self,
        rows: np.ndarray,
        lines: np.ndarray,
        footprints: np.ndarray,
        ids: np.ndarray | None,
        tables: dict,
    ) -> list[dict[str, Any]]:
        seg = self.segments
        combos = list(zip(seg.utility[rows].tolist(), seg.cls[rows].tolist(), strict=True))
        memo = {
            c: required_clearance(tables, "horizontal", "building", "", *c) for c in set(combos)
        }
        need = np.array([memo[c] for c in combos], dtype=np.float64)
        tree = shapely.STRtree(footprints)
        reach = float(np.nanmax(need, initial=0.0)) + float(np.max(seg.width[rows], initial=0.0))
        left, right = tree.query(lines[rows], predicate="dwithin", distance=reach)
        r = rows[left]
        gap = shapely.distance(lines[r], footprints[right]) - seg.width[r] / 2.0
        req = need[left]
        bad = np.isfinite(req) & (gap < req)
        near = shapely.shortest_line(lines[r[bad]], footprints[right[bad]])
        xy = shapely.get_coordinates(shapely.line_interpolate_point(near, 0.0))
        names = ids if ids is not None else np.arange(len(footprints)).astype(str)
        return [
            self._violation(a, f"building:{names[b]}", "building", g, q, xy[n])
            for n, (a, b, g, q) in enumerate(
                zip(r[bad], right[bad], gap[bad], req[bad], strict=True)
            )
        ]

    def _violation(
        self, a: int, b: int | str, kind: str, gap: float, required: float, at: np.ndarray
    ) -> dict[str, Any]:
        seg = self.segments
        other = b if isinstance(b, str) else str(seg.ids[b])
        return {
            "a": str(seg.ids[a]),
            "b": other,
            "utilities": [
                str(seg.utility[a]),
                "building" if isinstance(b, str) else str(seg.utility[b]),
            ],
            # the classes the minimum was looked up with ("" unknown or none)
            "classes": [str(seg.cls[a]), "" if isinstance(b, str) else str(seg.cls[b])],
            "kind": kind,
            "clearance": round(float(gap), 3),
            "required": float(required),
            "at": [round(float(at[0]), 2), round(float(at[1]), 2)],
        }

    # --- frame -------------------------------------------------------------------------
    def frame(self) -> np.ndarray:
        """The 4×4 ENU → ECEF matrix of the network's coordinates."""
        return np.asarray(self.meta["frame"], dtype=np.float64).reshape(4, 4)

    def rows_in(self, west: float, south: float, east: float, north: float) -> np.ndarray:
        """Segments whose plan meets a lon/lat box."""
        from cim.crs import lonlat_to_enu

        frame = self.frame()
        lon = np.array([west, east, east, west])
        lat = np.array([south, south, north, north])
        xy = lonlat_to_enu(lon, lat, np.full(4, self._h0()), frame)[:, :2]
        box = shapely.box(*xy.min(axis=0), *xy.max(axis=0))
        _, tree = self._plan()
        return np.sort(tree.query(box, predicate="intersects"))

    def to_frame(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """lon/lat → frame metres (x, y) on the ellipsoid."""
        from cim.crs import lonlat_to_enu

        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        # at the frame's height: "up" tilts across a city, so h = 0 would shift the plan
        h = np.full(len(lon), self._h0())
        return lonlat_to_enu(lon, lat, h, self.frame())[:, :2]

    def _h0(self) -> float:
        return float(self.meta.get("origin", [0.0, 0.0, 0.0])[2])

    def to_lonlat(self, xy: np.ndarray) -> np.ndarray:
        """Frame metres (x, y) at the frame's height → lon/lat (degrees)."""
        from cim.crs import get_transformer

        xy = np.atleast_2d(np.asarray(xy, dtype=np.float64))
        local = np.column_stack([xy, np.zeros(len(xy)), np.ones(len(xy))])
        ecef = (self.frame() @ local.T).T
        lon, lat, _ = get_transformer("EPSG:4978", "EPSG:4979").transform(
            ecef[:, 0], ecef[:, 1], ecef[:, 2]
        )
        return np.column_stack([lon, lat])

    def check(self, rows: np.ndarray, buildings: Any = None, limit: int = 1000) -> dict[str, Any]:
        """:meth:`clearances` of ``rows``, to buildings too (a :class:`cim.outputs.BuildingTable`).

        Each violation also gets ``lonlat`` ([lon, lat] of where it is).
        """
        fp = ids = None
        if buildings is not None and len(rows):
            seg = self.segments
            ends = np.concatenate([seg.a[rows, :2], seg.b[rows, :2]])
            margin = 10.0 + float(np.max(seg.width[rows]))
            corners = np.array([ends.min(axis=0) - margin, ends.max(axis=0) + margin])
            (w, s), (e, n) = self.to_lonlat(corners)
            hits = buildings.tree.query(shapely.box(min(w, e), min(s, n), max(w, e), max(s, n)))
            fp = shapely.transform(
                np.asarray(buildings.footprints)[hits], lambda c: self.to_frame(c[:, 0], c[:, 1])
            )
            ids = np.asarray(buildings.ids, dtype=object)[hits]
        out = self.clearances(rows, footprints=fp, footprint_ids=ids, limit=limit)
        if out["violations"]:
            lonlat = self.to_lonlat(np.array([v["at"] for v in out["violations"]]))
            for v, (lon, lat) in zip(out["violations"], lonlat.tolist(), strict=True):
                v["lonlat"] = [round(lon, 7), round(lat, 7)]
        return out


_networks: dict[Path, tuple[tuple[int, int, int], PipeNetwork]] = {}
_networks_lock = threading.Lock()


def network_of(output_dir: str | Path) -> PipeNetwork:
    """The :class:`PipeNetwork` of a build output folder, reopened when a build replaces it.

    Raises
    ------
    NotFoundError
        The build has no pipelines.
    """
    path = Path(output_dir) / NETWORK_FILE
    try:
        st = path.stat()
    except OSError as exc:
        raise NotFoundError("this city has no pipelines (pipelines/network.sqlite)") from exc
    version = (st.st_mtime_ns, st.st_size, st.st_ino)
    with _networks_lock:
        held = _networks.get(path)
        if held is not None and held[0] == version:
            return held[1]
        network = PipeNetwork(path)
        _networks[path] = (version, network)
    if held is not None:
        held[1].close()
    return network
