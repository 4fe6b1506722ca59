"""Synthetic Chinese address sets and query variants, for the benchmark and tests.

:func:`generate_addresses` makes a city-scale set of unique addresses (province →
city → district → street → number → building/unit/room, some with POI names);
:func:`make_variants` derives queries from known addresses the way people and
departments' records write them: Chinese numerals, traditional characters,
full-width digits, extra spaces, missing district or city, typos in names,
building/unit suffixes, reordered parts.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

_NAME_CHARS = (
    "安宝北滨昌长朝城春崇大德东丰凤福阜港高光广贵桂海汉和河红华怀淮黄惠吉嘉建江金锦京"
    "景静九康乐利莲林临龙隆鲁鹿罗梅民明南宁平浦琪青庆秋泉仁荣瑞山上尚胜盛石寿书顺泰"
    "唐天通桐万望文武西希霞祥新兴秀学阳杨耀永友玉裕元园源远云泽兆振正芝中忠洲竹紫"
)
_STREET_SUFFIX = ("路", "街", "大道", "巷", "东路", "西路", "南路", "北路", "中路", "大街")
_POI_SUFFIX = ("大厦", "小区", "花园", "中心", "广场", "公寓", "医院", "学校", "商场")
_CITIES = (
    ("", "平城市"),
    ("", "海州市"),
    ("江南省", "青川市"),
    ("江南省", "云阳市"),
    ("江南省", "白石市"),
    ("岭东省", "安平市"),
    ("岭东省", "临江市"),
    ("岭东省", "丰都市"),
    ("西原省", "河源市"),
    ("西原省", "明州市"),
)
_DISTRICTS = ("古城区", "新城区", "东湖区", "西山区", "南港区", "北塘区", "高新区", "滨海新区")


@dataclass(frozen=True)
class SyntheticAddress:
    """One generated address (the truth for a query variant)."""

    index: int
    province: str
    city: str
    district: str
    street: str
    number: int
    building: int
    unit: int
    room: int
    poi: str

    def full(self) -> str:
        """The full address string."""
        s = f"{self.province}{self.city}{self.district}{self.street}{self.number}号"
        if self.building:
            s += f"{self.building}栋"
        if self.unit:
            s += f"{self.unit}单元"
        if self.room:
            s += f"{self.room}室"
        return s + self.poi


def generate_addresses(
    n: int, seed: int = 0, streets_per_city: int | None = None
) -> tuple[list[SyntheticAddress], np.ndarray, np.ndarray]:
    """``n`` unique addresses with lon/lat in ten fictional cities.

    Returns
    -------
    (addresses, lon, lat)
    """
    rng = random.Random(seed)
    if streets_per_city is None:
        streets_per_city = max(20, n // (len(_CITIES) * 50))
    streets: list[tuple[int, str, str]] = []  # (city index, district, name)
    for ci in range(len(_CITIES)):
        names: set[str] = set()
        while len(names) < streets_per_city:
            k = rng.choice((2, 2, 2, 3))
            names.add(
                "".join(rng.choice(_NAME_CHARS) for _ in range(k)) + rng.choice(_STREET_SUFFIX)
            )
        for name in sorted(names):
            streets.append((ci, rng.choice(_DISTRICTS), name))
    out: list[SyntheticAddress] = []
    next_number = [1] * len(streets)
    while len(out) < n:
        si = rng.randrange(len(streets))
        ci, district, street = streets[si]
        number = next_number[si]
        next_number[si] += rng.choice((1, 1, 2))
        province, city = _CITIES[ci]
        kind = rng.random()
        poi = ""
        if rng.random() < 0.05:
            poi = "".join(rng.choice(_NAME_CHARS) for _ in range(2)) + rng.choice(_POI_SUFFIX)
        if kind < 0.75:
            out.append(
                SyntheticAddress(len(out), province, city, district, street, number, 0, 0, 0, poi)
            )
        else:
            for b in range(1, rng.randint(2, 4)):
                for u in range(1, rng.randint(2, 3)):
                    room = rng.choice((101, 201, 302, 501, 1203))
                    if len(out) < n:
                        out.append(
                            SyntheticAddress(
                                len(out), province, city, district, street, number, b, u, room, ""
                            )
                        )
    nrng = np.random.default_rng(seed)
    lon = 116.0 + nrng.random(n) * 0.5
    lat = 39.6 + nrng.random(n) * 0.5
    return out, lon, lat


# --- query variants ----------------------------------------------------------------

_CN = "零一二三四五六七八九"


def to_chinese_numeral(n: int, style: str = "units") -> str:
    """12 → 十二 (``units``) or 203 → 二零三 / 二〇三 (``digits``)."""
    if style == "digits":
        return "".join("〇一二三四五六七八九"[int(c)] for c in str(n))
    if n == 0:
        return "零"
    parts = []
    units = ((1000, "千"), (100, "百"), (10, "十"))
    rest = n
    zero = False
    for value, name in units:
        d, rest = divmod(rest, value)
        if d:
            if zero:
                parts.append("零")
                zero = False
            parts.append(("" if (value == 10 and d == 1 and not parts) else _CN[d]) + name)
        elif parts:
            zero = True
    if rest:
        if zero:
            parts.append("零")
        parts.append(_CN[rest])
    return "".join(parts)


@lru_cache(maxsize=1)
def _s2t() -> dict[str, str]:
    import opencc

    path = Path(opencc.__file__).parent / "dictionary" / "STCharacters.txt"
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        a, _, b = line.partition("\t")
        if len(a) == 1 and b:
            table[a] = b.split(" ")[0]
    return table


def _fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def _typo(name: str, rng: random.Random) -> str:
    """One edit (substitute, delete, transpose) inside a name, keeping its suffix."""
    core_len = max(1, len(name) - 1)
    i = rng.randrange(core_len)
    op = rng.choice(("sub", "sub", "del", "swap"))
    if op == "sub" or len(name) <= 2:
        return name[:i] + rng.choice(_NAME_CHARS) + name[i + 1 :]
    if op == "del" and len(name) >= 4:
        return name[:i] + name[i + 1 :]
    if i + 1 < len(name):
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    return name


VARIANT_KINDS = (
    "exact",
    "numerals",
    "missing_district",
    "missing_city",
    "fullwidth",
    "spaces",
    "traditional",
    "typo",
    "suffix",
    "reordered",
)


def make_variants(
    addresses: list[SyntheticAddress], count: int, seed: int = 1
) -> list[tuple[str, int, str]]:
    """``count`` query variants of randomly chosen known addresses.

    Returns
    -------
    list of (query, index of the true address, variant kind)
    """
    rng = random.Random(seed)
    out = []
    t2 = _s2t()
    for k in range(count):
        kind = VARIANT_KINDS[k % len(VARIANT_KINDS)]
        a = addresses[rng.randrange(len(addresses))]
        if kind == "suffix":
            for _ in range(50):
                if not a.building:
                    break
                a = addresses[rng.randrange(len(addresses))]
        admin = [a.province, a.city, a.district]
        street = a.street
        number = f"{a.number}号"
        detail = ""
        if a.building:
            detail += f"{a.building}栋"
        if a.unit:
            detail += f"{a.unit}单元"
        if a.room:
            detail += f"{a.room}室"
        poi = a.poi
        if kind == "numerals":
            number = to_chinese_numeral(a.number, rng.choice(("units", "digits"))) + "号"
        elif kind == "missing_district":
            admin = [a.province, a.city, ""]
        elif kind == "missing_city":
            admin = ["", "", ""]
        elif kind == "typo":
            street = _typo(street, rng)
        elif kind == "suffix":
            detail = f"{rng.randint(1, 9)}栋{rng.randint(1, 4)}单元"
        parts = [*admin, street, number, detail, poi]
        if kind == "reordered":
            q = f"{street}{number}{detail}{poi} {a.city}{a.district}"
        elif kind == "spaces":
            q = "  ".join(p for p in parts if p) + " "
        else:
            q = "".join(parts)
        if kind == "fullwidth":
            q = unicodedata.normalize("NFC", _fullwidth(q))
        elif kind == "traditional":
            q = "".join(t2.get(c, c) for c in q).replace("号", "號")
        out.append((q, a.index, kind))
    return out
