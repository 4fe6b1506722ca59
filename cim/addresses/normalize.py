"""Address normalisation and parsing (GB/T 23705 hierarchy).

:func:`normalize` turns any spelling of an address into one matching key:

- full-width → half-width (Unicode NFKC), lower case;
- traditional → simplified characters (the OpenCC ``TSCharacters`` table, applied
  character by character) and a few address variants (號→号, 幢/座→栋, 房→室...);
- Chinese numerals → digits (十二号 → 12号, 二〇三 → 203, 一百零五 → 105);
- spaces and punctuation dropped between Chinese characters, collapsed to one space
  between Latin words; ``#`` → 号;
- Latin abbreviations expanded (Rd → road, St → street, E → east, No. dropped...);
- accents folded on Latin letters (Platière → platiere, Hämeentie → hameentie,
  Straße → strasse), so that a query typed without them still matches.

:func:`parse_address` splits a normalised address into :class:`Components`
(province, city, district, town, street/road, number, building, unit, room, POI).
Latin-script addresses are parsed too, with the house number before the street
("6 rue de la Platière", "33 Sichuan Middle Rd") or after it ("Hämeentie 12",
"Straße des 17. Juni 12").
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = [
    "ADMIN_SUFFIXES",
    "Components",
    "admin_short",
    "chinese_numerals_to_digits",
    "normalize",
    "parse_address",
]


# --- traditional → simplified ------------------------------------------------------


@lru_cache(maxsize=1)
def _char_table() -> dict[int, str]:
    """``str.translate`` table: traditional/variant characters → simplified."""
    table: dict[int, str] = {}
    try:
        import opencc

        folder = Path(opencc.__file__).parent / "dictionary"
        for name in ("TSCharacters.txt", "TWVariantsRev.txt", "HKVariantsRev.txt"):
            path = folder / name
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                parts = line.split("\t")
                if len(parts) < 2 or len(parts[0]) != 1:
                    continue
                target = parts[1].split(" ")[0]
                if len(target) == 1 and ord(parts[0]) not in table:
                    table[ord(parts[0])] = target
    except ImportError:  # pragma: no cover - dependency is declared
        log.warning("opencc not installed: traditional characters are not simplified")
    # address-specific variants (applied after t2s)
    extra = {
        "號": "号",
        "幢": "栋",
        "棟": "栋",
        "座": "栋",
        "房": "室",
        "衖": "弄",
        "衕": "同",
        "#": "号",
        "〇": "零",
        "○": "零",
        "Ｏ": "零",
    }
    for k, v in extra.items():
        table[ord(k)] = v
    return table


# --- Chinese numerals ----------------------------------------------------------------

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "○": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUM_RE = re.compile("[零〇○一二两三四五六七八九十百千]+")


def _cn_to_int(text: str) -> str:
    """Convert one run of Chinese numerals to digits (as a string)."""
    if not any(c in _CN_UNITS for c in text):
        # digit by digit: 二零三 → 203
        return "".join(str(_CN_DIGITS[c]) for c in text)
    total = 0
    current = 0
    for c in text:
        if c in _CN_DIGITS:
            current = _CN_DIGITS[c]
        else:
            unit = _CN_UNITS[c]
            total += (current or 1) * unit
            current = 0
    return str(total + current)


def chinese_numerals_to_digits(text: str) -> str:
    """Replace every run of Chinese numerals by its digits.

    Examples
    --------
    >>> chinese_numerals_to_digits("十二号")
    '12号'
    >>> chinese_numerals_to_digits("二零三室")
    '203室'
    """
    if not _CN_NUM_RE.search(text):
        return text
    return _CN_NUM_RE.sub(lambda m: _cn_to_int(m.group(0)), text)


# --- Latin abbreviations -------------------------------------------------------------

_LATIN_ABBREV = {
    "rd": "road",
    "st": "street",
    "str": "street",
    "ave": "avenue",
    "av": "avenue",
    "blvd": "boulevard",
    "ln": "lane",
    "dr": "drive",
    "hwy": "highway",
    "expy": "expressway",
    "sq": "square",
    "n": "north",
    "s": "south",
    "e": "east",
    "w": "west",
    "m": "middle",
    "mid": "middle",
    "bldg": "building",
    "blk": "block",
    "rm": "room",
    "apt": "apartment",
    "fl": "floor",
    "dist": "district",
}
_LATIN_DROP = {"no", "nr", "number", "num"}

_CJK = "\u3400-\u9fff\uf900-\ufaff"
_PUNCT_RE = re.compile(
    r"[\s,.;:!?'\"()\[\]{}<>/\\|_~`@$%^&*+=·•、，。；：！？“”‘’（）【】《》〈〉「」『』…—–]+"
)
_SPACE_NEAR_CJK_RE = re.compile(rf"\s+(?=[{_CJK}])|(?<=[{_CJK}])\s+")
_SPACE_NEAR_DASH_RE = re.compile(r"\s*-\s*")
_NEEDS_PUNCT_RE = re.compile(r"[^\w-]|_|^-|-$")
_TOKEN_RE = re.compile(r"[a-z]+|\d+|[^a-z\d\s]+|\s+")


def normalize(text: object) -> str:
    """The matching key of an address string.

    Parameters
    ----------
    text : str
        Any address (Chinese, traditional, full-width, Latin...). ``None`` gives "".

    Returns
    -------
    str
        Normalised text: simplified, half-width, lower case, digits for Chinese
        numerals, no spaces between Chinese characters, single spaces between words.

    Examples
    --------
    >>> normalize("平城市 古城區 鼓樓東街 十二號")
    '平城市古城区鼓楼东街12号'
    >>> normalize("No. 33, Sichuan Middle Rd")
    '33 sichuan middle road'
    """
    if text is None:
        return ""
    s = str(text)
    if not s:
        return ""
    s = unicodedata.normalize("NFKC", s).casefold()
    if not s.isascii() and _ACCENTED_RE.search(s):
        s = _fold_accents(s)
    table, changed = _translation()
    if not changed.isdisjoint(s):
        s = s.translate(table)
    if _CN_NUM_RE.search(s):
        s = _CN_NUM_RE.sub(lambda m: _cn_to_int(m.group(0)), s)
    if _NEEDS_PUNCT_RE.search(s):
        s = _PUNCT_RE.sub(" ", s)
        s = _SPACE_NEAR_DASH_RE.sub("-", s).strip(" -")
    if s.isascii():
        return _latin(s) if " " in s or "." in s or s.isalpha() else s
    if " " in s:
        s = _SPACE_NEAR_CJK_RE.sub("", s)
    if _LATIN_WORD_RE.search(s):
        s = _latin(s)
    return s


_LATIN_WORD_RE = re.compile("[a-z]{2,}")
#: Latin letters with diacritics (Latin-1 Supplement to Latin Extended Additional)
_ACCENTED_RE = re.compile("[\u00c0-\u024f\u1e00-\u1eff]")
#: letters that have no decomposition but an ASCII spelling
_LATIN_SPECIAL = str.maketrans(
    {"ø": "o", "đ": "d", "ł": "l", "ħ": "h", "ı": "i", "þ": "th", "æ": "ae", "œ": "oe"}
)


def _fold_accents(s: str) -> str:
    """Drop diacritics from Latin letters only (Chinese, kana, Hangul untouched)."""
    out = []
    for ch in s.translate(_LATIN_SPECIAL):
        if "\u00c0" <= ch <= "\u024f" or "\u1e00" <= ch <= "\u1eff":
            base = unicodedata.normalize("NFKD", ch)
            ch = "".join(c for c in base if not unicodedata.combining(c)) or ch
        out.append(ch)
    return "".join(out)


@lru_cache(maxsize=1)
def _translation() -> tuple[dict[int, str], frozenset[str]]:
    """The character table and the set of characters it changes."""
    table = _char_table()
    return table, frozenset(chr(k) for k in table)


def _latin(s: str) -> str:
    """Expand abbreviations and collapse spaces in Latin text."""
    words = []
    for w in s.split():
        if w in _LATIN_DROP:
            continue
        words.append(_LATIN_ABBREV.get(w, w))
    return " ".join(words)


# --- parsing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Components:
    """Parsed address components (all normalised; "" when absent).

    Follows the GB/T 23705 hierarchy: administrative area (province, city, district,
    town/subdistrict) → street/road → house number → building → unit → room, plus a
    POI (place) name.
    """

    province: str = ""
    city: str = ""
    district: str = ""
    town: str = ""
    street: str = ""
    number: str = ""
    building: str = ""
    unit: str = ""
    room: str = ""
    poi: str = ""

    def to_dict(self) -> dict[str, str]:
        """The non-empty components as a dict."""
        return {k: v for k, v in asdict(self).items() if v}

    def admin(self) -> tuple[str, ...]:
        """The administrative levels present (province, city, district, town)."""
        return tuple(x for x in (self.province, self.city, self.district, self.town) if x)


#: suffixes of administrative names, longest first, with their level
ADMIN_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("特别行政区", "province"),
    ("维吾尔自治区", "province"),
    ("壮族自治区", "province"),
    ("回族自治区", "province"),
    ("自治区", "province"),
    ("省", "province"),
    ("自治州", "city"),
    ("地区", "city"),
    ("盟", "city"),
    ("市", "city"),
    ("新区", "district"),
    ("区", "district"),
    ("县", "district"),
    ("旗", "district"),
    ("街道", "town"),
    ("镇", "town"),
    ("乡", "town"),
)
_ADMIN_RE = re.compile(
    "^(.{2,8}?(?:" + "|".join(re.escape(s) for s, _ in ADMIN_SUFFIXES) + "))(?=.)"
)
_STREET_SUFFIX = "大道|大街|环路|高架路|公路|路|街|巷|胡同|弄堂|里弄|道|里|弄|坊|村|桥|道路"
_STREET_RE = re.compile(rf"^(.*(?:{_STREET_SUFFIX}))(.*)$")
_NUM_RE = re.compile(r"(\d+弄)?(\d+[a-z甲乙丙丁]?(?:-\d+[a-z甲乙丙丁]?)*)号(?:院)?(?!楼)")
_BLDG_RE = re.compile(r"(\d+[a-z]?|[a-z])(?:号楼|栋|号院|楼栋)")
_UNIT_RE = re.compile(r"(\d+[a-z]?)单元")
_ROOM_RE = re.compile(r"(\d+[a-z]?)(?:室|户)")
_ROOM_AFTER_UNIT_RE = re.compile(r"单元(\d+[a-z]?)$")
_TRIPLE_RE = re.compile(r"^(\d+[a-z]?)-(\d+)-(\d+[a-z]?)$")
_BARE_NUM_RE = re.compile(r"(?<![\d-])(\d+弄)?(\d+[a-z甲乙丙丁]?(?:-\d+[a-z甲乙丙丁]?)*)$")
_LATIN_STREET_WORDS = frozenset(
    {
        "road",
        "street",
        "avenue",
        "lane",
        "boulevard",
        "drive",
        "highway",
        "expressway",
        "alley",
        "way",
        "square",
        "bund",
    }
)
_LATIN_NUM_RE = re.compile(r"^\d+[a-z]?(?:-\d+[a-z]?)*$")
#: endings of one-word street names: Finnish (Hämeentie, Mannerheimintie,
#: Aleksanterinkatu), Scandinavian (Drottninggatan, Karl Johans gate, Strøget),
#: German (Hauptstraße, Lindenweg, Marktplatz), Dutch (Kalverstraat)
_LATIN_STREET_ENDINGS = (
    "tie",
    "katu",
    "kuja",
    "polku",
    "gatan",
    "vagen",
    "gata",
    "gate",
    "gade",
    "vej",
    "veien",
    "strasse",
    "str",
    "weg",
    "platz",
    "allee",
    "gasse",
    "damm",
    "ufer",
    "straat",
    "laan",
    "gracht",
    "plein",
)
#: words that begin a street name (Romance languages; German written apart):
#: "rue de la Platière", "Straße des 17. Juni", "via Roma", "calle Mayor"
_LATIN_STREET_FIRST = frozenset(
    {
        "rue",
        "avenue",
        "boulevard",
        "place",
        "chemin",
        "allee",
        "impasse",
        "quai",
        "cours",
        "route",
        "passage",
        "via",
        "viale",
        "piazza",
        "corso",
        "vicolo",
        "calle",
        "avenida",
        "paseo",
        "plaza",
        "carrer",
        "rua",
        "travessa",
        "largo",
        "strasse",
        "platz",
        "ulica",
        "aleja",
        "strada",
        "calea",
    }
)
#: a postcode (4 to 6 digits) ends the street in "6 rue de la platière 69001 lyon"
_POSTCODE_RE = re.compile(r"^\d{4,6}$")


def _is_street_word(word: str) -> bool:
    """Whether a Latin word names a street kind ("road") or is a one-word street."""
    if word in _LATIN_STREET_WORDS:
        return True
    return any(word.endswith(e) and len(word) >= len(e) + 3 for e in _LATIN_STREET_ENDINGS)


@lru_cache(maxsize=65536)
def _admin_level(token: str) -> str:
    for suffix, level in ADMIN_SUFFIXES:
        if token.endswith(suffix):
            return level
    return "district"


@lru_cache(maxsize=65536)
def admin_short(name: str) -> str:
    """An administrative name without its level suffix (上海市 → 上海, 浦东新区 → 浦东)."""
    for suffix, _ in ADMIN_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def peel_admin(
    s: str, known: dict[str, str] | None = None, allow_all: bool = False
) -> tuple[dict[str, str], str]:
    """Remove leading administrative names from a normalised address.

    Parameters
    ----------
    s : str
        Normalised address.
    known : dict, optional
        Gazetteer: admin name (full or short form) → canonical full name. When given,
        leading names found in it are peeled first (longest match), and a name found
        by its suffix only is kept when it is known.
    allow_all : bool
        Whether the whole string may be consumed (by default something is left for
        the street).

    Returns
    -------
    (levels, rest)
        ``levels`` maps "province"/"city"/"district"/"town" to the names found.
    """
    levels: dict[str, str] = {}
    for _ in range(4):
        if not s:
            break
        token = ""
        if known:
            for n in range(min(len(s) - (0 if allow_all else 1), 12), 1, -1):
                cand = s[:n]
                if cand in known:
                    token = cand
                    full = known[cand]
                    break
        if not token:
            m = _ADMIN_RE.match(s)
            if not m:
                break
            token = full = m.group(1)
            if known is not None and token not in known and not _plausible_admin(token, s):
                break
        level = _admin_level(full)
        if level in levels:
            # a level found twice: what follows is not an administrative name
            # ("滨海新区滨海北路": the second 滨海 starts the street)
            break
        levels[level] = full
        s = s[len(token) :]
    return levels, s


def _plausible_admin(token: str, s: str) -> bool:
    """Whether an unknown suffix-matched admin name is really an admin level.

    Unknown names are accepted only when what follows still looks like an address
    (otherwise "新市路" would lose "新市").
    """
    rest = s[len(token) :]
    return bool(re.search(_STREET_SUFFIX + r"|\d", rest)) and not re.match(_STREET_SUFFIX, rest)


def parse_address(text: str, known_admin: dict[str, str] | None = None) -> Components:
    """Split an address into components.

    Parameters
    ----------
    text : str
        An address; it is normalised first (normalising twice is harmless).
    known_admin : dict, optional
        Gazetteer of administrative names (see :func:`peel_admin`).

    Returns
    -------
    Components
    """
    return Components(*parse_normalized(normalize(text), known_admin))


#: parse result as a tuple, in :class:`Components` field order
ParsedTuple = tuple[str, str, str, str, str, str, str, str, str, str]
_EMPTY: ParsedTuple = ("", "", "", "", "", "", "", "", "", "")


def parse_normalized(
    s: str,
    known_admin: dict[str, str] | None = None,
    cache: dict[str, tuple] | None = None,
) -> ParsedTuple:
    """:func:`parse_address` on an already normalised string, as a tuple.

    The string is cut at its house number: the part before (administrative levels,
    street, POI) and the part from the number on (number, building, unit, room, POI)
    are parsed separately, so that ``cache`` (a dict the caller keeps) can reuse the
    results for the many addresses that share a street or a number pattern.
    """
    if not s:
        return _EMPTY
    if _LATIN_ONLY_RE.fullmatch(s):
        c = _parse_latin(s)
        return (
            c.province,
            c.city,
            c.district,
            c.town,
            c.street,
            c.number,
            c.building,
            c.unit,
            c.room,
            c.poi,
        )
    m = _NUM_RE.search(s)
    if m is None:
        return _parse_slow(s, known_admin)
    head, rest = s[: m.start()], s[m.start() :]
    if cache is not None:
        h = cache.get(head)
        if h is None:
            h = cache[head] = _parse_head(head, known_admin)
        t = cache.get("\x00" + rest)
        if t is None:
            t = cache["\x00" + rest] = _parse_tail(rest)
    else:
        h = _parse_head(head, known_admin)
        t = _parse_tail(rest)
    poi = h[6] + t[4]
    if poi:
        poi = poi.strip(" -")
    return (h[0], h[1], h[2], h[3], h[4], t[0], t[1], t[2], t[3], poi)


_LATIN_ONLY_RE = re.compile(r"[a-z0-9 \-\u00c0-\u024f]+")


def _parse_head(head: str, known: dict[str, str] | None) -> tuple[str, ...]:
    """Administrative levels, street and POI of the text before a house number."""
    # the sentinel digit stands for the number that follows (admin names need a rest)
    levels, h = peel_admin(head + "1", known)
    h = h[:-1]
    street, poi = h, ""
    ms = _STREET_RE.match(h)
    if ms:
        street, poi = ms.group(1), ms.group(2)
    return (
        levels.get("province", ""),
        levels.get("city", ""),
        levels.get("district", ""),
        levels.get("town", ""),
        street,
        "",
        poi,
    )


def _parse_tail(rest: str) -> tuple[str, str, str, str, str]:
    """Number, building, unit, room and trailing POI of the text from a house number."""
    m = _NUM_RE.match(rest)
    assert m is not None
    number = (m.group(1) or "") + m.group(2)
    building, unit, room, tail = _parse_details(rest[m.end() :])
    return number, building, unit, room, tail


def _parse_details(tail: str) -> tuple[str, str, str, str]:
    """Building, unit, room and what is left of the text after a house number."""
    building = unit = room = ""
    if not tail:
        return building, unit, room, tail
    t = _TRIPLE_RE.match(tail)
    if t:
        building, unit, room = t.groups()
        return building, unit, room, ""
    mm = _BLDG_RE.search(tail)
    if mm:
        building = mm.group(1)
        tail = tail[: mm.start()] + tail[mm.end() :]
    mm = _UNIT_RE.search(tail)
    if mm:
        unit = mm.group(1)
        tail = tail[: mm.start()] + tail[mm.end() :]
    mm = _ROOM_RE.search(tail)
    if mm:
        room = mm.group(1)
        tail = tail[: mm.start()] + tail[mm.end() :]
    if unit and not room:
        mm = _ROOM_ONLY_RE.match(tail)
        if mm:
            room = mm.group(1)
            tail = ""
    return building, unit, room, tail


_ROOM_ONLY_RE = re.compile(r"^(\d+[a-z]?)$")


def _parse_slow(s: str, known: dict[str, str] | None) -> ParsedTuple:
    """Parse an address without a "…号" house number."""
    levels, s = peel_admin(s, known)
    number = ""
    cut = len(s)
    for rx in (_BLDG_RE, _UNIT_RE, _ROOM_RE):
        mm = rx.search(s)
        if mm and mm.start() < cut:
            cut = mm.start()
    head, tail = s[:cut], s[cut:]
    mm = _BARE_NUM_RE.search(head)
    if mm and mm.start() > 0:
        number = (mm.group(1) or "") + mm.group(2)
        head = head[: mm.start()]
    building, unit, room, tail = _parse_details(tail)
    if building and not number and head:
        # "鼓楼东街12号楼" right after a street: the house number, not a building
        number, building = building, ""
    street, poi = head, ""
    ms = _STREET_RE.match(head)
    if ms:
        street, poi = ms.group(1), ms.group(2)
    elif not number:
        street, poi = "", head
    poi = (poi + tail).strip(" -")
    return (
        levels.get("province", ""),
        levels.get("city", ""),
        levels.get("district", ""),
        levels.get("town", ""),
        street,
        number,
        building,
        unit,
        room,
        poi,
    )


def _parse_latin(s: str) -> Components:
    """Parse a Latin-script address ("33 sichuan middle road huangpu district")."""
    words = s.split()
    lead = 1 if len(words) > 1 and _LATIN_NUM_RE.match(words[0]) else 0
    if len(words) > lead and words[lead] in _LATIN_STREET_FIRST:
        return _parse_latin_street_first(words)
    number = ""
    for i, w in enumerate(words):
        if _LATIN_NUM_RE.match(w) and not (
            i + 1 < len(words) and words[i + 1] in ("st", "nd", "rd", "th")
        ):
            # "2nd" style ordinals were kept as one token by normalize
            number = w
            del words[i]
            break
    last = -1
    for i, w in enumerate(words):
        if _is_street_word(w):
            last = i
    district = city = ""
    if last >= 0:
        street = " ".join(words[: last + 1])
        rest = words[last + 1 :]
    else:
        street, rest = ("", words) if not number else (" ".join(words), [])
    poi_words: list[str] = []
    i = 0
    while i < len(rest):
        if i + 1 < len(rest) and rest[i + 1] in ("district", "county"):
            district = f"{rest[i]} {rest[i + 1]}"
            i += 2
        elif i + 1 < len(rest) and rest[i + 1] == "city":
            city = f"{rest[i]} {rest[i + 1]}"
            i += 2
        else:
            poi_words.append(rest[i])
            i += 1
    return Components(
        city=city, district=district, street=street, number=number, poi=" ".join(poi_words)
    )


def _parse_latin_street_first(words: list[str]) -> Components:
    """Parse "6 rue de la platiere", "strasse des 17 juni 12", "via roma 12 00184 roma".

    The street runs from its first word to a postcode or the end; the house number
    is the word before it or, when there is none, the last word of three or more.
    """
    number = ""
    if _LATIN_NUM_RE.match(words[0]):
        number, words = words[0], words[1:]
    end = next((i for i in range(1, len(words)) if _POSTCODE_RE.match(words[i])), len(words))
    street, rest = words[:end], words[end:]
    if not number and len(street) >= 3 and _LATIN_NUM_RE.match(street[-1]):
        number, street = street[-1], street[:-1]
    return Components(street=" ".join(street), number=number, poi=" ".join(rest))
