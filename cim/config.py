"""The city project file (``city.toml``).

A city project names the inputs, their CRS when the files carry none, the attribute
mapping, the height datum and the output folder. Every path is relative to the file.

Each build stage owns the section of the file it reads and describes it as a frozen
dataclass; :func:`parse_section` turns the TOML table into that dataclass, resolving
paths against the project folder and rejecting unknown keys with a suggestion.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cim.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class DatumConfig:
    """How input heights become WGS84 ellipsoidal heights (h = H + N).

    Attributes
    ----------
    heights : str
        ``"orthometric"`` (default: DEM and building heights above the geoid, e.g. the
        1985 national height datum or EGM96) or ``"ellipsoidal"`` (already WGS84).
    geoid_offset : float
        Constant geoid undulation N in metres, used when no grid is given.
    geoid_grid : Path or None
        Raster of N (metres) in any CRS; bilinear sampling. Takes precedence.
    """

    heights: str = "orthometric"
    geoid_offset: float = 0.0
    geoid_grid: Path | None = None

    def __post_init__(self) -> None:
        if self.heights not in ("orthometric", "ellipsoidal"):
            raise ConfigError(
                f"[datum] heights must be 'orthometric' or 'ellipsoidal', not {self.heights!r}"
            )
        if not -150.0 <= self.geoid_offset <= 150.0:
            raise ConfigError(
                f"[datum] geoid_offset {self.geoid_offset} m is outside the Earth's "
                "geoid range (-107 m to +86 m)"
            )


@dataclass(frozen=True)
class BuildingsConfig:
    """The ``[buildings]`` section: footprints and their attribute mapping."""

    path: Path
    layer: str | None = None
    crs: str | None = None
    encoding: str | None = None
    id: str | None = None
    height: str | None = "height"
    floors: str | None = "floors"
    floor_height: float = 3.0
    default_height: float = 10.0
    max_height: float = 1000.0
    min_area: float = 2.0
    name: str | None = "name"
    use: str | None = "use"
    roof_type: str | None = "roof_type"
    address: str | None = None
    extra: list[str] = field(default_factory=list)
    wkt: str | None = None
    x: str | None = None
    y: str | None = None
    outside_dem_base: float = 0.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.floor_height <= 10.0:
            raise ConfigError(f"[buildings] floor_height {self.floor_height} m is not 1–10 m")
        if not 0.5 <= self.default_height <= 1000.0:
            raise ConfigError(
                f"[buildings] default_height {self.default_height} m is not 0.5–1000 m"
            )
        if self.max_height <= self.default_height:
            raise ConfigError("[buildings] max_height must exceed default_height")
        if (self.x is None) != (self.y is None):
            raise ConfigError("[buildings] x and y columns must be given together")


@dataclass(frozen=True)
class CityProject:
    """A loaded city project.

    Attributes
    ----------
    path : Path
        The ``city.toml`` file.
    name : str
        City name shown in the viewer and the manifest.
    crs : str or None
        Default CRS for inputs that carry none.
    output : Path
        Output folder (absolute).
    datum : DatumConfig
        Height datum settings.
    raw : dict
        The whole parsed TOML, for stages that read their own section.
    """

    path: Path
    name: str
    crs: str | None
    output: Path
    datum: DatumConfig
    raw: dict[str, Any]

    @property
    def root(self) -> Path:
        """Folder that relative paths in the project file are resolved against."""
        return self.path.parent

    def has_section(self, name: str) -> bool:
        """Whether the project file has a ``[name]`` table."""
        return isinstance(self.raw.get(name), dict)

    def section(self, name: str, cls: type[T]) -> T | None:
        """Parse section ``[name]`` into ``cls``; None when the section is absent."""
        if not self.has_section(name):
            return None
        return parse_section(self.raw[name], cls, self.root, name)

    @property
    def buildings(self) -> BuildingsConfig | None:
        """The ``[buildings]`` section, or None."""
        return self.section("buildings", BuildingsConfig)


_TOP_LEVEL = {"city", "output", "datum"}


def load_project(path: str | Path) -> CityProject:
    """Read and validate a ``city.toml``.

    Parameters
    ----------
    path : str or Path
        The project file.

    Returns
    -------
    CityProject

    Raises
    ------
    ConfigError
        When the file is missing, is not valid TOML, or has bad values.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError("city project file not found", path=path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not a valid TOML file ({exc})", path=path) from exc
    city = raw.get("city", {})
    if not isinstance(city, dict):
        raise ConfigError("[city] must be a table", path=path)
    unknown = set(city) - {"name", "crs"}
    if unknown:
        raise ConfigError(f"[city] has unknown keys {sorted(unknown)}", path=path)
    out = raw.get("output", {})
    out_dir = out.get("dir", "output") if isinstance(out, dict) else "output"
    try:
        datum = parse_section(raw.get("datum", {}), DatumConfig, path.parent, "datum")
    except ConfigError as exc:
        raise ConfigError(exc.message, path=path) from exc
    return CityProject(
        path=path,
        name=str(city.get("name", path.parent.name)),
        crs=city.get("crs"),
        output=(path.parent / out_dir).resolve(),
        datum=datum,
        raw=raw,
    )


def parse_section(table: dict[str, Any], cls: type[T], root: Path, where: str) -> T:
    """Turn a TOML table into the frozen dataclass ``cls``.

    Fields annotated ``Path`` (or ``list[Path]``, ``Path | None``) are resolved
    against ``root``. Unknown keys raise :class:`ConfigError` with the closest valid
    key as a suggestion; wrong value types raise with the expected type.

    Parameters
    ----------
    table : dict
        The parsed TOML table.
    cls : type
        A dataclass type.
    root : Path
        Folder relative paths are resolved against.
    where : str
        Section name for messages.

    Returns
    -------
    An instance of ``cls``.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"[{where}] must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"[{where}] unknown key {key!r}{hint}")
        kwargs[key] = _coerce(value, hints[key], root, f"[{where}] {key}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"[{where}] is missing required key(s) {missing}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{where}] {exc}") from exc


def _coerce(value: Any, hint: Any, root: Path, where: str) -> Any:
    """Check and convert one TOML value to the annotated type."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(value, option, root, where)
            except ConfigError as exc:
                errors.append(exc.message)
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, str | int | float):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list")
        return [_coerce(v, item, root, where) for v in value]
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a path string")
        return (root / value).resolve()
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, not {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, not {value!r}")
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return parse_section(value, hint, root, where)
    if hint is dict or typing.get_origin(hint) is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table")
        return dict(value)
    return value
