"""The case book under any order of the ingest's events and supervisors' steps (Hypothesis, stateful, on
SQLite): at most one case not closed per scale and rule, every refusal our own error, each case's history
ending in its state, a base's case closed only after its acknowledgement, every event taken once."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import create_engine, event, select
from sqlalchemy.pool import StaticPool

from device_registry import Principal, Registry, Role
from device_registry.case_models import Case, CaseEvent
from device_registry.case_schemas import AckIn, AssignIn, CaseEventsIn, CloseIn, NoteIn
from device_registry.case_states import CaseState, Outcome
from device_registry.db import sessions
from device_registry.errors import IllegalTransition
from device_registry.models import Base
from device_registry.schemas import BaseIn, DeviceIn, DistrictIn, MarketIn, StallIn
from tests.support.registry import VALID_LICENCES


class CaseBook(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", lambda c, _r: c.execute("PRAGMA foreign_keys=ON"))
        Base.metadata.create_all(engine)
        self.db = sessions(engine)()
        admin = Registry(self.db, Principal("admin", Role.ADMIN))
        admin.add_district(DistrictIn(id="futian", name="Futian"))
        admin.add_market(MarketIn(id="m1", name="M1", district_id="futian", operator="Co"))
        admin.add_stall(StallIn(market_id="m1", code="A-1", vendor="Li", business_licence=VALID_LICENCES[0]))
        admin.add_base(BaseIn(id="base-7", name="Base", district_id="futian"))
        admin.register(DeviceIn(id="scale-0001", profile="zj-pcs-30", serial_no="S", market_id="m1", stall_code="A-1"))
        admin.register(DeviceIn(id="base-0007", profile="soil-rs485", serial_no="B", base_id="base-7"))
        self.ingest = Registry(self.db, Principal("ingest", Role.INGEST))
        self.sup = Registry(self.db, Principal("sup", Role.SUPERVISOR, districts=frozenset({"futian"})))
        self.sent: set[str] = set()
        self.seq = 0

    def _report(self, *events: dict) -> None:  # type: ignore[type-arg]
        results = self.ingest.report_events(CaseEventsIn.model_validate({"events": list(events)})).results
        for e, r in zip(events, results, strict=True):
            assert (r.result == "duplicate") == (e["event_key"] in self.sent), (e, r)
            if r.result != "unmatched":  # an ack of no case is not kept: sent again, it is unmatched again
                self.sent.add(e["event_key"])

    @rule(rule_name=st.sampled_from(["coefficient", "cusum"]), again=st.booleans())
    def flag(self, rule_name: str, again: bool) -> None:
        self.seq += 0 if again and self.seq else 1  # again: the same event redelivered
        self._report({"event_key": f"flag:scale-0001:{self.seq}:{rule_name}", "type": "flag", "device": "scale-0001",
                      "ts": self.seq, "rule": rule_name})  # fmt: skip

    @rule(n=st.integers(1, 3))
    def alert(self, n: int) -> None:
        self._report({"event_key": f"alert:a{n}", "type": "alert", "device": "base-0007", "ts": n,
                      "rule": "sensor_threshold", "alert_id": f"a{n}", "subject": "base-0007"})  # fmt: skip

    @rule(n=st.integers(1, 3))
    def base_ack(self, n: int) -> None:
        self._report({"event_key": f"base_ack:a{n}", "type": "base_ack", "device": "base-0007", "ts": n,
                      "alert_id": f"a{n}", "by": "Li"})  # fmt: skip

    def _ids(self) -> list[int]:
        return list(self.db.scalars(select(Case.id)))

    @precondition(lambda self: bool(self._ids()))
    @rule(
        k=st.integers(0, 50),
        step=st.sampled_from(["ack", "assign", "close", "note"]),
        outcome=st.sampled_from(list(Outcome)),
    )
    def supervise(self, k: int, step: str, outcome: Outcome) -> None:
        case_id = self._ids()[k % len(self._ids())]
        try:
            if step == "ack":
                self.sup.acknowledge(case_id, AckIn())
            elif step == "assign":
                self.sup.assign(case_id, AssignIn(to="Wang"))
            elif step == "close":
                self.sup.close(case_id, CloseIn(outcome=outcome))
            else:
                self.sup.note(case_id, NoteIn(text="a remark"))
        except IllegalTransition:
            self.db.rollback()

    @invariant()
    def one_case_not_closed_per_key(self) -> None:
        keys = [c.open_key for c in self.db.scalars(select(Case).where(Case.state != CaseState.CLOSED))]
        assert len(keys) == len(set(keys))

    @invariant()
    def histories_end_in_the_state_and_closing_kept_its_rules(self) -> None:
        for c in self.db.scalars(select(Case)):
            last = self.db.scalars(select(CaseEvent).where(CaseEvent.case_id == c.id).order_by(CaseEvent.id)).all()
            assert last and last[-1].state == c.state
            if c.state == CaseState.CLOSED:
                assert c.outcome in set(Outcome) and c.closed_at is not None
                assert c.source == "flag" or c.base_ack_at is not None
                assert any(h.action == "acknowledge" for h in last)

    def teardown(self) -> None:
        self.db.close()


CaseBook.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_the_case_book = CaseBook.TestCase
