"""Cases: the ingest's alert, flag and base-acknowledgement events open and feed them; supervisors in
scope acknowledge, assign, annotate and close them. Every state change goes through
:func:`.case_states.step`; every supervisor step and every case opened or acknowledged by its base is
in the audit log, in the same transaction as the change; the case's own history (occurrences included)
is in ``case_events``.

Idempotent intake: an event whose ``event_key`` was taken before answers ``duplicate`` and changes
nothing. A flag opens one case per scale and rule; later flags of that scale and rule attach to it
while it is not closed (the database's partial unique index keeps it one even when two workers race).
An alert opens a case of its own (the ingest raises at most one open alert per base and channel).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from . import models as m
from .base import NOT_FOUND, RegistryBase, district_market
from .case_models import Case, CaseEvent
from .case_schemas import (
    AckIn,
    AlertEventIn,
    AssignIn,
    BaseAckEventIn,
    CaseCount,
    CaseCounts,
    CaseDetail,
    CaseEventIn,
    CaseEventResult,
    CaseEventsIn,
    CaseEventsOut,
    CaseOut,
    CaseStepOut,
    CloseIn,
    FlagEventIn,
    NoteIn,
)
from .case_states import NEEDS_BASE_ACK, CaseInput, CaseState, step
from .errors import NotFound
from .schemas import Page


def _at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def case_out(c: Case) -> CaseOut:
    return CaseOut.model_validate(
        {**{k: getattr(c, k) for k in CaseOut.model_fields if k != "needs_base_ack"}, "needs_base_ack": _needs_ack(c)}
    )


def _needs_ack(c: Case) -> bool:
    return c.source == "alert" and c.rule in NEEDS_BASE_ACK


class Cases(RegistryBase):
    """The case book as one caller sees it."""

    # -- the ingest's events -------------------------------------------------------------------------
    def report_events(self, data: CaseEventsIn) -> CaseEventsOut:
        """Take a batch of events in order, each in its own transaction (one refused does not undo the
        others); a race lost to another worker is taken again and then finds what that worker did."""
        self.who.require("report_case_event")
        results = []
        for event in data.events:
            try:
                result = self._take(event)
                self._commit_raw()
            except IntegrityError:  # lost the race: taken again, it finds what the other worker did
                self.db.rollback()
                result = self._take(event)
                self._commit_raw()
            results.append(result)  # one result per event, only once its transaction committed
        return CaseEventsOut(results=results)

    def _commit_raw(self) -> None:
        try:
            self.db.commit()
        except IntegrityError:
            self.db.rollback()
            raise

    def _take(self, e: CaseEventIn) -> CaseEventResult:
        seen = self.db.scalar(select(CaseEvent).where(CaseEvent.event_key == e.event_key))
        if seen is not None:
            case = self.db.get(Case, seen.case_id)
            return CaseEventResult(
                event_key=e.event_key, result="duplicate", case_id=seen.case_id, state=case.state if case else None
            )
        if isinstance(e, BaseAckEventIn):
            return self._base_ack(e)
        return self._finding(e)

    def _finding(self, e: FlagEventIn | AlertEventIn) -> CaseEventResult:
        where = self._where(e)
        if where is None:
            return CaseEventResult(event_key=e.event_key, result="unknown_device")
        device_id, district, market, place_kind, place = where
        alert_id = e.alert_id if isinstance(e, AlertEventIn) else None
        open_key = f"alert:{alert_id}" if alert_id else f"flag:{device_id}:{e.rule}"
        current = self.db.scalar(
            select(Case).where(Case.open_key == open_key, Case.state != CaseState.CLOSED).with_for_update()
        )
        detail = {"seq": e.seq, "ts": e.ts, "reporter": e.device, **e.detail}
        if current is not None:
            current.state = step(current.state, CaseInput.OCCURRENCE)
            current.occurrences += 1
            current.last_ts = max(current.last_ts, _at(e.ts))
            current.updated_at = m.utcnow()
            self._history(current, "occurrence", e.event_key, detail)
            return CaseEventResult(event_key=e.event_key, result="attached", case_id=current.id, state=current.state)
        what = e.type
        case = Case(
            open_key=open_key,
            source=e.type,
            rule=e.rule,
            severity=e.severity or "medium",
            device_id=device_id,
            alert_id=alert_id,
            district_id=district,
            market_id=market,
            place_kind=place_kind,
            place=place,
            summary=e.summary or f"{e.rule} {what} on {device_id} at {place_kind} {place}",
            evidence=detail,
            state=CaseState.OPEN,
            first_ts=_at(e.ts),
            last_ts=_at(e.ts),
        )
        self.db.add(case)
        self.db.flush()
        self._history(case, "opened", e.event_key, detail)
        self._audit("open", "case", case.id, source=e.type, rule=e.rule, device=device_id, event_key=e.event_key)
        return CaseEventResult(event_key=e.event_key, result="opened", case_id=case.id, state=case.state)

    def _where(self, e: FlagEventIn | AlertEventIn) -> tuple[str, str, str | None, str, str] | None:
        """(device the case is about, district, market, place kind, place): the alert's subject when it is a
        registered device (a rapid test names the stall's scale) or a planting base, else the reporter."""
        subject = e.subject if isinstance(e, AlertEventIn) else None
        for device_id in (subject, e.device) if subject else (e.device,):
            d = self.db.get(m.Device, device_id)
            if d is not None:
                district, market = district_market(d)
                if d.stall is not None:
                    return d.id, district, market, "stall", f"{d.stall.market_id}/{d.stall.code}"
                kind = "base" if d.base is not None else "vehicle"
                return d.id, district, market, kind, str(d.base_id or d.vehicle_id)
            base = self.db.get(m.PlantingBase, device_id) if device_id == subject else None
            if base is not None:
                return e.device, base.district_id, None, "base", base.id
        return None

    def _base_ack(self, e: BaseAckEventIn) -> CaseEventResult:
        case = self.db.scalar(
            select(Case)
            # only the alerting device's own, and only a planting-base alert's (a rapid test has no base ack)
            .where(Case.alert_id == e.alert_id, Case.device_id == e.device, Case.rule.in_(NEEDS_BASE_ACK))
            .order_by(Case.id.desc())
            .limit(1)
            .with_for_update()
        )
        if case is None:
            return CaseEventResult(event_key=e.event_key, result="unmatched")
        case.state = step(case.state, CaseInput.BASE_ACK)
        if case.base_ack_at is None:
            case.base_ack_at, case.base_ack_by = _at(e.ts), e.by or e.device
        case.updated_at = m.utcnow()
        detail = {"alert_id": e.alert_id, "by": e.by, "ts": e.ts, "reporter": e.device}
        self._history(case, "base_ack", e.event_key, detail)
        self._audit("base_ack", "case", case.id, alert_id=e.alert_id, by=e.by, device=e.device)
        return CaseEventResult(event_key=e.event_key, result="recorded", case_id=case.id, state=case.state)

    def _history(self, case: Case, action: str, event_key: str | None, detail: dict[str, Any]) -> None:
        self.db.add(
            CaseEvent(
                case_id=case.id,
                actor=self.who.name,
                action=action,
                state=case.state,
                event_key=event_key,
                detail={k: v for k, v in detail.items() if v is not None},
            )
        )

    # -- what supervisors do -------------------------------------------------------------------------
    def _case(self, case_id: int, *, lock: bool = False) -> Case:
        q = select(Case).where(Case.id == case_id)
        c = self.db.scalar(q.with_for_update() if lock else q)
        if c is None or not self.who.sees(c.district_id, c.market_id):
            raise NotFound(NOT_FOUND.format(what="case", key=case_id))
        return c

    def _act(self, case_id: int, event: CaseInput, detail: dict[str, Any], **change: Any) -> CaseDetail:
        self.who.require("handle_case")
        c = self._case(case_id, lock=True)
        before = c.state
        c.state = step(
            c.state,
            event,
            needs_base_ack=_needs_ack(c),
            base_acknowledged=c.base_ack_at is not None,
            outcome=change.get("outcome"),
        )
        for name, value in change.items():
            setattr(c, name, value)
        c.updated_at = m.utcnow()
        if c.state == CaseState.CLOSED and before != CaseState.CLOSED:
            c.closed_at, c.closed_by = c.updated_at, self.who.name
        detail = {k: v for k, v in detail.items() if v is not None}
        self._history(c, event.value, None, detail)
        self._audit(event.value, "case", c.id, before=before, after=c.state, **detail)
        self._commit()
        return self.case(case_id)

    def acknowledge(self, case_id: int, data: AckIn) -> CaseDetail:
        return self._act(case_id, CaseInput.ACKNOWLEDGE, {"note": data.note})

    def assign(self, case_id: int, data: AssignIn) -> CaseDetail:
        return self._act(case_id, CaseInput.ASSIGN, {"to": data.to, "note": data.note}, assignee=data.to)

    def close(self, case_id: int, data: CloseIn) -> CaseDetail:
        outcome = data.outcome.value
        return self._act(case_id, CaseInput.CLOSE, {"outcome": outcome, "note": data.note}, outcome=outcome)

    def note(self, case_id: int, data: NoteIn) -> CaseDetail:
        return self._act(case_id, CaseInput.NOTE, {"text": data.text})

    # -- reading -------------------------------------------------------------------------------------
    def case(self, case_id: int) -> CaseDetail:
        c = self._case(case_id)
        steps = self.db.scalars(select(CaseEvent).where(CaseEvent.case_id == c.id).order_by(CaseEvent.id)).all()
        return CaseDetail(**case_out(c).model_dump(), history=[CaseStepOut.model_validate(s) for s in steps])

    def cases(
        self,
        *,
        state: CaseState | None = None,
        district: str | None = None,
        market: str | None = None,
        source: str | None = None,
        device: str | None = None,
        updated_since: dt.datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[CaseOut]:
        """Cases in the caller's scope, newest first, filtered; with ``updated_since``, only those changed
        since then, by their last change, oldest first (the ingest's poller pages forward through them)."""
        q = select(Case).order_by(Case.id.desc())
        if updated_since is not None:
            since = updated_since if updated_since.tzinfo is not None else updated_since.replace(tzinfo=dt.UTC)
            q = select(Case).where(Case.updated_at >= since).order_by(Case.updated_at, Case.id)
        for col, value in (
            (Case.state, state),
            (Case.district_id, district),
            (Case.market_id, market),
            (Case.source, source),
            (Case.device_id, device),
        ):
            if value is not None:
                q = q.where(col == value)
        if self.who.scoped:
            q = q.where(self._scope_filter(Case.district_id, Case.market_id))
        return self._page(q, limit, offset, CaseOut, convert_all=lambda rows: [case_out(c) for c in rows])

    def case_counts(self) -> CaseCounts:
        """Cases not closed by district, market and state, in the caller's scope."""
        q = (
            select(Case.district_id, Case.market_id, Case.state, func.count())
            .where(Case.state != CaseState.CLOSED)
            .group_by(Case.district_id, Case.market_id, Case.state)
            .order_by(Case.district_id, Case.market_id.nulls_first(), Case.state)  # one order on both databases
        )
        if self.who.scoped:
            q = q.where(self._scope_filter(Case.district_id, Case.market_id))
        return CaseCounts(
            items=[CaseCount(district_id=d, market_id=mk, state=s, count=n) for d, mk, s, n in self.db.execute(q)]
        )
