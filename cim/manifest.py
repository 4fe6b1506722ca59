"""``manifest.json``: the contract between the build, the server and the viewer.

The manifest is built from the typed structures below and written with
:meth:`Manifest.to_json`; readers parse it with :meth:`Manifest.from_json` (or read the
JSON directly: the key names are the contract, described by the JSON Schema shipped
next to this module, ``manifest.schema.json``).

The manifest is served to browsers, so it never holds an absolute path: layer URLs
and input names are relative to the output folder and to the project folder (an input
outside the project folder is named by its file name alone).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path, PurePosixPath
from typing import Any

#: version of the manifest's structure; raised when a key changes meaning or goes away
SCHEMA_VERSION = 1
#: the ``generator`` value starts with this: how the toolkit recognises its own output
GENERATOR = "cim-toolkit"
FILENAME = "manifest.json"

# a URL scheme ("file:", "http:"), a drive letter ("C:") or a UNC/absolute start
_ABSOLUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|[/\\])")


def is_relative_reference(text: str) -> bool:
    """Whether ``text`` is a relative path that reveals nothing outside its folder.

    True for ``tiles/l2/tileset.json`` or ``data/b.geojson``; False for an absolute
    path (``/srv/...``, ``C:\\...``), a URL with a scheme, a backslash, or any ``..``
    segment.
    """
    if not text or _ABSOLUTE.match(text) or "\\" in text:
        return False
    return ".." not in PurePosixPath(text).parts


@dataclass(frozen=True)
class Layer:
    """One output layer: where it is and what the stage says about it.

    Attributes
    ----------
    url : str
        Path of the layer's entry file relative to the output folder
        (``tiles/l2/tileset.json``, ``terrain/layer.json``, ``tiles/pipelines/tileset.json``
        whose ``network`` names the pipe network file...).
    properties : Mapping
        The stage's other figures for this layer (counts, bounds, zooms, format...),
        written next to ``url``. ``stage`` names the producing stage when the layer's
        key differs from the stage's name.
    """

    url: str
    properties: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not is_relative_reference(self.url):
            raise ValueError(f"layer url must be relative to the output folder: {self.url!r}")
        if "url" in self.properties:
            raise ValueError("layer properties must not repeat 'url'")

    @property
    def stage(self) -> str | None:
        """The producing stage when it is named (``None``: the layer's own key)."""
        value = self.properties.get("stage")
        return str(value) if value is not None else None

    def to_json(self) -> dict[str, Any]:
        """The layer's JSON object (``url`` first, then the properties)."""
        return {"url": self.url, **self.properties}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Layer:
        """Parse a layer's JSON object."""
        if not isinstance(data, Mapping) or not isinstance(data.get("url"), str):
            raise ValueError("a layer is an object with a 'url' string")
        return cls(url=data["url"], properties={k: v for k, v in data.items() if k != "url"})


@dataclass(frozen=True)
class StageInfo:
    """What one stage did in the build that wrote the manifest.

    Attributes
    ----------
    fingerprint : str
        Hash of the tool version, the stage's config sections and input checksums; an
        unchanged fingerprint lets the next build reuse the stage's files.
    reused : bool
        The stage's files were taken from the previous build.
    seconds : float
    read, written, repaired, skipped : int
        Counts from the build report.
    layers : tuple of str
        Keys of the layers this stage wrote.
    warnings : int
        Stage-wide warnings (their text is in ``build-report.json``).
    """

    fingerprint: str
    reused: bool = False
    seconds: float = 0.0
    read: int = 0
    written: int = 0
    repaired: int = 0
    skipped: int = 0
    layers: tuple[str, ...] = ()
    warnings: int = 0

    def to_json(self) -> dict[str, Any]:
        """The stage's JSON object."""
        return {
            "fingerprint": self.fingerprint,
            "reused": self.reused,
            "seconds": round(float(self.seconds), 3),
            "read": self.read,
            "written": self.written,
            "repaired": self.repaired,
            "skipped": self.skipped,
            "layers": list(self.layers),
            "warnings": self.warnings,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StageInfo:
        """Parse a stage's JSON object (``warnings`` may be absent: older builds)."""
        return cls(
            fingerprint=str(data["fingerprint"]),
            reused=bool(data.get("reused", False)),
            seconds=float(data.get("seconds", 0.0)),
            read=int(data.get("read", 0)),
            written=int(data.get("written", 0)),
            repaired=int(data.get("repaired", 0)),
            skipped=int(data.get("skipped", 0)),
            layers=tuple(str(k) for k in data.get("layers", ())),
            warnings=int(data.get("warnings", 0)),
        )


@dataclass(frozen=True)
class Manifest:
    """The content of ``manifest.json``.

    Attributes
    ----------
    name : str
        City name.
    crs : str or None
        The buildings' source CRS (else the project's default CRS).
    extent : tuple or None
        ``(west, south, east, north)`` in degrees (WGS84).
    centre : tuple or None
        ``(lon, lat, h)``: the camera's home and the tiles' local frame origin.
    layers : Mapping of str to Layer
    stages : Mapping of str to StageInfo
    version : str
        Toolkit version.
    generator : str
        ``"cim-toolkit <version>"``.
    built_at : str
        UTC time, ISO 8601 (``2026-11-28T13:00:00Z``).
    inputs : Mapping of str to str
        Input file (relative to the project folder, or its bare file name when it lies
        outside) → BLAKE2b checksum.
    schema_version : int
    """

    name: str
    crs: str | None
    extent: tuple[float, float, float, float] | None
    centre: tuple[float, float, float] | None
    layers: Mapping[str, Layer]
    stages: Mapping[str, StageInfo]
    version: str
    generator: str
    built_at: str
    inputs: Mapping[str, str]
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        for key in self.inputs:
            if not is_relative_reference(key):
                raise ValueError(f"manifest input names must be relative: {key!r}")
        if self.extent is not None and len(self.extent) != 4:
            raise ValueError("extent is [west, south, east, north]")
        if self.centre is not None and len(self.centre) != 3:
            raise ValueError("centre is [lon, lat, h]")

    def to_json(self) -> dict[str, Any]:
        """The JSON object written as ``manifest.json``."""
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "crs": self.crs,
            "extent": list(self.extent) if self.extent is not None else None,
            "centre": list(self.centre) if self.centre is not None else None,
            "layers": {k: layer.to_json() for k, layer in self.layers.items()},
            "stages": {k: st.to_json() for k, st in self.stages.items()},
            "version": self.version,
            "generator": self.generator,
            "built_at": self.built_at,
            "inputs": dict(self.inputs),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        """Parse a manifest's JSON object.

        Raises
        ------
        ValueError
            When a required key is missing or has the wrong shape.
        """
        try:
            extent, centre = data.get("extent"), data.get("centre")
            return cls(
                schema_version=int(data.get("schema_version", SCHEMA_VERSION)),
                name=str(data["name"]),
                crs=data.get("crs"),
                extent=tuple(float(v) for v in extent) if extent is not None else None,
                centre=tuple(float(v) for v in centre) if centre is not None else None,
                layers={k: Layer.from_json(v) for k, v in data.get("layers", {}).items()},
                stages={k: StageInfo.from_json(v) for k, v in data.get("stages", {}).items()},
                version=str(data["version"]),
                generator=str(data["generator"]),
                built_at=str(data["built_at"]),
                inputs={str(k): str(v) for k, v in data.get("inputs", {}).items()},
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a cim manifest ({type(exc).__name__}: {exc})") from exc

    def dumps(self) -> str:
        """The manifest as compact UTF-8 JSON text."""
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest of a built output folder; None when absent or not a cim manifest."""
    try:
        data = json.loads((folder / FILENAME).read_text(encoding="utf-8"))
        return Manifest.from_json(data) if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def input_name(path: Path, root: Path, taken: Mapping[str, str] | None = None) -> str:
    """How the manifest names an input file: relative to ``root``, else its file name.

    Parameters
    ----------
    path : Path
        The input file (absolute).
    root : Path
        The project folder.
    taken : Mapping, optional
        Names already used; a clash of two outside files with the same name gets a
        ``~2``, ``~3``... suffix.
    """
    try:
        name = path.relative_to(root).as_posix()
    except ValueError:
        name = path.name
    if taken and name in taken:
        n = 2
        while f"{name}~{n}" in taken:
            n += 1
        name = f"{name}~{n}"
    return name


def schema() -> dict[str, Any]:
    """The manifest's JSON Schema (draft 2020-12), shipped as package data."""
    text = files("cim").joinpath("manifest.schema.json").read_text(encoding="utf-8")
    return json.loads(text)
