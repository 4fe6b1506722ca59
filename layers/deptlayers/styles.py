"""Layer styles: a typed, validated description of how the viewer draws a layer.

A style is stored with the layer as JSON (see ``docs/layers.md``)::

    {"color": "#1f77b4", "opacity": 0.9, "clamp_to_ground": true,
     "by": {"kind": "category", "attribute": "类型", "categories": {"bin": "#2ca02c"}},
     "label": {"attribute": "名称", "size": 14, "max_distance": 2000},
     "point": {"icon": "hydrant", "size": 24},
     "line": {"width": 3},
     "polygon": {"outline": true, "extrude": {"attribute": "高度", "scale": 1.0}}}

``by`` is ``null`` (one colour), a ``category`` map (values → colours; values not
listed take the ``palette`` in order of first appearance) or ``graduated`` classes
(``breaks`` ascending, one more colour than breaks). Defaults come from the geometry
types and the layer name (消火栓 → the hydrant icon...).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cim.errors import InputDataError

#: the built-in point icons (``viewer/icons/<name>.svg``), with the words that pick them
ICONS: dict[str, tuple[str, ...]] = {
    "hydrant": ("消火栓", "消防栓", "hydrant"),
    "camera": ("摄像", "监控", "camera", "cctv"),
    "bin": ("垃圾", "bin", "trash", "waste"),
    "bench": ("座椅", "长椅", "bench"),
    "lamp": ("路灯", "lamp", "streetlight", "light"),
    "sign": ("标志", "标牌", "指示牌", "sign"),
    "manhole": ("井盖", "窨井", "manhole"),
    "tree": ("行道树", "树", "tree"),
    "toilet": ("公厕", "厕所", "toilet", "wc"),
    "bus-stop": ("公交", "站台", "bus"),
    "pin": (),
}
#: Tableau 10: distinct on a dark 3D scene, and colour-blind friendlier than most
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: graduated default: light to dark (ColorBrewer YlOrRd, 5 classes)
RAMP = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$")
NUMERIC = ("integer", "number")


class StyleError(InputDataError):
    """A style that cannot be used (HTTP 400, exit 4)."""


@dataclass(frozen=True)
class ByAttribute:
    """Colour by an attribute: ``category`` (value → colour) or ``graduated`` classes."""

    kind: str
    attribute: str
    categories: dict[str, str] = field(default_factory=dict)
    palette: tuple[str, ...] = PALETTE
    breaks: tuple[float, ...] = ()
    colors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Label:
    """Text from an attribute, shown within ``max_distance`` metres of the camera."""

    attribute: str
    size: int = 14
    color: str = "#ffffff"
    max_distance: float = 2000.0


@dataclass(frozen=True)
class PointStyle:
    """Points: an icon (billboard) or, without one, a dot (point primitive) of ``size`` px."""

    icon: str | None = None
    size: int = 10


@dataclass(frozen=True)
class LineStyle:
    """Lines: width in pixels."""

    width: float = 3.0


@dataclass(frozen=True)
class Extrude:
    """Polygons extruded by a numeric attribute (metres × ``scale``)."""

    attribute: str
    scale: float = 1.0


@dataclass(frozen=True)
class PolygonStyle:
    """Polygons: outline drawn or not; extrusion or flat on the ground."""

    outline: bool = True
    extrude: Extrude | None = None


@dataclass(frozen=True)
class Style:
    """The whole style of a layer (see the module doc for the JSON form)."""

    color: str = PALETTE[0]
    opacity: float = 0.9
    clamp_to_ground: bool = True
    by: ByAttribute | None = None
    label: Label | None = None
    point: PointStyle = PointStyle()
    line: LineStyle = LineStyle()
    polygon: PolygonStyle = PolygonStyle()

    def to_json(self) -> dict[str, Any]:
        """The JSON form (what the API serves and the store keeps)."""
        out = asdict(self)
        if self.by is not None:
            out["by"]["palette"] = list(self.by.palette)
            out["by"]["breaks"] = list(self.by.breaks)
            out["by"]["colors"] = list(self.by.colors)
        return out

    def attributes(self) -> list[str]:
        """The attributes the style reads (what tiles must carry)."""
        names = [
            self.by.attribute if self.by else None,
            self.label.attribute if self.label else None,
            self.polygon.extrude.attribute if self.polygon.extrude else None,
        ]
        return list(dict.fromkeys(n for n in names if n))


def _obj(value: Any, where: str, allowed: Sequence[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise StyleError(f"style {where} must be a JSON object")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise StyleError(f"style {where}: unknown key(s) {unknown}; allowed: {list(allowed)}")
    return value


def _color(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _COLOR.match(value):
        raise StyleError(f"style {where} must be a colour like '#1f77b4', not {value!r}")
    return value.lower()


def _number(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise StyleError(f"style {where} must be a number in [{lo}, {hi}], not {value!r}")
    return float(value)


def _attribute(value: Any, where: str, fields: dict[str, str], numeric: bool = False) -> str:
    if not isinstance(value, str) or value not in fields:
        raise StyleError(
            f"style {where}: no attribute {value!r} in the layer (attributes: {sorted(fields)})"
        )
    if numeric and fields[value] not in NUMERIC:
        raise StyleError(f"style {where}: attribute {value!r} is {fields[value]}, not a number")
    return value


def parse_style(
    data: Any,
    fields: dict[str, str],
    values: Callable[[str], list[Any]] | None = None,
) -> Style:
    """Validate a style's JSON form against the layer's attributes.

    Parameters
    ----------
    data : dict
        The JSON form (see the module doc); missing keys take their defaults.
    fields : dict
        The layer's attributes and their types.
    values : callable, optional
        Attribute → its values in the layer; fills graduated ``breaks`` (quantiles)
        and category colours when the style leaves them out.

    Raises
    ------
    StyleError
        Unknown keys, bad colours or numbers, attributes the layer does not have.
    """
    d = _obj(
        data, "", ("color", "opacity", "clamp_to_ground", "by", "label", "point", "line", "polygon")
    )
    style = Style()
    kw: dict[str, Any] = {}
    if "color" in d:
        kw["color"] = _color(d["color"], "color")
    if "opacity" in d:
        kw["opacity"] = _number(d["opacity"], "opacity", 0.0, 1.0)
    if "clamp_to_ground" in d:
        if not isinstance(d["clamp_to_ground"], bool):
            raise StyleError("style clamp_to_ground must be true or false")
        kw["clamp_to_ground"] = d["clamp_to_ground"]
    if d.get("by") is not None:
        kw["by"] = _by(d["by"], fields, values)
    if d.get("label") is not None:
        lab = _obj(d["label"], "label", ("attribute", "size", "color", "max_distance"))
        kw["label"] = Label(
            _attribute(lab.get("attribute"), "label.attribute", fields),
            int(_number(lab.get("size", 14), "label.size", 6, 64)),
            _color(lab.get("color", "#ffffff"), "label.color"),
            _number(lab.get("max_distance", 2000.0), "label.max_distance", 1, 1e7),
        )
    if "point" in d:
        pt = _obj(d["point"], "point", ("icon", "size"))
        icon = pt.get("icon")
        if icon is not None and icon not in ICONS:
            raise StyleError(f"style point.icon {icon!r} is not a built-in icon ({sorted(ICONS)})")
        kw["point"] = PointStyle(icon, int(_number(pt.get("size", 10), "point.size", 1, 128)))
    if "line" in d:
        ln = _obj(d["line"], "line", ("width",))
        kw["line"] = LineStyle(_number(ln.get("width", 3.0), "line.width", 0.5, 64))
    if "polygon" in d:
        pg = _obj(d["polygon"], "polygon", ("outline", "extrude"))
        ext = None
        if pg.get("extrude") is not None:
            e = _obj(pg["extrude"], "polygon.extrude", ("attribute", "scale"))
            ext = Extrude(
                _attribute(e.get("attribute"), "polygon.extrude.attribute", fields, numeric=True),
                _number(e.get("scale", 1.0), "polygon.extrude.scale", 1e-6, 1e6),
            )
        kw["polygon"] = PolygonStyle(bool(pg.get("outline", True)), ext)
    return Style(**{**asdict_shallow(style), **kw})


def asdict_shallow(style: Style) -> dict[str, Any]:
    """The style's fields as a dict, nested values kept as objects."""
    return {k: getattr(style, k) for k in style.__dataclass_fields__}


def _by(
    data: Any, fields: dict[str, str], values: Callable[[str], list[Any]] | None
) -> ByAttribute:
    b = _obj(data, "by", ("kind", "attribute", "categories", "palette", "breaks", "colors"))
    kind = b.get("kind")
    if kind not in ("category", "graduated"):
        raise StyleError(f"style by.kind must be 'category' or 'graduated', not {kind!r}")
    attr = _attribute(b.get("attribute"), "by.attribute", fields, numeric=kind == "graduated")
    palette = tuple(_color(c, "by.palette[]") for c in b.get("palette", PALETTE)) or PALETTE
    if kind == "category":
        cats = _obj(b.get("categories", {}), "by.categories", list(b.get("categories", {})))
        categories = {str(k): _color(v, f"by.categories[{k!r}]") for k, v in cats.items()}
        if not categories and values is not None:
            seen = dict.fromkeys(str(v) for v in values(attr) if v is not None)
            categories = {v: palette[i % len(palette)] for i, v in enumerate(list(seen)[:64])}
        return ByAttribute("category", attr, categories, palette)
    breaks = tuple(_number(x, "by.breaks[]", -1e300, 1e300) for x in b.get("breaks", ()))
    if not breaks and values is not None:
        breaks = quantile_breaks(values(attr), len(RAMP))
    if list(breaks) != sorted(set(breaks)):
        raise StyleError("style by.breaks must be strictly ascending")
    colors = tuple(_color(c, "by.colors[]") for c in b.get("colors", ()))
    if not colors:
        colors = _ramp(len(breaks) + 1)
    if len(colors) != len(breaks) + 1:
        raise StyleError(
            f"style by.colors needs one colour more than by.breaks ({len(breaks) + 1}), "
            f"not {len(colors)}"
        )
    return ByAttribute("graduated", attr, {}, palette, breaks, colors)


def _ramp(n: int) -> tuple[str, ...]:
    idx = np.linspace(0, len(RAMP) - 1, max(n, 1)).round().astype(int)
    return tuple(RAMP[i] for i in idx)


def quantile_breaks(values: Sequence[Any], classes: int) -> tuple[float, ...]:
    """Class breaks at the quantiles of the numeric values (duplicates merged)."""
    nums = np.array(
        [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)],
        dtype=np.float64,
    )
    nums = nums[np.isfinite(nums)]
    if len(nums) == 0:
        return ()
    qs = np.quantile(nums, np.linspace(0, 1, classes + 1)[1:-1])
    return tuple(float(q) for q in np.unique(qs))


def icon_for(name: str) -> str | None:
    """The built-in icon a layer name suggests (消火栓 → hydrant), or None."""
    low = name.lower()
    for icon, words in ICONS.items():
        if any(w in low for w in words):
            return icon
    return None


def default_style(name: str, geometry_types: Sequence[str], fields: dict[str, str]) -> Style:
    """The style of a layer uploaded without one.

    Points get the icon the name suggests (else a dot), lines and polygons lie on the
    ground; the colour is picked from the palette by the name, so a layer keeps its
    colour across uploads; a text attribute called like a name is the label.
    """
    digest = hashlib.sha256(name.encode()).digest()
    color = PALETTE[digest[0] % len(PALETTE)]
    icon = icon_for(name)
    only_points = bool(geometry_types) and all("Point" in t for t in geometry_types)
    label_attr = next(
        (
            f
            for f in fields
            for w in ("名称", "name", "名字", "标题", "title")
            if f.lower() == w and fields[f] == "text"
        ),
        None,
    )
    return Style(
        color=color,
        label=Label(label_attr) if label_attr else None,
        point=PointStyle(icon, 24 if icon else 10) if only_points or icon else PointStyle(),
        polygon=PolygonStyle(outline=True),
    )


def style_from_json(data: dict[str, Any]) -> Style:
    """A stored style back (trusted JSON written by :meth:`Style.to_json`)."""
    fields = _StoredFields()
    return parse_style(data, fields)


class _StoredFields(dict):
    """Accept every attribute (a stored style was validated when it was written)."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __getitem__(self, key: str) -> str:
        return "number"
