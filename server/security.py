"""What every response carries, and what no response may carry.

- :func:`security_headers`: the headers set on every response, the app's own and the
  WSGI server's (:mod:`server.wsgi` adds them to waitress's error pages);
- :func:`redact_paths` / :func:`redact_json`: absolute server paths are never
  served (error messages, the manifest): a path under a served root becomes relative
  to it, any other absolute path is cut to its last component.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: keeps the viewer on this server: no script, tile or XHR from any other host.
#: CesiumJS needs: 'unsafe-eval' (its widgets' knockout bindings compile with
#: new Function), 'wasm-unsafe-eval' (Draco/meshopt/KTX2 decoders in its workers),
#: blob: workers and images, data: images and fonts (inline icons), data:/blob: fetches.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' blob: 'unsafe-eval' 'wasm-unsafe-eval'",
        "worker-src 'self' blob:",
        "img-src 'self' data: blob:",
        "style-src 'self' 'unsafe-inline'",
        "connect-src 'self' data: blob:",
        "font-src 'self' data:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)

#: the headers every response carries, whatever produced it
BASE_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    # frame-ancestors for browsers that ignore CSP's (and when CSP is turned off)
    ("X-Frame-Options", "SAMEORIGIN"),
)


def security_headers(csp: bool = True) -> list[tuple[str, str]]:
    """The security headers of every response.

    Parameters
    ----------
    csp : bool
        Include the Content-Security-Policy (config ``CSP``).

    Returns
    -------
    list of (name, value)
    """
    out = list(BASE_HEADERS)
    if csp:
        out.append(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
    return out


# an absolute POSIX path of two or more components, or a Windows drive path; not
# the path part of a URL ("http://host/a/b") nor a relative path ("data/x.json")
_ABS_PATH_RE = re.compile(
    r"(?<![\w.:/~-])(?:/[^\s/'\"`<>|:;,()\[\]{}]+){2,}/?"
    r"|\b[A-Za-z]:\\(?:[^\s\\'\"`<>|:;,]+\\)*[^\s\\'\"`<>|:;,]*"
)


#: the server's own URL paths, which may appear in messages and are not file paths
URL_PREFIXES = ("/api/", "/data/", "/viewer/", "/cesium/")


def _shorten(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.startswith(URL_PREFIXES) and not os.path.isdir(os.path.dirname(text.rstrip("/"))):
        return text
    return re.split(r"[/\\]", text.rstrip("/\\"))[-1] or "."


def redact_paths(text: str, roots: Iterable[str | Path | None] = ()) -> str:
    """``text`` with no absolute filesystem path left in it.

    Parameters
    ----------
    text : str
    roots : iterable of path
        Served folders: a path below one becomes relative to it (``.../output/x.json``
        → ``x.json``); the folder itself becomes ``.``.

    Returns
    -------
    str
    """
    if not text or ("/" not in text and "\\" not in text):
        return text
    for root in sorted((os.fspath(r) for r in roots if r), key=len, reverse=True):
        root = root.rstrip("/\\")
        if len(root) > 1:
            text = text.replace(root + os.sep, "").replace(root, ".")
    return _ABS_PATH_RE.sub(_shorten, text)


def redact_json(value: Any, roots: Iterable[str | Path | None] = ()) -> Any:
    """A copy of a JSON value whose strings pass through :func:`redact_paths`."""
    roots = tuple(roots)
    if isinstance(value, str):
        return redact_paths(value, roots)
    if isinstance(value, dict):
        return {redact_paths(str(k), roots): redact_json(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v, roots) for v in value]
    return value
