"""The lifecycle table: every (state, action, role) triple, the messages, the graph."""

from __future__ import annotations

import itertools

import pytest

from cim.errors import CimError
from layers.events.lifecycle import (
    BY_ACTION,
    FINAL_STATES,
    STAGE_OF_STATE,
    TRANSITIONS,
    EventConflictError,
    IllegalTransitionError,
    Role,
    RoleNotAllowedError,
    State,
    allowed_actions,
    check_transition,
)

#: the expected table, written out independently of the module: action → (sources, target, roles)
EXPECTED = {
    "file": ({"reported"}, "filed", {"supervisor", "operator"}),
    "cancel": ({"reported"}, "cancelled", {"supervisor"}),
    "dispatch": ({"filed"}, "dispatched", {"dispatcher"}),
    "redispatch": ({"dispatched", "handling"}, "dispatched", {"dispatcher"}),
    "accept": ({"dispatched"}, "handling", {"handler"}),
    "return": ({"dispatched", "handling"}, "filed", {"handler"}),
    "request_extension": ({"handling"}, "extension_requested", {"handler"}),
    "approve_extension": ({"extension_requested"}, "handling", {"supervisor"}),
    "refuse_extension": ({"extension_requested"}, "handling", {"supervisor"}),
    "request_deferral": ({"handling"}, "deferral_requested", {"handler"}),
    "approve_deferral": ({"deferral_requested"}, "deferred", {"supervisor"}),
    "refuse_deferral": ({"deferral_requested"}, "handling", {"supervisor"}),
    "resume": ({"deferred"}, "handling", {"supervisor", "handler"}),
    "report_done": ({"handling"}, "handled", {"handler"}),
    "check": ({"handled"}, "checked", {"inspector"}),
    "rework": ({"handled"}, "handling", {"inspector", "supervisor"}),
    "close": ({"checked"}, "closed", {"supervisor"}),
    "evaluate": ({"closed"}, "evaluated", {"supervisor"}),
}


def test_table_matches_the_expected_lifecycle() -> None:
    got = {
        t.action: ({s.value for s in t.sources}, t.target.value, {r.value for r in t.roles})
        for t in TRANSITIONS
    }
    assert got == EXPECTED


@pytest.mark.parametrize(
    ("state", "action"), list(itertools.product(list(State), sorted(EXPECTED)))
)
def test_every_triple(state: State, action: str) -> None:
    for role in Role:
        _check_triple(state, action, role)


def _check_triple(state: State, action: str, role: Role) -> None:
    sources, target, roles = EXPECTED[action]
    legal_from_state = state.value in sources
    permitted = role is Role.ADMIN or role.value in roles
    kw = {"acting_department": "water", "assigned_department": "water"}
    if legal_from_state and permitted:
        assert check_transition(state, action, role, **kw).target.value == target
        assert action in allowed_actions(state, role)
        return
    err = RoleNotAllowedError if legal_from_state else IllegalTransitionError
    with pytest.raises(err) as info:
        check_transition(state, action, role, **kw)
    exc = info.value
    assert type(exc) is err, (state, action, role)
    assert isinstance(exc, EventConflictError) and isinstance(exc, CimError)
    assert exc.allowed == allowed_actions(state, role)
    assert action not in exc.allowed
    # the message names every allowed next action for this role (or says none)
    for a in exc.allowed:
        assert f"{a} ({BY_ACTION[a].label})" in exc.message
    if not exc.allowed:
        assert exc.message.endswith("none")


def test_message_example() -> None:
    with pytest.raises(IllegalTransitionError) as info:
        check_transition(
            "handling", "close", "handler", acting_department="w", assigned_department="w"
        )
    assert "cannot close (结案) a case in state handling (处理中)" in str(info.value)
    assert "return (回退)" in str(info.value) and "report_done (处理反馈)" in str(info.value)
    with pytest.raises(IllegalTransitionError, match="unknown action 'fly'"):
        check_transition("filed", "fly", "admin")


def test_handler_of_another_department_is_refused() -> None:
    with pytest.raises(RoleNotAllowedError, match="assigned to department 'water'"):
        check_transition("dispatched", "accept", "handler", acting_department="police",
                         assigned_department="water")  # fmt: skip
    # the admin and the other roles are not bound to the department
    assert check_transition("dispatched", "accept", "admin").target is State.HANDLING


def test_graph_every_state_reachable_and_final_states_final() -> None:
    reach = {State.REPORTED}
    frontier = [State.REPORTED]
    while frontier:
        s = frontier.pop()
        for t in TRANSITIONS:
            if s in t.sources and t.target not in reach:
                reach.add(t.target)
                frontier.append(t.target)
    assert reach == set(State)
    for s in FINAL_STATES - {State.CLOSED}:
        assert allowed_actions(s, Role.ADMIN) == []
    assert allowed_actions(State.CLOSED, Role.ADMIN) == ["evaluate"]
    assert all(STAGE_OF_STATE[s] is None for s in FINAL_STATES)
    assert all(STAGE_OF_STATE[s] is not None for s in set(State) - FINAL_STATES)
