"""What goes in and out of the case API (bodies, CLI ``--json``). Bounded like :mod:`.schemas`: an event
the ingest sends is refused with a 422 before it reaches the database if a field breaks its column."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from device_profiles.records import MAX_SAFE_INT
from device_profiles.topics import DEVICE_ID_RE

from .case_states import CaseState, Outcome
from .wire_types import JSON_INTEGER, PRINTABLE, Code, Reason, Text

Key = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=PRINTABLE)]
Millis = Annotated[int, Field(ge=0, le=MAX_SAFE_INT), JSON_INTEGER]
# a number within a float's range: JSON allows 1e400 (or an integer of 400 digits), which no float holds
Number = Annotated[float, Field(ge=-1e308, le=1e308, allow_inf_nan=False)]
Scalar = Annotated[str, StringConstraints(max_length=500)] | Number | bool | None


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _EventIn(_In):
    event_key: Key = Field(
        description="makes the event idempotent: a key seen before changes nothing (a redelivery after a lost "
        "answer). The ingest sends flag:<device>:<seq>:<rule>, alert:<alert id>, base_ack:<alert id>"
    )
    device: Annotated[str, StringConstraints(pattern=DEVICE_ID_RE.pattern)] = Field(description="who reported it")
    ts: Millis = Field(description="when it happened (ms since the epoch): the record's time, or the ack's")


class _FindingIn(_EventIn):
    rule: Code
    severity: Code | None = None
    seq: Millis | None = None
    summary: Reason | None = None
    detail: dict[Annotated[str, StringConstraints(min_length=1, max_length=64)], Scalar] = Field(
        default_factory=dict, max_length=50, description="the evidence, in the alert's or flag's own terms"
    )


class FlagEventIn(_FindingIn):
    """The anti-cheat engine flagged a scale (``rule``): opens the scale's case for that rule, or attaches."""

    type: Literal["flag"]


class AlertEventIn(_FindingIn):
    """An alert (``rule`` is its kind: sensor_threshold, sensor_fault, rapid_test_positive, …): opens its case."""

    type: Literal["alert"]
    alert_id: Key
    subject: Key | None = Field(None, description="the stall's scale or the base the alert is about, if known")


class BaseAckEventIn(_EventIn):
    """A planting base acknowledged an alert (its agent's ack_alert reply): recorded on the alert's case."""

    type: Literal["base_ack"]
    alert_id: Key
    by: Text | None = Field(None, description="who acknowledged at the base")


CaseEventIn = Annotated[FlagEventIn | AlertEventIn | BaseAckEventIn, Field(discriminator="type")]


class CaseEventsIn(_In):
    events: list[CaseEventIn] = Field(min_length=1, max_length=500)


Result = Literal["opened", "attached", "recorded", "duplicate", "unmatched", "unknown_device"]


class CaseEventResult(BaseModel):
    """What became of one event. ``unmatched``: a base_ack for an alert no case of that device holds;
    ``unknown_device``: a device the registry does not have (no place, so no one's scope): neither is worth
    sending again."""

    event_key: str
    result: Result
    case_id: int | None = None
    state: CaseState | None = None


class CaseEventsOut(BaseModel):
    results: list[CaseEventResult]


class AckIn(_In):
    note: Reason | None = None


class AssignIn(_In):
    to: Text = Field(description="the inspector (执法人员) or team sent to the place")
    note: Reason | None = None


class CloseIn(_In):
    outcome: Outcome
    note: Reason | None = None


class NoteIn(_In):
    text: Reason


class CaseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    source: Literal["flag", "alert"]
    rule: str
    severity: str
    device_id: str
    alert_id: str | None
    district_id: str
    market_id: str | None
    place_kind: str
    place: str
    summary: str
    evidence: dict[str, Any]
    state: CaseState
    outcome: Outcome | None
    assignee: str | None
    occurrences: int
    needs_base_ack: bool = Field(description="a planting-base alert: closes only after the base's acknowledgement")
    base_ack_at: dt.datetime | None
    base_ack_by: str | None
    first_ts: dt.datetime
    last_ts: dt.datetime
    opened_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    closed_by: str | None


class CaseStepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: dt.datetime
    actor: str
    action: str
    state: CaseState
    detail: dict[str, Any]


class CaseDetail(CaseOut):
    history: list[CaseStepOut]


class CaseCount(BaseModel):
    district_id: str
    market_id: str | None
    state: CaseState
    count: int


class CaseCounts(BaseModel):
    """Cases not closed, by district, market and state (what the dashboards' ``case`` series holds)."""

    items: list[CaseCount]
