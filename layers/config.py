"""The ``[live]`` section of ``city.toml``: where the live store is and who may read it.

```toml
[live]
store = "live.sqlite"                 # default; relative to city.toml, or "postgresql://..."
read = "open"                         # "open" (anyone may read) or "token" (a valid token)
mqtt = "mqtt://127.0.0.1:1883"        # optional broker for MQTT ingest
retention_days = 90                   # observations older than this are deleted (0: never)
```

The store is never inside the build output folder: a rebuild replaces that folder, and
live data must survive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cim.config import CityProject, load_project, parse_section
from cim.errors import ConfigError

READ_MODES = ("open", "token")


@dataclass(frozen=True)
class LiveSection:
    """The raw ``[live]`` table, as written in the file."""

    store: str = "live.sqlite"
    read: str = "open"
    mqtt: str | None = None
    retention_days: float = 90.0

    def __post_init__(self) -> None:
        if not self.retention_days >= 0:
            raise ConfigError(
                "[live] retention_days must be >= 0 (0 keeps everything), "
                f"not {self.retention_days!r}"
            )
        if self.read not in READ_MODES:
            raise ConfigError(f"[live] read must be 'open' or 'token', not {self.read!r}")
        if self.mqtt is not None:
            parts = urlsplit(self.mqtt)
            if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
                raise ConfigError(
                    f"[live] mqtt must look like 'mqtt://host:1883', not {self.mqtt!r}"
                )


@dataclass(frozen=True)
class LiveConfig:
    """The resolved live configuration.

    Attributes
    ----------
    store : str
        ``"sqlite:///abs/path"``-free form: an absolute SQLite file path, or a
        ``postgresql://`` URL.
    read : str
        ``"open"`` or ``"token"``.
    mqtt : str or None
        Broker URL for MQTT ingest.
    project : Path or None
        The city.toml it came from.
    """

    store: str
    read: str = "open"
    mqtt: str | None = None
    project: Path | None = None
    retention_days: float = 90.0

    @property
    def is_postgres(self) -> bool:
        """Whether the store is a PostgreSQL URL."""
        return is_postgres_url(self.store)


def is_postgres_url(store: str) -> bool:
    """Whether ``store`` names a PostgreSQL database rather than a SQLite file."""
    return store.startswith(("postgresql://", "postgres://"))


def live_config(project: CityProject | str | Path) -> LiveConfig:
    """The ``[live]`` configuration of a city project (defaults when the section is absent).

    Parameters
    ----------
    project : CityProject or path
        A loaded project or its ``city.toml``.

    Returns
    -------
    LiveConfig

    Raises
    ------
    ConfigError
        On bad values, or a SQLite store inside the build output folder.
    """
    if not isinstance(project, CityProject):
        project = load_project(project)
    try:
        section = parse_section(project.raw.get("live", {}), LiveSection, project.root, "live")
    except ConfigError as exc:
        raise ConfigError(exc.message, path=project.path) from exc
    store = section.store
    if not is_postgres_url(store):
        path = (project.root / store).resolve()
        out = project.output.resolve()
        if path == out or out in path.parents:
            raise ConfigError(
                f"[live] store {path} is inside the build output folder {out}; a rebuild "
                "replaces that folder, so put the live store elsewhere (e.g. next to city.toml)",
                path=project.path,
            )
        store = str(path)
    return LiveConfig(
        store=store,
        read=section.read,
        mqtt=section.mqtt,
        project=project.path,
        retention_days=section.retention_days,
    )
