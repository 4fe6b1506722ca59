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
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field, replace
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
    crs : str or None
        The geoid grid's CRS when the file carries none (``[city] crs`` does not
        apply: a geoid model is not the city's own data).
    """

    heights: str = "orthometric"
    geoid_offset: float = 0.0
    geoid_grid: Path | None = None
    crs: str | None = None

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
    # L3 attributes (read only for buildings in the [l3] district; docs/l3.md)
    roof_height: str | None = "roof_height"  # ridge above the eave, metres
    roof_colour: str | None = "roof_colour"  # "#RRGGBB" or a colour name (黄, green...)
    roof_material: str | None = "roof_material"  # tile, glazed_tile, concrete...
    podium_height: str | None = "podium_height"  # a base (台基) under the walls, metres
    address: str | None = None
    extra: list[str] = field(default_factory=list)
    wkt: str | None = None
    x: str | None = None
    y: str | None = None
    outside_dem_base: float = 0.0
    base: str | None = None  # column of orthometric ground heights (BD TOPO Z_MIN_SOL)
    query: str | None = None  # with a postgresql:// path: the SELECT to read

    def __post_init__(self) -> None:
        from cim.readers import DatabaseSource

        if isinstance(self.path, DatabaseSource):
            if self.query:
                object.__setattr__(self, "path", replace(self.path, query=self.query))
            if problem := self.path.problem():
                raise ConfigError(f"[buildings] path: {problem}")
        elif self.query:
            raise ConfigError("[buildings] query needs a postgresql:// path")
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
        try:
            return parse_section(self.raw[name], cls, self.root, name)
        except ConfigError as exc:
            if exc.path is not None:
                raise
            raise ConfigError(exc.message, path=self.path) from exc

    @property
    def buildings(self) -> BuildingsConfig | None:
        """The ``[buildings]`` section, or None."""
        return self.section("buildings", BuildingsConfig)


_TOP_LEVEL = {"city", "output", "datum"}
_TOML_TYPES = {
    str: "a string",
    bool: "true/false",
    int: "a number",
    float: "a number",
    list: "a list",
    dict: "a table",
}


def _type_name(value: Any) -> str:
    return next((n for t, n in _TOML_TYPES.items() if isinstance(value, t)), type(value).__name__)


def _check_top_level(raw: dict[str, Any], path: Path) -> None:
    """Every top-level entry of city.toml is a section: a table, never a bare value.

    ``buildings = "b.shp"`` or ``output = "out"`` would otherwise be ignored.
    """
    for key, value in raw.items():
        if not isinstance(value, dict):
            example = ' dir = "out"' if key == "output" else " path = ..." if key != "city" else ""
            raise ConfigError(
                f"{key!r} must be a table ([{key}] with its keys, e.g. [{key}]{example}), "
                f"not {_type_name(value)}",
                path=path,
            )


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
    _check_top_level(raw, path)
    try:
        city = parse_section(raw.get("city", {}), _CitySection, path.parent, "city")
        out = parse_section(raw.get("output", {}), _OutputSection, path.parent, "output")
        datum = parse_section(raw.get("datum", {}), DatumConfig, path.parent, "datum")
    except ConfigError as exc:
        raise ConfigError(exc.message, path=path) from exc
    return CityProject(
        path=path,
        name=city.name if city.name is not None else path.parent.name,
        crs=city.crs,
        output=(path.parent / out.dir).resolve(),
        datum=datum,
        raw=raw,
    )


@dataclass(frozen=True)
class _CitySection:
    """``[city]``: the name shown in the viewer, the default CRS of inputs."""

    name: str | None = None
    crs: str | None = None


@dataclass(frozen=True)
class _OutputSection:
    """``[output]``: the output folder (relative to city.toml)."""

    dir: str = "output"


@dataclass(frozen=True)
class BuildConfig:
    """``[build]``: where a build's tasks run (never what they produce).

    ``scheduler`` is a Dask scheduler address (``tcp://host:port``) or ``local:N`` for
    a local Dask cluster of N worker processes (see :mod:`cim.executor`);
    ``memory_limit`` is the per-worker limit of such a local cluster.
    """

    scheduler: str | None = None
    memory_limit: str = "4GiB"


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
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where} must be a path string, not {value!r}")
        if value.startswith(("postgresql://", "postgres://")):
            from cim.readers import DatabaseSource  # a PostGIS table stands in for a file

            return DatabaseSource.parse(value)
        return (root / value).resolve()
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, not {value!r}")
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


@dataclass(frozen=True)
class TerrainConfig:
    """The ``[terrain]`` section: DEM GeoTIFF(s) → quantized-mesh terrain.

    The DEM also gives each building its base elevation.

    Attributes
    ----------
    paths : list of Path
        DEM GeoTIFF(s), any CRS, int16 or float32; later files fill holes of earlier.
    crs : str or None
        CRS of the DEM files: used for files that carry none and checked against
        those that do (:func:`cim.crs.resolve_crs`); else ``[city] crs``.
    min_zoom : int
        Lowest level that carries DEM heights (coarser levels are sea-level fill).
    max_zoom : int or None
        Highest level; default chosen from the DEM resolution.
    error_factor : float
        Mesh simplification tolerance as a fraction of CesiumJS's assumed geometric
        error per level (0 < f ≤ 1; the rest of the budget covers resampling).
    coarse_fill_zoom : int
        Levels 0..coarse_fill_zoom cover the whole globe (sea-level ellipsoid surface
        outside the DEM); above it only tiles over the DEM are written.
    normals : bool
        Write the ``octvertexnormals`` extension.
    compression_level : int
        gzip level of the tile files (1–9).
    """

    paths: list[Path]
    crs: str | None = None
    min_zoom: int = 0
    max_zoom: int | None = None
    error_factor: float = 0.5
    coarse_fill_zoom: int = 2
    normals: bool = True
    compression_level: int = 6

    def __post_init__(self) -> None:
        if not self.paths:
            raise ConfigError("[terrain] paths is empty")
        if not 0.0 < self.error_factor <= 1.0:
            raise ConfigError(f"[terrain] error_factor {self.error_factor} is not in (0, 1]")
        if self.max_zoom is not None and not 0 <= self.max_zoom <= 22:
            raise ConfigError(f"[terrain] max_zoom {self.max_zoom} is not 0–22")
        if not 0 <= self.min_zoom <= 22:
            raise ConfigError(f"[terrain] min_zoom {self.min_zoom} is not 0–22")
        if not 0 <= self.coarse_fill_zoom <= 5:
            raise ConfigError(
                f"[terrain] coarse_fill_zoom {self.coarse_fill_zoom} is not 0–5 "
                "(level 5 alone is 2,048 tiles)"
            )
        if not 1 <= self.compression_level <= 9:
            raise ConfigError("[terrain] compression_level must be 1–9")


IMAGERY_FORMATS = ("webp", "jpeg", "png")
RESAMPLING = ("nearest", "bilinear", "cubic", "lanczos", "average")


@dataclass(frozen=True)
class ImageryConfig:
    """The ``[imagery]`` section: orthophoto GeoTIFF(s) → imagery tile pyramid.

    Attributes
    ----------
    paths : list of Path
        Orthophoto GeoTIFF(s): RGB or RGBA, 8- or 16-bit, any CRS; where they overlap
        the later file wins.
    crs : str or None
        CRS of the files: used for files that carry none and checked against those
        that do (:func:`cim.crs.resolve_crs`); else ``[city] crs``.
    min_zoom : int
        Coarsest level written.
    max_zoom : int or None
        Finest level; default chosen from the image resolution.
    format : str
        ``"webp"`` (lossy WebP with alpha), ``"jpeg"`` (JPEG, PNG for tiles with
        transparent pixels) or ``"png"`` (lossless).
    quality : int
        WebP/JPEG quality, 1–100.
    resampling : str
        Resampling of the finest level from the source (overviews always average).
    nodata : float or None
        Nodata value overriding the files' own.
    tile_size : int
        Tile width and height in pixels (256 or 512).
    """

    paths: list[Path]
    crs: str | None = None
    min_zoom: int = 0
    max_zoom: int | None = None
    format: str = "webp"
    quality: int = 85
    resampling: str = "bilinear"
    nodata: float | None = None
    tile_size: int = 256

    def __post_init__(self) -> None:
        if not self.paths:
            raise ConfigError("[imagery] paths is empty")
        if self.format not in IMAGERY_FORMATS:
            raise ConfigError(
                f"[imagery] format {self.format!r} is not one of {list(IMAGERY_FORMATS)}"
            )
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"[imagery] quality {self.quality} is not 1–100")
        if self.resampling not in RESAMPLING:
            raise ConfigError(
                f"[imagery] resampling {self.resampling!r} is not one of {list(RESAMPLING)}"
            )
        if self.tile_size not in (256, 512):
            raise ConfigError("[imagery] tile_size must be 256 or 512")
        if self.max_zoom is not None and not 0 <= self.max_zoom <= 24:
            raise ConfigError(f"[imagery] max_zoom {self.max_zoom} is not 0–24")
        if self.max_zoom is not None and self.min_zoom > self.max_zoom:
            raise ConfigError("[imagery] min_zoom exceeds max_zoom")


@dataclass(frozen=True)
class PipelinesConfig:
    """The ``[pipelines]`` section: underground pipe surveys → 3D Tiles and a network.

    A survey is a point table (管点: id, ground elevation, depth, feature such as a
    valve or a well) and a segment table (管线段: start and end point ids, depths at
    both ends, diameter or B×H section, material...), or lines whose Z is the pipe's
    elevation. Columns are found by their common codes and Chinese names
    (:data:`tiling.pipelines.reader.FIELD_CANDIDATES`); ``fields`` maps the others.

    Attributes
    ----------
    points, segments : list of Path
        Point and segment tables (Shapefile, GeoPackage, CSV...); several files (one per
        utility, e.g. ``JS_POINT.shp``) are read as one survey.
    lines : list of Path
        Alternatively, line features with Z (elevation of the pipe at
        ``depth_reference``); points are made at their vertices.
    points_layer, segments_layer, lines_layer : str or None
        Layer names in multi-layer files (GeoPackage).
    crs, encoding : str or None
        As in the other sections (:func:`cim.crs.resolve_crs`, :mod:`cim.encoding`).
    x, y : str or None
        Coordinate columns of a CSV point table (x = easting).
    utility : str or None
        Utility of rows that name none (``water``, ``给水``, ``JS``...).
    depth_reference : str
        What the surveyed depth reaches: ``"top"`` of the pipe (管顶, default),
        its ``"centre"``, or its ``"bottom"`` (管底/内底).
    joints : str
        ``"mitre"`` (default: two similar pipes meeting at a point are both cut on the
        bisecting plane; balls at the other points) or ``"sphere"`` (a ball at every
        point).
    wells : bool
        Draw wells and manholes (points whose feature names a well) as cylinders up to
        the ground.
    well_diameter : float
        Default well diameter, metres.
    sides : int
        Facets around a circular pipe (6–32).
    default_depth : float or None
        Depth used when neither end nor point has one (reported ``default-depth``);
        None: such segments are skipped (``missing-depth``).
    default_diameter : float
        Diameter (mm) of pipes whose size is missing (reported ``default-size``).
    max_features_per_tile, max_tile_size : int, float
        Tile budget: features per tile and the largest tile side (metres; keeps the
        16-bit quantized positions within millimetres).
    compression : str
        ``"meshopt"`` or ``"none"``.
    fields : dict
        Column names for the canonical fields (``point_id``, ``start``, ``end``,
        ``start_depth``, ``diameter``...), overriding the detection.
    sources : list of str
        Point ids of sources (waterworks, gas regulators): they orient pressure networks
        for upstream/downstream queries and decide what a burst cuts off.
    clearance, vertical_clearance : dict
        Minimum horizontal / vertical clearances (m) overriding the GB 50289 defaults,
        keyed ``"water/gas"``, ``"building/gas"``... (:mod:`cim.pipelines`).
    """

    points: list[Path] = field(default_factory=list)
    segments: list[Path] = field(default_factory=list)
    lines: list[Path] = field(default_factory=list)
    points_layer: str | None = None
    segments_layer: str | None = None
    lines_layer: str | None = None
    crs: str | None = None
    encoding: str | None = None
    x: str | None = None
    y: str | None = None
    utility: str | None = None
    depth_reference: str = "top"
    joints: str = "mitre"
    wells: bool = True
    well_diameter: float = 1.0
    sides: int = 12
    default_depth: float | None = None
    default_diameter: float = 100.0
    max_features_per_tile: int = 4000
    max_tile_size: float = 1000.0
    compression: str = "meshopt"
    fields: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    clearance: dict[str, float] = field(default_factory=dict)
    vertical_clearance: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.points and self.segments) and not self.lines:
            raise ConfigError(
                "[pipelines] needs points and segments (point and segment tables) or lines"
            )
        choices = {
            "depth_reference": ("top", "centre", "bottom"),
            "joints": ("mitre", "sphere"),
            "compression": ("meshopt", "none"),
        }
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"[pipelines] {key} must be one of {list(allowed)}")
        if not 6 <= self.sides <= 32:
            raise ConfigError("[pipelines] sides must be 6–32")
        if not 0.2 <= self.well_diameter <= 10.0:
            raise ConfigError("[pipelines] well_diameter must be 0.2–10 m")
        if self.default_depth is not None and not 0.0 <= self.default_depth <= 50.0:
            raise ConfigError("[pipelines] default_depth must be 0–50 m")
        if not 10.0 <= self.default_diameter <= 5000.0:
            raise ConfigError("[pipelines] default_diameter must be 10–5000 mm")
        if not 100 <= self.max_features_per_tile <= 65536:
            raise ConfigError("[pipelines] max_features_per_tile must be 100–65536")
        if not 50.0 <= self.max_tile_size <= 2000.0:
            raise ConfigError("[pipelines] max_tile_size must be 50–2000 m")
        for key in ("fields", "clearance", "vertical_clearance"):
            for k, v in getattr(self, key).items():
                ok = (
                    isinstance(v, str)
                    if key == "fields"
                    else (isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 100)
                )
                if not ok:
                    raise ConfigError(f"[pipelines.{key}] {k} = {v!r} is not valid")
