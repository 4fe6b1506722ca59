"""Server configuration: defaults, then the environment (``CIM_`` prefix), then a test config.

Every key can be set from the environment by prefixing it with ``CIM_``
(``CIM_OUTPUT_DIR=/srv/city/output``, ``CIM_CORS=*``). Values are parsed by the type
of the default: booleans accept ``1/0/true/false/yes/no/on/off``, integers must parse.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cim.errors import ConfigError

logger = logging.getLogger(__name__)

#: repository folder holding the viewer's static files
VIEWER_DIR = Path(__file__).resolve().parent.parent / "viewer"

#: CesiumJS build inside the viewer's npm install
CESIUM_SUBDIR = Path("node_modules") / "cesium" / "Build" / "Cesium"

DEFAULTS: dict[str, Any] = {
    # output folder of `cim build` (manifest.json, tiles/, terrain/, ...)
    "OUTPUT_DIR": None,
    # a second build output served read-only under /compare/ for the viewer's swipe
    # compare (e.g. last month's build); None = none (`cim serve --compare`)
    "COMPARE_DIR": None,
    # city name when the manifest carries none
    "CITY_NAME": "",
    # viewer static files; CesiumJS is looked up in CESIUM_DIR or VIEWER_DIR/CESIUM_SUBDIR
    "VIEWER_DIR": str(VIEWER_DIR),
    "CESIUM_DIR": None,
    # CORS: "" (off), "*", or a comma-separated list of allowed origins
    "CORS": "",
    # Cache-Control max-age (s) for tile bytes (JSON is always revalidated via ETag)
    "CACHE_MAX_AGE": 3600,
    # Cache-Control max-age (s) for the versioned CesiumJS build
    "CESIUM_MAX_AGE": 86400,
    # send a Content-Security-Policy that keeps the viewer on this server
    "CSP": True,
    # address search limits
    "SEARCH_DEFAULT_LIMIT": 10,
    "SEARCH_MAX_LIMIT": 50,
    "SEARCH_MAX_QUERY": 200,
    # waitress: worker threads. They run requests (idle keep-alive connections need
    # none); a live stream (/api/live/stream) holds one only while its snapshot is made,
    # then the fan-out writes it (server/sse.py; see docs/live.md, "Threads")
    "THREADS": 116,
    # waitress: open connections held at once (waitress's own default is 100); the
    # process's open-file limit is raised to fit
    "CONNECTION_LIMIT": 1000,
    # waitress: connections waiting in the kernel's accept queue (capped by somaxconn)
    "BACKLOG": 2048,
    # waitress: seconds before an idle connection is closed
    "CHANNEL_TIMEOUT": 120,
    # live layer (docs/live.md): the MQTT broker (mqtt://host:1883; "" = [live] mqtt of
    # the project), this process's fixed MQTT client id, an MQTT 5 shared-subscription
    # group for several server processes ("" = none)
    "LIVE_MQTT": "",
    "LIVE_MQTT_CLIENT_ID": "cim-ingest",
    "LIVE_MQTT_SHARE": "",
    # live stream: seconds between heartbeats of an idle stream; open streams at most
    # (0 = CONNECTION_LIMIT less a tenth under the fan-out, else THREADS minus the
    # threads kept for requests, see live_max_streams); seconds
    # between a stream's writes at most (under load a screen gets fewer, larger writes)
    "LIVE_HEARTBEAT": 15.0,
    "LIVE_MAX_STREAMS": 0,
    "LIVE_NOTIFY_INTERVAL": 0.02,
    # live stream fan-out (server/sse.py): hand streams over from waitress's threads;
    # the threads that write them; bytes a slow screen may have waiting (then it resumes
    # from its place in the hub's ring, or resyncs)
    "LIVE_STREAM_FANOUT": True,
    "LIVE_STREAM_THREADS": 2,
    "LIVE_STREAM_BUFFER": 1 << 20,
    # callable(path) -> address index; None uses cim.addresses.AddressIndex (through
    # cim.outputs.BuildOutputs)
    "ADDRESS_INDEX_FACTORY": None,
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(key: str, raw: str, default: Any) -> Any:
    """Parse one environment value by the type of its default."""
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"CIM_{key} must be a boolean (1/0, true/false), not {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"CIM_{key} must be an integer, not {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"CIM_{key} must be a number, not {raw!r}") from None
    return raw


def live_max_streams(config: Mapping[str, Any]) -> int:
    """Live streams allowed at once: ``LIVE_MAX_STREAMS``, else ``THREADS`` minus the
    threads kept for tiles and API requests (a quarter of them, 4 to 16).

    With the defaults (116 threads) that is 100 streams; ``THREADS = 16`` gives 12.
    """
    if int(config.get("LIVE_MAX_STREAMS") or 0) > 0:
        return int(config["LIVE_MAX_STREAMS"])
    threads = int(config.get("THREADS") or DEFAULTS["THREADS"])
    return max(1, threads - max(4, min(16, threads // 4)))


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read ``CIM_*`` variables for the keys in :data:`DEFAULTS`.

    Parameters
    ----------
    environ : mapping, optional
        Defaults to ``os.environ``.

    Returns
    -------
    dict
        Only the keys that were set.

    Raises
    ------
    ConfigError
        When a value cannot be parsed.
    """
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        if key == "ADDRESS_INDEX_FACTORY":
            continue
        name = f"CIM_{key}"
        if name in environ:
            out[key] = _parse(key, environ[name], default)
    return out


def resolve(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge defaults, environment and ``config`` (later wins) and normalise paths.

    Parameters
    ----------
    config : mapping, optional
        Test or caller config (keys as in :data:`DEFAULTS`).

    Returns
    -------
    dict
        The merged configuration; ``OUTPUT_DIR``, ``VIEWER_DIR`` and ``CESIUM_DIR``
        become absolute :class:`Path` objects (``OUTPUT_DIR`` may stay None).
    """
    merged: dict[str, Any] = dict(DEFAULTS)
    merged.update(from_env())
    if config:
        merged.update(config)
    for key in ("OUTPUT_DIR", "COMPARE_DIR", "VIEWER_DIR", "CESIUM_DIR"):
        if merged.get(key):
            merged[key] = Path(merged[key]).expanduser().resolve()
    if not merged.get("CESIUM_DIR"):
        merged["CESIUM_DIR"] = (Path(merged["VIEWER_DIR"]) / CESIUM_SUBDIR).resolve()
    cors = merged.get("CORS") or ""
    if isinstance(cors, bool):
        cors = "*" if cors else ""
    if isinstance(cors, str):
        cors = [o.strip() for o in cors.split(",") if o.strip()]
    merged["CORS"] = list(cors)
    for key in ("CACHE_MAX_AGE", "CESIUM_MAX_AGE", "SEARCH_MAX_LIMIT", "THREADS"):
        if int(merged[key]) < 0:
            raise ConfigError(f"{key} must not be negative")
    for key in ("LIVE_MAX_STREAMS", "LIVE_HEARTBEAT", "LIVE_NOTIFY_INTERVAL"):
        if merged.get(key) is not None and float(merged[key]) < 0:
            raise ConfigError(f"{key} must not be negative, not {merged[key]!r}")
    for key in ("THREADS", "CONNECTION_LIMIT", "BACKLOG", "CHANNEL_TIMEOUT"):
        if int(merged[key]) < 1:
            raise ConfigError(f"{key} must be at least 1, not {merged[key]!r}")
    return merged
