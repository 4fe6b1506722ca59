"""Safe static file responses: content types, gzip terrain, ETag, cache and range.

All file serving goes through :func:`resolve_under` (no path can leave its root:
``..``, absolute paths, backslashes, hidden names and symlinks pointing out are
refused) and :func:`send_path` (werkzeug's conditional ``send_file``: strong ETag,
``If-None-Match`` → 304, ``Range`` → 206/416).
"""

from __future__ import annotations

import gzip
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

from flask import Response, request, send_file

from cim.errors import NotFoundError

logger = logging.getLogger(__name__)

#: content type by file suffix (lower case); anything else is application/octet-stream
CONTENT_TYPES: dict[str, str] = {
    ".terrain": "application/vnd.quantized-mesh",
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".b3dm": "application/octet-stream",
    ".i3dm": "application/octet-stream",
    ".pnts": "application/octet-stream",
    ".cmpt": "application/octet-stream",
    ".subtree": "application/octet-stream",
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".czml": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ktx2": "image/ktx2",
    ".svg": "image/svg+xml",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".txt": "text/plain",
    ".xml": "application/xml",
    ".wasm": "application/wasm",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".sqlite": "application/vnd.sqlite3",
}

#: suffixes whose bytes are stored gzip-compressed on disk and sent as they are
GZIP_ON_DISK = frozenset({".terrain"})

_GZIP_MAGIC = b"\x1f\x8b"

#: text-like suffixes compressed on the fly (and cached) for clients accepting gzip;
#: tiles (glb, terrain, images) are sent as stored
COMPRESSIBLE = frozenset({".js", ".mjs", ".css", ".html", ".json", ".svg", ".geojson", ".wasm"})
_GZIP_MIN_BYTES = 1024
_GZIP_MAX_FILE = 32 * 1024 * 1024
_GZIP_CACHE_BYTES = 128 * 1024 * 1024


class _GzipCache:
    """Thread-safe LRU of gzip-compressed file bytes keyed by path and version."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.items: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, path: Path, stat: os.stat_result) -> bytes:
        key = (os.fspath(path), stat.st_mtime_ns, stat.st_size)
        with self.lock:
            hit = self.items.get(key)
            if hit is not None:
                self.items.move_to_end(key)
                return hit
        data = gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)
        with self.lock:
            if key not in self.items:
                self.items[key] = data
                self.size += len(data)
                while self.size > self.limit and self.items:
                    _, old = self.items.popitem(last=False)
                    self.size -= len(old)
        return data


_gzip_cache = _GzipCache(_GZIP_CACHE_BYTES)


def _accepts_gzip() -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() in ("gzip", "*"):
            q = params.strip()
            return not (q.startswith("q=") and float(q[2:] or 0) == 0)
    return False


def content_type(path: Path) -> str:
    """Content type for ``path`` from :data:`CONTENT_TYPES`."""
    return CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


def resolve_under(root: Path, subpath: str) -> Path:
    """Resolve ``subpath`` inside ``root`` or raise :class:`NotFoundError`.

    Parameters
    ----------
    root : Path
        Absolute, resolved folder.
    subpath : str
        The URL path below the mount point, already percent-decoded.

    Returns
    -------
    Path
        An existing regular file inside ``root`` (after following symlinks).

    Raises
    ------
    NotFoundError
        For a missing file, a folder, or any path that would leave ``root``
        (``..`` segments, absolute paths, drive letters, backslashes, NUL, hidden
        ``.names``, symlinks resolving outside ``root``). The message never says which.
    """
    not_found = NotFoundError("no such file", feature=None)
    if not subpath or "\x00" in subpath or "\\" in subpath or subpath.startswith("/"):
        raise not_found
    parts = subpath.split("/")
    for part in parts:
        if part in ("", ".", "..") or part.startswith(".") or ":" in part:
            raise not_found
    candidate = root.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise not_found from None
    if not real.is_relative_to(root) or not real.is_file():
        if not real.is_relative_to(root):
            logger.warning("refused path leaving its root: %r", subpath)
        raise not_found
    return real


def cache_control_for(path: Path, max_age: int) -> str:
    """Cache policy: JSON and HTML always revalidate; tile bytes may be cached."""
    if path.suffix.lower() in (".json", ".html", ".geojson") or max_age <= 0:
        return "no-cache"
    return f"public, max-age={max_age}"


def send_path(path: Path, *, max_age: int, cache_control: str | None = None) -> Response:
    """Send one file with content type, ETag, cache headers and range support.

    Parameters
    ----------
    path : Path
        A file from :func:`resolve_under`.
    max_age : int
        ``Cache-Control`` max-age for non-JSON files, seconds.
    cache_control : str, optional
        Overrides the ``Cache-Control`` policy.

    Returns
    -------
    Response
        200, 206 (range), 304 (ETag / If-Modified-Since) or 416.
    """
    suffix = path.suffix.lower()
    if suffix in COMPRESSIBLE and "Range" not in request.headers:
        stat = path.stat()
        if _GZIP_MIN_BYTES <= stat.st_size <= _GZIP_MAX_FILE:
            resp = _send_compressed(path, stat, max_age, cache_control)
            if resp is not None:
                return resp
    gzipped = False
    if suffix in GZIP_ON_DISK:
        with path.open("rb") as fh:
            gzipped = fh.read(2) == _GZIP_MAGIC
    resp = send_file(
        os.fspath(path),
        mimetype=content_type(path),
        conditional=True,
        etag=True,
        max_age=None,
    )
    resp.headers.pop("Content-Disposition", None)
    resp.headers["Cache-Control"] = cache_control or cache_control_for(path, max_age)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    if suffix in COMPRESSIBLE:
        resp.vary.add("Accept-Encoding")
    if gzipped:
        resp.headers["Content-Encoding"] = "gzip"
    if suffix in GZIP_ON_DISK:
        resp.vary.add("Accept-Encoding")
    # `send_file` answers HEAD and GET alike; keep the request for logging context
    logger.debug("%s %s -> %s", request.method, path.name, resp.status_code)
    return resp


def _send_compressed(
    path: Path, stat: os.stat_result, max_age: int, cache_control: str | None
) -> Response | None:
    """A gzip response for a text-like file, or None when the client takes no gzip."""
    try:
        wants = _accepts_gzip()
    except ValueError:
        wants = False
    if not wants:
        return None
    try:
        body = _gzip_cache.get(path, stat)
    except OSError:
        return None
    resp = Response(body, mimetype=content_type(path))
    resp.headers["Content-Encoding"] = "gzip"
    resp.vary.add("Accept-Encoding")
    resp.set_etag(f"{stat.st_mtime_ns:x}-{stat.st_size:x}-gz")
    resp.last_modified = stat.st_mtime
    resp.headers["Cache-Control"] = cache_control or cache_control_for(path, max_age)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp.make_conditional(request)
