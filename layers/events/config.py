"""The ``[events]`` section of ``city.toml``.

```toml
[events]
categories = "categories.toml"              # optional: the city's own category table
work_hours = ["08:30-12:00", "13:30-17:30"]  # working periods of a working day
approaching = 0.2                           # flag a case with < 20 % of its time left
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cim.config import CityProject, load_project
from cim.errors import ConfigError
from layers.events.categories import CategoryTable, load_categories
from layers.events.worktime import APPROACHING, WorkSchedule


@dataclass(frozen=True)
class EventsSection:
    """The raw ``[events]`` table."""

    categories: Path | None = None
    work_hours: list[str] = field(default_factory=lambda: ["08:30-12:00", "13:30-17:30"])
    approaching: float = APPROACHING

    def __post_init__(self) -> None:
        if not 0 < self.approaching < 1:
            raise ConfigError(
                f"[events] approaching must be between 0 and 1, not {self.approaching}"
            )


@dataclass(frozen=True)
class EventsConfig:
    """The resolved events configuration: categories, working hours, flag threshold."""

    table: CategoryTable
    schedule: WorkSchedule
    approaching: float = APPROACHING


def events_config(project: CityProject | str | Path | None = None) -> EventsConfig:
    """The ``[events]`` configuration of a city project (defaults when absent or None).

    Raises
    ------
    ConfigError
        On bad values or an unreadable category table (naming city.toml or the table).
    """
    if project is None:
        return EventsConfig(load_categories(), WorkSchedule())
    if not isinstance(project, CityProject):
        project = load_project(project)
    section = project.section("events", EventsSection) or EventsSection()
    try:
        schedule = WorkSchedule.from_strings(section.work_hours)
    except ConfigError as exc:
        raise ConfigError(f"[events] work_hours: {exc.message}", path=project.path) from exc
    return EventsConfig(load_categories(section.categories), schedule, section.approaching)
