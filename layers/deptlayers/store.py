"""Department layers in the live store: versions, permissions, queries.

:class:`DeptLayers` wraps a :class:`layers.store.Store` (SQLite or PostgreSQL). Every
method takes the *principal*: the :class:`layers.store.Department` whose token came
with the request (the CLI passes the department it acts for), or ``None`` for the
anonymous operation view.

Permissions (the rules the API's tests check as a matrix):

- **read**: a layer whose ``readable_by`` is ``None`` is readable by everyone (the
  whole operation view); one with a list only by those departments, its owner and
  the admin. A deleted layer is visible only to those who may write it.
- **write** (replace, append, change, delete, restore): the owning department and the
  admin. A layer the principal cannot read does not exist for it
  (:class:`cim.errors.NotFoundError`, HTTP 404: its existence is not revealed); one
  it can read but not write raises :class:`LayerPermissionError` (HTTP 403).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice, repeat
from typing import Any

import numpy as np
import shapely

from cim.errors import InputDataError, NotFoundError
from layers.departments import PermissionDeniedError
from layers.deptlayers.ingest import CleanFeatures, report_json
from layers.deptlayers.schema import migrate_deptlayers
from layers.deptlayers.styles import default_style, parse_style
from layers.deptlayers.where import Condition, parse_where
from layers.store import Department, Store
from layers.store.base import now_us

logger = logging.getLogger(__name__)

#: rows per INSERT batch
_BATCH = 20_000


class LayerPermissionError(PermissionDeniedError):
    """The principal may read this layer but not write it (HTTP 403)."""


@dataclass
class LayerInfo:
    """A layer's metadata (its current version)."""

    id: int
    name: str
    department: str
    readable_by: list[str] | None
    style: dict[str, Any]
    version: int
    feature_count: int
    bbox: list[float] | None
    geometry_types: list[str]
    fields: dict[str, str]
    created: int
    updated: int
    deleted: int | None

    def to_json(self) -> dict[str, Any]:
        """The API's form (times as ISO 8601 UTC)."""
        return {
            "id": self.id,
            "name": self.name,
            "department": self.department,
            "readable_by": "all" if self.readable_by is None else self.readable_by,
            "style": self.style,
            "version": self.version,
            "feature_count": self.feature_count,
            "bbox": self.bbox,
            "geometry_types": self.geometry_types,
            "fields": self.fields,
            "created": iso(self.created),
            "updated": iso(self.updated),
            "deleted": iso(self.deleted) if self.deleted else None,
        }


_LAYER_COLS = (
    "id, name, department, readable_by, style, version, feature_count, bbox, "
    "geometry_types, fields, created, updated, deleted"
)


def _info(row: tuple) -> LayerInfo:
    return LayerInfo(
        int(row[0]),
        row[1],
        row[2],
        json.loads(row[3]) if row[3] else None,
        json.loads(row[4]),
        int(row[5]),
        int(row[6]),
        json.loads(row[7]) if row[7] else None,
        json.loads(row[8]),
        json.loads(row[9]),
        int(row[10]),
        int(row[11]),
        row[12],
    )


def iso(us: int) -> str:
    """µs since the epoch → ISO 8601 UTC."""
    from datetime import UTC, datetime

    return (
        datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def may_write(principal: Department | None, layer: LayerInfo) -> bool:
    """Whether ``principal`` may change ``layer`` (its owner or the admin)."""
    return (
        principal is not None
        and not principal.revoked
        and (principal.is_admin or principal.id == layer.department)
    )


def may_read(principal: Department | None, layer: LayerInfo) -> bool:
    """Whether ``principal`` (None: the anonymous operation view) may see ``layer``."""
    if may_write(principal, layer):
        return True
    if layer.deleted:
        return False
    if layer.readable_by is None:
        return True
    return principal is not None and principal.id in layer.readable_by


def check_readable_by(value: Any) -> list[str] | None:
    """``"all"`` / None → None; a list of department ids → that list (validated)."""
    if value is None or value == "all":
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InputDataError("readable_by must be 'all' or a list of department ids")
    return sorted(set(value))


@dataclass
class FeatureRows:
    """Features read back: ids, geometries (lon/lat), properties as JSON text."""

    fid: np.ndarray
    geometry: np.ndarray
    properties: list[str]
    bbox: np.ndarray  # (n, 4) minx, miny, maxx, maxy

    def __len__(self) -> int:
        return len(self.fid)


class DeptLayers:
    """Versioned department layers in a live store (see the module doc)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        migrate_deptlayers(store)

    # --- reading ----------------------------------------------------------------------

    def _row(self, layer_id: int) -> LayerInfo | None:
        with self.store.transaction() as tx:
            row = tx.one(f"SELECT {_LAYER_COLS} FROM dept_layers WHERE id = ?", [int(layer_id)])
        return _info(row) if row else None

    def get(self, principal: Department | None, layer_id: int) -> LayerInfo:
        """A layer the principal may see.

        Raises
        ------
        NotFoundError
            No such layer, or one the principal may not see.
        """
        layer = self._row(layer_id)
        if layer is None or not may_read(principal, layer):
            raise NotFoundError(f"no layer {layer_id}")
        return layer

    def writable(self, principal: Department | None, layer_id: int) -> LayerInfo:
        """A layer the principal may change.

        Raises
        ------
        NotFoundError
            The principal may not even see it.
        LayerPermissionError
            It may see it but not change it.
        """
        layer = self.get(principal, layer_id)
        if not may_write(principal, layer):
            who = principal.id if principal else "the anonymous operation view"
            raise LayerPermissionError(
                f"layer {layer.id} ({layer.name}) belongs to department {layer.department!r}; "
                f"{who!r} may write only its own layers"
            )
        return layer

    def list(self, principal: Department | None, deleted: bool = False) -> list[LayerInfo]:
        """The layers the principal may see, by department then name."""
        with self.store.transaction() as tx:
            rows = tx.execute(
                f"SELECT {_LAYER_COLS} FROM dept_layers ORDER BY department, name, id"
            )
        out = [_info(r) for r in rows]
        return [lay for lay in out if may_read(principal, lay) and (deleted or not lay.deleted)]

    def versions(self, principal: Department | None, layer_id: int) -> list[dict[str, Any]]:
        """Every version of a layer, oldest first, with its report."""
        layer = self.get(principal, layer_id)
        with self.store.transaction() as tx:
            rows = tx.execute(
                "SELECT version, mode, created, created_by, source, crs, feature_count, bbox, "
                "report FROM dept_layer_versions WHERE layer_id = ? ORDER BY version",
                [layer.id],
            )
        return [
            {
                "version": r[0],
                "mode": r[1],
                "created": iso(r[2]),
                "created_by": r[3],
                "source": r[4],
                "crs": r[5],
                "feature_count": r[6],
                "bbox": json.loads(r[7]) if r[7] else None,
                "current": r[0] == layer.version,
                "report": json.loads(r[8]) if r[8] else None,
            }
            for r in rows
        ]

    def version_fields(self, layer: LayerInfo, version: int | None = None) -> dict[str, str]:
        """The attributes (and types) of a version of the layer (the current by default)."""
        if version is None or version == layer.version:
            return layer.fields
        with self.store.transaction() as tx:
            text = tx.scalar(
                "SELECT fields FROM dept_layer_versions WHERE layer_id = ? AND version = ?",
                [layer.id, int(version)],
            )
        if text is None:
            raise NotFoundError(f"layer {layer.id} has no version {version}")
        return json.loads(text)

    def report(self, layer: LayerInfo) -> dict[str, Any] | None:
        """The report of the layer's current version (the last upload's, after a restore)."""
        with self.store.transaction() as tx:
            text = tx.scalar(
                "SELECT report FROM dept_layer_versions WHERE layer_id = ? AND version = ?",
                [layer.id, layer.version],
            )
        return json.loads(text) if text else None

    def features(
        self,
        layer: LayerInfo,
        *,
        version: int | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        q: str | None = None,
        where: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        fid: int | None = None,
    ) -> tuple[FeatureRows, int]:
        """Features of a layer version (the current one by default), filtered.

        Parameters
        ----------
        layer : LayerInfo
            From :meth:`get` (permission already checked).
        version : int, optional
        bbox : (west, south, east, north), optional
            Features whose bounding box meets it.
        q : str, optional
            Text that some attribute value contains (case-insensitive).
        where : str, optional
            Conditions on attributes (:mod:`layers.deptlayers.where`), parameterised.
        limit, offset : int
            Paging, in feature id order.
        fid : int, optional
            Only this feature.

        Returns
        -------
        rows : FeatureRows
        matched : int
            How many features match (before paging).
        """
        v = layer.version if version is None else int(version)
        if not 1 <= v <= layer.version:
            raise NotFoundError(f"layer {layer.id} has no version {v}")
        sql = ["layer_id = ?", "v_from <= ?", "(v_to IS NULL OR v_to > ?)"]
        params: list[Any] = [layer.id, v, v]
        if fid is not None:
            sql.append("fid = ?")
            params.append(int(fid))
        if bbox is not None:
            sql.append("maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?")
            params += [bbox[0], bbox[2], bbox[1], bbox[3]]
        conditions: list[Condition] = parse_where(where, layer.fields) if where else []
        for cond in conditions:
            frag, p = cond.sql(self.store)
            sql.append(frag)
            params += p
        if q:
            # a cheap SQL prefilter on the JSON text; values are checked exactly below
            sql.append("lower(properties) LIKE ? ESCAPE '!'")
            params.append("%" + _like_escape(q.lower()) + "%")
        cols = "fid, wkb, properties, minx, miny, maxx, maxy"
        query = f"SELECT {cols} FROM dept_layer_features WHERE {' AND '.join(sql)} ORDER BY fid"
        with self.store.transaction() as tx:
            rows = tx.execute(query, params)
        if q:
            needle = q.lower()
            rows = [r for r in rows if _contains(r[2], needle)]
        matched = len(rows)
        rows = rows[offset : None if limit is None else offset + limit]
        return _feature_rows(rows), matched

    # --- writing ----------------------------------------------------------------------

    def create(
        self,
        principal: Department,
        clean: CleanFeatures,
        *,
        name: str,
        department: str | None = None,
        style: Any = None,
        readable_by: Any = None,
        source: str | None = None,
    ) -> LayerInfo:
        """A new layer (version 1) owned by the principal's department.

        The admin may create a layer for another ``department``; a department only for
        itself (:class:`LayerPermissionError` otherwise).
        """
        owner = department or principal.id
        if owner != principal.id and not principal.is_admin:
            raise LayerPermissionError(
                f"department {principal.id!r} may create layers only for itself, not {owner!r}"
            )
        name = _check_name(name)
        readers = check_readable_by(readable_by)
        types = _types(clean.geometry)
        style_obj = (
            parse_style(style, clean.fields, _values_of(clean))
            if style is not None
            else default_style(name, types, clean.fields)
        )
        now = now_us()
        with self.store.transaction(write=True) as tx:
            layer_id = tx.insert(
                "dept_layers",
                {
                    "name": name,
                    "department": owner,
                    "readable_by": json.dumps(readers) if readers is not None else None,
                    "style": json.dumps(style_obj.to_json(), ensure_ascii=False),
                    "version": 1,
                    "feature_count": 0,
                    "bbox": None,
                    "geometry_types": "[]",
                    "fields": "{}",
                    "created": now,
                    "updated": now,
                    "deleted": None,
                },
            )
            self._insert_features(tx, layer_id, 1, 1, clean)
            self._finish_version(tx, layer_id, 1, "new", principal.id, source, clean, now)
        logger.info(
            "layer %d (%s) created by %s: %d features",
            layer_id,
            name,
            principal.id,
            len(clean.geometry),
        )
        return self._row(layer_id)  # type: ignore[return-value]

    def add_version(
        self,
        principal: Department,
        layer_id: int,
        clean: CleanFeatures,
        *,
        mode: str,
        source: str | None = None,
    ) -> LayerInfo:
        """A new version from an upload: ``replace`` (only the new features) or
        ``append`` (the current features plus the new ones)."""
        if mode not in ("replace", "append"):
            raise InputDataError(f"mode must be 'new', 'replace' or 'append', not {mode!r}")
        layer = self.writable(principal, layer_id)
        now = now_us()
        with self.store.transaction(write=True) as tx:
            current = tx.scalar("SELECT version FROM dept_layers WHERE id = ?", [layer.id])
            new = int(current) + 1
            # a feature id is never reused in a layer: it names one feature in every version
            last = tx.scalar(
                "SELECT max(fid) FROM dept_layer_features WHERE layer_id = ?", [layer.id]
            )
            if mode == "replace":
                tx.execute(
                    "UPDATE dept_layer_features SET v_to = ? WHERE layer_id = ? AND v_to IS NULL",
                    [new, layer.id],
                )
            first = int(last or 0) + 1
            self._insert_features(tx, layer.id, new, first, clean)
            self._finish_version(tx, layer.id, new, mode, principal.id, source, clean, now)
        return self._row(layer.id)  # type: ignore[return-value]

    def update(
        self,
        principal: Department,
        layer_id: int,
        *,
        name: str | None = None,
        style: Any = None,
        readable_by: Any = ...,
    ) -> LayerInfo:
        """Change a layer's name, style or readers (no new version: the features stay)."""
        layer = self.writable(principal, layer_id)
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = _check_name(name)
        if style is not None:
            values["style"] = json.dumps(
                parse_style(style, layer.fields, self._values(layer)).to_json(),
                ensure_ascii=False,
            )
        if readable_by is not ...:
            readers = check_readable_by(readable_by)
            values["readable_by"] = json.dumps(readers) if readers is not None else None
        if values:
            values["updated"] = now_us()
            with self.store.transaction(write=True) as tx:
                tx.update("dept_layers", layer.id, values)
        return self._row(layer.id)  # type: ignore[return-value]

    def delete(self, principal: Department, layer_id: int) -> LayerInfo:
        """Mark a layer deleted (its versions stay: :meth:`restore` brings it back)."""
        layer = self.writable(principal, layer_id)
        now = now_us()
        with self.store.transaction(write=True) as tx:
            tx.update("dept_layers", layer.id, {"deleted": now, "updated": now})
        return self._row(layer.id)  # type: ignore[return-value]

    def restore(
        self, principal: Department, layer_id: int, version: int | None = None
    ) -> LayerInfo:
        """Undelete a layer and/or make an earlier version current (as a new version).

        ``version`` None or the current one only undeletes.
        """
        layer = self.writable(principal, layer_id)
        v = layer.version if version is None else int(version)
        if not 1 <= v <= layer.version:
            raise NotFoundError(f"layer {layer.id} has no version {v}")
        now = now_us()
        with self.store.transaction(write=True) as tx:
            if v != layer.version:
                self._restore_version(tx, layer, v, principal.id, now)
            tx.update("dept_layers", layer.id, {"deleted": None, "updated": now})
        return self._row(layer.id)  # type: ignore[return-value]

    def _restore_version(self, tx: Any, layer: LayerInfo, v: int, by: str, now: int) -> None:
        new = layer.version + 1
        tx.execute(
            "UPDATE dept_layer_features SET v_to = ? WHERE layer_id = ? AND v_to IS NULL",
            [new, layer.id],
        )
        geom = ", geom" if self.store.dialect == "postgresql" else ""
        tx.execute(
            "INSERT INTO dept_layer_features (layer_id, v_from, v_to, fid, geom_type, wkb, "
            f"properties, minx, miny, maxx, maxy{geom}) SELECT layer_id, ?, NULL, fid, geom_type, "
            f"wkb, properties, minx, miny, maxx, maxy{geom} FROM dept_layer_features "
            "WHERE layer_id = ? AND v_from <= ? AND (v_to IS NULL OR v_to > ?) AND v_from < ?",
            [new, layer.id, v, v, new],
        )
        old = tx.one(
            "SELECT crs, feature_count, bbox, fields, geometry_types FROM dept_layer_versions "
            "WHERE layer_id = ? AND version = ?",
            [layer.id, v],
        )
        tx.execute(
            "INSERT INTO dept_layer_versions (layer_id, version, mode, created, created_by, "
            "source, crs, feature_count, bbox, fields, geometry_types, report) "
            "VALUES (?, ?, 'restore', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                layer.id,
                new,
                now,
                by,
                f"version {v}",
                old[0],
                old[1],
                old[2],
                old[3],
                old[4],
                json.dumps({"restored_from": v}),
            ],
        )
        tx.update(
            "dept_layers",
            layer.id,
            {
                "version": new,
                "feature_count": old[1],
                "bbox": old[2],
                "fields": old[3],
                "geometry_types": old[4],
            },
        )

    def _insert_features(
        self, tx: Any, layer_id: int, version: int, first_fid: int, clean: CleanFeatures
    ) -> None:
        geoms = clean.geometry
        wkb = shapely.to_wkb(geoms)
        bounds = shapely.bounds(geoms)
        kinds = shapely.get_type_id(geoms)
        names = _TYPE_NAMES
        props = clean.properties_json()
        pg = self.store.dialect == "postgresql"
        sql = (
            "INSERT INTO dept_layer_features (layer_id, v_from, v_to, fid, geom_type, wkb, "
            "properties, minx, miny, maxx, maxy" + (", geom" if pg else "") + ") VALUES "
            "(?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?"
            + (", ST_SetSRID(ST_GeomFromWKB(?), 4326)" if pg else "")
            + ")"
        )
        n = len(geoms)
        # whole columns zipped into rows (no per-row Python code: 100,000 rows a batch)
        columns = [
            repeat(layer_id, n),
            repeat(version, n),
            range(first_fid, first_fid + n),
            [names[k] for k in kinds.tolist()],
            wkb.tolist(),
            props,
            *(bounds[:, j].tolist() for j in range(4)),
        ]
        if pg:
            columns.append(wkb.tolist())
        rows = zip(*columns, strict=True)
        while batch := list(islice(rows, _BATCH)):
            tx.executemany(sql, batch)

    def _finish_version(
        self,
        tx: Any,
        layer_id: int,
        version: int,
        mode: str,
        by: str,
        source: str | None,
        clean: CleanFeatures,
        now: int,
    ) -> None:
        """Count the version's features and record it (and make it the layer's current)."""
        live = ["layer_id = ?", "v_from <= ?", "(v_to IS NULL OR v_to > ?)"]
        where = " AND ".join(live)
        p = [layer_id, version, version]
        count, minx, miny, maxx, maxy = tx.one(
            f"SELECT count(*), min(minx), min(miny), max(maxx), max(maxy) FROM dept_layer_features "
            f"WHERE {where}",
            p,
        )
        types = sorted(
            r[0]
            for r in tx.execute(
                f"SELECT DISTINCT geom_type FROM dept_layer_features WHERE {where}", p
            )
        )
        fields = dict(clean.fields)
        if mode == "append":
            prev = json.loads(tx.scalar("SELECT fields FROM dept_layers WHERE id = ?", [layer_id]))
            fields = {**prev, **{k: v for k, v in fields.items() if k not in prev}}
        bbox = json.dumps([minx, miny, maxx, maxy]) if count else None
        report = report_json(clean.report)
        report["crs"] = clean.crs
        tx.execute(
            "INSERT INTO dept_layer_versions (layer_id, version, mode, created, created_by, "
            "source, crs, feature_count, bbox, fields, geometry_types, report) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                layer_id,
                version,
                mode,
                now,
                by,
                source,
                clean.crs,
                int(count),
                bbox,
                json.dumps(fields, ensure_ascii=False),
                json.dumps(types),
                json.dumps(report, ensure_ascii=False),
            ],
        )
        tx.update(
            "dept_layers",
            layer_id,
            {
                "version": version,
                "feature_count": int(count),
                "bbox": bbox,
                "fields": json.dumps(fields, ensure_ascii=False),
                "geometry_types": json.dumps(types),
                "updated": now,
                "deleted": None,
            },
        )

    def _values(self, layer: LayerInfo):
        def values(attr: str) -> list[Any]:
            rows, _ = self.features(layer)
            return [json.loads(p).get(attr) for p in rows.properties]

        return values


_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    2: "LinearRing",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}


def _types(geoms: np.ndarray) -> list[str]:
    return sorted({_TYPE_NAMES[int(t)] for t in np.unique(shapely.get_type_id(geoms))})


def _values_of(clean: CleanFeatures):
    return lambda attr: list(clean.columns.get(attr, []))


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InputDataError("a layer needs a name (1 to 200 characters)")
    return name.strip()


def _like_escape(text: str) -> str:
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _contains(properties: str, needle: str) -> bool:
    return any(v is not None and needle in str(v).lower() for v in json.loads(properties).values())


def _feature_rows(rows: list[tuple]) -> FeatureRows:
    if not rows:
        return FeatureRows(np.zeros(0, np.int64), np.zeros(0, object), [], np.zeros((0, 4)))
    fid = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    geoms = shapely.from_wkb(np.array([r[1] for r in rows], dtype=object))
    bbox = np.array([r[3:7] for r in rows], dtype=np.float64)
    return FeatureRows(fid, geoms, [r[2] for r in rows], bbox)


def feature_collection_chunks(
    rows: FeatureRows, extra: dict[str, Any] | None = None
) -> Iterator[str]:
    """A GeoJSON FeatureCollection as text chunks (no per-feature JSON parsing).

    Parameters
    ----------
    rows : FeatureRows
    extra : dict, optional
        Foreign members added to the collection (``numberMatched``...).
    """
    head = {"type": "FeatureCollection", **(extra or {})}
    yield json.dumps(head, ensure_ascii=False)[:-1] + ', "features": ['
    geo = shapely.to_geojson(rows.geometry) if len(rows) else []
    for start in range(0, len(rows), 2000):
        parts = [
            f'{{"type":"Feature","id":{int(rows.fid[i])},"geometry":{geo[i]},'
            f'"properties":{rows.properties[i]}}}'
            for i in range(start, min(start + 2000, len(rows)))
        ]
        yield ("," if start else "") + ",".join(parts)
    yield "]}"
