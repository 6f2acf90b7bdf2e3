"""The state machine table, over every pair of states."""

from __future__ import annotations

import itertools

import pytest

from agentcli.engine.fsm import TRANSITIONS, IllegalTransition, State, StateMachine, is_allowed

ALLOWED = {
    (State.IDLE, State.PLANNING),
    (State.PLANNING, State.EXECUTING),
    (State.PLANNING, State.FAILED),
    (State.EXECUTING, State.WAITING_TOOL),
    (State.EXECUTING, State.REVIEWING),
    (State.EXECUTING, State.REPLANNING),
    (State.EXECUTING, State.FAILED),
    (State.WAITING_TOOL, State.EXECUTING),
    (State.WAITING_TOOL, State.FAILED),
    (State.REVIEWING, State.EXECUTING),
    (State.REVIEWING, State.COMPLETE),
    (State.REVIEWING, State.REPLANNING),
    (State.REVIEWING, State.VERIFYING),
    (State.REVIEWING, State.FAILED),
    (State.VERIFYING, State.COMPLETE),
    (State.VERIFYING, State.REPLANNING),
    (State.VERIFYING, State.REVIEWING),  # the verify command could not run: the reviewer judges
    (State.VERIFYING, State.FAILED),
    (State.REPLANNING, State.EXECUTING),
    (State.REPLANNING, State.FAILED),
    (State.COMPLETE, State.IDLE),
    (State.FAILED, State.IDLE),
}
ALL_PAIRS = list(itertools.product(State, State))


def test_table_is_exactly_the_spec() -> None:
    assert {(s, d) for s, dsts in TRANSITIONS.items() for d in dsts} == ALLOWED
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize(("src", "dst"), sorted(ALLOWED))
def test_allowed_pair(src: State, dst: State) -> None:
    seen = []
    sm = StateMachine(src, clock=lambda: 42.0)
    sm.listeners.append(seen.append)
    t = sm.to(dst, "because")
    assert sm.state == dst and is_allowed(src, dst)
    assert (t.src, t.dst, t.time, t.reason) == (src, dst, 42.0, "because")
    assert seen == [t] and sm.history == [t]


@pytest.mark.parametrize(("src", "dst"), sorted(set(ALL_PAIRS) - ALLOWED))
def test_disallowed_pair(src: State, dst: State) -> None:
    sm = StateMachine(src)
    with pytest.raises(IllegalTransition):
        sm.to(dst)
    assert sm.state == src and sm.history == []


def test_a_full_run() -> None:
    sm = StateMachine()
    for dst in (State.PLANNING, State.EXECUTING, State.WAITING_TOOL, State.EXECUTING, State.REVIEWING,
                State.REPLANNING, State.EXECUTING, State.REVIEWING, State.COMPLETE):
        sm.to(dst)
    assert sm.terminal
    sm.to(State.IDLE)
    assert [t.dst for t in sm.history][-1] == State.IDLE
