"""The case tables: a case (the life of an alert or of a flagged scale) and its history of events.

Kept apart from :mod:`.models` (same declarative base, created by migration 0002). Two rules live in
the database, so that two ingest workers or a redelivery racing each other cannot break them:

- at most one case is not closed per ``open_key`` (a flagged scale and rule, or one alert): a partial
  unique index over the cases whose state is not ``closed``;
- an ingest event is taken once: ``case_events.event_key`` is unique (NULL for a supervisor's steps);
- a case's history is append-only, like the audit log: triggers refuse UPDATE and DELETE on it.

The place (district, market, and what the case is about) is copied onto the case when it opens, so a
supervisor's scope is a filter on the case row, and a device moved later does not move its history.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, utcnow

NOT_CLOSED = text("state <> 'closed'")


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index(
            "ix_cases_one_open_per_key",
            "open_key",
            unique=True,
            sqlite_where=NOT_CLOSED,
            postgresql_where=NOT_CLOSED,
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    open_key: Mapped[str] = mapped_column(String(200), index=True, doc="flag:<scale>:<rule> or alert:<alert id>")
    source: Mapped[str] = mapped_column(String(8), doc="flag or alert")
    rule: Mapped[str] = mapped_column(String(64), doc="the anti-cheat rule or the alert kind")
    severity: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[str] = mapped_column(String(64), index=True, doc="the device the finding is about")
    alert_id: Mapped[str | None] = mapped_column(String(200), index=True, default=None)
    district_id: Mapped[str] = mapped_column(ForeignKey("districts.id"), index=True)
    market_id: Mapped[str | None] = mapped_column(ForeignKey("markets.id"), index=True, default=None)
    place_kind: Mapped[str] = mapped_column(String(8), doc="stall, base or vehicle")
    place: Mapped[str] = mapped_column(String(200), doc="market/stall code, base id or vehicle id")
    summary: Mapped[str] = mapped_column(String(500))
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict, doc="the first occurrence's detail")
    state: Mapped[str] = mapped_column(String(16), index=True)
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    assignee: Mapped[str | None] = mapped_column(String(200), default=None)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    first_ts: Mapped[dt.datetime] = mapped_column(doc="when the finding happened (the record's time)")
    last_ts: Mapped[dt.datetime]
    base_ack_at: Mapped[dt.datetime | None] = mapped_column(default=None, doc="the base's rectification ack")
    base_ack_by: Mapped[str | None] = mapped_column(String(200), default=None)
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True, doc="last change (the ingest polls it)")
    closed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    closed_by: Mapped[str | None] = mapped_column(String(200), default=None)


class CaseEvent(Base):
    """One step in a case's history: opened, an occurrence, a supervisor's step, the base's ack."""

    __tablename__ = "case_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), doc="the case's state after this step")
    event_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
