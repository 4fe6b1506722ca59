"""Attribute conditions for ``GET /api/layers/<id>/features?where=...``.

A small language, parsed here and turned into parameterised SQL (values are never
spliced into the SQL text; attribute names must be attributes of the layer)::

    类型 = 'bin' and 压力 >= 0.3 and "road name" ~ '中山'

Conditions are joined by ``and``; an attribute is a bare name (letters of any script,
digits, ``_``) or double-quoted; a value is a number or a single-quoted string (``''``
inside is a quote). Operators: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` and ``~``
(contains, case-insensitive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cim.errors import InputDataError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op><=|>=|!=|=|<|>|~)
      | (?P<str>'(?:[^']|'')*')
      | (?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w])
      | (?P<qname>"(?:[^"]|"")+")
      | (?P<name>[^\W\d][\w]*)
    )""",
    re.VERBOSE | re.UNICODE,
)
NUMERIC = ("integer", "number")


class WhereError(InputDataError):
    """A ``where`` expression that cannot be parsed (HTTP 400)."""


@dataclass(frozen=True)
class Condition:
    """``attribute op value``."""

    attribute: str
    op: str
    value: str | float
    numeric: bool

    def sql(self, store: Any) -> tuple[str, list[Any]]:
        """The SQL fragment (``?`` placeholders) and its parameters for a store dialect."""
        expr = store.sql_json("properties")
        path = store.json_path_param([self.attribute])
        if self.op == "~":
            return f"lower(CAST({expr} AS TEXT)) LIKE ? ESCAPE '!'", [
                path,
                "%"
                + str(self.value).lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
                + "%",
            ]
        if self.numeric:
            return f"{store.sql_json_number(expr)} {self.op.replace('!=', '<>')} ?", [
                path,
                float(self.value),
            ]
        return f"CAST({expr} AS TEXT) {self.op.replace('!=', '<>')} ?", [path, str(self.value)]


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise WhereError(f"where: cannot read {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def parse_where(text: str, fields: dict[str, str]) -> list[Condition]:
    """Parse ``text`` into conditions on the layer's ``fields``.

    Raises
    ------
    WhereError
        Syntax errors and attributes the layer does not have.
    """
    toks = _tokens(text)
    conds: list[Condition] = []
    i = 0
    while True:
        if i + 3 > len(toks):
            raise WhereError("where: expected `attribute op value` (e.g. 类型 = 'bin')")
        (k1, name), (k2, op), (k3, value) = toks[i : i + 3]
        if k1 not in ("name", "qname") or k2 != "op" or k3 not in ("str", "num"):
            raise WhereError(f"where: expected `attribute op value` near {name!r}")
        if k1 == "qname":
            name = name[1:-1].replace('""', '"')
        if name not in fields:
            raise WhereError(f"where: the layer has no attribute {name!r} ({sorted(fields)})")
        val: str | float = value[1:-1].replace("''", "'") if k3 == "str" else float(value)
        numeric = k3 == "num" and fields[name] in NUMERIC and op != "~"
        if k3 == "num" and not numeric and op != "~":
            val = value  # a number compared with a text attribute compares as text
        conds.append(Condition(name, op, val, numeric))
        i += 3
        if i == len(toks):
            return conds
        if toks[i] != ("name", toks[i][1]) or toks[i][1].lower() != "and":
            raise WhereError(f"where: expected 'and' near {toks[i][1]!r}")
        i += 1
