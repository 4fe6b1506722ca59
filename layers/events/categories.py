"""The case category table: 部件 and 事件 classes, their time limits and departments.

The default table (``categories.toml`` beside this module) follows the 大类 of the
digital city management standards (CJ/T 214 / GB/T 30428.2 for 部件, CJ/T 215 /
GB/T 30428.3 for 事件); a city replaces it with its own file through
``[events] categories = "file.toml"`` in city.toml. See that file for the layout.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cim.errors import ConfigError, NotFoundError
from layers.events.worktime import WorkLimit, parse_limit

#: the stages that have a time limit, in case order, with their Chinese names
STAGES: dict[str, str] = {
    "file": "立案",
    "dispatch": "派遣",
    "handle": "处理",
    "check": "核查",
    "close": "结案",
}
CLASSES = ("部件", "事件")
_LEVEL_KEYS = set(STAGES) | {"code", "name", "department", "description"}


@dataclass(frozen=True)
class Subcategory:
    """One 小类: the unit a case is filed under.

    Attributes
    ----------
    code, name : str
        e.g. ``"SJ0102"``, ``"暴露垃圾"``.
    category : str
        The 大类 code it belongs to.
    cls : str
        ``"部件"`` or ``"事件"``.
    limits : mapping of str to WorkLimit
        The time limit of every stage in :data:`STAGES`.
    department : str
        Default department id.
    sensor : tuple of str
        Lower-case observed-property keywords whose alarms open a case of this kind.
    """

    code: str
    name: str
    category: str
    cls: str
    limits: Mapping[str, WorkLimit]
    department: str
    description: str = ""
    sensor: tuple[str, ...] = ()


@dataclass(frozen=True)
class Category:
    """One 大类 with its 小类."""

    code: str
    name: str
    cls: str
    subcategories: tuple[Subcategory, ...]


@dataclass(frozen=True)
class CategoryTable:
    """The categories of a city, looked up by subcategory code."""

    categories: tuple[Category, ...]
    sensor_default: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        index: dict[str, Subcategory] = {}
        for cat in self.categories:
            for sub in cat.subcategories:
                if sub.code in index:
                    raise ConfigError(
                        f"subcategory code {sub.code!r} is used twice", path=self.source or None
                    )
                index[sub.code] = sub
        if self.sensor_default is not None and self.sensor_default not in index:
            raise ConfigError(
                f"[sensor] default {self.sensor_default!r} is no subcategory code",
                path=self.source or None,
            )
        object.__setattr__(self, "_index", index)

    def __iter__(self) -> Iterator[Subcategory]:
        return iter(self._index.values())  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self._index)  # type: ignore[attr-defined]

    def __contains__(self, code: object) -> bool:
        return code in self._index  # type: ignore[attr-defined]

    def get(self, code: str) -> Subcategory:
        """The subcategory with this code.

        Raises
        ------
        NotFoundError
            When no subcategory has it.
        """
        try:
            return self._index[code]  # type: ignore[attr-defined,no-any-return]
        except KeyError:
            raise NotFoundError(f"unknown event category {code!r}") from None

    def category(self, code: str) -> Category:
        """The 大类 with this code (NotFoundError when unknown)."""
        for cat in self.categories:
            if cat.code == code:
                return cat
        raise NotFoundError(f"unknown event category {code!r}")

    def for_sensor(self, observed_property: str) -> Subcategory | None:
        """The subcategory whose ``sensor`` keywords occur in an observed property's name.

        Falls back to the table's ``[sensor] default``; None when there is neither.
        """
        text = observed_property.lower()
        for sub in self:
            if any(k in text for k in sub.sensor):
                return sub
        return self.get(self.sensor_default) if self.sensor_default else None


DEFAULT_TABLE = "categories.toml"


def load_categories(path: str | Path | None = None) -> CategoryTable:
    """Load a category table: the shipped default, or a city's own TOML file.

    Parameters
    ----------
    path : str or Path, optional
        A TOML file in the layout of the default ``categories.toml``.

    Returns
    -------
    CategoryTable

    Raises
    ------
    ConfigError
        When the file is missing, not TOML, or inconsistent (unknown class, duplicate
        code, bad time limit, a stage without a limit).
    """
    if path is None:
        text = resources.files("layers.events").joinpath(DEFAULT_TABLE).read_text("utf-8")
        source = DEFAULT_TABLE
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the event category table ({exc.strerror})", path=p
            ) from exc
        source = str(p)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not a valid TOML file ({exc})", path=source) from exc
    try:
        return _build(raw, source)
    except ConfigError as exc:
        if exc.path:
            raise
        raise ConfigError(exc.message, path=source) from exc


def _build(raw: dict[str, Any], source: str) -> CategoryTable:
    _check_keys(raw, {"defaults", "category", "sensor"}, "the table")
    defaults = raw.get("defaults", {})
    _check_keys(defaults, set(STAGES) | {"department"}, "[defaults]")
    cats = raw.get("category", [])
    if not isinstance(cats, list) or not cats:
        raise ConfigError("the table has no [[category]]")
    categories = tuple(_category(c, defaults) for c in cats)
    sensor = raw.get("sensor", {})
    _check_keys(sensor, {"default"}, "[sensor]")
    return CategoryTable(categories, sensor.get("default"), source)


def _category(raw: dict[str, Any], defaults: dict[str, Any]) -> Category:
    code, name = _required(raw, "category")
    _check_keys(raw, _LEVEL_KEYS | {"class", "sub"}, f"category {code}")
    cls = raw.get("class")
    if cls not in CLASSES:
        raise ConfigError(f"category {code}: class must be 部件 or 事件, not {cls!r}")
    subs = raw.get("sub", [])
    if not isinstance(subs, list) or not subs:
        raise ConfigError(f"category {code} has no subcategories (sub = [...])")
    inherited = {**defaults, **{k: v for k, v in raw.items() if k in STAGES or k == "department"}}
    return Category(code, name, cls, tuple(_sub(s, code, cls, inherited) for s in subs))


def _sub(raw: dict[str, Any], category: str, cls: str, inherited: dict[str, Any]) -> Subcategory:
    code, name = _required(raw, f"category {category} subcategory")
    _check_keys(raw, _LEVEL_KEYS | {"sensor"}, f"subcategory {code}")
    merged = {**inherited, **raw}
    limits = {}
    for stage in STAGES:
        if stage not in merged:
            raise ConfigError(f"subcategory {code}: no time limit for {stage} ({STAGES[stage]})")
        try:
            limits[stage] = parse_limit(merged[stage])
        except ConfigError as exc:
            raise ConfigError(f"subcategory {code} {stage}: {exc.message}") from None
    department = merged.get("department")
    if not isinstance(department, str) or not department:
        raise ConfigError(f"subcategory {code}: no department")
    sensor = raw.get("sensor", [])
    if not isinstance(sensor, list) or not all(isinstance(k, str) for k in sensor):
        raise ConfigError(f"subcategory {code}: sensor must be a list of keywords")
    return Subcategory(
        code=code,
        name=name,
        category=category,
        cls=cls,
        limits=limits,
        department=department,
        description=str(raw.get("description", "")),
        sensor=tuple(k.lower() for k in sensor),
    )


def _required(raw: Any, what: str) -> tuple[str, str]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} must be a table")
    code, name = raw.get("code"), raw.get("name")
    if not isinstance(code, str) or not code or not isinstance(name, str) or not name:
        raise ConfigError(f"{what} needs a code and a name (strings), got {raw!r}")
    return code, name


def _check_keys(raw: Any, allowed: set[str], where: str) -> None:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
