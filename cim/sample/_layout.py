"""Plan of the sample city 平城: streets, water, wall, blocks and building footprints.

Everything here works in *local* metres around the drum tower (鼓楼) at (0, 0); the
writer adds the Gauss-Krüger origin. Geometry is built with shapely 2 array functions
(``shapely.box``, ``shapely.difference``); loops run over rows of plots or blocks,
never over vertices or pixels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import shapely

log = logging.getLogger(__name__)

#: Outer face of the city wall (half side of the walled town, metres).
WALL_OUT = 800.0
#: Inner face of the city wall.
WALL_IN = 786.0
#: Inner and outer edges of the moat.
MOAT_IN, MOAT_OUT = 830.0, 860.0
#: Centre line of the ring roads outside the moat.
RING = 900.0
#: Half side of the built-up area.
CITY_HALF = 2200.0
#: River (御河) width in metres.
RIVER_WIDTH = 70.0
#: Lanes (胡同) of the old town: y of their centre lines (both halves mirrored).
LANE_Y = 45.0 + 70.0 * np.arange(11)
LANE_WIDTH = 6.0


def river_x(y: np.ndarray | float) -> np.ndarray:
    """x of the river's centre line at ``y`` (local metres); it flows north to south."""
    return 1480.0 + 110.0 * np.sin(np.asarray(y, dtype=np.float64) / 520.0 + 0.6)


def river_line() -> shapely.LineString:
    """Centre line of the river across the whole DEM extent."""
    y = np.arange(2800.0, -2801.0, -20.0)
    return shapely.linestrings(np.column_stack([river_x(y), y]))


@dataclass
class Streets:
    """Named street centre lines (local metres)."""

    names: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    widths: list[float] = field(default_factory=list)
    districts: list[str] = field(default_factory=list)
    coords: list[list[tuple[float, float]]] = field(default_factory=list)

    def add(self, name: str, kind: str, width: float, district: str, *pts: tuple) -> None:
        """Append one street (a polyline through ``pts``)."""
        self.names.append(name)
        self.kinds.append(kind)
        self.widths.append(width)
        self.districts.append(district)
        self.coords.append([(float(x), float(y)) for x, y in pts])

    @property
    def lines(self) -> np.ndarray:
        """Centre lines as a shapely array."""
        return np.array([shapely.LineString(c) for c in self.coords], dtype=object)

    def polygons(self) -> np.ndarray:
        """Street surfaces (centre lines buffered by half the width, flat caps)."""
        return shapely.buffer(
            self.lines, np.asarray(self.widths) / 2.0, cap_style="flat", join_style="mitre"
        )


GU = "古城区"
XIN = "新城区"

_HUTONG = [
    "帽儿胡同",
    "砖塔胡同",
    "箭厂胡同",
    "棉花胡同",
    "钟楼湾胡同",
    "鼓楼后胡同",
    "大有仓胡同",
    "小南门胡同",
    "四牌楼胡同",
    "油坊胡同",
    "铜锣胡同",
    "菜市胡同",
    "粮店胡同",
    "马王庙胡同",
    "九龙壁胡同",
    "太平胡同",
    "花园胡同",
    "井儿胡同",
    "石头胡同",
    "纸坊胡同",
    "仓门胡同",
    "书院胡同",
    "府学胡同",
    "城隍庙胡同",
    "关帝庙胡同",
    "柳巷胡同",
    "槐树胡同",
    "枣园胡同",
    "杏花胡同",
    "剪子胡同",
    "灯笼胡同",
    "草帽胡同",
    "羊肉胡同",
    "豆腐胡同",
    "银匠胡同",
    "染坊胡同",
    "轿子胡同",
    "碾子胡同",
    "水井胡同",
    "魁星楼胡同",
    "东井胡同",
    "西井胡同",
    "南营胡同",
    "北营胡同",
]

#: Main streets of the old town radiating from the drum tower.
OLD_MAIN = ("鼓楼东街", "鼓楼西街", "北大街", "南大街")

# Modern grid: line position -> (name, width) for N-S lines (x) and E-W lines (y).
_NS_MAIN = {
    -2100.0: ("西环路", 24.0),
    -1800.0: ("魏都大道", 36.0),
    -1500.0: ("迎宾路", 30.0),
    -1200.0: ("太和路", 30.0),
    -900.0: ("环城西路", 30.0),
    900.0: ("环城东路", 30.0),
    1200.0: ("御河西路", 30.0),
    1800.0: ("御河东路", 30.0),
    2100.0: ("东环路", 24.0),
}
_EW_MAIN = {
    -2100.0: ("南环路", 24.0),
    -1800.0: ("同泰路", 30.0),
    -1500.0: ("文兴路", 30.0),
    -1200.0: ("平城大道", 44.0),
    -900.0: ("环城南路", 30.0),
    900.0: ("环城北路", 30.0),
    1200.0: ("府前路", 36.0),
    1500.0: ("建设路", 30.0),
    1800.0: ("永泰路", 30.0),
    2100.0: ("北环路", 24.0),
}
_MINOR = [
    "幸福路",
    "和平街",
    "育才路",
    "安宁街",
    "学府路",
    "光明路",
    "振华街",
    "兴业路",
    "开源街",
    "永安路",
    "长乐街",
    "青年路",
    "红旗街",
    "工农路",
    "民主街",
    "团结路",
]
_AXIS_OUT = {
    "north": ("北关街", 30.0),
    "south": ("南关街", 30.0),
    "east": ("东关大街", 36.0),
    "west": ("西关大街", 36.0),
}

#: Grid line positions (x and y) that bound the modern blocks.
GRID_X = np.array(
    [-2200, -2100, -1800, -1500, -1200, -900, -600, -300, 0, 300, 600, 900, 1200, 1800, 2100, 2200],
    dtype=np.float64,
)
GRID_Y = np.array(
    [
        -2200,
        -2100,
        -1800,
        -1500,
        -1200,
        -900,
        -600,
        -300,
        0,
        300,
        600,
        900,
        1200,
        1500,
        1800,
        2100,
        2200,
    ],
    dtype=np.float64,
)
_MINOR_W = 16.0


def line_width(pos: float, axis: str) -> float:
    """Width of the grid road at ``pos`` (0 at the outer edge of the city)."""
    table = _NS_MAIN if axis == "x" else _EW_MAIN
    if abs(pos) >= CITY_HALF:
        return 0.0
    if pos in table:
        return table[pos][1]
    if pos == 0.0:
        return 30.0 if axis == "x" else 36.0
    return _MINOR_W


def make_streets() -> Streets:
    """All named streets of the city (old town and modern grid)."""
    s = Streets()
    w = WALL_IN
    s.add("鼓楼东街", "old_main", 20.0, GU, (12, 0), (w, 0))
    s.add("鼓楼西街", "old_main", 20.0, GU, (-12, 0), (-w, 0))
    s.add("北大街", "old_main", 20.0, GU, (0, 12), (0, w))
    s.add("南大街", "old_main", 20.0, GU, (0, -12), (0, -w))
    s.add("东仓街", "old_street", 10.0, GU, (400, -w), (400, w))
    s.add("西仓街", "old_street", 10.0, GU, (-400, -w), (-400, w))
    k = 0
    for sy in (1.0, -1.0):
        for y in LANE_Y:
            for sx in (-1.0, 1.0):
                s.add(_HUTONG[k], "lane", LANE_WIDTH, GU, (sx * 10, sy * y), (sx * w, sy * y))
                k += 1
    h = CITY_HALF
    for x, (name, width) in _NS_MAIN.items():
        s.add(name, "road", width, XIN, (x, h), (x, -h))
    for y, (name, width) in _EW_MAIN.items():
        s.add(name, "road", width, XIN, (-h, y), (h, y))
    r = RING + 15
    for key, a, b in (
        ("north", (0, r), (0, h)),
        ("south", (0, -r), (0, -h)),
        ("east", (r, 0), (h, 0)),
        ("west", (-r, 0), (-h, 0)),
    ):
        name, width = _AXIS_OUT[key]
        s.add(name, "road", width, XIN, a, b)
    # gate passages through wall and over the moat
    for name, (a, b) in {
        "东门外街": ((w, 0), (RING - 15, 0)),
        "西门外街": ((-w, 0), (-RING + 15, 0)),
        "北门外街": ((0, w), (0, RING - 15)),
        "南门外街": ((0, -w), (0, -RING + 15)),
    }.items():
        s.add(name, "gate", 16.0, GU, a, b)
    m = 0
    for x in (-600.0, -300.0, 300.0, 600.0):
        for sy in (1.0, -1.0):
            s.add(_MINOR[m], "minor", _MINOR_W, XIN, (x, sy * (RING + 15)), (x, sy * h))
            m += 1
    for y in (-600.0, -300.0, 300.0, 600.0):
        for sx in (1.0, -1.0):
            s.add(_MINOR[m], "minor", _MINOR_W, XIN, (sx * (RING + 15), y), (sx * h, y))
            m += 1
    return s


@dataclass
class Plan:
    """Footprints and their (true) attributes, before ids and missing values.

    Columns are parallel lists that are concatenated at the end.
    """

    geoms: list[np.ndarray] = field(default_factory=list)
    kind: list[np.ndarray] = field(default_factory=list)
    use: list[np.ndarray] = field(default_factory=list)
    roof: list[np.ndarray] = field(default_factory=list)
    floors: list[np.ndarray] = field(default_factory=list)
    height: list[np.ndarray] = field(default_factory=list)
    name: list[np.ndarray] = field(default_factory=list)
    street: list[np.ndarray] = field(default_factory=list)
    fixed: list[np.ndarray] = field(default_factory=list)
    trees: list[np.ndarray] = field(default_factory=list)  # (x, y, r) rows
    grounds: list[tuple[shapely.Geometry, int]] = field(default_factory=list)

    def add(
        self,
        geoms: np.ndarray,
        kind: str,
        use: str | np.ndarray,
        roof: str | np.ndarray,
        floors: float | np.ndarray,
        height: float | np.ndarray,
        name: str | np.ndarray = "",
        street: str = "",
        fixed: bool = False,
    ) -> None:
        """Append footprints with attributes (scalars are broadcast)."""
        geoms = np.asarray(geoms, dtype=object).reshape(-1)
        n = len(geoms)
        if n == 0:
            return

        def col(v: object, dtype: object) -> np.ndarray:
            return np.broadcast_to(np.asarray(v, dtype=dtype), (n,)).copy()

        self.geoms.append(geoms)
        self.kind.append(col(kind, object))
        self.use.append(col(use, object))
        self.roof.append(col(roof, object))
        self.floors.append(col(floors, np.float64))
        self.height.append(col(height, np.float64))
        self.name.append(col(name, object))
        self.street.append(col(street, object))
        self.fixed.append(col(fixed, bool))

    def tree(self, x: np.ndarray, y: np.ndarray, r: np.ndarray | float) -> None:
        """Add tree crowns (centre, radius)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        r = np.broadcast_to(np.asarray(r, dtype=np.float64), x.shape)
        self.trees.append(np.column_stack([x, np.asarray(y, dtype=np.float64).reshape(-1), r]))

    def columns(self) -> dict[str, np.ndarray]:
        """Concatenate the parts into columns."""
        out = {
            k: np.concatenate(getattr(self, k))
            for k in ("geoms", "kind", "use", "roof", "floors", "height", "name", "street", "fixed")
        }
        out["trees"] = np.concatenate(self.trees) if self.trees else np.zeros((0, 3))
        return out


# ground classes for the orthophoto (painted in the order added)
G_SOIL, G_GRASS, G_ROAD, G_LANE, G_OLDSTREET, G_WALL, G_MOAT, G_RIVER, G_PAVING = range(1, 10)
G_OLDGROUND, G_RESIDENTIAL, G_INDUSTRIAL, G_VILLAGE, G_PLAZA = range(10, 15)


def square(half: float) -> shapely.Polygon:
    """Axis-aligned square of half side ``half`` centred on the drum tower."""
    return shapely.box(-half, -half, half, half)


def _boxes(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
    return shapely.box(x0, y0, x1, y1)


def _split(start: float, stop: float, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    """Cut [start, stop] into pieces of random width in [lo, hi]; returns edges."""
    n = int((stop - start) / lo) + 2
    w = rng.uniform(lo, hi, n)
    edges = start + np.concatenate([[0.0], np.cumsum(w)])
    edges = edges[edges <= stop]
    if stop - edges[-1] > lo * 0.6:
        edges = np.append(edges, stop)
    else:
        edges[-1] = stop
    return edges


# -- notable buildings: (name, kind, use, roof, floors, height, (x0, y0, x1, y1), street)
NOTABLE_OLD: list[tuple] = [
    ("鼓楼", "tower_old", "公共", "重檐歇山", 3, 26.0, (-12, -12, 12, 12), "鼓楼西街"),
    ("东门城楼", "gate", "公共", "重檐歇山", 2, 21.0, (785, -18, 801, 18), "鼓楼东街"),
    ("西门城楼", "gate", "公共", "重檐歇山", 2, 21.0, (-801, -18, -785, 18), "鼓楼西街"),
    ("北门城楼", "gate", "公共", "重檐歇山", 2, 21.0, (-18, 785, 18, 801), "北大街"),
    ("南门城楼", "gate", "公共", "重檐歇山", 2, 21.0, (-18, -801, 18, -785), "南大街"),
    ("东北角楼", "gate", "公共", "四角攒尖", 2, 16.0, (784, 784, 802, 802), ""),
    ("西北角楼", "gate", "公共", "四角攒尖", 2, 16.0, (-802, 784, -784, 802), ""),
    ("东南角楼", "gate", "公共", "四角攒尖", 2, 16.0, (784, -802, 802, -784), ""),
    ("西南角楼", "gate", "公共", "四角攒尖", 2, 16.0, (-802, -802, -784, -784), ""),
    # 华严寺
    ("华严寺山门", "temple", "寺庙", "歇山", 1, 9.0, (-572, 160, -538, 172), "西仓街"),
    ("天王殿", "temple", "寺庙", "歇山", 1, 12.0, (-577, 200, -533, 216), ""),
    ("大雄宝殿", "temple", "寺庙", "重檐庑殿", None, 22.0, (-590, 248, -520, 285), ""),
    ("薄伽教藏殿", "temple", "寺庙", "歇山", 1, 16.0, (-582, 318, -528, 346), ""),
    ("华严寺钟楼", "temple", "寺庙", "四角攒尖", 2, 14.0, (-628, 222, -614, 236), ""),
    ("华严寺鼓楼", "temple", "寺庙", "四角攒尖", 2, 14.0, (-496, 222, -482, 236), ""),
    ("东配殿", "temple", "寺庙", "硬山", 1, 8.0, (-500, 252, -484, 300), ""),
    ("西配殿", "temple", "寺庙", "硬山", 1, 8.0, (-626, 252, -610, 300), ""),
    # 善化寺
    ("善化寺山门", "temple", "寺庙", "庑殿", 1, 11.0, (-158, -712, -122, -698), "南大街"),
    ("三圣殿", "temple", "寺庙", "庑殿", 1, 15.0, (-167, -662, -113, -640), ""),
    ("普贤阁", "temple", "寺庙", "重檐攒尖", 2, 16.0, (-205, -622, -189, -606), ""),
    ("文殊阁", "temple", "寺庙", "重檐攒尖", 2, 16.0, (-91, -622, -75, -606), ""),
    ("善化寺大雄宝殿", "temple", "寺庙", "庑殿", 1, 24.0, (-178, -592, -102, -555), ""),
    # 文庙
    ("棂星门", "temple", "公共", "悬山", 1, 7.0, (283, -412, 307, -404), "东仓街"),
    ("大成门", "temple", "公共", "歇山", 1, 10.0, (276, -360, 314, -348), ""),
    ("大成殿", "temple", "公共", "重檐歇山", 1, 18.0, (262, -300, 328, -270), ""),
    ("明伦堂", "temple", "公共", "硬山", 1, 10.0, (270, -240, 320, -222), ""),
    # 平城府署
    ("府署仪门", "temple", "公共", "硬山", 1, 8.0, (548, 212, 582, 222), "东仓街"),
    ("府署大堂", "temple", "公共", "歇山", 1, 14.0, (530, 290, 600, 318), ""),
    ("府署二堂", "temple", "公共", "硬山", 1, 11.0, (538, 350, 592, 370), ""),
    ("府署后楼", "temple", "公共", "硬山", 2, 10.0, (536, 395, 594, 412), ""),
]
#: Compounds of the old town that replace courtyard plots (paved, walled).
COMPOUNDS_OLD = [
    ("华严寺", (-640.0, 150.0, -470.0, 360.0)),
    ("善化寺", (-225.0, -720.0, -55.0, -545.0)),
    ("文庙", (240.0, -420.0, 350.0, -210.0)),
    ("平城府署", (510.0, 200.0, 620.0, 420.0)),
]

NOTABLE_NEW: list[tuple] = [
    ("平城中心", "office", "办公", "flat", 52, 238.0, (-1150, -1150, -1095, -1095), "平城大道"),
    (
        "平城国际金融中心",
        "office",
        "办公",
        "flat",
        41,
        182.0,
        (-1060, -1160, -1015, -1115),
        "平城大道",
    ),
    ("御河大厦", "office", "办公", "flat", 28, 118.0, (-1160, -1040, -1120, -1000), "太和路"),
    ("平城饭店", "office", "商业", "flat", 22, 86.0, (-1010, -1040, -960, -1010), "环城南路"),
    ("平城中心裙楼", "podium", "商业", "flat", 4, 22.0, (-1170, -1090, -1020, -1060), ""),
    ("新城区人民政府", "public", "公共", "flat", 8, 34.0, (-1700, -1080, -1600, -1030), "魏都大道"),
    ("平城博物馆", "public", "公共", "hipped", 3, 24.0, (-1770, -1165, -1660, -1110), "魏都大道"),
    ("平城大剧院", "public", "公共", "dome", 4, 32.0, (-1630, -1170, -1530, -1100), "迎宾路"),
    ("平城体育中心", "public", "公共", "dome", 3, 36.0, (1890, -1480, 2050, -1330), "东环路"),
    ("平城火车站", "public", "公共", "flat", 3, 24.0, (-270, 1990, -30, 2060), "北环路"),
    ("平城第一中学", "public", "公共", "flat", 5, 18.0, (-560, 1240, -440, 1270), "幸福路"),
    ("平城人民医院", "public", "公共", "flat", 16, 62.0, (630, -1460, 700, -1400), "文兴路"),
]
#: Blocks reserved for notable complexes (centre point -> type).
RESERVED = {
    (-1050.0, -1050.0): "cbd",
    (-1350.0, -1050.0): "cbd",
    (-1050.0, -1350.0): "cbd",
    (-1350.0, -1350.0): "cbd",
    (-1650.0, -1050.0): "civic",
    (-1950.0, -1350.0): "park",
    (1950.0, -1350.0): "civic",
    (-150.0, 1950.0): "civic",
    (-450.0, 1350.0): "civic",
    (750.0, -1350.0): "civic",
    (1050.0, 450.0): "park",
    (-1050.0, 750.0): "park",
    (-1950.0, 1950.0): "bad",
}

#: The deliberately bad features: (problem, description). They stand in a row in the
#: block x -2100..-1800, y 1800..2100 (local metres) and get fixed ids.
BAD_PROBLEMS: list[tuple[str, str]] = [
    ("bowtie", "self-intersecting 'bow-tie' ring (invalid polygon)"),
    ("duplicate_id", "id equal to the id of another feature (the first 鼓楼东街 shop)"),
    ("duplicate_vertex", "ring with a repeated consecutive vertex"),
    ("sliver", "tiny sliver, 0.1 m x 8 m (0.8 m², below min_area)"),
    ("z_coordinate", "polygon with Z coordinates (3D ring, z = 1045 m)"),
    ("null_geometry", "feature without geometry"),
    ("multipolygon", "one building stored as a MultiPolygon of two parts"),
    ("negative_height", "height = -5 m"),
    ("absurd_height", "height = 9999 m (above max_height)"),
    ("duplicate_geometry", "exact copy of the footprint of the previous feature, new id"),
]


def _notables(plan: Plan, table: list[tuple]) -> None:
    for name, kind, use, roof, floors, height, bx, street in table:
        plan.add(
            shapely.box(*bx),
            kind,
            use,
            roof,
            np.nan if floors is None else floors,
            height,
            name,
            street,
            fixed=True,
        )


def _bad_row(plan: Plan) -> None:
    """Base boxes of the deliberately bad features (corrupted later, see BAD_PROBLEMS)."""
    x = -2080.0 + 28.0 * np.arange(len(BAD_PROBLEMS))
    geoms = _boxes(x, np.full_like(x, 1850.0), x + 14.0, np.full_like(x, 1866.0))
    geoms[-1] = geoms[-2]  # the duplicated footprint
    plan.add(geoms, "bad", "商业", "flat", 2, 7.0, "", "永泰路", fixed=True)


def _shops_known(plan: Plan) -> None:
    """Fixed (seed-independent) shops along 鼓楼东街: id and house number are known."""
    x = 22.0 + 12.0 * np.arange(62)
    x = x[np.abs(x + 5.5 - 400.0) > 12.0]
    for y0, y1 in ((11.0, 25.0), (-25.0, -11.0)):
        plan.add(
            _boxes(x, np.full_like(x, y0), x + 11.0, np.full_like(x, y1)),
            "shop_old",
            "商业",
            "硬山",
            1,
            5.5,
            "",
            "鼓楼东街",
            fixed=True,
        )


def _old_town(plan: Plan, rng: np.random.Generator, blocked: shapely.Geometry) -> None:
    """Courtyard houses (holes!), small houses and shops inside the wall."""
    w = WALL_IN
    # shops along the other three main streets (random widths)
    for sgn in (1.0, -1.0):
        xs = _split(22.0, w - 6, 9.0, 14.0, rng)
        a, b = xs[:-1] + 0.5, xs[1:] - 0.5
        if sgn < 0:  # 鼓楼西街
            a, b = -b, -a
            for y0, y1 in ((11.0, 25.0), (-25.0, -11.0)):
                plan.add(
                    _boxes(a, np.full_like(a, y0), b, np.full_like(a, y1)),
                    "shop_old",
                    "商业",
                    "硬山",
                    1,
                    5.5,
                    "",
                    "鼓楼西街",
                )
        ys = _split(48.0, w - 4, 9.0, 14.0, rng) * sgn
        lo, hi = np.minimum(ys[:-1], ys[1:]) + 0.5, np.maximum(ys[:-1], ys[1:]) - 0.5
        street = "北大街" if sgn > 0 else "南大街"
        for x0, x1 in ((11.0, 25.0), (-25.0, -11.0)):
            plan.add(
                _boxes(np.full_like(lo, x0), lo, np.full_like(lo, x1), hi),
                "shop_old",
                "商业",
                "硬山",
                1,
                5.5,
                "",
                street,
            )
    # rear houses of the shop bands
    for sx in (1.0, -1.0):
        xs = _split(22.0, w - 6, 10.0, 16.0, rng)
        for y0, y1 in ((29.0, 41.0), (-41.0, -29.0)):
            plan.add(
                _boxes(
                    sx * xs[:-1] + 0.5 * sx,
                    np.full(len(xs) - 1, y0),
                    sx * xs[1:] - 0.5 * sx,
                    np.full(len(xs) - 1, y1),
                ),
                "house_old",
                "住宅",
                "硬山",
                1,
                4.5,
            )
    # rows of plots between the lanes
    bands = []
    edges = np.concatenate([[42.0], np.repeat(LANE_Y, 2) + np.tile([-3.0, 3.0], 11), [w]])
    for lo, hi in edges.reshape(-1, 2)[1:]:
        if hi - lo > 50:
            bands += [(lo, (lo + hi) / 2), ((lo + hi) / 2, hi)]
        else:
            bands.append((lo, hi))
    xr = [(-w, -405.0), (-395.0, -42.0), (42.0, 395.0), (405.0, w)]
    x0s, y0s, x1s, y1s = [], [], [], []
    for sy in (1.0, -1.0):
        for lo, hi in bands:
            for a, b in xr:
                xs = _split(a, b, 18.0, 28.0, rng)
                x0s.append(xs[:-1])
                x1s.append(xs[1:])
                ya, yb = sorted((sy * lo, sy * hi))
                y0s.append(np.full(len(xs) - 1, ya))
                y1s.append(np.full(len(xs) - 1, yb))
    x0, x1 = np.concatenate(x0s) + 0.5, np.concatenate(x1s) - 0.5
    y0, y1 = np.concatenate(y0s) + 0.5, np.concatenate(y1s) - 0.5
    plots = _boxes(x0, y0, x1, y1)
    keep = ~shapely.intersects(plots, blocked)
    x0, y0, x1, y1 = x0[keep], y0[keep], x1[keep], y1[keep]
    kind = rng.uniform(size=len(x0))
    # courtyard houses: a ring polygon (the courtyard is a hole)
    c = kind < 0.68
    inset = rng.uniform(5.5, 7.5, size=(len(x0), 2))
    outer = _boxes(x0[c], y0[c], x1[c], y1[c])
    hx0, hy0 = x0[c] + inset[c, 0], y0[c] + inset[c, 1]
    hx1, hy1 = x1[c] - inset[c, 0], y1[c] - inset[c, 1]
    court = shapely.difference(outer, _boxes(hx0, hy0, hx1, hy1))
    hgt = rng.uniform(4.8, 6.8, c.sum()).round(1)
    plan.add(
        court,
        "courtyard",
        "住宅",
        np.where(rng.uniform(size=c.sum()) < 0.85, "硬山", "悬山"),
        1,
        hgt,
    )
    has_tree = rng.uniform(size=c.sum()) < 0.6
    r = np.minimum(hx1 - hx0, hy1 - hy0) / 2 - 0.8
    plan.tree(
        ((hx0 + hx1) / 2)[has_tree],
        ((hy0 + hy1) / 2)[has_tree],
        np.minimum(r[has_tree], rng.uniform(2.0, 4.0, has_tree.sum())),
    )
    # plots with two separate houses (north main house, south gate house)
    t = (kind >= 0.68) & (kind < 0.93)
    plan.add(
        _boxes(x0[t], y1[t] - 10.0, x1[t], y1[t]),
        "house_old",
        "住宅",
        "硬山",
        1,
        rng.uniform(4.5, 6.5, t.sum()).round(1),
    )
    plan.add(
        _boxes(x0[t], y0[t], x1[t], y0[t] + 6.5),
        "house_old",
        "住宅",
        "硬山",
        1,
        rng.uniform(3.8, 5.0, t.sum()).round(1),
    )
    plan.tree((x0[t] + x1[t]) / 2, (y0[t] + y1[t]) / 2 + 1.0, rng.uniform(2.0, 3.5, t.sum()))
    # yards with one small house (workshops, sheds) and trees
    s = kind >= 0.93
    # workshops: modern infill with western roofs (chosen from the plot, no new draw)
    western = np.array(["gabled", "hipped", "half-hipped", "mansard", "shed"], dtype=object)
    infill = western[(np.floor(x0[s]) + np.floor(y0[s])).astype(np.int64) % len(western)]
    plan.add(
        _boxes(x0[s], y1[s] - 9.0, x0[s] + 9.0, y1[s]),
        "house_old",
        "商业",
        infill,
        1,
        rng.uniform(3.5, 5.0, s.sum()).round(1),
    )
    plan.tree((x0[s] + x1[s]) / 2 + 3.0, (y0[s] + y1[s]) / 2 - 4.0, 4.0)
    # compound grounds and courtyard trees inside compounds
    for _, bx in COMPOUNDS_OLD:
        plan.grounds.append((shapely.box(*bx), G_PAVING))
        cx = (bx[0] + bx[2]) / 2
        ty = np.arange(bx[1] + 20, bx[3] - 10, 18.0)
        plan.tree(
            np.concatenate([np.full_like(ty, cx - 30), np.full_like(ty, cx + 30)]),
            np.concatenate([ty, ty]),
            3.5,
        )


def _block(
    plan: Plan, btype: str, b: tuple[float, float, float, float], rng: np.random.Generator
) -> None:
    """Fill one modern block (x0, y0, x1, y1) with buildings of type ``btype``."""
    x0, y0, x1, y1 = b
    w, h = x1 - x0, y1 - y0
    if btype == "village":
        plan.grounds.append((shapely.box(*b), G_VILLAGE))
        gx = np.arange(x0 + 2, x1 - 10, 12.5)
        gy = np.arange(y0 + 2, y1 - 9, 14.0)
        px, py = (a.ravel() for a in np.meshgrid(gx, gy))
        keep = rng.uniform(size=px.size) < 0.82
        px, py = px[keep], py[keep]
        bw, bh = rng.uniform(7.5, 10.5, px.size), rng.uniform(6.5, 10.0, px.size)
        fl = rng.choice([1, 1, 2, 2, 3, 4], px.size)
        roof = np.where(
            fl <= 2, np.where(rng.uniform(size=px.size) < 0.5, "gabled", "flat"), "flat"
        )
        plan.add(
            _boxes(px, py, px + bw, py + bh),
            "village",
            "住宅",
            roof,
            fl,
            (fl * 3.1 + np.where(roof == "gabled", 1.5, 0.6)).round(1),
        )
    elif btype == "residential":
        plan.grounds.append((shapely.box(*b), G_RESIDENTIAL))
        fl = int(rng.choice([6, 6, 7, 11, 12, 18]))
        gap = 14.0 + fl * 1.6
        rows = np.arange(y0 + 26, y1 - 16, gap)
        for ry in rows:
            xs = _split(x0 + 22, x1 - 18, 46.0, 70.0, rng)
            a, c = xs[:-1] + 4, xs[1:] - 4
            ok = c - a > 28
            a, c = a[ok], c[ok]
            f = fl + rng.integers(-1, 2, a.size)
            plan.add(
                _boxes(a, np.full_like(a, ry), c, np.full_like(a, ry + 13.0)),
                "slab",
                "住宅",
                "flat",
                f,
                (f * 2.9 + 1.2).round(1),
            )
        # shops along the street front and garages
        xs = _split(x0 + 4, x1 - 4, 12.0, 22.0, rng)
        a, c = xs[:-1] + 1, xs[1:] - 1
        plan.add(
            _boxes(a, np.full_like(a, y0 + 2), c, np.full_like(a, y0 + 14)),
            "shop",
            "商业",
            "flat",
            2,
            8.0,
        )
        ys = np.arange(y0 + 30, y1 - 30, 40.0)
        plan.add(
            _boxes(np.full_like(ys, x0 + 3), ys, np.full_like(ys, x0 + 12), ys + 24),
            "garage",
            "公共",
            "flat",
            1,
            3.5,
        )
        plan.tree(rng.uniform(x0 + 15, x1 - 10, 40), rng.uniform(y0 + 18, y1 - 8, 40), 3.0)
    elif btype == "towers":
        plan.grounds.append((shapely.box(*b), G_RESIDENTIAL))
        gx = np.arange(x0 + 25, x1 - 40, 55.0)
        gy = np.arange(y0 + 40, y1 - 40, 60.0)
        px, py = (a.ravel() for a in np.meshgrid(gx, gy))
        fl = rng.choice([18, 24, 26, 28, 32, 33], px.size)
        sz = rng.uniform(20.0, 28.0, px.size)
        plan.add(
            _boxes(px, py, px + sz, py + sz * rng.uniform(0.8, 1.1, px.size)),
            "tower",
            "住宅",
            "flat",
            fl,
            (fl * 2.95 + 3.0).round(1),
        )
        xs = _split(x0 + 4, x1 - 4, 20.0, 40.0, rng)
        a, c = xs[:-1] + 1, xs[1:] - 1
        plan.add(
            _boxes(a, np.full_like(a, y0 + 2), c, np.full_like(a, y0 + 18)),
            "podium",
            "商业",
            "flat",
            3,
            13.5,
        )
        plan.tree(rng.uniform(x0 + 10, x1 - 10, 30), rng.uniform(y0 + 25, y1 - 10, 30), 3.5)
    elif btype == "industrial":
        plan.grounds.append((shapely.box(*b), G_INDUSTRIAL))
        xs = _split(x0 + 8, x1 - 8, 45.0, 90.0, rng)
        for ry0, ry1 in ((y0 + 10, y0 + h / 2 - 8), (y0 + h / 2 + 8, y1 - 10)):
            a, c = xs[:-1] + 6, xs[1:] - 6
            plan.add(
                _boxes(a, np.full_like(a, ry0), c, np.full_like(a, ry1)),
                "shed",
                "工业",
                np.where(rng.uniform(size=a.size) < 0.5, "gabled", "flat"),
                1,
                rng.uniform(8.0, 15.0, a.size).round(1),
            )
        plan.add(
            shapely.box(x0 + 4, y0 + h / 2 - 6, x0 + 40, y0 + h / 2 + 6),
            "office",
            "办公",
            "flat",
            4,
            15.0,
        )
    elif btype == "park":
        plan.grounds.append((shapely.box(*b), G_GRASS))
        n = int(w * h / 250)
        plan.tree(
            rng.uniform(x0 + 5, x1 - 5, n), rng.uniform(y0 + 5, y1 - 5, n), rng.uniform(2.5, 6.0, n)
        )
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        plan.add(
            shapely.box(cx - 5, cy - 5, cx + 5, cy + 5), "pavilion", "公共", "pyramidal", 1, 7.0
        )
    elif btype == "bad":
        plan.grounds.append((shapely.box(*b), G_PLAZA))
    elif btype in ("cbd", "civic"):
        plan.grounds.append((shapely.box(*b), G_PLAZA))
        plan.tree(rng.uniform(x0 + 5, x1 - 5, 25), rng.uniform(y0 + 5, y1 - 5, 25), 3.0)


def _modern(plan: Plan, rng: np.random.Generator, _river: shapely.Geometry) -> None:
    """Blocks of the modern district between the grid roads."""
    blocks, types = [], []
    for i in range(len(GRID_X) - 1):
        for j in range(len(GRID_Y) - 1):
            ax, bx = GRID_X[i], GRID_X[i + 1]
            ay, by = GRID_Y[j], GRID_Y[j + 1]
            cx, cy = (ax + bx) / 2, (ay + by) / 2
            if abs(cx) < RING and abs(cy) < RING:
                continue
            b = (
                ax + line_width(ax, "x") / 2 + 3,
                ay + line_width(ay, "y") / 2 + 3,
                bx - line_width(bx, "x") / 2 - 3,
                by - line_width(by, "y") / 2 - 3,
            )
            u = rng.uniform()
            if (cx, cy) in RESERVED:
                t = RESERVED[(cx, cy)]
            elif min(bx - ax, by - ay) < 150:
                t = "village" if u < 0.4 else "industrial" if u < 0.6 else "park"
            elif cx > 1300 and cy < -600:
                t = "industrial" if u < 0.6 else "residential"
            else:
                t = (
                    "village"
                    if u < 0.1
                    else "residential"
                    if u < 0.55
                    else "towers"
                    if u < 0.85
                    else "industrial"
                    if u < 0.93
                    else "park"
                )
            blocks.append(b)
            types.append(t)
    for b, t in zip(blocks, types, strict=True):
        _block(plan, t, b, rng)
    log.debug("%d modern blocks", len(blocks))


def make_plan(rng: np.random.Generator) -> tuple[Plan, Streets, shapely.Geometry]:
    """Lay out the whole city.

    Returns
    -------
    plan : Plan
        Footprints (fixed ones first: notables, then the 鼓楼东街 shops) and trees.
    streets : Streets
        Named streets.
    river : shapely LineString
        River centre line.
    """
    plan = Plan()
    _notables(plan, NOTABLE_OLD)
    _notables(plan, NOTABLE_NEW)
    _shops_known(plan)
    _bad_row(plan)
    nfixed = len(plan.geoms)
    streets = make_streets()
    river = river_line()
    blocked = shapely.union_all(
        [shapely.box(*bx).buffer(4.0) for _, bx in COMPOUNDS_OLD] + [shapely.box(-30, -30, 30, 30)]
    )
    shapely.prepare(blocked)
    _old_town(plan, rng, blocked)
    _modern(plan, rng, river)
    # drop filler that overlaps a notable building, a street, or the river and its banks
    fixed_geoms = np.concatenate(plan.geoms[:nfixed])
    obstacles = np.concatenate(
        [
            shapely.buffer(fixed_geoms, 5.0),
            shapely.buffer(streets.polygons(), 0.2),
            [shapely.buffer(river, RIVER_WIDTH / 2 + 22.0)],
        ]
    )
    tree = shapely.STRtree(obstacles)
    cols = ("geoms", "kind", "use", "roof", "floors", "height", "name", "street", "fixed")
    rest = {c: np.concatenate(getattr(plan, c)[nfixed:]) for c in cols}
    hit = tree.query(rest["geoms"], predicate="intersects")[0]
    keep = np.ones(len(rest["geoms"]), dtype=bool)
    keep[hit] = False
    for c in cols:
        setattr(plan, c, [*getattr(plan, c)[:nfixed], rest[c][keep]])
    return plan, streets, river
