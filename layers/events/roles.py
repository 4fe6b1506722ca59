"""Who may act on cases: event roles held by department tokens.

A token identifies a department (:mod:`layers.departments`). The live store knows two
kinds of department, ``admin`` and ``department``; the case roles live here:

- an **admin** department acts as :attr:`~layers.events.lifecycle.Role.ADMIN` (any role);
- a department may be **granted** the command center's roles 受理员 ``operator``,
  值班长 ``supervisor``, 派遣员 ``dispatcher`` and 核查员 ``inspector`` (table
  ``event_roles``, :func:`set_roles`): typically the command center's own department;
- **every** non-admin department is the ``handler`` (处置部门) of the cases dispatched to
  it, and of those only.

A caller holding several roles does not name one: :func:`pick_role` takes the first of
its roles (in the order above) that may take the action now, so the API needs no role
switch; a ``role`` given explicitly must be one the caller holds.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cim.errors import InputDataError
from layers.events.lifecycle import (
    BY_ACTION,
    TRANSITIONS,
    IllegalTransitionError,
    Role,
    RoleNotAllowedError,
    State,
)
from layers.events.model import Actor, Event
from layers.store.base import Department, Store

#: roles a department can be granted, in the order :func:`pick_role` tries them
GRANTABLE = (Role.OPERATOR, Role.SUPERVISOR, Role.DISPATCHER, Role.INSPECTOR)
#: the transitions possible from each state, in lifecycle order (the detail's actions
#: are asked for on every reply: only these are tried)
_FROM_STATE: dict[State, tuple[Any, ...]] = {
    s: tuple(t for t in TRANSITIONS if s in t.sources) for s in State
}


def set_roles(store: Store, department: str, roles: Sequence[str]) -> list[str]:
    """Replace the event roles granted to ``department``; the roles now held.

    The events tables must exist (:class:`layers.events.store.EventStore` creates them).

    Raises
    ------
    InputDataError
        A role that cannot be granted (``handler`` and ``admin`` are not granted: every
        department handles its own cases, and admin is the department's kind).
    """
    wanted = []
    for r in roles:
        try:
            role = Role(r)
        except ValueError:
            role = None
        if role not in GRANTABLE:
            names = ", ".join(g.value for g in GRANTABLE)
            raise InputDataError(f"cannot grant event role {r!r}; one of {names}")
        if role not in wanted:
            wanted.append(role)
    with store.transaction(write=True) as tx:
        tx.execute("DELETE FROM event_roles WHERE department = ?", [department])
        tx.executemany(
            "INSERT INTO event_roles (department, role) VALUES (?, ?)",
            [(department, r.value) for r in wanted],
        )
    _GRANTS.clear()  # this process sees the change at once
    return [r.value for r in GRANTABLE if r in wanted]


#: how long a department's granted roles are remembered (every write request asks for
#: them). :func:`set_roles` forgets them at once in its own process; another server
#: process sharing the store sees a change within this many seconds
GRANTS_CACHE_SECONDS = 5.0


class _Grants:
    """``(store, department)`` → roles until an expiry, thread-safe. A store is held
    weakly and checked on a hit: a new store at a freed one's address misses."""

    def __init__(self) -> None:
        self._items: dict[tuple[int, str], tuple[float, Any, tuple[Role, ...]]] = {}
        self._lock = threading.Lock()

    def get(self, store: Store, department: str) -> tuple[Role, ...] | None:
        hit = self._items.get((id(store), department))
        if hit is None or hit[0] <= time.monotonic() or hit[1]() is not store:
            return None
        return hit[2]

    def put(self, store: Store, department: str, roles: tuple[Role, ...]) -> None:
        expiry = time.monotonic() + GRANTS_CACHE_SECONDS
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[(id(store), department)] = (expiry, weakref.ref(store), roles)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_GRANTS = _Grants()


def granted_roles(store: Store, department: str) -> list[Role]:
    """The roles granted to ``department``, in :data:`GRANTABLE` order (remembered for
    :data:`GRANTS_CACHE_SECONDS`)."""
    cached = _GRANTS.get(store, department)
    if cached is not None:
        return list(cached)
    with store.transaction() as tx:
        rows = tx.execute("SELECT role FROM event_roles WHERE department = ?", [department])
    held = {r[0] for r in rows}
    roles = tuple(r for r in GRANTABLE if r.value in held)
    _GRANTS.put(store, department, roles)
    return list(roles)


def all_grants(store: Store) -> dict[str, list[str]]:
    """Every department with granted roles: ``{department: [role, ...]}``."""
    with store.transaction() as tx:
        rows = tx.execute("SELECT department, role FROM event_roles ORDER BY department")
    out: dict[str, list[str]] = {}
    for dept, role in rows:
        out.setdefault(dept, []).append(role)
    order = [r.value for r in GRANTABLE]
    return {d: sorted(rs, key=order.index) for d, rs in out.items()}


@dataclass(frozen=True)
class Caller:
    """A department token's holder acting on cases.

    Attributes
    ----------
    department : Department
    roles : tuple of Role
        In the order tried: ``(ADMIN,)`` for an admin, else the granted roles then
        ``HANDLER``.
    user : str or None
        A person's name sent with the request (kept in the audit trail).
    """

    department: Department
    roles: tuple[Role, ...]
    user: str | None = None

    @property
    def name(self) -> str:
        """The audit trail's ``actor``: ``department`` or ``department/user``."""
        return f"{self.department.id}/{self.user}" if self.user else self.department.id

    def actor(self, role: Role) -> Actor:
        """This caller acting as ``role``."""
        return Actor(self.name, role, self.department.id)

    @property
    def reporter_role(self) -> Role:
        """The role recorded when this caller reports a case (its first role)."""
        return self.roles[0]


def caller_for(store: Store, department: Department, user: str | None = None) -> Caller:
    """The :class:`Caller` of an authenticated department."""
    if department.is_admin:
        return Caller(department, (Role.ADMIN,), user)
    return Caller(department, (*granted_roles(store, department.id), Role.HANDLER), user)


def _may(role: Role, action: str, event: Event, department: str) -> bool:
    t = BY_ACTION[action]
    if event.state not in t.sources:
        return False
    if role is Role.ADMIN:
        return True
    if role not in t.roles:
        return False
    return role is not Role.HANDLER or event.department == department


def actions_for(event: Event, caller: Caller) -> list[dict[str, Any]]:
    """What ``caller`` may do to ``event`` now, in lifecycle order.

    Returns
    -------
    list of dict
        ``{"action", "label", "role", "note_required", "needs"}`` each; ``role`` is the
        role :func:`pick_role` would act in.
    """
    out = []
    for t in _FROM_STATE.get(State(event.state), ()):
        role = next(
            (r for r in caller.roles if _may(r, t.action, event, caller.department.id)), None
        )
        if role is not None:
            out.append(
                {
                    "action": t.action,
                    "label": t.label,
                    "role": role.value,
                    "note_required": t.note_required,
                    "needs": list(t.needs),
                }
            )
    return out


def pick_role(event: Event, action: str, caller: Caller, role: str | None = None) -> Role:
    """The role in which ``caller`` takes ``action`` on ``event``.

    Parameters
    ----------
    event : Event
    action : str
    caller : Caller
    role : str, optional
        A role asked for explicitly; it must be one of the caller's.

    Raises
    ------
    IllegalTransitionError
        The action is unknown or impossible from the case's state (409); the message
        and :attr:`~IllegalTransitionError.allowed` name what the caller may do now.
    RoleNotAllowedError
        Possible from this state, but not for any of the caller's roles (403).
    """
    roles = caller.roles
    if role is not None:
        try:
            asked = Role(role)
        except ValueError:
            raise InputDataError(f"unknown role {role!r}") from None
        if asked not in roles:
            allowed = [a["action"] for a in actions_for(event, caller)]
            raise RoleNotAllowedError(
                f"department {caller.department.id!r} does not hold the role {asked.value} "
                f"({asked.label}); its roles: {', '.join(r.value for r in roles)}",
                state=event.state, action=action, role=asked, allowed=allowed,
            )  # fmt: skip
        roles = (asked,)
    for r in roles:
        if action in BY_ACTION and _may(r, action, event, caller.department.id):
            return r
    allowed = [a["action"] for a in actions_for(event, caller)]
    described = ", ".join(f"{a} ({BY_ACTION[a].label})" for a in allowed) or "none"
    state = State(event.state)
    here = f"a case in state {state.value} ({state.label})"
    t = BY_ACTION.get(action)
    if t is None or state not in t.sources:
        what = f"unknown action {action!r}" if t is None else f"cannot {action} ({t.label}) {here}"
        raise IllegalTransitionError(
            f"{what}; allowed for {caller.department.id}: {described}",
            state=state, action=action, role=roles[0], allowed=allowed,
        )  # fmt: skip
    who = "/".join(f"{r.value} ({r.label})" for r in sorted(t.roles))
    if Role.HANDLER in t.roles and Role.HANDLER in roles and event.department:
        who += f" of department {event.department!r}"
    raise RoleNotAllowedError(
        f"{action} ({t.label}) of {here} is for {who}, not for {caller.department.id}; "
        f"allowed for {caller.department.id}: {described}",
        state=state, action=action, role=roles[0], allowed=allowed,
    )  # fmt: skip
