"""The build report: per stage, what was read, repaired and skipped, and why.

A repair or a skip is always recorded with the feature's id and a reason code plus a
human-readable detail, so that no feature is ever lost silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, overload

import numpy as np
import orjson

log = logging.getLogger(__name__)
_REASON = itemgetter("reason")
#: entries made into dicts at a time when a column block is read or written
_CHUNK = 65_536
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def entry(item_id: Any, reason: str, detail: str = "") -> dict[str, str]:
    """One repaired, skipped or flagged item as the report lists it."""
    return {"id": str(item_id), "reason": reason, "detail": detail}


@dataclass(frozen=True)
class _Columns:
    """Entries added in bulk: one id, reason and detail per row (object arrays of str;
    the ids may be :class:`cim.model.ArrowText`, made into ``str`` a chunk at a time)."""

    ids: Any
    reasons: np.ndarray
    details: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def chunks(self) -> Iterator[list[dict[str, str]]]:
        """The rows as the report's dicts, :data:`_CHUNK` at a time."""
        for start in range(0, len(self), _CHUNK):
            yield self.dicts(start, start + _CHUNK)

    def dicts(self, start: int = 0, stop: int | None = None) -> list[dict[str, str]]:
        """Rows ``start:stop`` as the report's dicts."""
        rows = slice(start, stop)
        return [
            {"id": i, "reason": r, "detail": d}
            for i, r, d in zip(
                self.ids[rows].tolist(),
                self.reasons[rows].tolist(),
                self.details[rows].tolist(),
                strict=True,
            )
        ]


class Entries(Sequence[dict[str, Any]]):
    """A report's list of ``{"id", "reason", "detail"}`` entries.

    It reads like a list of dicts; entries added in bulk (:meth:`extend_columns`: a
    city without heights has a repair per building) are kept as three columns of
    references to strings the build holds anyway, made into dicts only a chunk at a
    time when read or written (:meth:`json_bytes`). Three million repair dicts held
    through a build took 0.6 GB.
    """

    def __init__(self, items: Iterable[dict[str, Any]] = ()) -> None:
        self._blocks: list[list[dict[str, Any]] | _Columns] = []
        self._len = 0
        self.extend(items)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for block in self._blocks:
            if isinstance(block, list):
                yield from block
            else:
                for chunk in block.chunks():
                    yield from chunk

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        i = index + self._len if index < 0 else index
        if not 0 <= i < self._len:
            raise IndexError("report entry index out of range")
        for block in self._blocks:
            if i < len(block):
                return block[i] if isinstance(block, list) else block.dicts(i, i + 1)[0]
            i -= len(block)
        raise AssertionError("unreachable")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Entries | list | tuple):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __add__(self, other: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [*self, *other]

    def __radd__(self, other: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [*other, *self]

    def __repr__(self) -> str:
        return f"Entries({list(self)!r})"

    def append(self, item: dict[str, Any]) -> None:
        """Add one entry."""
        if not self._blocks or not isinstance(self._blocks[-1], list):
            self._blocks.append([])
        self._blocks[-1].append(item)  # type: ignore[union-attr]
        self._len += 1

    def extend(self, items: Iterable[dict[str, Any]]) -> None:
        """Add entries (another :class:`Entries` keeps its column blocks)."""
        if isinstance(items, Entries):
            for block in items._blocks:
                self._add_block(block if isinstance(block, _Columns) else list(block))
            return
        items = list(items)
        if items:
            self._add_block(items)

    def extend_columns(self, ids: Any, reasons: np.ndarray, details: np.ndarray) -> None:
        """Add one entry per row of three equally long object arrays of ``str`` (the
        ids may also be :class:`cim.model.ArrowText`: kept as that)."""
        if not len(ids) == len(reasons) == len(details):
            raise ValueError("ids, reasons and details differ in length")
        if len(ids):
            self._add_block(_Columns(ids, reasons, details))

    def _add_block(self, block: list[dict[str, Any]] | _Columns) -> None:
        if isinstance(block, list) and self._blocks and isinstance(self._blocks[-1], list):
            self._blocks[-1].extend(block)
        else:
            self._blocks.append(block)
        self._len += len(block)

    def reason_counts(self) -> dict[str, int]:
        """How many entries each reason has."""
        counts: Counter[str] = Counter()
        for block in self._blocks:
            # counted in C (itemgetter, tolist): a city's report has millions
            reasons = map(_REASON, block) if isinstance(block, list) else block.reasons.tolist()
            counts.update(reasons)
        return dict(counts)

    def json_bytes(self) -> bytes:
        """The entries as a JSON array, made a chunk of dicts at a time."""
        parts: list[bytes] = []
        for block in self._blocks:
            chunks = [block] if isinstance(block, list) else block.chunks()
            # as the report's writer dumps the rest (numpy values included)
            parts += [orjson.dumps(chunk, option=_OPTIONS)[1:-1] for chunk in chunks if chunk]
        return b"[" + b",".join(parts) + b"]"


def json_default(obj: Any) -> Any:
    """``default`` for ``orjson.dumps`` of a report made with ``to_json(lazy=True)``:
    :class:`Entries` as their JSON."""
    if isinstance(obj, Entries):
        return orjson.Fragment(obj.json_bytes())
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


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
    repaired : Entries
        ``{"id", "reason", "detail"}`` for each repaired item.
    skipped : Entries
        ``{"id", "reason", "detail"}`` for each item left out.
    flagged : Entries
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
    repaired: Entries = field(default_factory=Entries)
    skipped: Entries = field(default_factory=Entries)
    flagged: Entries = field(default_factory=Entries)
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

    def to_json(self, *, lazy: bool = False) -> dict[str, Any]:
        """The stage's entry in ``build-report.json``.

        ``lazy``: the entries stay :class:`Entries` for ``orjson.dumps`` with
        :func:`json_default`, which writes them a chunk of dicts at a time (the build's
        report of a whole city), instead of lists of dicts (any JSON encoder).
        """

        def listed(entries: Entries) -> Entries | list[dict[str, Any]]:
            return entries if lazy else list(entries)

        return {
            "read": self.read,
            "written": self.written,
            "repaired_count": len(self.repaired),
            "skipped_count": len(self.skipped),
            "repair_reasons": self.repaired.reason_counts(),
            "skip_reasons": self.skipped.reason_counts(),
            "flagged_count": len(self.flagged),
            "flag_reasons": self.flagged.reason_counts(),
            "warnings": self.warnings,
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "repaired": listed(self.repaired),
            "skipped": listed(self.skipped),
            "flagged": listed(self.flagged),
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

    def to_json(self, *, lazy: bool = False) -> dict[str, Any]:
        """The content of ``build-report.json`` (``lazy``: see :meth:`StageReport.to_json`)."""
        return {"stages": {name: s.to_json(lazy=lazy) for name, s in self.stages.items()}}
