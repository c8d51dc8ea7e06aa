"""The life of a case (an alert or a flagged scale a supervisor must close), as one table.

::

    open ──acknowledge──▶ acknowledged ──assign──▶ assigned ──close(outcome)──▶ closed
                              │                      ▲  │
                              └──close(outcome)──────┼──┘ (assign again: another inspector)
                                                     └──assign

Every state takes ``note`` (a remark, the state unchanged), ``occurrence`` (the ingest saw the same
alert or the same scale and rule flagged again: attached, the state unchanged) and ``base_ack`` (the
planting base acknowledged its rectification: recorded, the state unchanged), except ``closed``, which is
final: a later occurrence opens a new case (the service does that), a late base acknowledgement is kept
in the history only. A case is closed from ``acknowledged`` (a false alarm needs no inspector) or
``assigned``, never straight from ``open``: someone has looked at it first. A planting-base alert closes
only once the base's rectification acknowledgement is recorded (:data:`NEEDS_BASE_ACK`).

:func:`step` is the only way a state changes; whatever it is given, it answers a state of :data:`STATES`
or raises :class:`IllegalTransition` (a :class:`~device_registry.errors.Conflict`, HTTP 409) saying why.
"""

from __future__ import annotations

from enum import StrEnum

from .errors import IllegalTransition


class CaseState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    CLOSED = "closed"


class CaseInput(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    CLOSE = "close"
    NOTE = "note"
    OCCURRENCE = "occurrence"
    BASE_ACK = "base_ack"


class Outcome(StrEnum):
    """How a case ended."""

    INSPECTED_CONFIRMED = "inspected_confirmed"  # inspected on site; the finding holds (查实)
    RECTIFIED = "rectified"  # the stall or base put it right (整改)
    FALSE_ALARM = "false_alarm"  # nothing was wrong (误报)


S, E = CaseState, CaseInput
STATES = frozenset(CaseState)

#: (state, input) → next state; a pair not in the table is refused
TRANSITIONS: dict[tuple[CaseState, CaseInput], CaseState] = {
    (S.OPEN, E.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, E.ASSIGN): S.ASSIGNED,
    (S.ASSIGNED, E.ASSIGN): S.ASSIGNED,
    (S.ACKNOWLEDGED, E.CLOSE): S.CLOSED,
    (S.ASSIGNED, E.CLOSE): S.CLOSED,
    **{(s, i): s for s in (S.OPEN, S.ACKNOWLEDGED, S.ASSIGNED) for i in (E.NOTE, E.OCCURRENCE, E.BASE_ACK)},
    (S.CLOSED, E.NOTE): S.CLOSED,  # a remark after the fact (a court date, a repeat visit) is still history
    (S.CLOSED, E.BASE_ACK): S.CLOSED,  # late: kept in the history, nothing changes
}

#: why a pair is refused, in words for the supervisor (the rest: "cannot <input> a case that is <state>")
_REFUSALS: dict[tuple[CaseState, CaseInput], str] = {
    (S.OPEN, E.ASSIGN): "acknowledge the case before assigning it",
    (S.OPEN, E.CLOSE): "acknowledge the case before closing it",
    (S.ACKNOWLEDGED, E.ACKNOWLEDGE): "the case is acknowledged already",
    (S.ASSIGNED, E.ACKNOWLEDGE): "the case is acknowledged already (and assigned)",
    (S.CLOSED, E.OCCURRENCE): "the case is closed; a new occurrence opens a new case",
}

#: the case rules (alert kinds) whose cases close only after the base's rectification acknowledgement
NEEDS_BASE_ACK = frozenset({"sensor_threshold", "sensor_fault"})


def step(
    state: CaseState | str,
    event: CaseInput | str,
    *,
    needs_base_ack: bool = False,
    base_acknowledged: bool = False,
    outcome: Outcome | str | None = None,
) -> CaseState:
    """The state after ``event`` in ``state``; :class:`IllegalTransition` if the table or a rule refuses it.

    ``close`` needs an ``outcome``; with ``needs_base_ack`` (a planting-base alert) it also needs
    ``base_acknowledged``."""
    try:
        s, i = CaseState(state), CaseInput(event)
    except ValueError as exc:
        raise IllegalTransition(f"no such case state or step: {state!r}, {event!r}") from exc
    after = TRANSITIONS.get((s, i))
    if after is None:
        if s == S.CLOSED:
            raise IllegalTransition(_REFUSALS.get((s, i), f"the case is closed: it cannot {i.value} any more"))
        raise IllegalTransition(_REFUSALS.get((s, i), f"cannot {i.value} a case that is {s.value}"))
    if i == E.CLOSE:
        if outcome is None:
            raise IllegalTransition("closing a case needs an outcome: " + ", ".join(o.value for o in Outcome))
        try:
            Outcome(outcome)
        except ValueError as exc:
            raise IllegalTransition(
                f"no such outcome {outcome!r}: one of " + ", ".join(o.value for o in Outcome)
            ) from exc
        if needs_base_ack and not base_acknowledged:
            raise IllegalTransition(
                "the planting base has not acknowledged its rectification yet: a planting-base alert closes only "
                "after the base's acknowledgement (its agent's ack_alert) is recorded on the case"
            )
    return after
