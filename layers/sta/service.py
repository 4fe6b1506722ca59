"""Reading the SensorThings API: resource paths, entities, collections, ``$expand``,
``$select``, ``$count`` and ``@iot.nextLink`` paging, with the standard's links.

The HTTP layer (``server.blueprints.sta``) parses the request and calls
:func:`resolve_path`, then :meth:`Reader.entity` or :meth:`Reader.collection`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from cim.errors import NotFoundError
from layers.sta.model import ENTITY_SETS, GEO, INTERVAL, JSON, RESULT, TIME, EntitySet, Nav
from layers.sta.query import (
    DEFAULT_TOP,
    Options,
    QueryError,
    compile_filter,
    compile_orderby,
)
from layers.sta.times import format_time
from layers.store.base import Store, Tx

_SEGMENT = re.compile(r"^([A-Za-z]+)(?:\((?:(\d+)|'(\d+)')\))?$")


@dataclass
class Target:
    """What a resource path names.

    ``es`` and ``id``: one entity (``id`` set) or a collection (``id`` None), in which
    case ``parent`` (entity set, id, navigation name) may restrict it. ``prop`` names a
    property of the entity; ``value`` asks for its raw ``$value``; ``ref`` for ``$ref``.
    """

    es: EntitySet
    id: int | None = None
    parent: tuple[EntitySet, int, str] | None = None
    prop: str | None = None
    value: bool = False
    ref: bool = False


def resolve_path(tx: Tx, path: str) -> Target:
    """Resolve ``Things(1)/Datastreams``, ``Observations(5)/Datastream/Thing``,
    ``Things(1)/name/$value`` and the like.

    Raises
    ------
    NotFoundError
        For an unknown entity set or navigation, or an entity that does not exist.
    """
    segments = [s for s in path.strip("/").split("/") if s]
    if not segments:
        raise NotFoundError("no entity set named")
    m = _SEGMENT.match(segments[0])
    if not m or m.group(1) not in ENTITY_SETS:
        raise NotFoundError(f"no entity set {segments[0]!r}")
    es = ENTITY_SETS[m.group(1)]
    ident = m.group(2) or m.group(3)
    target = Target(es, int(ident) if ident else None)
    if target.id is not None:
        _must_exist(tx, es, target.id)
    for i, seg in enumerate(segments[1:], start=1):
        last = i == len(segments) - 1
        if target.id is None:
            if seg == "$ref" and last:
                target.ref = True
                return target
            raise NotFoundError(f"{seg!r} cannot follow a collection")
        if seg == "$value" and last and target.prop:
            target.value = True
            return target
        if seg == "$ref" and last:
            target.ref = True
            return target
        m = _SEGMENT.match(seg)
        name = m.group(1) if m else seg
        if target.prop is not None:
            raise NotFoundError(f"{seg!r} cannot follow the property {target.prop!r}")
        if name in target.es.props and not (m and (m.group(2) or m.group(3))):
            target.prop = name
            continue
        nav = target.es.navs.get(name)
        if nav is None:
            raise NotFoundError(f"{target.es.singular} has no property or navigation {seg!r}")
        target = _follow(tx, target, nav, name, m)
    return target


def _follow(tx: Tx, target: Target, nav: Nav, name: str, m: re.Match | None) -> Target:
    es, ident = target.es, target.id
    dest = ENTITY_SETS[nav.target]
    if nav.to_one:
        fk = tx.scalar(f"SELECT {nav.fk} FROM {es.table} WHERE id = ?", [ident])
        if fk is None:
            raise NotFoundError(f"{es.singular}({ident}) has no {name}")
        return Target(dest, int(fk))
    sub_id = (m.group(2) or m.group(3)) if m else None
    if sub_id is None:
        return Target(dest, None, parent=(es, int(ident or 0), name))
    where, params = parent_condition(es, int(ident or 0), nav, "t")
    row = tx.one(
        f"SELECT t.id FROM {dest.table} t WHERE t.id = ? AND {where}", [int(sub_id), *params]
    )
    if row is None:
        raise NotFoundError(f"{es.singular}({ident}) has no {name}({sub_id})")
    return Target(dest, int(sub_id))


def _must_exist(tx: Tx, es: EntitySet, ident: int) -> None:
    if tx.one(f"SELECT 1 FROM {es.table} WHERE id = ?", [ident]) is None:
        raise NotFoundError(f"no {es.singular} with id {ident}")


def parent_condition(parent: EntitySet, pid: int, nav: Nav, alias: str) -> tuple[str, list]:
    """SQL restricting ``alias`` (the navigation's target) to the parent's related rows."""
    if nav.remote_fk:
        return f"{alias}.{nav.remote_fk} = ?", [pid]
    if nav.link:
        return (
            f"{alias}.id IN (SELECT {nav.link_there} FROM {nav.link} WHERE {nav.link_here} = ?)",
            [pid],
        )
    return f"{alias}.id = (SELECT {nav.fk} FROM {parent.table} WHERE id = ?)", [pid]


def columns(es: EntitySet) -> list[str]:
    """The columns read for an entity set: id, properties (and interval ends)."""
    cols = ["id"]
    for name, prop in es.props.items():
        if name == "id":
            continue
        cols.append(prop.column)
        if prop.end:
            cols.append(prop.end)
    return cols


class Reader:
    """Reads entities and collections and renders them as SensorThings JSON.

    Parameters
    ----------
    store : Store
    base_url : str
        The service root, e.g. ``http://host/api/sta/v1.1`` (no trailing slash).
    """

    def __init__(self, store: Store, base_url: str) -> None:
        self.store = store
        self.base = base_url.rstrip("/")

    # entities

    def entity(self, tx: Tx, es: EntitySet, ident: int, opts: Options) -> dict[str, Any]:
        """One entity with its expansions."""
        cols = columns(es)
        row = tx.one(f"SELECT {', '.join(cols)} FROM {es.table} WHERE id = ?", [ident])
        if row is None:
            raise NotFoundError(f"no {es.singular} with id {ident}")
        return self._render(tx, es, dict(zip(cols, row, strict=True)), opts)

    def collection(
        self,
        tx: Tx,
        es: EntitySet,
        opts: Options,
        parent: tuple[EntitySet, int, str] | None = None,
        next_url: str | None = None,
        request_args: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """``{"@iot.count"?, "value": [...], "@iot.nextLink"?}`` for a collection.

        ``next_url`` (the request URL without query) and ``request_args`` build the
        next link; without them none is given.
        """
        rows, count, more = self.rows(tx, es, opts, parent)
        out: dict[str, Any] = {}
        if count is not None:
            out["@iot.count"] = count
        out["value"] = [self._render(tx, es, r, opts) for r in rows]
        if more and next_url is not None:
            args = dict(request_args or {})
            top = opts.top if opts.top is not None else DEFAULT_TOP
            args["$top"] = str(top)
            args["$skip"] = str(opts.skip + top)
            out["@iot.nextLink"] = f"{next_url}?{urlencode(args)}"
        return out

    def rows(
        self,
        tx: Tx,
        es: EntitySet,
        opts: Options,
        parent: tuple[EntitySet, int, str] | None = None,
    ) -> tuple[list[dict[str, Any]], int | None, bool]:
        """The rows of a page, the total count (when asked) and whether more follow."""
        where: list[str] = []
        params: list[Any] = []
        if parent is not None:
            pes, pid, nav_name = parent
            cond, p = parent_condition(pes, pid, pes.navs[nav_name], "t")
            where.append(cond)
            params += p
        if opts.filter:
            cond, p = compile_filter(self.store, es, opts.filter)
            where.append(cond)
            params += p
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        order, oparams = ("", [])
        if opts.orderby:
            order, oparams = compile_orderby(self.store, es, opts.orderby)
        order = f"{order}, t.id ASC" if order else "t.id ASC"
        top = opts.top if opts.top is not None else DEFAULT_TOP
        cols = columns(es)
        sql = (
            f"SELECT {', '.join('t.' + c for c in cols)} FROM {es.table} t{clause} "
            f"ORDER BY {order} LIMIT ? OFFSET ?"
        )
        raw = tx.execute(sql, [*params, *oparams, top + 1, opts.skip])
        more = len(raw) > top
        rows = [dict(zip(cols, r, strict=True)) for r in raw[:top]]
        count = None
        if opts.count:
            count = int(tx.scalar(f"SELECT count(*) FROM {es.table} t{clause}", params))
        return rows, count, more

    # rendering

    def self_link(self, es: EntitySet, ident: int) -> str:
        """``{base}/Things(1)``."""
        return f"{self.base}/{es.name}({ident})"

    def _render(self, tx: Tx, es: EntitySet, row: dict[str, Any], opts: Options) -> dict[str, Any]:
        sel = set(opts.select) if opts.select else None
        ident = int(row["id"])
        link = self.self_link(es, ident)
        out: dict[str, Any] = {}
        if sel is None or "id" in sel:
            out["@iot.id"] = ident
        if sel is None:
            out["@iot.selfLink"] = link
        for name, prop in es.props.items():
            if name == "id" or (sel is not None and name not in sel):
                continue
            value = render_value(prop.kind, row[prop.column], row.get(prop.end or ""))
            if value is None and name in ("properties", "parameters", "resultQuality"):
                continue
            out[name] = value
        for name, nav in es.navs.items():
            if name in opts.expand:
                out.update(self._expand(tx, es, ident, name, nav, opts.expand[name], link))
            elif sel is None or name in sel:
                out[f"{name}@iot.navigationLink"] = f"{link}/{name}"
        return out

    def _expand(
        self, tx: Tx, es: EntitySet, ident: int, name: str, nav: Nav, sub: Options, link: str
    ) -> dict[str, Any]:
        dest = ENTITY_SETS[nav.target]
        if nav.to_one:
            fk = tx.scalar(f"SELECT {nav.fk} FROM {es.table} WHERE id = ?", [ident])
            return {name: None if fk is None else self.entity(tx, dest, int(fk), sub)}
        rows, count, more = self.rows(tx, dest, sub, (es, ident, name))
        out: dict[str, Any] = {name: [self._render(tx, dest, r, sub) for r in rows]}
        if count is not None:
            out[f"{name}@iot.count"] = count
        if more:
            top = sub.top if sub.top is not None else DEFAULT_TOP
            args = {"$top": str(top), "$skip": str(sub.skip + top)}
            if sub.filter:
                args["$filter"] = sub.filter
            if sub.orderby:
                args["$orderby"] = sub.orderby
            out[f"{name}@iot.nextLink"] = f"{link}/{name}?{urlencode(args)}"
        return out


def render_value(kind: str, value: Any, end: Any = None) -> Any:
    """A stored column value in its SensorThings JSON form."""
    if value is None:
        return None
    if kind in (JSON, GEO, RESULT):
        return json.loads(value)
    if kind in (TIME, INTERVAL):
        return format_time(int(value), None if end is None else int(end))
    return value


def property_value(tx: Tx, es: EntitySet, ident: int, prop_name: str) -> Any:
    """One property's value (for ``/Things(1)/name`` and ``.../$value``)."""
    prop = es.props[prop_name]
    cols = [prop.column] + ([prop.end] if prop.end else [])
    row = tx.one(f"SELECT {', '.join(cols)} FROM {es.table} WHERE id = ?", [ident])
    if row is None:
        raise NotFoundError(f"no {es.singular} with id {ident}")
    return render_value(prop.kind, row[0], row[1] if prop.end else None)


__all__ = ["QueryError", "Reader", "Target", "parent_condition", "property_value", "resolve_path"]
