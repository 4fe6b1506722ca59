"""The SensorThings query language: ``$filter`` and ``$orderby`` expressions parsed into
a syntax tree and compiled to SQL with bound parameters (values never enter the SQL
text), plus ``$expand``/``$select`` option parsing.

Grammar (OData 4 subset the standard uses), loosest binding first::

    or  <  and  <  not  <  eq ne gt ge lt le  <  add sub  <  mul div mod  <  - (unary)

Literals: numbers, ``'strings'`` (``''`` escapes a quote), ``true``/``false``/``null``,
date-times (``2024-01-01T00:00:00Z``, ``2024-01-01``), and geometries
(``geography'POINT(116.4 39.9)'``). Paths: ``name``, ``properties/owner``,
``Datastream/Thing/name``. Functions: see :data:`FUNCTIONS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cim.errors import InputDataError
from layers.sta.model import ENTITY_SETS, GEO, INTERVAL, JSON, RESULT, TIME, EntitySet
from layers.sta.times import parse_instant
from layers.store.base import Store, now_us, result_columns


class QueryError(InputDataError):
    """A malformed or unsupported query option (HTTP 400).

    Attributes
    ----------
    position : int or None
        0-based character offset in the option value where the problem is.
    """

    def __init__(self, message: str, position: int | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{message}{where}")
        self.position = position


# --- tokens ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<geo>(?:geography|geometry)'(?:[^']|'')*')
  | (?P<str>'(?:[^']|'')*')
  | (?P<dt>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)
  | (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>(?:[^\W\d]|@)[\w.@]*)   # Unicode names: properties/名称
  | (?P<op>[(),/])
    """,
    re.VERBOSE,
)

COMPARISONS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_BINDING = {"or": 1, "and": 2, **dict.fromkeys(COMPARISONS, 3)}
_BINDING.update({"add": 4, "sub": 4, "mul": 5, "div": 5, "mod": 5})


@dataclass
class Tok:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Tok]:
    """Split an expression into tokens (raising :class:`QueryError` with the position)."""
    out: list[Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise QueryError(f"unexpected character {text[pos]!r}", pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(Tok(kind, m.group(), pos))
        pos = m.end()
    out.append(Tok("end", "", len(text)))
    return out


# --- syntax tree -----------------------------------------------------------------------


@dataclass
class Node:
    """A syntax tree node: ``lit``, ``path``, ``bin``, ``not``, ``neg`` or ``call``."""

    kind: str
    pos: int
    value: Any = None
    type: str = ""
    args: list[Node] = field(default_factory=list)


class Parser:
    """A Pratt parser over :func:`tokenize`'s tokens."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self) -> Tok:
        return self.toks[self.i]

    def next(self) -> Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> Tok:
        tok = self.next()
        if tok.text != text:
            shown = tok.text or "end of expression"
            raise QueryError(f"expected {text!r}, found {shown!r}", tok.pos)
        return tok

    def parse(self) -> Node:
        """The whole text as one expression."""
        node = self.expr(0)
        tok = self.peek()
        if tok.kind != "end":
            raise QueryError(f"unexpected {tok.text!r}", tok.pos)
        return node

    def expr(self, min_bp: int) -> Node:
        left = self.prefix()
        while True:
            tok = self.peek()
            op = tok.text.lower() if tok.kind == "name" else ""
            bp = _BINDING.get(op)
            if bp is None or bp <= min_bp:
                return left
            self.next()
            right = self.expr(bp)
            left = Node("bin", tok.pos, op, args=[left, right])

    def prefix(self) -> Node:
        tok = self.next()
        low = tok.text.lower()
        if tok.kind == "op" and tok.text == "(":
            node = self.expr(0)
            self.expect(")")
            return node
        if tok.kind == "name" and low == "not":
            return Node("not", tok.pos, args=[self.expr(2)])
        if tok.kind == "op" and tok.text == "/":
            raise QueryError("unexpected '/'", tok.pos)
        if tok.kind == "num":
            num = float(tok.text) if re.search(r"[.eE]", tok.text) else int(tok.text)
            return Node("lit", tok.pos, num, "num")
        if tok.kind == "str":
            return Node("lit", tok.pos, tok.text[1:-1].replace("''", "'"), "str")
        if tok.kind == "dt":
            try:
                return Node("lit", tok.pos, parse_instant(tok.text), "time")
            except InputDataError:
                raise QueryError(f"bad date-time {tok.text!r}", tok.pos) from None
        if tok.kind == "geo":
            body = tok.text[tok.text.index("'") + 1 : -1].replace("''", "'")
            return Node("lit", tok.pos, _check_wkt(body, tok.pos), "geo")
        if tok.kind == "name":
            if low in ("true", "false"):
                return Node("lit", tok.pos, low == "true", "bool")
            if low == "null":
                return Node("lit", tok.pos, None, "null")
            if low in _BINDING:
                raise QueryError(f"operator {tok.text!r} needs a left operand", tok.pos)
            if self.peek().text == "(":
                return self.call(tok)
            return self.path(tok)
        if tok.kind == "end":
            raise QueryError("unexpected end of expression", tok.pos)
        if tok.text == "-":  # pragma: no cover - '-' is never tokenised as op
            pass
        raise QueryError(f"unexpected {tok.text!r}", tok.pos)

    def call(self, name: Tok) -> Node:
        self.expect("(")
        args: list[Node] = []
        if self.peek().text != ")":
            args.append(self.expr(0))
            while self.peek().text == ",":
                self.next()
                args.append(self.expr(0))
        self.expect(")")
        return Node("call", name.pos, name.text.lower(), args=args)

    def path(self, first: Tok) -> Node:
        parts = [first.text]
        while self.peek().text == "/":
            self.next()
            tok = self.next()
            if tok.kind != "name":
                raise QueryError("expected a property name after '/'", tok.pos)
            parts.append(tok.text)
        return Node("path", first.pos, parts)


def _check_wkt(wkt: str, pos: int) -> str:
    import shapely
    import shapely.errors

    try:
        shapely.from_wkt(wkt)
    except (shapely.errors.ShapelyError, ValueError, TypeError):
        raise QueryError(f"not a WKT geometry: {wkt[:60]!r}", pos) from None
    return wkt


def parse_expression(text: str) -> Node:
    """Parse a ``$filter`` expression.

    Raises
    ------
    QueryError
        With the 0-based position of the problem.
    """
    if not text.strip():
        raise QueryError("empty expression", 0)
    return Parser(text).parse()


# --- compilation -------------------------------------------------------------------------

#: function name → number of arguments (min, max)
FUNCTIONS: dict[str, tuple[int, int]] = {
    "substringof": (2, 2), "contains": (2, 2), "startswith": (2, 2), "endswith": (2, 2),
    "length": (1, 1), "indexof": (2, 2), "substring": (2, 3), "tolower": (1, 1),
    "toupper": (1, 1), "trim": (1, 1), "concat": (2, 2),
    "year": (1, 1), "month": (1, 1), "day": (1, 1), "hour": (1, 1), "minute": (1, 1),
    "second": (1, 1), "date": (1, 1), "now": (0, 0),
    "round": (1, 1), "floor": (1, 1), "ceiling": (1, 1),
    "geo.intersects": (2, 2), "geo.distance": (2, 2), "geo.length": (1, 1),
    "st_intersects": (2, 2), "st_within": (2, 2), "st_contains": (2, 2),
    "st_disjoint": (2, 2), "st_touches": (2, 2), "st_overlaps": (2, 2),
    "st_crosses": (2, 2), "st_equals": (2, 2),
}  # fmt: skip

_GEO_PREDICATES = {
    "geo.intersects": "intersects", "st_intersects": "intersects", "st_within": "within",
    "st_contains": "contains", "st_disjoint": "disjoint", "st_touches": "touches",
    "st_overlaps": "overlaps", "st_crosses": "crosses", "st_equals": "equals",
}  # fmt: skip
_SWAPPED = {"within": "contains", "contains": "within"}


@dataclass
class Sql:
    """A compiled SQL fragment, its parameters, and its value type."""

    text: str
    params: list[Any]
    type: str  # num str bool time geo json result null any
    #: for geometries reached through to-one navigations: (table, alias, outer alias, fk)
    hops: list[tuple[str, str, str, str]] = field(default_factory=list)


class Compiler:
    """Compiles syntax trees against one entity set.

    Parameters
    ----------
    store : Store
        Supplies the dialect pieces.
    es : EntitySet
        What the paths refer to.
    alias : str
        The SQL alias of the entity set's table in the outer query.
    """

    def __init__(self, store: Store, es: EntitySet, alias: str = "t") -> None:
        self.store = store
        self.es = es
        self.alias = alias
        self._aliases = 0

    def condition(self, node: Node) -> tuple[str, list[Any]]:
        """SQL for a boolean expression (a ``$filter``)."""
        sql = self.compile(node)
        if sql.type not in ("bool", "any"):
            raise QueryError("the filter is not a condition (true/false)", node.pos)
        return sql.text, sql.params

    def compile(self, node: Node) -> Sql:
        """SQL for any expression."""
        method = getattr(self, f"_{node.kind}")
        return method(node)

    # literals and paths

    def _lit(self, node: Node) -> Sql:
        if node.type == "null":
            return Sql("NULL", [], "null")
        if node.type == "bool":
            return Sql("?", [1 if node.value else 0], "bool_lit")
        return Sql("?", [node.value], node.type)

    def _path(self, node: Node) -> Sql:
        return self._resolve(node.value, node.pos, self.es, self.alias)

    def _resolve(self, parts: list[str], pos: int, es: EntitySet, alias: str) -> Sql:
        head, rest = parts[0], parts[1:]
        if head in es.navs:
            nav = es.navs[head]
            if not rest:
                raise QueryError(f"{head} is an entity: name one of its properties", pos)
            if not nav.to_one:
                raise QueryError(
                    f"filtering through the collection {head!r} is not supported; filter on "
                    f"{head} directly (e.g. /{es.name}(id)/{head}?$filter=...)",
                    pos,
                )
            self._aliases += 1
            sub = f"n{self._aliases}"
            target = ENTITY_SETS[nav.target]
            inner = self._resolve(rest, pos, target, sub)
            if inner.type == "geo":
                hop = (target.table, sub, alias, nav.fk)
                return Sql(inner.text, [], "geo", [hop, *inner.hops])
            text = (
                f"(SELECT {inner.text} FROM {target.table} {sub} WHERE {sub}.id = {alias}.{nav.fk})"
            )
            return Sql(text, inner.params, inner.type)
        prop = es.props.get(head)
        if prop is None:
            known = ", ".join(sorted([*es.props, *es.navs]))
            raise QueryError(f"{es.singular} has no property {head!r} (it has {known})", pos)
        col = f"{alias}.{prop.column}"
        if prop.kind == JSON:
            if not rest:
                return Sql(col, [], "json")
            return Sql(self.store.sql_json(col), [self.store.json_path_param(rest)], "jsonvalue")
        if rest:
            raise QueryError(f"{head} has no sub-properties", pos)
        if prop.kind in (TIME, INTERVAL):
            return Sql(col, [], "time")
        if prop.kind == GEO:
            return Sql(col, [], "geo")
        if prop.kind == RESULT:
            return Sql(alias, [], "result")
        if head == "id":
            return Sql(col, [], "num")
        return Sql(col, [], "str")

    # operators

    def _not(self, node: Node) -> Sql:
        inner = self._as_bool(self.compile(node.args[0]), node)
        return Sql(f"(NOT {inner.text})", inner.params, "bool")

    def _bin(self, node: Node) -> Sql:
        op = node.value
        left, right = (self.compile(a) for a in node.args)
        if op in ("and", "or"):
            a, b = self._as_bool(left, node.args[0]), self._as_bool(right, node.args[1])
            return Sql(f"({a.text} {op.upper()} {b.text})", a.params + b.params, "bool")
        if op in COMPARISONS:
            return self._compare(op, left, right, node)
        a, b = self._numeric(left), self._numeric(right)
        params = a.params + b.params
        if op == "mod":
            return Sql(self.store.sql_func("mod", [a.text, b.text]), params, "num")
        sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
        if op == "div":
            return Sql(f"(({a.text}) * 1.0 / NULLIF({b.text}, 0))", params, "num")
        out_type = "time" if "time" in (left.type, right.type) and op in ("add", "sub") else "num"
        return Sql(f"({a.text} {sym} {b.text})", params, out_type)

    def _as_bool(self, sql: Sql, node: Node) -> Sql:
        if sql.type in ("bool", "any"):
            return sql
        if sql.type == "bool_lit":
            return Sql("(1 = ?)", sql.params, "bool")
        raise QueryError("expected a condition (true/false)", node.pos)

    def _numeric(self, sql: Sql) -> Sql:
        if sql.type == "result":
            return Sql(f"{sql.text}.result_num", sql.params, "num")
        if sql.type == "jsonvalue":
            return Sql(self.store.sql_json_number(sql.text), sql.params, "num")
        return sql

    def _compare(self, op: str, left: Sql, right: Sql, node: Node) -> Sql:
        sym = COMPARISONS[op]
        if "bool" in (left.type, right.type) and "bool_lit" in (left.type, right.type):
            cond, lit = (left, right) if left.type == "bool" else (right, left)
            want = bool(lit.params[0]) == (op == "eq")
            if op not in ("eq", "ne"):
                raise QueryError("conditions can only be compared with eq/ne", node.pos)
            text = cond.text if want else f"(NOT {cond.text})"
            return Sql(text, cond.params, "bool")
        if right.type == "null" or left.type == "null":
            other = left if right.type == "null" else right
            other = self._plain(other, None)
            if op not in ("eq", "ne"):
                raise QueryError("null can only be compared with eq/ne", node.pos)
            neg = "" if op == "eq" else "NOT "
            return Sql(f"({other.text} IS {neg}NULL)", other.params, "bool")
        left, right = self._plain(left, right), self._plain(right, left)
        return Sql(f"({left.text} {sym} {right.text})", left.params + right.params, "bool")

    def _plain(self, sql: Sql, other: Sql | None) -> Sql:
        """A comparable operand, typed by the other side (results, JSON, time strings)."""
        otype = other.type if other is not None else ""
        if sql.type == "result":
            if otype == "str":
                return Sql(f"{sql.text}.result_str", sql.params, "str")
            if otype in ("null", ""):
                return Sql(f"{sql.text}.result", sql.params, "str")
            if otype == "json":
                return Sql(f"{sql.text}.result", sql.params, "str")
            return Sql(f"{sql.text}.result_num", sql.params, "num")
        if sql.type == "jsonvalue" and otype in ("num", "time"):
            return self._numeric(sql)
        if sql.type == "str" and otype == "time" and sql.text == "?":
            try:
                return Sql("?", [parse_instant(sql.params[0])], "time")
            except InputDataError:
                raise QueryError(f"not a date-time: {sql.params[0]!r}") from None
        if sql.type == "json" and other is not None and other.text == "?":
            return sql
        if sql.type == "bool_lit":
            if other is not None and other.type == "jsonvalue" and self.store.dialect != "sqlite":
                return Sql("?", ["true" if sql.params[0] else "false"], "str")
            return Sql("?", sql.params, "num")
        if sql.type == "geo":
            raise QueryError("geometries are compared with geo.* functions, not operators")
        return sql

    # functions

    def _call(self, node: Node) -> Sql:
        name = node.value
        if name not in FUNCTIONS:
            raise QueryError(f"unknown function {name!r}", node.pos)
        lo, hi = FUNCTIONS[name]
        if not lo <= len(node.args) <= hi:
            want = str(lo) if lo == hi else f"{lo}–{hi}"
            raise QueryError(f"{name} takes {want} argument(s)", node.pos)
        if name.startswith(("geo.", "st_")):
            return self._geo(name, node)
        raw = [self.compile(a) for a in node.args]
        if name == "now":
            return Sql("?", [now_us()], "time")
        if name in ("round", "floor", "ceiling"):
            num = self._numeric(raw[0])
            fn = self.store.sql_func
            text = f"round({num.text})" if name == "round" else fn(name, [num.text])
            return Sql(text, num.params, "num")
        args = [self._plain(a, Sql("", [], "str")) for a in raw]
        params = [p for a in args for p in a.params]
        a = [x.text for x in args]
        if name in ("year", "month", "day", "hour", "minute", "second", "date"):
            part = self.store.sql_datepart(name, a[0])
            return Sql(part, params, "str" if name == "date" else "num")
        if name == "substring":
            if len(a) == 2:
                return Sql(f"substr({a[0]}, ({a[1]}) + 1)", params, "str")
            return Sql(f"substr({a[0]}, ({a[1]}) + 1, {a[2]})", params, "str")
        text, typ, order = _string_function(name, a, self.store.sql_func)
        # parameters follow the order in which the argument texts appear in the SQL
        ordered = [p for i in order for p in args[i].params]
        return Sql(text, ordered, typ)

    def _geo(self, name: str, node: Node) -> Sql:
        args = [self.compile(a) for a in node.args]
        if name == "geo.length":
            if args[0].type != "geo":
                raise QueryError("geo.length takes a geometry property", node.pos)
            return Sql(self._geo_sql("length", args[0]), [], "num")
        fn = "distance" if name == "geo.distance" else _GEO_PREDICATES[name]
        if args[0].type != "geo" and args[1].type == "geo":
            args = [args[1], args[0]]
            fn = _SWAPPED.get(fn, fn)
        col, lit = args
        if col.type != "geo" or lit.type != "geo" or lit.text != "?":
            raise QueryError(f"{name} compares a geometry property with geography'WKT'", node.pos)
        return Sql(self._geo_sql(fn, col), lit.params, "num" if fn == "distance" else "bool")

    def _geo_sql(self, fn: str, col: Sql) -> str:
        alias, column = col.text.rsplit(".", 1)
        expr = self.store.sql_geo(fn, alias, column)
        for table, sub, outer, fk in reversed(col.hops):
            expr = f"(SELECT {expr} FROM {table} {sub} WHERE {sub}.id = {outer}.{fk})"
        return expr


def _string_function(name: str, a: list[str], fn: Any) -> tuple[str, str, list[int]]:
    """SQL text, result type, and the argument index of each placeholder in order."""
    if name == "substringof":
        return f"({fn('instr', [a[1], a[0]])} > 0)", "bool", [1, 0]
    if name == "contains":
        return f"({fn('instr', [a[0], a[1]])} > 0)", "bool", [0, 1]
    if name == "indexof":
        return f"({fn('instr', [a[0], a[1]])} - 1)", "num", [0, 1]
    if name == "startswith":
        return f"(substr({a[0]}, 1, length({a[1]})) = {a[1]})", "bool", [0, 1, 1]
    if name == "endswith":
        text = (
            f"(length({a[1]}) <= length({a[0]}) AND "
            f"substr({a[0]}, length({a[0]}) - length({a[1]}) + 1) = {a[1]})"
        )
        return text, "bool", [1, 0, 0, 0, 1, 1]
    if name == "concat":
        return f"({a[0]} || {a[1]})", "str", [0, 1]
    if name == "length":
        return f"length({a[0]})", "num", [0]
    sql = {"tolower": "lower", "toupper": "upper", "trim": "trim"}[name]
    return f"{sql}({a[0]})", "str", [0]


def compile_filter(store: Store, es: EntitySet, text: str, alias: str = "t") -> tuple[str, list]:
    """``$filter`` text → SQL condition and parameters for entity set ``es``."""
    return Compiler(store, es, alias).condition(parse_expression(text))


def compile_orderby(store: Store, es: EntitySet, text: str, alias: str = "t") -> tuple[str, list]:
    """``$orderby`` text (``expr [asc|desc], ...``) → SQL ORDER BY list and parameters."""
    parts: list[str] = []
    params: list[Any] = []
    offset = 0
    for item in split_top(text, ","):
        body = item.strip()
        direction = "ASC"
        m = re.search(r"\s+(asc|desc)$", body, re.IGNORECASE)
        if m:
            direction = m.group(1).upper()
            body = body[: m.start()]
        if not body:
            raise QueryError("empty $orderby item", offset)
        try:
            node = parse_expression(body)
        except QueryError as exc:
            pos = None if exc.position is None else exc.position + offset
            raise QueryError(exc.message.rsplit(" at position", 1)[0], pos) from None
        sql = Compiler(store, es, alias).compile(node)
        if sql.type == "result":
            sql = Sql(f"{sql.text}.result_num", [], "num")
        parts.append(f"{sql.text} {direction}")
        params += sql.params
        offset += len(item) + 1
    return ", ".join(parts), params


def split_top(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside parentheses and quotes."""
    out, depth, quote, cur = [], 0, False, []
    for ch in text:
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        if ch == sep and depth == 0 and not quote:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


# --- $expand / $select -------------------------------------------------------------------


@dataclass
class Options:
    """Query options of one level (the request's, or an expanded navigation's)."""

    filter: str | None = None
    orderby: str | None = None
    top: int | None = None
    skip: int = 0
    count: bool = False
    select: list[str] | None = None
    expand: dict[str, Options] = field(default_factory=dict)


MAX_TOP = 1000
DEFAULT_TOP = 100


def parse_options(raw: dict[str, str], es: EntitySet) -> Options:
    """Parse ``$filter``, ``$orderby``, ``$top``, ``$skip``, ``$count``, ``$select``,
    ``$expand`` for entity set ``es`` (unknown ``$`` options are refused)."""
    opts = Options()
    for key, value in raw.items():
        if key == "$filter":
            opts.filter = value
        elif key == "$orderby":
            opts.orderby = value
        elif key == "$top":
            opts.top = _int_option(key, value, 0, MAX_TOP)
        elif key == "$skip":
            opts.skip = _int_option(key, value, 0, None)
        elif key == "$count":
            if value not in ("true", "false"):
                raise QueryError("$count must be true or false")
            opts.count = value == "true"
        elif key == "$select":
            opts.select = [s.strip() for s in value.split(",") if s.strip()]
            for name in opts.select:
                if name not in es.props and name not in es.navs:
                    raise QueryError(f"$select: {es.singular} has no property {name!r}")
        elif key == "$expand":
            opts.expand = parse_expand(value, es)
        elif key.startswith("$") and key not in ("$resultFormat", "$format"):
            raise QueryError(f"unknown query option {key!r}")
    return opts


def _int_option(key: str, value: str, lo: int, hi: int | None) -> int:
    try:
        n = int(value)
    except ValueError:
        raise QueryError(f"{key} must be an integer, not {value!r}") from None
    if n < lo:
        raise QueryError(f"{key} must be ≥ {lo}")
    return min(n, hi) if hi is not None else n


def parse_expand(text: str, es: EntitySet) -> dict[str, Options]:
    """``$expand`` (``Datastreams($top=1;$expand=Observations),Locations`` or
    ``Datastreams/Observations``) → navigation name → its options."""
    out: dict[str, Options] = {}
    for item in split_top(text, ","):
        item = item.strip()
        if not item:
            continue
        head, opts_text = item, ""
        if "(" in item:
            i = item.index("(")
            if not item.endswith(")"):
                raise QueryError(f"$expand: unbalanced parentheses in {item!r}")
            head, opts_text = item[:i], item[i + 1 : -1]
        nav_name, _, deeper = head.partition("/")
        nav = es.navs.get(nav_name.strip())
        if nav is None:
            raise QueryError(f"$expand: {es.singular} has no navigation {nav_name!r}")
        target = ENTITY_SETS[nav.target]
        if deeper:
            # A/B(opts): expand A, and inside it B with the options
            sub = out.setdefault(nav_name, Options())
            rest = deeper + (f"({opts_text})" if opts_text else "")
            sub.expand.update(parse_expand(rest, target))
            continue
        raw: dict[str, str] = {}
        for part in split_top(opts_text, ";") if opts_text else []:
            key, eq, value = part.partition("=")
            if not eq:
                raise QueryError(f"$expand: bad option {part!r} (want $name=value)")
            raw[key.strip()] = value.strip()
        merged = parse_options(raw, target)
        if nav_name in out:  # 'A/B' seen before: keep its nested expands
            merged.expand = {**out[nav_name].expand, **merged.expand}
        out[nav_name] = merged
    return out


def observation_result(text: str) -> Any:
    """The JSON result stored by :func:`layers.store.base.result_columns`."""
    import json

    return json.loads(text)


__all__ = [
    "Options",
    "QueryError",
    "compile_filter",
    "compile_orderby",
    "parse_expand",
    "parse_expression",
    "parse_options",
    "result_columns",
]
