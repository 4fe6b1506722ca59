"""Writing the SensorThings API: create (with deep insert), update, delete, and the
department permission checks.

A department writes only what it owns: its Things and everything hanging off them
(Locations it made, HistoricalLocations, Datastreams, Observations), and the Sensors,
ObservedProperties and FeaturesOfInterest it made. The admin writes everything. Every
call runs inside the caller's write transaction, so a deep insert is all or nothing.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from cim.errors import CimError, CRSError, InputDataError
from layers.departments import PermissionDeniedError
from layers.ingest import Reading, check_result, may_write, prepare
from layers.sta.model import (
    BY_SINGULAR,
    ENTITY_SETS,
    GEO,
    INTERVAL,
    JSON,
    OBSERVATION_TYPES,
    TIME,
    EntitySet,
    Nav,
)
from layers.sta.times import parse_time
from layers.store.base import Department, Tx, now_us

#: tables whose rows carry their owning department directly
_OWNED = {"things", "locations", "sensors", "observed_properties", "datastreams",
          "features_of_interest"}  # fmt: skip

_THRESHOLDS = ("warn_low", "warn_high", "alarm_low", "alarm_high")


def owner_of(tx: Tx, es: EntitySet, ident: int) -> str | None:
    """The department owning an entity (None: nobody, only the admin may write it)."""
    if es.table in _OWNED:
        return tx.scalar(f"SELECT department FROM {es.table} WHERE id = ?", [ident])
    if es.table == "observations":
        return tx.scalar(
            "SELECT d.department FROM observations o JOIN datastreams d "
            "ON d.id = o.datastream_id WHERE o.id = ?",
            [ident],
        )
    if es.table == "historical_locations":
        return tx.scalar(
            "SELECT t.department FROM historical_locations h JOIN things t ON t.id = h.thing_id "
            "WHERE h.id = ?",
            [ident],
        )
    return None


def check_owner(tx: Tx, principal: Department, es: EntitySet, ident: int, verb: str) -> None:
    """Raise :class:`PermissionDeniedError` unless ``principal`` may ``verb`` the entity."""
    owner = owner_of(tx, es, ident)
    if not may_write(principal, owner):
        whose = f"department {owner!r}" if owner else "no department (admin only)"
        raise PermissionDeniedError(
            f"department {principal.id!r} may not {verb} {es.singular}({ident}): "
            f"it belongs to {whose}"
        )


# --- create ---------------------------------------------------------------------------


class Creator:
    """Creates entities (deep insert) for one principal inside one write transaction."""

    def __init__(self, tx: Tx, principal: Department) -> None:
        self.tx = tx
        self.principal = principal

    def create(self, es: EntitySet, body: Any, link: dict[str, int] | None = None) -> int:
        """Create an entity from its JSON (or return the id of a ``{"@iot.id": n}`` ref).

        ``link`` carries foreign keys implied by the URL or the enclosing entity
        (``{"thing_id": 3}``).
        """
        if not isinstance(body, dict):
            raise InputDataError(f"a {es.singular} must be a JSON object")
        if "@iot.id" in body:  # a reference; other members are ignored (as FROST does)
            return self._reference(es, body["@iot.id"])
        method = getattr(self, f"_create_{es.table}")
        return int(method(es, body, link or {}))

    def _reference(self, es: EntitySet, ident: Any) -> int:
        if not isinstance(ident, int) or isinstance(ident, bool):
            raise InputDataError(f"{es.singular} @iot.id must be an integer, not {ident!r}")
        if self.tx.one(f"SELECT 1 FROM {es.table} WHERE id = ?", [ident]) is None:
            raise InputDataError(f"no {es.singular} with id {ident}")
        return ident

    def _scalars(self, es: EntitySet, body: dict[str, Any], partial: bool = False) -> dict:
        """Column values of the body's plain properties (checked and converted)."""
        out: dict[str, Any] = {}
        for name, prop in es.props.items():
            if name == "id":
                continue
            if name not in body:
                if prop.required and not partial:
                    raise InputDataError(f"{es.singular} needs {name!r}")
                continue
            value = body[name]
            if prop.kind == JSON:
                if name == "properties" and value is not None and not isinstance(value, dict):
                    raise InputDataError(f"{es.singular} properties must be a JSON object")
                out[prop.column] = None if value is None else json.dumps(value, ensure_ascii=False)
            elif prop.kind == GEO:
                out[prop.column] = json.dumps(to_wgs84(value, body), ensure_ascii=False)
            elif prop.kind in (TIME, INTERVAL):
                start, end = parse_time(value) if value is not None else (None, None)
                out[prop.column] = start
                if prop.end:
                    out[prop.end] = end
            elif name == "result":
                out[prop.column] = value
            else:
                if value is not None and not isinstance(value, str):
                    raise InputDataError(f"{es.singular} {name} must be a string")
                out[prop.column] = value if value is not None else ""
        unknown = set(body) - set(es.props) - set(es.navs) - {"@iot.id", "@iot.selfLink"}
        unknown = {k for k in unknown if "@iot." not in k}
        if unknown:
            raise InputDataError(f"{es.singular} has no property {sorted(unknown)[0]!r}")
        return out

    def _owner_for_new(self, body: dict[str, Any]) -> str:
        """The department of a new top-level entity: the caller's (the admin may name one)."""
        props = body.get("properties") if isinstance(body.get("properties"), dict) else {}
        if self.principal.is_admin and isinstance(props.get("department"), str):
            return props["department"]
        return self.principal.id

    def _create_things(self, es: EntitySet, body: dict, link: dict) -> int:
        values = self._scalars(es, body)
        values["department"] = self._owner_for_new(body)
        tid = self.tx.insert("things", values)
        locations = _list(body, "Locations", es)
        if locations:
            loc_ids = [self.create(ENTITY_SETS["Locations"], b) for b in locations]
            self.link_locations(tid, loc_ids)
        for b in _list(body, "Datastreams", es):
            self.create(ENTITY_SETS["Datastreams"], b, {"thing_id": tid})
        for b in _list(body, "HistoricalLocations", es):
            self.create(ENTITY_SETS["HistoricalLocations"], b, {"thing_id": tid})
        return tid

    def link_locations(self, thing_id: int, loc_ids: list[int], replace: bool = False) -> None:
        """Set a Thing's current Locations and record a HistoricalLocation (the standard)."""
        if replace:
            self.tx.execute("DELETE FROM thing_locations WHERE thing_id = ?", [thing_id])
        for lid in dict.fromkeys(loc_ids):
            self.tx.execute(
                "INSERT INTO thing_locations (thing_id, location_id) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                [thing_id, lid],
            )
        hl = self.tx.insert("historical_locations", {"thing_id": thing_id, "time": now_us()})
        self.tx.executemany(
            "INSERT INTO location_historical_locations (historical_location_id, location_id) "
            "VALUES (?, ?)",
            [(hl, lid) for lid in dict.fromkeys(loc_ids)],
        )

    def _create_locations(self, es: EntitySet, body: dict, link: dict) -> int:
        values = self._scalars(es, body)
        values.setdefault("encoding_type", "application/geo+json")
        values["department"] = self._owner_for_new(body)
        lid = self.tx.insert("locations", values)
        things = [self.create(ENTITY_SETS["Things"], b) for b in _list(body, "Things", es)]
        if "thing_id" in link:
            things.append(link["thing_id"])
        for tid in things:
            check_owner(self.tx, self.principal, ENTITY_SETS["Things"], tid, "move")
            self.link_locations(tid, [lid])
        return lid

    def _create_historical_locations(self, es: EntitySet, body: dict, link: dict) -> int:
        values = self._scalars(es, body)
        tid = link.get("thing_id")
        if "Thing" in body:
            tid = self.create(ENTITY_SETS["Things"], body["Thing"])
        if tid is None:
            raise InputDataError("a HistoricalLocation needs its Thing")
        check_owner(self.tx, self.principal, ENTITY_SETS["Things"], tid, "move")
        values["thing_id"] = tid
        hid = self.tx.insert("historical_locations", values)
        locs = [self.create(ENTITY_SETS["Locations"], b) for b in _list(body, "Locations", es)]
        if "location_id" in link:
            locs.append(link["location_id"])
        self.tx.executemany(
            "INSERT INTO location_historical_locations (historical_location_id, location_id) "
            "VALUES (?, ?)",
            [(hid, lid) for lid in dict.fromkeys(locs)],
        )
        return hid

    def _create_sensors(self, es: EntitySet, body: dict, link: dict) -> int:
        values = self._scalars(es, body)
        values["department"] = self._owner_for_new(body)
        return self.tx.insert(es.table, values)

    _create_observed_properties = _create_sensors

    def _create_features_of_interest(self, es: EntitySet, body: dict, link: dict) -> int:
        values = self._scalars(es, body)
        values.setdefault("encoding_type", "application/geo+json")
        values["department"] = self._owner_for_new(body)
        return self.tx.insert(es.table, values)

    def _create_datastreams(self, es: EntitySet, body: dict, link: dict) -> int:
        values = self._scalars(es, body)
        if values.get("observation_type") not in OBSERVATION_TYPES:
            raise InputDataError(
                f"unknown observationType {body.get('observationType')!r}; use one of "
                + ", ".join(sorted(OBSERVATION_TYPES))
            )
        uom = body.get("unitOfMeasurement")
        if not isinstance(uom, dict):
            raise InputDataError("Datastream unitOfMeasurement must be a JSON object")
        tid = link.get("thing_id")
        if "Thing" in body:
            tid = self.create(ENTITY_SETS["Things"], body["Thing"])
        if tid is None:
            raise InputDataError("a Datastream needs its Thing")
        owner = self.tx.scalar("SELECT department FROM things WHERE id = ?", [tid])
        if not may_write(self.principal, owner):
            raise PermissionDeniedError(
                f"department {self.principal.id!r} may not add a Datastream to Thing({tid}): "
                f"it belongs to department {owner!r}"
            )
        values["thing_id"] = tid
        values["department"] = owner
        values["sensor_id"] = self._needed(body, "Sensor", link.get("sensor_id"))
        values["observed_property_id"] = self._needed(
            body, "ObservedProperty", link.get("observed_property_id")
        )
        values.update(thresholds(body.get("properties")))
        did = self.tx.insert("datastreams", values)
        obs = _list(body, "Observations", es)
        if obs:
            self.observations(did, obs)
        return did

    def _needed(self, body: dict, nav: str, linked: int | None) -> int:
        if nav in body:
            return self.create(ENTITY_SETS[BY_SINGULAR[nav]], body[nav])
        if linked is None:
            raise InputDataError(f"a Datastream needs its {nav}")
        return linked

    def _create_observations(self, es: EntitySet, body: dict, link: dict) -> int:
        did = link.get("datastream_id")
        if "Datastream" in body:
            did = self.create(ENTITY_SETS["Datastreams"], body["Datastream"])
        if did is None:
            raise InputDataError("an Observation needs its Datastream")
        return self.observations(did, [body], link.get("foi_id"))[0]

    def observations(self, did: int, bodies: list[dict], foi: int | None = None) -> list[int]:
        """Create Observations of one Datastream (errors raise: this is not a batch)."""
        owner = self.tx.scalar("SELECT department FROM datastreams WHERE id = ?", [did])
        if not may_write(self.principal, owner):
            raise PermissionDeniedError(
                f"department {self.principal.id!r} may not add Observations to "
                f"Datastream({did}): it belongs to department {owner!r}"
            )
        readings = []
        for b in bodies:
            if not isinstance(b, dict):
                raise InputDataError("an Observation must be a JSON object")
            self._scalars(ENTITY_SETS["Observations"], b)  # refuses unknown properties
            foi_id = foi
            if "FeatureOfInterest" in b:
                foi_id = self.create(ENTITY_SETS["FeaturesOfInterest"], b["FeatureOfInterest"])
            readings.append(
                Reading(
                    did,
                    b.get("result"),
                    b.get("phenomenonTime"),
                    b.get("resultTime"),
                    b.get("resultQuality"),
                    b.get("validTime"),
                    b.get("parameters"),
                    foi_id,
                )
            )
        store = self.tx.store
        rows, reasons = prepare(store, self.principal, readings)
        for reason in reasons:
            if reason:
                store.count_rejections({"malformed": 1})
                raise InputDataError(f"Observation rejected: {reason}")
        return [r.id for r in store.insert_observations([r for r in rows if r is not None])]


def thresholds(props: Any) -> dict[str, float | None]:
    """Threshold and stale-after columns from a Datastream's ``properties``.

    ``properties.thresholds = {"warn_low", "warn_high", "alarm_low", "alarm_high"}`` and
    ``properties.stale_after`` (seconds); absent keys leave the columns empty.
    """
    out: dict[str, float | None] = {}
    if not isinstance(props, dict):
        return out
    limits = props.get("thresholds")
    if limits is not None:
        if not isinstance(limits, dict):
            raise InputDataError("properties.thresholds must be a JSON object")
        for key in _THRESHOLDS:
            out[key] = _number(limits.get(key), f"thresholds.{key}")
    if "stale_after" in props:
        out["stale_after"] = _number(props.get("stale_after"), "stale_after")
    return out


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputDataError(f"{what} must be a number")
    if check_result("number", value):
        raise InputDataError(f"{what} must be finite")
    return float(value)


def _list(body: dict, name: str, es: EntitySet) -> list:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputDataError(f"{es.singular} {name} must be a JSON array")
    return value


# --- locations in any CRS -----------------------------------------------------------------


def to_wgs84(geojson: Any, entity: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON geometry (or Feature) in WGS84 lon/lat from one given in any CRS.

    The CRS is taken from, in order: the GeoJSON's ``crs`` member (``{"type": "name",
    "properties": {"name": "EPSG:4547"}}`` or a plain string), its ``properties.crs``
    (Features), or the entity's ``properties.crs``; none means WGS84 (the standard).
    ``GCJ-02`` and ``BD-09`` are accepted. Coordinates are converted with
    :func:`cim.crs.to_lonlat`; heights are kept.
    """
    if not isinstance(geojson, dict) or "type" not in geojson:
        raise InputDataError("a location must be a GeoJSON object")
    crs = _crs_of(geojson, entity)
    geom = geojson.get("geometry") if geojson.get("type") == "Feature" else geojson
    if not isinstance(geom, dict) or "coordinates" not in geom:
        raise InputDataError("a location must be a GeoJSON geometry with coordinates")
    _check_geometry(geom)
    if crs is None:
        return {k: v for k, v in geojson.items() if k != "crs"}
    from cim.crs import to_lonlat

    coords = np.asarray(_flatten(geom["coordinates"]), dtype=np.float64)
    try:
        lon, lat = to_lonlat(coords[:, 0], coords[:, 1], crs)
    except CimError:
        raise
    except Exception as exc:  # pyproj raises its own errors for unknown definitions
        raise CRSError(f"cannot convert the location from {crs!r}: {exc}") from exc
    coords[:, 0], coords[:, 1] = lon, lat
    if not np.all(np.isfinite(coords[:, :2])):
        raise CRSError(f"the location's coordinates do not fit {crs!r}")
    it = iter(coords.tolist())
    new_geom = {**geom, "coordinates": _rebuild(geom["coordinates"], it)}
    if geojson.get("type") == "Feature":
        props = dict(geojson.get("properties") or {})
        props.pop("crs", None)
        props["source_crs"] = crs
        return {**{k: v for k, v in geojson.items() if k != "crs"}, "geometry": new_geom,
                "properties": props}  # fmt: skip
    return {k: v for k, v in new_geom.items() if k != "crs"}


def _crs_of(geojson: dict, entity: dict) -> str | None:
    crs = geojson.get("crs")
    if isinstance(crs, dict):
        crs = (crs.get("properties") or {}).get("name")
    if crs is None and geojson.get("type") == "Feature":
        crs = (geojson.get("properties") or {}).get("crs")
    if crs is None and isinstance(entity.get("properties"), dict):
        crs = entity["properties"].get("crs")
    if crs is None:
        return None
    if not isinstance(crs, str):
        raise CRSError(f"a CRS must be a string such as 'EPSG:4547', not {crs!r}")
    if crs.upper().replace("URN:OGC:DEF:CRS:OGC:1.3:", "") in ("CRS84", "EPSG:4326"):
        return None
    return crs


def _check_geometry(geom: dict) -> None:
    import shapely

    try:
        shapely.from_geojson(json.dumps(geom))
    except Exception as exc:  # shapely raises several kinds
        raise InputDataError(f"not a valid GeoJSON geometry ({exc})") from None


def _flatten(coords: Any) -> list[list[float]]:
    if coords and isinstance(coords[0], int | float):
        return [list(coords[:3]) + [0.0] * (3 - len(coords[:3]))]
    return [p for c in coords for p in _flatten(c)]


def _rebuild(coords: Any, it: Any) -> Any:
    if coords and isinstance(coords[0], int | float):
        x, y, z = next(it)
        return [x, y, z] if len(coords) >= 3 else [x, y]
    return [_rebuild(c, it) for c in coords]


# --- update and delete --------------------------------------------------------------------


def update(tx: Tx, principal: Department, es: EntitySet, ident: int, body: Any) -> None:
    """PATCH an entity: its plain properties and to-one references (``{"@iot.id": n}``)."""
    if not isinstance(body, dict):
        raise InputDataError(f"a {es.singular} update must be a JSON object")
    check_owner(tx, principal, es, ident, "change")
    creator = Creator(tx, principal)
    values = creator._scalars(es, body, partial=True)
    if es.table == "datastreams":
        if "observation_type" in values and values["observation_type"] not in OBSERVATION_TYPES:
            raise InputDataError(f"unknown observationType {body['observationType']!r}")
        if "properties" in body:
            values.update(thresholds(body.get("properties")))
    if es.table == "observations":
        values = _observation_update(tx, ident, values, body)
    for name, nav in es.navs.items():
        if name not in body:
            continue
        if nav.to_one:
            ref = creator.create(ENTITY_SETS[nav.target], body[name])
            if nav.fk == "thing_id" and es.table == "datastreams":
                check_owner(tx, principal, ENTITY_SETS["Things"], ref, "move a Datastream to")
                values["department"] = tx.scalar("SELECT department FROM things WHERE id = ?",
                                                 [ref])  # fmt: skip
            values[nav.fk] = ref
        elif es.table == "things" and name == "Locations":
            locs = [creator.create(ENTITY_SETS["Locations"], b) for b in _list(body, name, es)]
            creator.link_locations(ident, locs, replace=True)
        else:
            raise InputDataError(f"{name} cannot be changed through a {es.singular} update")
    tx.update(es.table, ident, values)


def _observation_update(tx: Tx, ident: int, values: dict, body: dict) -> dict:
    from layers.store.base import result_columns

    if "result" in values:
        kind = tx.scalar(
            "SELECT d.observation_type FROM observations o JOIN datastreams d "
            "ON d.id = o.datastream_id WHERE o.id = ?",
            [ident],
        )
        why = check_result(OBSERVATION_TYPES.get(kind, "any"), body["result"])
        if why:
            raise InputDataError(f"Observation rejected: {why}")
        text, num, string = result_columns(body["result"])
        values.update(result=text, result_num=num, result_str=string)
    return values


def delete(tx: Tx, principal: Department, es: EntitySet, ident: int) -> None:
    """DELETE an entity (and, as the standard says, what cannot exist without it)."""
    check_owner(tx, principal, es, ident, "delete")
    if es.table in ("sensors", "observed_properties") and not principal.is_admin:
        fk = "sensor_id" if es.table == "sensors" else "observed_property_id"
        other = tx.scalar(
            f"SELECT department FROM datastreams WHERE {fk} = ? AND "
            "(department IS NULL OR department <> ?)",
            [ident, principal.id],
        )
        if other is not None or tx.one(
            f"SELECT 1 FROM datastreams WHERE {fk} = ? AND department IS NULL", [ident]
        ):
            raise PermissionDeniedError(
                f"{es.singular}({ident}) is used by another department's Datastreams; "
                "deleting it would delete them"
            )
    tx.execute(f"DELETE FROM {es.table} WHERE id = ?", [ident])


def inverse_link(parent: EntitySet, nav_name: str, pid: int) -> dict[str, int]:
    """Foreign keys a new entity gets when POSTed to ``/Parent(pid)/nav``."""
    nav: Nav = parent.navs[nav_name]
    if nav.remote_fk:
        return {nav.remote_fk: pid}
    if nav.link == "thing_locations":
        return {"thing_id": pid}
    if nav.link == "location_historical_locations":
        return {"location_id": pid}
    raise InputDataError(f"cannot create through {parent.singular}/{nav_name}")
