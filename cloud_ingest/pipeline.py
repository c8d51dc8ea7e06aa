"""Decode → authenticate → validate → score → line protocol, for one micro-batch of MQTT messages.

:meth:`Pipeline.prepare` decodes and scores a batch once; :meth:`Pipeline.commit` makes it durable, in
InfluxDB or, while InfluxDB is away, in the on-disk spool (replayed in order by :meth:`replay_spool`).
The caller acknowledges the batch's messages to the broker only after ``commit`` returns, so nothing is
acknowledged before it is durable. Rejected payloads are counted per reason and kept, bytes and all, as
dead letters (:mod:`cloud_ingest.dead_letters`): the reasons of :data:`device_profiles.REJECT_REASONS`,
plus ``store_rejected`` for a valid message that InfluxDB refuses (say, a field whose type differs from
what the database already holds).

Every message is isolated: whatever one message holds, it ends as stored records or as its own dead
letter, never as an exception out of :meth:`Pipeline.prepare` or :meth:`Pipeline.commit` (those raise
only :class:`StoreUnavailable`, when InfluxDB is away and the spool full, or when the dead-letter store
cannot be written; the caller retries the batch). An error of ours on one message makes it a dead letter
with reason ``unprocessable`` and the error in the detail; such errors are counted by kind in
:attr:`Pipeline.surprises` and logged once per kind with their traceback.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from anti_cheat import Engine, Flag, Transactions
from device_profiles import Envelope, EnvelopeError, decode
from device_profiles.influx_schema import envelope_lines
from device_profiles.records import MAX_SAFE_INT
from device_profiles.topics import parse

from .case_outbox import CaseOutbox, alert_event, flag_event
from .dead_letters import DeadLetters
from .derived_points import alert_line, alert_place, alert_state_line, flag_line
from .errors import StoreRejected, StoreUnavailable
from .influx import InfluxClient
from .pending_points import PendingPoints
from .place_findings import PlaceFindings
from .rapid_tests import Alert, PositionBook, judge
from .rejection_log import RejectionLog
from .senders import SenderRules
from .sensor_alerts import AlertBook
from .sequences import SequenceBook
from .spool import Spool, SpoolFull
from .state_store import StateStore

log = logging.getLogger(__name__)


_SCORED = frozenset({"sale", "reweigh", "check_weighing", "scale_state"})
#: refusals never acknowledged to the device, which keeps the records and sends them again: before the tag is
#: verified (or from a device that may not speak), and ``replayed``, which is refused for its age alone: its
#: records may never have been stored (lost on the way and sent again after the window moved on), so the
#: device must keep them, and its status shows their age, rather than drop them on our word
_NOT_ACKNOWLEDGED = frozenset(
    {"bad_topic", "revoked_device", "oversized", "missing_tag", "unknown_device", "bad_tag", "replayed"}
)
_BASE_TYPES = frozenset({"soil", "air", "sensor_fault"})


@dataclass
class Prepared:
    """A decoded and scored batch, ready to be made durable (possibly on a second try)."""

    accepted: list[tuple[str, bytes, list[str]]]
    flags: list[Flag]
    derived_lines: list[str]  # flags and alerts, as points
    alerts: list[Alert]
    #: per device, the seq ranges the cloud has for good once this batch is committed (stored, or kept
    #: as dead letters after the tag was verified): what the worker acknowledges to the devices
    acks: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


class Pipeline:
    """The ingest's processing of one batch; counters are plain attributes read by metrics."""

    def __init__(
        self,
        *,
        key_for: Callable[[str], bytes | None],
        engine: Engine,
        store: InfluxClient,
        dead_letters: DeadLetters | None = None,
        spool: Spool | None = None,
        sequences: SequenceBook | None = None,
        revoked: Callable[[str], bool] = lambda device: False,
        tags_for: Callable[[str], Mapping[str, str]] = lambda device: {},
        alert_book: AlertBook | None = None,
        senders: SenderRules | None = None,
        vendor_for: Callable[[str], tuple[str, str] | None] = lambda device: None,
    ) -> None:
        self.key_for = key_for
        self.engine = engine
        self.store = store
        self.dead_letters = dead_letters or DeadLetters()
        self.spool = spool or Spool()
        self.sequences = sequences or SequenceBook()
        self.revoked = revoked
        self.senders = senders  # what each device may say (record types, references); None: no such checks
        self.tags_for = tags_for  # registry enrichment, from memory (LiveDevices or a devices file)
        self.vendor_for = vendor_for  # a stall's vendor and licence, for flags
        #: per device, when its last message was admitted (wall clock, ms) and its last sale's ts: what
        #: :class:`cloud_ingest.status_points.StatusWriter` takes for ``scale_status`` (one entry per device)
        self.seen_ms: dict[str, int] = {}
        self.last_sale_ms: dict[str, int] = {}
        self.track_status = False  # fill the two above (a StatusWriter drains them)
        #: flags and rapid tests per place of the last 24 h, for the ``place`` series (set with a StatusWriter)
        self.findings: PlaceFindings | None = None
        #: ``alert_state`` lines of acknowledgements heard on the reply topic, written with the next batch
        #: or by :meth:`flush_pending`
        self.pending_states = PendingPoints()
        self.positions = PositionBook()
        self.alert_book = alert_book or AlertBook()
        self.alert_sink: Callable[[Alert], None] | None = None
        self.case_outbox: CaseOutbox | None = None  # flags and alerts for the registry's cases (docs/cases.md)
        self.before_batch: Callable[[], object] | None = None  # e.g. LiveDevices.refresh, on the batch thread
        self.alerts_by_kind: Counter[str] = Counter()
        self.spooled_points = 0
        self.replayed_points = 0
        self.last_sent_ms = 0
        self.received = 0
        self.accepted_records = 0
        self.records_by_type: Counter[str] = Counter()
        self.stored_points = 0
        self.flagged = 0
        self.flags_by_rule: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.rejection_log = RejectionLog(log)  # the first at once, then a summary a minute
        self.surprises: Counter[str] = Counter()  # errors of ours survived, by kind (exported as a metric)
        self.held: Counter[str] = Counter()  # messages of not-yet-known devices held, by device
        self._unknown_since: dict[str, float] = {}
        self.unknown_grace_s = 0.0  # the shipped worker holds (ZHIJIAN_UNKNOWN_DEVICE_GRACE_S); 0: refuse at once
        self.on_unknown_device: Callable[[], object] | None = None  # e.g. LiveDevices.request_refresh
        self._acks: dict[str, list[tuple[int, int]]] = {}
        self.checkpoint_seconds = 0.0  # what the last anti-cheat checkpoint took
        self._now_ms = 0  # the wall clock at the batch's start

    def process(self, messages: Sequence[tuple[str, bytes]]) -> list[Flag]:
        """Prepare and store a batch of ``(topic, payload)``; returns the anti-cheat flags raised."""
        prepared = self.prepare(messages)
        self.commit(prepared)
        return prepared.flags

    def prepare(self, messages: Sequence[tuple[str, bytes]]) -> Prepared:
        """Decode, authenticate, validate and score a batch (once: the engine's state moves on).

        Never raises because of what a message holds: each message is admitted or becomes a dead letter
        on its own, and if scoring the batch fails, each message is scored alone so that only the one
        that fails becomes a dead letter (``unprocessable``, with the error in the detail).
        """
        if self.before_batch is not None:
            self._guarded("before_batch", self.before_batch)
        self._now_ms = int(time.time() * 1000)
        self._acks = {}
        admitted = [a for a in (self._admit(t, p) for t, p in messages) if a is not None]
        acks, self._acks = self._acks, {}
        try:
            prepared = self._score(admitted)
            prepared.acks = acks
            return prepared
        except Exception as exc:
            self.surprise("scoring a batch", exc)
        parts = []
        for one in admitted:
            try:
                parts.append(self._score([one]))
            except Exception as exc:
                self._reject(one.topic, "unprocessable", _describe(exc), one.payload)
        return Prepared(
            [a for p in parts for a in p.accepted],
            [f for p in parts for f in p.flags],
            [line for p in parts for line in p.derived_lines],
            [a for p in parts for a in p.alerts],
            acks,  # a message that failed scoring is a dead letter: the cloud has it too
        )

    def _admit(self, topic_name: str, payload: bytes) -> _Admitted | None:
        """One message checked on its own: admitted, or a dead letter with its reason."""
        self.received += 1
        try:
            parsed = parse(topic_name)
            if parsed is None or parsed[1] != "data":
                raise EnvelopeError("bad_topic", topic_name)
            if self.revoked(parsed[0]):
                raise EnvelopeError("revoked_device", parsed[0])
            env = decode(payload, topic_device=parsed[0], key_for=self.key_for)
            if self.senders is not None:
                self.senders.check(env.device, env.records)
            digests = self.sequences.check(env.device, env.seq, env.records)
            lines = envelope_lines(env.device, env.seq, env.records, self.tags_for(env.device))
        except EnvelopeError as exc:
            if exc.reason == "unknown_device" and self._hold(topic_name, exc):
                return None
            self._reject(topic_name, exc.reason, exc.detail, payload)
            if exc.reason not in _NOT_ACKNOWLEDGED:
                self._ack_refused(topic_name, payload)
            return None
        except Exception as exc:  # our failure on this message: it alone pays for it
            self.surprise(f"a message on {topic_name}", exc)
            self._reject(topic_name, "unprocessable", _describe(exc), payload)
            self._ack_refused(topic_name, payload)
            return None
        self.sequences.observe(env.device, env.seq, len(env.records), digests)
        if self.track_status:
            self.seen_ms[env.device] = self._now_ms
        self.last_sent_ms = max(self.last_sent_ms, env.sent_ms)
        self._acks.setdefault(env.device, []).append((env.seq, env.seq + len(env.records) - 1))
        return _Admitted(topic_name, payload, env, lines)

    def _hold(self, topic_name: str, exc: EnvelopeError) -> bool:
        """A device the ingest does not know *yet* (provisioned a moment ago): within the grace period its
        message is neither stored nor dead-lettered nor acknowledged to the device, whose agent sends it
        again; the registry is read again at once (rate-limited by the source)."""
        del topic_name
        device = exc.detail
        now = time.monotonic()
        since = self._unknown_since.setdefault(device, now)
        if now - since >= self.unknown_grace_s:
            return False
        if self.held[device] == 0:
            log.info(
                "%s is not known yet: holding its messages up to %.0f s, reading the registry",
                device,
                self.unknown_grace_s,
            )
        self.held[device] += 1
        if self.on_unknown_device is not None:
            self._guarded("on_unknown_device", self.on_unknown_device)
        return True

    def _ack_refused(self, topic_name: str, payload: bytes) -> None:
        """A refused message whose tag held: acknowledged to its device as far as its seqs can be read (it is
        kept as a dead letter, so sending it again would only be refused again)."""
        parsed = parse(topic_name)
        try:
            doc = json.loads(payload)
            seq, records = doc["seq"], doc["records"]
        except (ValueError, RecursionError, TypeError, KeyError):
            return
        if (
            parsed is not None
            and type(seq) is int
            and 0 <= seq <= MAX_SAFE_INT
            and isinstance(records, list)
            and records
        ):
            self._acks.setdefault(parsed[0], []).append((seq, seq + len(records) - 1))

    def _score(self, admitted: Sequence[_Admitted]) -> Prepared:
        scored: list[tuple[str, int, dict[str, Any]]] = []
        alerts: list[Alert] = []
        base_rows: list[tuple[str, int, dict[str, Any]]] = []
        for one in admitted:
            env = one.envelope
            if any(r["type"] in ("gps", "rapid_test") for r in env.records):
                alerts += judge(env.device, env.seq, env.records, self.positions)
            for i, rec in enumerate(env.records):
                rtype = rec["type"]
                if rtype in _SCORED:
                    scored.append((env.device, env.seq + i, rec))
                    if rtype == "sale" and self.track_status:
                        self.last_sale_ms[env.device] = rec["ts"]
                elif rtype in _BASE_TYPES:
                    base_rows.append((env.device, env.seq + i, rec))
        if base_rows:
            alerts += self.alert_book.observe_batch(base_rows)
        batch = Transactions.from_records(self.engine.facts, scored)
        flags = self.engine.score(batch).flags(batch, self.engine.facts)
        derived = [flag_line(f, self.tags_for(f.device), self.vendor_for(f.device)) for f in flags]
        for a in alerts:
            place = alert_place(a, self.tags_for)
            derived.append(alert_line(a, place))
            # the first step of the alert's life, for the "not acknowledged" panels and rule
            derived.append(alert_state_line(a.id, a.kind, a.severity, place, state="open", actor=a.device, ts_ms=a.ts))
        accepted = [(a.topic, a.payload, a.lines) for a in admitted]
        return Prepared(accepted, flags, derived, alerts)

    def commit(self, prepared: Prepared, *, checkpoint: bool = False) -> None:
        """Make a prepared batch durable: in InfluxDB, or in the spool while InfluxDB is away; then the
        books (dead letters, sequences, alerts) in one transaction of the state store, with the anti-cheat
        engine's state when ``checkpoint`` (the worker acknowledges to the broker only what a checkpoint
        has seen).

        Raises :class:`StoreUnavailable` only when InfluxDB is away and the spool is full: retry the same
        ``prepared`` later (writes are idempotent). If InfluxDB refuses the batch as invalid, messages are
        written one by one and those it still refuses become dead letters with reason ``store_rejected``,
        so one bad message cannot stall the stream.
        """
        accepted, flags, flag_lines = prepared.accepted, prepared.flags, prepared.derived_lines
        lines = [line for _, _, msg_lines in accepted for line in msg_lines]
        states = self.pending_states.take()
        flag_lines = flag_lines + states
        if lines or flag_lines:
            try:
                self._write(lines + flag_lines)
            except StoreUnavailable:
                self.pending_states.put_back(states)  # with the batch's retry
                raise
            except Exception as exc:  # StoreRejected, or a line we could not even encode: find which message
                log.warning("could not store a batch of %d messages (%s); writing one by one", len(accepted), exc)
                lines = self._write_one_by_one(accepted)
                self._write_derived(flag_lines)
        self.accepted_records += len(lines)  # one line per record
        self.records_by_type.update(line[: line.index(",")] for line in lines)  # the measurement is the type
        self.stored_points += len(lines) + len(flag_lines)
        self.flagged += len({(f.device, f.seq) for f in flags})
        self.flags_by_rule.update(f.rule for f in flags)
        with self.state.transaction():  # one commit for every book that shares the store
            self.dead_letters.flush()
            self.sequences.save()
            self.alert_book.save()
            if self.case_outbox is not None:  # with the batch: an event exists once what it names is stored
                self.case_outbox.put([flag_event(f) for f in flags] + [alert_event(a) for a in prepared.alerts])
            if checkpoint:
                self._put_checkpoint()
        if self.findings is not None:  # counted once stored: the place series says what InfluxDB holds
            self._guarded(
                "counting findings",
                self.findings.add,
                flags,
                [(a, alert_place(a, self.tags_for)) for a in prepared.alerts],
                self.tags_for,
            )
        for alert in prepared.alerts:  # only now: what an alert points at is durable
            self.alerts_by_kind[alert.kind] += 1
            if self.alert_sink is not None:
                self._guarded("alert_sink", self.alert_sink, alert)

    def note_state(self, line: str) -> None:
        """An ``alert_state`` line to write with the next batch (from any thread)."""
        self.pending_states.put(line)

    def flush_pending(self) -> int:
        """Write the waiting ``alert_state`` lines now (the worker calls it between batches, so an
        acknowledgement shows without waiting for data); to the spool while InfluxDB is away. The lines
        written; on a full spool they wait again (the batch path is never held)."""
        lines = self.pending_states.take()
        if not lines:
            return 0
        try:
            self._write(lines)
        except StoreUnavailable:
            self.pending_states.put_back(lines)
            return 0
        except StoreRejected as exc:  # ours: a bad line; kept as a dead letter like any derived point
            log.warning("alert_state points refused (%s); writing one by one", exc)
            self._write_derived(lines)
            self.dead_letters.flush()
        self.stored_points += len(lines)
        return len(lines)

    @property
    def state(self) -> StateStore:
        """The store the sequence book keeps its tables in (shipped: every book's, one file)."""
        return self.sequences.store

    def checkpoint(self) -> None:
        """The anti-cheat engine's state saved on its own (no batch in hand), with whatever books changed."""
        with self.state.transaction():
            self.dead_letters.flush()
            self._put_checkpoint()

    def _put_checkpoint(self) -> None:
        started = time.monotonic()
        self.state.put_checkpoint(self.engine.save())
        self.checkpoint_seconds = time.monotonic() - started

    def _write(self, lines: list[str]) -> None:
        """To InfluxDB, or behind whatever already waits in the spool (so order is kept)."""
        if not lines:
            return
        if self.spool.batches:
            self._spool(lines)
            return
        try:
            self.store.write(lines)
        except StoreUnavailable as exc:
            log.warning("InfluxDB is unavailable (%s); spooling to disk", exc)
            self._spool(lines)

    def _spool(self, lines: list[str]) -> None:
        try:
            self.spool.append(lines)
        except SpoolFull as exc:
            raise StoreUnavailable(f"InfluxDB is unavailable and {exc}") from exc
        self.spooled_points += len(lines)

    def replay_spool(self) -> bool:
        """Write spooled batches to InfluxDB, oldest first; True when the spool is empty."""
        while (oldest := self.spool.oldest()) is not None:
            batch_id, lines = oldest
            try:
                self.store.write(lines)
            except StoreUnavailable:
                return False
            except StoreRejected:
                for line in lines:  # find the line InfluxDB refuses, keep it, store the rest
                    try:
                        self.store.write([line])
                    except StoreRejected as exc:
                        self._reject("(spool)", "store_rejected", str(exc), line.encode())
            self.spool.remove(batch_id)
            self.replayed_points += len(lines)
        self.dead_letters.flush()
        return True

    def _write_one_by_one(self, accepted: list[tuple[str, bytes, list[str]]]) -> list[str]:
        stored: list[str] = []
        for topic_name, payload, msg_lines in accepted:
            try:
                self._write(msg_lines)
            except StoreUnavailable:
                raise
            except StoreRejected as exc:
                self._reject(topic_name, "store_rejected", str(exc), payload)
            except Exception as exc:
                self.surprise(f"storing a message on {topic_name}", exc)
                self._reject(topic_name, "unprocessable", _describe(exc), payload)
            else:
                stored.extend(msg_lines)
        return stored

    def _write_derived(self, lines: list[str]) -> None:
        """Flags and alerts one by one after a refused batch: a point that cannot be stored is kept as a dead
        letter (the record it was derived from is stored)."""
        for line in lines:
            try:
                self._write([line])
            except StoreUnavailable:
                raise
            except Exception as exc:
                kept = line.encode("utf-8", "backslashreplace")
                reason = "store_rejected" if isinstance(exc, StoreRejected) else "unprocessable"
                self._reject("(derived)", reason, _describe(exc), kept)

    def surprise(self, what: str, exc: BaseException) -> None:
        """An error of ours, not the peer's: logged with its traceback once per kind, counted, survived."""
        kind = f"{type(exc).__name__} in {what.split(' on ', maxsplit=1)[0]}"
        if self.surprises[kind] == 0:
            log.error("unexpected error in %s (logged once per kind): %s", what, _describe(exc), exc_info=exc)
        self.surprises[kind] += 1

    def _guarded(self, what: str, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except Exception as exc:
            self.surprise(what, exc)

    def _reject(self, topic_name: str, reason: str, detail: str, payload: bytes) -> None:
        self.rejection_log.add(topic_name, reason, detail)
        self.rejected[reason] += 1
        self.dead_letters.add(topic_name, reason, detail, payload)


@dataclass(frozen=True, slots=True)
class _Admitted:
    topic: str
    payload: bytes
    envelope: Envelope
    lines: list[str]


def _describe(exc: BaseException) -> str:
    """The error's class and message, printable whatever the message holds."""
    return f"{type(exc).__name__}: {exc!s:.300}".encode("utf-8", "backslashreplace").decode()
