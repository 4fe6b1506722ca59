"""Helpers for ``cim serve``: run the app with waitress (or Flask's debug server).

``cim/cli.py`` imports :func:`serve` lazily. It can also run on its own::

    python -m server.cli city.toml --port 8000
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

from cim.config import load_project
from cim.errors import NotFoundError
from server import create_app

logger = logging.getLogger(__name__)

#: the one step that installs CesiumJS for the viewer (run from the repository root)
NPM_INSTALL = "npm ci --prefix viewer"


def viewer_url(host: str, port: int) -> str:
    """The URL to open for ``host``/``port`` (wildcard hosts shown as localhost)."""
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def compare_output(path: Path) -> Path:
    """The output folder of ``cim serve --compare PATH``: PATH itself, or the output of
    the city.toml it names. It is only read.

    Raises
    ------
    NotFoundError
        When it holds no build (no manifest.json).
    ConfigError
        When PATH is a city.toml that cannot be read.
    """
    path = Path(path)
    output = load_project(path).output if path.suffix == ".toml" else path
    if not (output / "manifest.json").is_file():
        raise NotFoundError(f"{output}: no build output to compare with (no manifest.json)")
    return output.resolve()


def make_app(project_path: Path, **overrides: Any) -> Any:
    """The Flask app for a city project (output folder and name from the project).

    Parameters
    ----------
    project_path : Path
        The ``city.toml``.
    **overrides
        Further config keys (as in :data:`server.config.DEFAULTS`).
    """
    project = load_project(project_path)
    config: dict[str, Any] = {"OUTPUT_DIR": project.output, "CITY_NAME": project.name}
    config["PROJECT_FILE"] = project.path  # the live store comes from its [live] section
    config.update(overrides)
    return create_app(config)


def check_install(app: Any) -> list[str]:
    """Problems that keep the viewer from working, as messages for the user."""
    problems = []
    if not (Path(app.config["CESIUM_DIR"]) / "Cesium.js").is_file():
        hint = f" (npm is at {shutil.which('npm')})" if shutil.which("npm") else ""
        problems.append(f"CesiumJS is not installed: run `{NPM_INSTALL}`{hint}")
    out = app.config.get("OUTPUT_DIR")
    if out is None or not (Path(out) / "manifest.json").is_file():
        problems.append(f"no build output in {out}: run `cim build` on the project first")
    return problems


def serve(
    project_path: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    debug: bool = False,
    compare: Path | None = None,
) -> None:
    """Serve a city project's viewer and build output until interrupted.

    Parameters
    ----------
    project_path : Path
        The ``city.toml``.
    host, port : str, int
        Where to listen.
    debug : bool
        Flask's own reloading debug server instead of waitress. Never on a shared network.
    compare : Path, optional
        Another build (its output folder or city.toml) served read-only for the
        viewer's swipe compare (:func:`compare_output`).

    Connection settings (threads, connection limit, backlog, idle timeout) come from
    the server config (``CIM_THREADS``, ``CIM_CONNECTION_LIMIT``, ``CIM_BACKLOG``,
    ``CIM_CHANNEL_TIMEOUT``); see :mod:`server.wsgi`.

    Raises
    ------
    ConfigError
        When the project file is missing or invalid.
    """
    extra = {"COMPARE_DIR": compare_output(compare)} if compare else {}
    app = make_app(Path(project_path), **extra)
    if compare:
        logger.info("comparing with the build in %s (read-only)", app.config["COMPARE_DIR"])
    for problem in check_install(app):
        logger.warning("%s", problem)
    url = viewer_url(host, port)
    if debug:
        logger.info("serving %s (Flask debug server) at %s", app.config["OUTPUT_DIR"], url)
        app.run(host=host, port=port, debug=True, use_reloader=False)
        return
    from server.wsgi import create_server

    srv = create_server(app, host, port)
    logger.info(
        "serving %s at %s (waitress: %d threads, up to %d connections)",
        app.config["OUTPUT_DIR"],
        url,
        int(app.config["THREADS"]),
        int(app.config["CONNECTION_LIMIT"]),
    )
    try:
        srv.run()
    finally:
        srv.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m server.cli CITY.toml [--host H] [--port P] [--debug] [--compare OTHER]``."""
    parser = argparse.ArgumentParser(prog="python -m server.cli", description=serve.__doc__)
    parser.add_argument("project", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--compare", type=Path, help="another build to swipe-compare with")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    serve(args.project, args.host, args.port, args.debug, compare=args.compare)


if __name__ == "__main__":
    main()
