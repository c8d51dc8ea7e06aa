"""The case routes of the registry API (joined to :data:`device_registry.api.router`).

Supervisors list, read and act on cases in their scope (``/v1/cases…``); the ingest posts what it saw
to ``/v1/case-events`` with a token of role ``ingest``; ``/v1/case-counts`` is what the dashboards'
``case`` series is written from.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from fastapi import Path, Query
from pydantic import BeforeValidator

from .api import Caller, Filter, Limit, Offset, _body, router
from .case_schemas import (
    AckIn,
    AssignIn,
    CaseCounts,
    CaseDetail,
    CaseEventsIn,
    CaseEventsOut,
    CaseOut,
    CloseIn,
    NoteIn,
)
from .case_states import CaseState
from .schemas import ErrorOut, Page

CaseId = Annotated[int, Path(ge=1, le=2**31 - 1)]
_STEP = _body()
_CLOSE = _body()
_CLOSE[409] = {
    "model": ErrorOut,
    "description": "the case's state forbids the step (closed, not acknowledged yet), or a planting-base alert "
    "whose base has not acknowledged its rectification",
}


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_only(value: object) -> object:
    """A time as ISO 8601 text only: pydantic would also take "0.5" as seconds since the epoch, which the
    document (format date-time) does not allow."""
    if (isinstance(value, str) and not value[:4].isdigit()) or (isinstance(value, str) and value[4:5] != "-"):
        raise ValueError("an ISO 8601 time, e.g. 2026-12-01T08:00:00Z")
    return value


IsoTime = Annotated[dt.datetime, BeforeValidator(_iso_only)]


@router.get("/v1/cases", tags=["cases"])
def list_cases(
    reg: Caller,
    state: Annotated[CaseState | None, Query(description="only cases in this state")] = None,
    district: Filter = None,
    market: Filter = None,
    source: Annotated[Literal["flag", "alert"] | None, Query(description="flags of scales or alerts")] = None,
    device: Filter = None,
    updated_since: Annotated[
        IsoTime | None,
        Query(
            description="only cases changed at or after this time (ISO 8601; UTC if no zone is given), oldest"
            " change first: what a poller reads to follow every step"
        ),
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[CaseOut]:
    """Cases in the caller's scope, newest first; with ``updated_since``, by their last change, oldest first."""
    return reg.cases(
        state=state,
        district=district,
        market=market,
        source=source,
        device=device,
        updated_since=updated_since,
        limit=limit,
        offset=offset,
    )


@router.get("/v1/cases/{case_id}", tags=["cases"])
def show_case(reg: Caller, case_id: CaseId) -> CaseDetail:
    """A case with its history: opened, occurrences, each supervisor's step, the base's acknowledgement."""
    return reg.case(case_id)


@router.post("/v1/cases/{case_id}/acknowledge", tags=["cases"], responses=_STEP)
def acknowledge_case(reg: Caller, case_id: CaseId, body: AckIn) -> CaseDetail:
    """A supervisor has seen the case (open → acknowledged)."""
    return reg.acknowledge(case_id, body)


@router.post("/v1/cases/{case_id}/assign", tags=["cases"], responses=_STEP)
def assign_case(reg: Caller, case_id: CaseId, body: AssignIn) -> CaseDetail:
    """Send an inspector (acknowledged or assigned → assigned)."""
    return reg.assign(case_id, body)


@router.post("/v1/cases/{case_id}/close", tags=["cases"], responses=_CLOSE)
def close_case(reg: Caller, case_id: CaseId, body: CloseIn) -> CaseDetail:
    """Close with an outcome (acknowledged or assigned → closed). A planting-base alert closes only after the
    base's rectification acknowledgement is recorded."""
    return reg.close(case_id, body)


@router.post("/v1/cases/{case_id}/notes", tags=["cases"], responses=_STEP)
def note_case(reg: Caller, case_id: CaseId, body: NoteIn) -> CaseDetail:
    """A remark in the case's history; the state does not change."""
    return reg.note(case_id, body)


@router.get("/v1/case-counts", tags=["cases"])
def case_counts(reg: Caller) -> CaseCounts:
    """Cases not closed, by district, market and state, in the caller's scope."""
    return reg.case_counts()


@router.post("/v1/case-events", tags=["cases"], responses=_body())
def report_case_events(reg: Caller, body: CaseEventsIn) -> CaseEventsOut:
    """The ingest's alert, flag and base-acknowledgement events (role ``ingest``), taken in order, each once:
    an ``event_key`` seen before answers ``duplicate``."""
    return reg.report_events(body)
