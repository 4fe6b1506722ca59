"""Open311 GeoReport v2: the category table as services, cases as service requests.

GeoReport knows only ``open`` and ``closed``: every state but 注销/结案/综合评价 is
``open``; the lifecycle's own state goes in ``status_notes`` and in the extension field
``cim_state`` so that nothing is lost for clients that know it. ``expected_datetime``
is the current stage's deadline (absent while the clock is paused).

POST validation follows the specification
(https://wiki.open311.org/GeoReport_v2/#post-service-request): a ``service_code``
from the services list and a location (``lat`` and ``long``, or ``address_string``,
or ``address_id``). Errors are the specification's array of ``{"code",
"description"}`` objects, carried by :class:`Open311Error`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cim.errors import CimError
from layers.events.categories import CategoryTable
from layers.events.lifecycle import FINAL_STATES
from layers.events.model import Event
from layers.events.worktime import WorkSchedule

#: the longest description the specification allows
MAX_DESCRIPTION = 4000
#: GET requests.json: default window (days) and the most results (the specification's)
DEFAULT_WINDOW_DAYS = 90
MAX_RESULTS = 1000
_CONTACT = ("email", "device_id", "account_id", "first_name", "last_name", "phone")


class Open311Error(CimError, ValueError):
    """A GeoReport request is invalid: :attr:`errors` is the specification's error array.

    Attributes
    ----------
    status : int
        The HTTP status to answer with (400 unless said otherwise).
    errors : list of dict
        ``[{"code": status, "description": "..."}]``.
    """

    def __init__(self, descriptions: list[str], status: int = 400) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.errors = [{"code": status, "description": d} for d in descriptions]


def services(table: CategoryTable) -> list[dict[str, Any]]:
    """``services.json``: one service per subcategory (小类).

    ``group`` is the 大类 with its class (``"事件/市容环境"``); ``keywords`` are the
    class, the 大类 and the 小类 names; no service needs extra attributes
    (``metadata`` false).
    """
    out = []
    for cat in table.categories:
        for sub in cat.subcategories:
            out.append(
                {
                    "service_code": sub.code,
                    "service_name": sub.name,
                    "description": sub.description or f"{cat.cls} · {cat.name} · {sub.name}",
                    "metadata": False,
                    "type": "realtime",
                    "keywords": ",".join((cat.cls, cat.name, sub.name)),
                    "group": f"{cat.cls}/{cat.name}",
                }
            )
    return out


def status_of(event: Event) -> str:
    """``closed`` for a finished case, ``open`` for every other state."""
    return "closed" if event.state in FINAL_STATES else "open"


def _iso(when: dt.datetime | None) -> str | None:
    return None if when is None else when.isoformat(timespec="seconds")


def to_request(
    event: Event,
    table: CategoryTable,
    schedule: WorkSchedule,
    *,
    status_notes: str | None = None,
    agency_names: Mapping[str, str] | None = None,
    media_url: str | None = None,
) -> dict[str, Any]:
    """One case as a GeoReport service request.

    Parameters
    ----------
    event : Event
        A stored case (with its id).
    table, schedule
        The city's categories and working hours (for the name and the deadline).
    status_notes : str, optional
        The last audit note; the state's Chinese name is put in front.
    agency_names : mapping, optional
        Department id → display name for ``agency_responsible``.
    media_url : str, optional
        URL of the first image attachment.
    """
    sub = table.get(event.subcategory)
    notes = event.state.label + (f": {status_notes}" if status_notes else "")
    agency = None
    if event.department:
        agency = (agency_names or {}).get(event.department, event.department)
    deadline = event.clock.deadline(schedule) if event.clock is not None else None
    return {
        "service_request_id": str(event.id),
        "status": status_of(event),
        "status_notes": notes,
        "service_name": sub.name,
        "service_code": sub.code,
        "description": event.description,
        "agency_responsible": agency,
        "service_notice": None,
        "requested_datetime": _iso(event.reported_at),
        "updated_datetime": _iso(event.updated_at or event.reported_at),
        "expected_datetime": _iso(deadline),
        "address": event.address,
        "address_id": event.building,
        "zipcode": None,
        "lat": event.lat,
        "long": event.lon,
        "media_url": media_url,
        "cim_state": event.state.value,
    }


@dataclass(frozen=True)
class NewRequest:
    """A validated GeoReport POST: what is needed to file a case."""

    service_code: str
    description: str
    lat: float | None = None
    lon: float | None = None
    address_string: str | None = None
    address_id: str | None = None
    media_url: str | None = None
    contact: dict[str, str] = field(default_factory=dict)


def _number(
    params: Mapping[str, Any], key: str, low: float, high: float, errors: list[str]
) -> float | None:
    raw = params.get(key)
    if raw is None or str(raw).strip() == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        errors.append(f"{key} must be a number, not {raw!r}")
        return None
    if not math.isfinite(value) or not low <= value <= high:
        errors.append(f"{key} must be between {low:g} and {high:g}, not {raw!r}")
        return None
    return value


def parse_post(params: Mapping[str, Any], table: CategoryTable) -> NewRequest:
    """Validate the parameters of ``POST requests.json``.

    Parameters
    ----------
    params : mapping
        The form fields (strings).
    table : CategoryTable

    Returns
    -------
    NewRequest

    Raises
    ------
    Open311Error
        Every problem found, each an entry of the specification's error array.
    """
    errors: list[str] = []
    code = str(params.get("service_code") or "").strip()
    if not code:
        errors.append("service_code is required")
    elif code not in table:
        errors.append(f"service_code {code!r} is not a service of this city (see services.json)")
    lat = _number(params, "lat", -90, 90, errors)
    lon = _number(params, "long", -180, 180, errors)
    if (lat is None) != (lon is None) and not any("lat" in e or "long" in e for e in errors):
        errors.append("lat and long must be given together")
    address = str(params.get("address_string") or "").strip() or None
    address_id = str(params.get("address_id") or "").strip() or None
    if (lat is None or lon is None) and address is None and address_id is None:
        errors.append("a location is required: lat and long, or address_string, or address_id")
    description = str(params.get("description") or "").strip()
    if len(description) > MAX_DESCRIPTION:
        errors.append(f"description is longer than {MAX_DESCRIPTION} characters")
    media = str(params.get("media_url") or "").strip() or None
    if media is not None and not media.lower().startswith(("http://", "https://")):
        errors.append("media_url must be an http(s) URL")
    if errors:
        raise Open311Error(errors)
    contact = {k: str(params[k]).strip() for k in _CONTACT if str(params.get(k) or "").strip()}
    both = lat is not None and lon is not None
    return NewRequest(code, description, lat if both else None, lon if both else None,
                      address, address_id, media, contact)  # fmt: skip


@dataclass(frozen=True)
class RequestQuery:
    """A validated ``GET requests.json`` query."""

    ids: tuple[int, ...] = ()
    service_codes: tuple[str, ...] = ()
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    statuses: tuple[str, ...] = ()
    limit: int = MAX_RESULTS


def _w3c(text: str, key: str, errors: list[str]) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        errors.append(f"{key} must be a W3C date-time such as 2026-10-01T08:30:00+08:00")
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def parse_query(params: Mapping[str, Any], now: dt.datetime) -> RequestQuery:
    """Validate the parameters of ``GET requests.json``.

    Without ``service_request_id``, the window defaults to the last 90 days (or 90 days
    from ``start_date``), as the specification says; at most 1000 requests.

    Raises
    ------
    Open311Error
        On bad ids, dates, statuses or a window end before its start.
    """
    errors: list[str] = []
    ids: list[int] = []
    for part in str(params.get("service_request_id") or "").split(","):
        if part.strip():
            if part.strip().isdigit():
                ids.append(int(part))
            else:
                errors.append(f"service_request_id {part.strip()!r} is not a request id")
    codes = tuple(c.strip() for c in str(params.get("service_code") or "").split(",") if c.strip())
    statuses = tuple(s.strip() for s in str(params.get("status") or "").split(",") if s.strip())
    for s in statuses:
        if s not in ("open", "closed"):
            errors.append(f"status must be open or closed, not {s!r}")
    start = (
        _w3c(str(params["start_date"]), "start_date", errors) if params.get("start_date") else None
    )
    end = _w3c(str(params["end_date"]), "end_date", errors) if params.get("end_date") else None
    if errors:
        raise Open311Error(errors)
    if not ids:
        window = dt.timedelta(days=DEFAULT_WINDOW_DAYS)
        if start is None and end is None:
            end = now
        if start is None:
            start = end - window  # type: ignore[operator]
        if end is None:
            end = start + window
        if end < start:
            raise Open311Error(["end_date is before start_date"])
        if end - start > window:
            raise Open311Error(
                [f"start_date and end_date may not span more than {DEFAULT_WINDOW_DAYS} days"]
            )
    return RequestQuery(tuple(ids), codes, start, end, statuses)


def created_response(event_id: int, notice: str | None = None) -> list[dict[str, Any]]:
    """The body answering a successful POST."""
    return [{"service_request_id": str(event_id), "service_notice": notice, "account_id": None}]
