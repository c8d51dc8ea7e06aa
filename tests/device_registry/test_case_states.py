"""The case state table: every (state, input) pair ends in a legal state or our own error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_registry.case_states import STATES, TRANSITIONS, CaseInput, CaseState, Outcome, step
from device_registry.errors import Conflict, IllegalTransition

S, E = CaseState, CaseInput
anything = st.one_of(st.sampled_from(list(CaseState)), st.text(max_size=12))
inputs = st.one_of(st.sampled_from(list(CaseInput)), st.text(max_size=12))
outcomes = st.one_of(st.none(), st.sampled_from(list(Outcome)), st.text(max_size=12))


@given(anything, inputs, st.booleans(), st.booleans(), outcomes)
def test_any_state_and_input_end_in_a_legal_state_or_our_error(
    state: str, event: str, needs: bool, acked: bool, outcome: str | None
) -> None:
    try:
        after = step(state, event, needs_base_ack=needs, base_acknowledged=acked, outcome=outcome)
    except IllegalTransition as exc:
        assert isinstance(exc, Conflict) and str(exc)  # answered 409 with a reason
        return
    assert after in STATES
    assert (CaseState(state), CaseInput(event)) in TRANSITIONS


@given(st.lists(st.tuples(st.sampled_from(list(CaseInput)), outcomes, st.booleans()), max_size=30))
def test_closed_is_final_and_reached_only_by_close_with_an_outcome(
    steps: list[tuple[CaseInput, str | None, bool]],
) -> None:
    state = S.OPEN
    acknowledged_once = False
    for event, outcome, acked in steps:
        before = state
        try:
            state = step(state, event, needs_base_ack=True, base_acknowledged=acked, outcome=outcome)
        except IllegalTransition:
            continue
        acknowledged_once |= event == E.ACKNOWLEDGE
        if before == S.CLOSED:
            assert state == S.CLOSED
        if state == S.CLOSED and before != S.CLOSED:
            assert event == E.CLOSE and acked and outcome in set(Outcome) and acknowledged_once


def test_the_refusals_say_what_to_do() -> None:
    with pytest.raises(IllegalTransition, match="acknowledge the case before closing"):
        step(S.OPEN, E.CLOSE, outcome="rectified")
    with pytest.raises(IllegalTransition, match="needs an outcome"):
        step(S.ASSIGNED, E.CLOSE)
    with pytest.raises(IllegalTransition, match="not acknowledged its rectification"):
        step(S.ASSIGNED, E.CLOSE, outcome="rectified", needs_base_ack=True)
    assert step(S.ASSIGNED, E.CLOSE, outcome="rectified", needs_base_ack=True, base_acknowledged=True) == S.CLOSED
    with pytest.raises(IllegalTransition, match="new occurrence opens a new case"):
        step(S.CLOSED, E.OCCURRENCE)
    with pytest.raises(IllegalTransition, match="no such case state"):
        step("reopened", E.NOTE)
    assert step(S.ACKNOWLEDGED, E.CLOSE, outcome=Outcome.FALSE_ALARM) == S.CLOSED
    assert step(S.ASSIGNED, E.ASSIGN) == S.ASSIGNED
