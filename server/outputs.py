"""The app's view of the build output: one :class:`cim.outputs.BuildOutputs` per app.

Blueprints (and the live layers' routes) call :func:`build_outputs` instead of
opening files themselves; the core object reopens each file when a build replaces it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from flask import current_app

from cim.errors import NotFoundError
from cim.outputs import BuildOutputs

_EXTENSION = "cim.outputs"
_lock = threading.Lock()


def build_outputs() -> BuildOutputs:
    """The current app's :class:`BuildOutputs`.

    Raises
    ------
    NotFoundError
        When no output folder is configured.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    root = app.config.get("OUTPUT_DIR")
    if not root:
        raise NotFoundError("no build output is configured")
    with _lock:
        outputs = app.extensions.get(_EXTENSION)
        if outputs is None or outputs.root != Path(root):
            outputs = BuildOutputs(root, address_index=app.config.get("ADDRESS_INDEX_FACTORY"))
            app.extensions[_EXTENSION] = outputs
    return outputs
