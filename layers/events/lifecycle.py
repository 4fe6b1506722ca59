"""The case lifecycle of GB/T 30428 / CJ/T 315 as a role-based state machine.

Main line: 信息采集 (reported) → 立案 (filed) or 注销 (cancelled) → 派遣 (dispatched)
→ 处理中 (handling) → 处理反馈 (handled) → 核查 (checked) → 结案 (closed) → 综合评价
(evaluated). Exception branches, each needing the 值班长's approval or the 派遣员's
decision: 延期 (extension_requested → approved or refused), 回退/改派 (the department
returns a wrongly dispatched case to the 派遣员, who sends it elsewhere), 挂账
(deferral_requested → deferred, later resumed) and 返工 (the check finds it not done:
back to handling).

Why a declarative table and not a state-machine library: python-statemachine 3.2.2
(the well-kept candidate; ``transitions`` has the same per-instance design) was tried
and measured on this machine: building one machine of 5 states took 2.5 ms and one
``send`` 1.4 ms. A case's state lives in a store row, so every transition would build
a machine around it, and the target is 200 transitions/s with the audit row inside the
same transaction: the library would cost more than the transaction. The table below
is plain data: :func:`allowed_actions` and the 409 message naming the next actions
for the caller's role are lookups in it, and the tests walk every (state, action,
role) triple.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cim.errors import CimError


class State(StrEnum):
    """The states of a case (values are stored; labels are the standard's words)."""

    REPORTED = "reported"
    FILED = "filed"
    CANCELLED = "cancelled"
    DISPATCHED = "dispatched"
    HANDLING = "handling"
    EXTENSION_REQUESTED = "extension_requested"
    DEFERRAL_REQUESTED = "deferral_requested"
    DEFERRED = "deferred"
    HANDLED = "handled"
    CHECKED = "checked"
    CLOSED = "closed"
    EVALUATED = "evaluated"

    @property
    def label(self) -> str:
        """The Chinese name of the state."""
        return STATE_LABELS[self]


STATE_LABELS: dict[State, str] = {
    State.REPORTED: "信息采集",
    State.FILED: "立案",
    State.CANCELLED: "注销",
    State.DISPATCHED: "派遣",
    State.HANDLING: "处理中",
    State.EXTENSION_REQUESTED: "延期申请",
    State.DEFERRAL_REQUESTED: "挂账申请",
    State.DEFERRED: "挂账",
    State.HANDLED: "处理反馈",
    State.CHECKED: "核查",
    State.CLOSED: "结案",
    State.EVALUATED: "综合评价",
}

#: states in which a case is finished (Open311 ``closed``)
FINAL_STATES = frozenset({State.CANCELLED, State.CLOSED, State.EVALUATED})


class Role(StrEnum):
    """Who acts on a case."""

    OPERATOR = "operator"  # 受理员: takes reports in
    SUPERVISOR = "supervisor"  # 值班长: files, cancels, approves, closes
    DISPATCHER = "dispatcher"  # 派遣员: sends a case to a department
    HANDLER = "handler"  # the assigned department's handler
    INSPECTOR = "inspector"  # 核查员: checks the work on site
    ADMIN = "admin"  # may act in any role

    @property
    def label(self) -> str:
        """The Chinese name of the role."""
        return ROLE_LABELS[self]


ROLE_LABELS: dict[Role, str] = {
    Role.OPERATOR: "受理员",
    Role.SUPERVISOR: "值班长",
    Role.DISPATCHER: "派遣员",
    Role.HANDLER: "处置部门",
    Role.INSPECTOR: "核查员",
    Role.ADMIN: "管理员",
}

#: what a transition does to the time limit: start the target state's stage clock,
#: keep it, pause or resume it, lengthen it (approved 延期), or stop it (finished)
CLOCK_EFFECTS = ("start", "keep", "pause", "resume", "extend", "stop")

#: the stage (see :data:`layers.events.categories.STAGES`) whose clock runs in each state
STAGE_OF_STATE: dict[State, str | None] = {
    State.REPORTED: "file",
    State.FILED: "dispatch",
    State.DISPATCHED: "handle",
    State.HANDLING: "handle",
    State.EXTENSION_REQUESTED: "handle",
    State.DEFERRAL_REQUESTED: "handle",
    State.DEFERRED: "handle",
    State.HANDLED: "check",
    State.CHECKED: "close",
    State.CANCELLED: None,
    State.CLOSED: None,
    State.EVALUATED: None,
}


@dataclass(frozen=True)
class Transition:
    """One action of the lifecycle.

    Attributes
    ----------
    action : str
        Its name in the API (``dispatch``, ``approve_extension``…).
    label : str
        The standard's word for it.
    sources : frozenset of State
        States it may be taken from.
    target : State
    roles : frozenset of Role
        Who may take it (an admin always may).
    clock : str
        Its effect on the time limit (:data:`CLOCK_EFFECTS`).
    note_required : bool
        Whether a note (the reason) must accompany it.
    needs : tuple of str
        Parameters it needs: ``department`` (dispatch), ``extension`` (延期 time).
    """

    action: str
    label: str
    sources: frozenset[State]
    target: State
    roles: frozenset[Role]
    clock: str = "start"
    note_required: bool = False
    needs: tuple[str, ...] = ()


def _t(action: str, label: str, sources: str, target: State, roles: str, **kw: Any) -> Transition:
    return Transition(
        action,
        label,
        frozenset(State(s) for s in sources.split()),
        target,
        frozenset(Role(r) for r in roles.split()),
        **kw,
    )


_HANDLE_STATES = "dispatched handling"
TRANSITIONS: tuple[Transition, ...] = (
    _t("file", "立案", "reported", State.FILED, "supervisor operator"),
    _t("cancel", "注销", "reported", State.CANCELLED, "supervisor", clock="stop",
       note_required=True),
    _t("dispatch", "派遣", "filed", State.DISPATCHED, "dispatcher", needs=("department",)),
    _t("redispatch", "改派", _HANDLE_STATES, State.DISPATCHED, "dispatcher",
       note_required=True, needs=("department",)),
    _t("accept", "签收", "dispatched", State.HANDLING, "handler", clock="keep"),
    _t("return", "回退", _HANDLE_STATES, State.FILED, "handler", note_required=True),
    _t("request_extension", "延期申请", "handling", State.EXTENSION_REQUESTED, "handler",
       clock="keep", note_required=True, needs=("extension",)),
    _t("approve_extension", "延期批准", "extension_requested", State.HANDLING, "supervisor",
       clock="extend"),
    _t("refuse_extension", "延期不批准", "extension_requested", State.HANDLING, "supervisor",
       clock="keep", note_required=True),
    _t("request_deferral", "挂账申请", "handling", State.DEFERRAL_REQUESTED, "handler",
       clock="keep", note_required=True),
    _t("approve_deferral", "挂账批准", "deferral_requested", State.DEFERRED, "supervisor",
       clock="pause"),
    _t("refuse_deferral", "挂账不批准", "deferral_requested", State.HANDLING, "supervisor",
       clock="keep", note_required=True),
    _t("resume", "恢复处理", "deferred", State.HANDLING, "supervisor handler", clock="resume"),
    _t("report_done", "处理反馈", "handling", State.HANDLED, "handler"),
    _t("check", "核查通过", "handled", State.CHECKED, "inspector"),
    _t("rework", "返工", "handled", State.HANDLING, "inspector supervisor", note_required=True),
    _t("close", "结案", "checked", State.CLOSED, "supervisor", clock="stop"),
    _t("evaluate", "综合评价", "closed", State.EVALUATED, "supervisor", clock="stop"),
)  # fmt: skip

BY_ACTION: dict[str, Transition] = {t.action: t for t in TRANSITIONS}


class EventConflictError(CimError):
    """A case cannot change that way now (the server answers 409 Conflict)."""


class IllegalTransitionError(EventConflictError):
    """The action is not possible from the case's state, or not for the caller's role.

    Attributes
    ----------
    state : State
    action : str
    role : Role
    allowed : list of str
        The actions this role may take from this state.
    """

    def __init__(
        self, message: str, *, state: State, action: str, role: Role, allowed: list[str]
    ) -> None:
        super().__init__(message)
        self.state, self.action, self.role, self.allowed = state, action, role, allowed


class RoleNotAllowedError(IllegalTransitionError):
    """The action exists from this state but the caller's role may not take it
    (or, for a handler, the case is assigned to another department)."""


class TransitionInputError(CimError, ValueError):
    """A legal action is missing what it needs (a note, a department, an extension)."""


class StaleEventError(EventConflictError):
    """The case changed since the caller read it (another user acted first)."""


def _may(t: Transition, role: Role) -> bool:
    return role is Role.ADMIN or role in t.roles


def allowed_actions(state: State | str, role: Role | str) -> list[str]:
    """The actions ``role`` may take on a case in ``state``, in lifecycle order."""
    state, role = State(state), Role(role)
    return [t.action for t in TRANSITIONS if state in t.sources and _may(t, role)]


def _describe(actions: list[str]) -> str:
    if not actions:
        return "none"
    return ", ".join(f"{a} ({BY_ACTION[a].label})" for a in actions)


def check_transition(
    state: State | str,
    action: str,
    role: Role | str,
    *,
    acting_department: str | None = None,
    assigned_department: str | None = None,
) -> Transition:
    """The transition ``action`` from ``state`` for ``role``, or an error naming the options.

    Parameters
    ----------
    state : State or str
        The case's current state.
    action : str
        The action asked for.
    role : Role or str
    acting_department : str, optional
        For a handler: the department acting. It must be the case's assigned one.
    assigned_department : str, optional
        The department the case is assigned to.

    Raises
    ------
    IllegalTransitionError
        The action is unknown or not possible from ``state`` (409).
    RoleNotAllowedError
        Possible from ``state`` but not for ``role`` or not for this department.
    """
    state, role = State(state), Role(role)
    allowed = allowed_actions(state, role)
    t = BY_ACTION.get(action)
    here = f"case in state {state.value} ({state.label})"
    if t is None or state not in t.sources:
        what = (
            f"unknown action {action!r}" if t is None else f"cannot {action} ({t.label}) a {here}"
        )
        raise IllegalTransitionError(
            f"{what}; allowed for {role.value} ({role.label}): {_describe(allowed)}",
            state=state, action=action, role=role, allowed=allowed,
        )  # fmt: skip
    if not _may(t, role):
        who = "/".join(f"{r.value} ({r.label})" for r in sorted(t.roles))
        raise RoleNotAllowedError(
            f"{action} ({t.label}) of a {here} is for {who}; allowed for {role.value} "
            f"({role.label}): {_describe(allowed)}",
            state=state, action=action, role=role, allowed=allowed,
        )  # fmt: skip
    if role is Role.HANDLER and acting_department != assigned_department:
        raise RoleNotAllowedError(
            f"the case is assigned to department {assigned_department!r}, not "
            f"{acting_department!r}: only its handlers may {action} ({t.label}) it",
            state=state, action=action, role=role, allowed=[],
        )  # fmt: skip
    return t


@dataclass(frozen=True)
class AuditRecord:
    """One line of a case's audit trail: who did what, as whom, when, and why."""

    event_id: int | None
    actor: str
    role: str
    at: dt.datetime
    action: str
    from_state: str | None
    to_state: str
    note: str = ""
    data: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The record as JSON-ready values (ISO 8601 time)."""
        return {
            "event_id": self.event_id,
            "actor": self.actor,
            "role": self.role,
            "at": self.at.isoformat(),
            "action": self.action,
            "label": BY_ACTION[self.action].label if self.action in BY_ACTION else self.action,
            "from": self.from_state,
            "to": self.to_state,
            "note": self.note,
            "data": self.data or {},
        }
