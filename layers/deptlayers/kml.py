"""KML and KMZ (Google Earth) placemarks → a :class:`cim.readers.FeatureTable`.

Parsed with the standard library rather than GDAL: GDAL's LIBKML driver turns field
names it cannot map to ASCII (``<Data name="编号">``) into underscores, and Chinese
names must survive. Reads Point, LineString, LinearRing, Polygon (with holes) and
MultiGeometry at any depth of Document/Folder, the placemark's ``name`` and
``description``, ``ExtendedData`` (``Data``/``value`` and ``SchemaData``/
``SimpleData``) and the folder path. KML is always WGS84 lon/lat (EPSG:4326).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import shapely

from cim.errors import InputDataError
from cim.readers import FeatureIssue, FeatureTable

KML_CRS = "EPSG:4326"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _coords(text: str | None) -> np.ndarray:
    """``lon,lat[,alt] lon,lat[,alt] ...`` → an (n, 2) array (altitudes dropped)."""
    tuples = (text or "").split()
    out = np.full((len(tuples), 2), np.nan)
    for i, t in enumerate(tuples):  # a KML coordinate list is short: no hot path
        parts = t.split(",")
        try:
            out[i] = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            continue
    return out


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _ring(el: ET.Element | None) -> np.ndarray:
    if el is None:
        return np.zeros((0, 2))
    ring = next((c for c in el.iter() if _local(c.tag) == "coordinates"), None)
    return _coords(ring.text if ring is not None else None)


def _geometry(el: ET.Element) -> list[shapely.Geometry]:
    """The simple geometries of one KML geometry element (MultiGeometry flattened)."""
    kind = _local(el.tag)
    if kind == "MultiGeometry":
        return [g for c in el for g in _geometry(c)]
    if kind == "Point":
        xy = _ring(el)
        return [shapely.Point(xy[0])] if len(xy) else []
    if kind in ("LineString", "LinearRing"):
        xy = _ring(el)
        return [shapely.LineString(xy)] if len(xy) >= 2 else []
    if kind == "Polygon":
        outer = _ring(_child(el, "outerBoundaryIs"))
        holes = [_ring(c) for c in el if _local(c.tag) == "innerBoundaryIs"]
        if len(outer) < 3:
            return []
        if not np.array_equal(outer[0], outer[-1]):
            outer = np.vstack([outer, outer[:1]])  # KML writers forget to close rings
        holes = [
            h if np.array_equal(h[0], h[-1]) else np.vstack([h, h[:1]])
            for h in holes
            if len(h) >= 3
        ]
        return [shapely.Polygon(outer, holes)]
    return []


def _combine(parts: list[shapely.Geometry]) -> shapely.Geometry | None:
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    kinds = {p.geom_type for p in parts}
    if kinds == {"Point"}:
        return shapely.MultiPoint(parts)
    if kinds == {"LineString"}:
        return shapely.MultiLineString(parts)
    if kinds == {"Polygon"}:
        return shapely.MultiPolygon(parts)
    return shapely.GeometryCollection(parts)


def _extended(pm: ET.Element) -> dict[str, str]:
    out: dict[str, str] = {}
    ext = _child(pm, "ExtendedData")
    if ext is None:
        return out
    for el in ext.iter():
        kind = _local(el.tag)
        if kind == "Data" and el.get("name"):
            value = _child(el, "value")
            out[el.get("name", "")] = (value.text or "") if value is not None else ""
        elif kind == "SimpleData" and el.get("name"):
            out[el.get("name", "")] = el.text or ""
    return out


def _walk(el: ET.Element, folder: str, rows: list[tuple[dict, shapely.Geometry | None]]) -> None:
    for child in el:
        kind = _local(child.tag)
        if kind in ("Document", "Folder"):
            name_el = _child(child, "name")
            name = (name_el.text or "").strip() if name_el is not None else ""
            sub = "/".join(p for p in (folder, name) if p) if kind == "Folder" else folder
            _walk(child, sub, rows)
        elif kind == "Placemark":
            props: dict[str, str] = {}
            for key in ("name", "description"):
                el_ = _child(child, key)
                if el_ is not None and el_.text:
                    props[key] = el_.text.strip()
            if folder:
                props["folder"] = folder
            props.update(_extended(child))
            parts: list[shapely.Geometry] = []
            for g in child:
                parts.extend(_geometry(g))
            rows.append((props, _combine(parts)))


_INT = re.compile(r"^-?(0|[1-9][0-9]{0,17})$")
_FLOAT = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$")


def _typed(values: list[str | None]) -> np.ndarray:
    """A text column as int64 / float64 when every given value is written as a number.

    Codes with leading zeros ("007") stay text; integers with gaps become floats (NaN).
    """
    given = [v.strip() for v in values if v not in (None, "")]
    if given and all(_INT.match(v) for v in given) and len(given) == len(values):
        return np.array([int(v) for v in given], dtype=np.int64)
    if given and all(_FLOAT.match(v) for v in given):
        return np.array([float(v) if v not in (None, "") else np.nan for v in values])
    return np.array(values, dtype=object)


def read_kml(path: Path, data: bytes | None = None) -> FeatureTable:
    """Read the placemarks of a KML document.

    Parameters
    ----------
    path : Path
        The file (named in messages; read unless ``data`` is given).
    data : bytes, optional
        The document's bytes (a KMZ's ``doc.kml``).

    Returns
    -------
    FeatureTable
        Geometries in lon/lat, text columns, ``crs`` EPSG:4326.

    Raises
    ------
    InputDataError
        Not well-formed XML, or no placemark.
    """
    try:
        root = ET.fromstring(data if data is not None else path.read_bytes())
    except ET.ParseError as exc:
        raise InputDataError(f"not a well-formed KML document ({exc})", path=path) from exc
    rows: list[tuple[dict, shapely.Geometry | None]] = []
    _walk(root, "", rows)
    if not rows:
        raise InputDataError("empty file: no placemarks", path=path)
    names: list[str] = []
    for props, _ in rows:
        names.extend(k for k in props if k not in names)
    columns = {n: _typed([props.get(n) for props, _ in rows]) for n in names}
    geometry = np.array([g for _, g in rows], dtype=object)
    issues: list[FeatureIssue] = []
    return FeatureTable(path, geometry, columns, KML_CRS, "UTF-8", None, issues)
