"""The build report: per stage, what was read, repaired and skipped, and why.

A repair or a skip is always recorded with the feature's id and a reason code plus a
human-readable detail, so that no feature is ever lost silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

log = logging.getLogger(__name__)
_REASON = itemgetter("reason")


def entry(item_id: Any, reason: str, detail: str = "") -> dict[str, str]:
    """One repaired, skipped or flagged item as the report lists it."""
    return {"id": str(item_id), "reason": reason, "detail": detail}


@dataclass
class StageReport:
    """What one stage did with its input.

    Attributes
    ----------
    name : str
        Stage name.
    read : int
        Items read from the inputs.
    written : int
        Items written to the output (buildings, tiles, addresses...).
    repaired : list of dict
        ``{"id", "reason", "detail"}`` for each repaired item.
    skipped : list of dict
        ``{"id", "reason", "detail"}`` for each item left out.
    flagged : list of dict
        ``{"id", "reason", "detail"}`` for items kept as they are but worth a look
        (an address point with no building, an ambiguous match).
    warnings : list of str
        Stage-wide warnings.
    counts : dict
        Free-form per-stage figures (tiles, bytes, ...), copied into the manifest.
    """

    name: str
    read: int = 0
    written: int = 0
    repaired: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def repair(self, item_id: Any, reason: str, detail: str = "") -> None:
        """Record that item ``item_id`` was repaired for ``reason``."""
        self.repaired.append(entry(item_id, reason, detail))

    def skip(self, item_id: Any, reason: str, detail: str = "") -> None:
        """Record that item ``item_id`` was left out for ``reason``."""
        self.skipped.append(entry(item_id, reason, detail))
        log.debug("%s: skipped %s (%s: %s)", self.name, item_id, reason, detail)

    def flag(self, item_id: Any, reason: str, detail: str = "") -> None:
        """Record that item ``item_id`` was kept but needs attention for ``reason``."""
        self.flagged.append(entry(item_id, reason, detail))

    def warn(self, message: str) -> None:
        """Record (and log) a stage-wide warning."""
        self.warnings.append(message)
        log.warning("%s: %s", self.name, message)

    def to_json(self) -> dict[str, Any]:
        """The stage's entry in ``build-report.json``."""
        return {
            "read": self.read,
            "written": self.written,
            "repaired_count": len(self.repaired),
            "skipped_count": len(self.skipped),
            # counted in C (itemgetter): a city without heights has a repair per building
            "repair_reasons": dict(Counter(map(_REASON, self.repaired))),
            "skip_reasons": dict(Counter(map(_REASON, self.skipped))),
            "flagged_count": len(self.flagged),
            "flag_reasons": dict(Counter(map(_REASON, self.flagged))),
            "warnings": self.warnings,
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "repaired": self.repaired,
            "skipped": self.skipped,
            "flagged": self.flagged,
        }


@dataclass
class BuildReport:
    """All stages' reports, in the order they ran."""

    stages: dict[str, StageReport] = field(default_factory=dict)

    def stage(self, name: str) -> StageReport:
        """The report of stage ``name``, created on first use."""
        if name not in self.stages:
            self.stages[name] = StageReport(name)
        return self.stages[name]

    def to_json(self) -> dict[str, Any]:
        """The content of ``build-report.json``."""
        return {"stages": {name: s.to_json() for name, s in self.stages.items()}}
