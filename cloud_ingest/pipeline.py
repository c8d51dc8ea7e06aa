"""Decode → authenticate → validate → score → line protocol, for one micro-batch of MQTT messages.

:meth:`Pipeline.prepare` decodes and scores a batch once; :meth:`Pipeline.commit` makes it durable, in
InfluxDB or, while InfluxDB is away, in the on-disk spool (replayed in order by :meth:`replay_spool`).
The caller acknowledges the batch's messages to the broker only after ``commit`` returns, so nothing is
acknowledged before it is durable. Rejected payloads are counted per reason and kept, bytes and all, as
dead letters: the reasons of :data:`device_profiles.REJECT_REASONS`, plus ``store_rejected`` for a valid
message that InfluxDB refuses (say, a field whose type differs from what the database already holds).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anti_cheat import Engine, Flag, Transactions
from device_profiles import EnvelopeError, decode
from device_profiles.influx_schema import envelope_lines, escape_tag, format_field, point_time_ns
from device_profiles.topics import parse

from .errors import StoreRejected, StoreUnavailable
from .influx import InfluxClient
from .rapid_tests import Alert, PositionBook, judge
from .sensor_alerts import AlertBook
from .sequences import SequenceBook
from .spool import Spool, SpoolFull

log = logging.getLogger(__name__)


_SCORED = frozenset({"sale", "reweigh", "check_weighing"})
_BASE_TYPES = frozenset({"soil", "air", "sensor_fault"})


class DeadLetters:
    """Rejected payloads with their reason, in SQLite; keeps the newest ``limit`` and counts the rest."""

    def __init__(self, path: str | Path = ":memory:", *, limit: int = 100_000) -> None:
        self.limit = limit
        self.evicted = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS dead_letter (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER,"
            " topic TEXT, reason TEXT, detail TEXT, payload BLOB)"
        )

    def add(self, topic: str, reason: str, detail: str, payload: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO dead_letter (at_ms, topic, reason, detail, payload) VALUES (?, ?, ?, ?, ?)",
                (int(time.time() * 1000), topic, reason, detail[:500], payload),
            )
            cur = self._db.execute(
                "DELETE FROM dead_letter WHERE id <= (SELECT MAX(id) FROM dead_letter) - ?", (self.limit,)
            )
            self.evicted += cur.rowcount

    def rows(self) -> list[tuple[str, str, bytes]]:
        with self._lock:
            return [
                (t, r, bytes(p))
                for t, r, p in self._db.execute("SELECT topic, reason, payload FROM dead_letter ORDER BY id")
            ]


@dataclass
class Prepared:
    """A decoded and scored batch, ready to be made durable (possibly on a second try)."""

    accepted: list[tuple[str, bytes, list[str]]]
    flags: list[Flag]
    derived_lines: list[str]  # flags and alerts, as points
    alerts: list[Alert]


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
    ) -> None:
        self.key_for = key_for
        self.engine = engine
        self.store = store
        self.dead_letters = dead_letters or DeadLetters()
        self.spool = spool or Spool()
        self.sequences = sequences or SequenceBook()
        self.revoked = revoked
        self.tags_for = tags_for  # registry enrichment, from memory (LiveDevices or a devices file)
        self.positions = PositionBook()
        self.alert_book = alert_book or AlertBook()
        self.alert_sink: Callable[[Alert], None] | None = None
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

    def process(self, messages: Sequence[tuple[str, bytes]]) -> list[Flag]:
        """Prepare and store a batch of ``(topic, payload)``; returns the anti-cheat flags raised."""
        prepared = self.prepare(messages)
        self.commit(prepared)
        return prepared.flags

    def prepare(self, messages: Sequence[tuple[str, bytes]]) -> Prepared:
        """Decode, authenticate, validate and score a batch (once: the engine's state moves on)."""
        if self.before_batch is not None:
            self.before_batch()
        accepted: list[tuple[str, bytes, list[str]]] = []
        scored: list[tuple[str, int, dict[str, Any]]] = []
        alerts: list[Alert] = []
        base_rows: list[tuple[str, int, dict[str, Any]]] = []
        states: list[tuple[str, dict[str, Any]]] = []
        for topic_name, payload in messages:
            self.received += 1
            parsed = parse(topic_name)
            try:
                if parsed is None or parsed[1] != "data":
                    raise EnvelopeError("bad_topic", topic_name)
                if self.revoked(parsed[0]):
                    raise EnvelopeError("revoked_device", parsed[0])
                env = decode(payload, topic_device=parsed[0], key_for=self.key_for)
                if self.sequences.is_replay(env.device, env.seq, len(env.records)):
                    raise EnvelopeError("replayed", f"seq {env.seq}, highest {self.sequences.highest[env.device]}")
            except EnvelopeError as exc:
                self._reject(topic_name, exc.reason, exc.detail, payload)
                continue
            tags = self.tags_for(env.device)
            accepted.append((topic_name, payload, envelope_lines(env.device, env.seq, env.records, tags)))
            self.sequences.observe(env.device, env.seq, len(env.records))
            if any(r["type"] in ("gps", "rapid_test") for r in env.records):
                alerts += judge(env.device, env.seq, env.records, self.positions)
            base_rows.extend(
                (env.device, env.seq + i, r) for i, r in enumerate(env.records) if r["type"] in _BASE_TYPES
            )
            self.last_sent_ms = max(self.last_sent_ms, env.sent_ms)
            for i, rec in enumerate(env.records):
                if rec["type"] in _SCORED:
                    scored.append((env.device, env.seq + i, rec))
                elif rec["type"] == "scale_state":
                    states.append((env.device, {**rec, "seq": env.seq + i}))
        if base_rows:
            alerts += self.alert_book.observe_batch(base_rows)
        batch = Transactions.from_records(self.engine.facts, scored)
        flags = self.engine.score(batch).flags(batch, self.engine.facts)
        for device, state in states:
            flags += self.engine.observe_state(device, state)
        derived = [flag_line(f) for f in flags] + [alert_line(a) for a in alerts]
        return Prepared(accepted, flags, derived, alerts)

    def commit(self, prepared: Prepared) -> None:
        """Make a prepared batch durable: in InfluxDB, or in the spool while InfluxDB is away.

        Raises :class:`StoreUnavailable` only when InfluxDB is away and the spool is full: retry the same
        ``prepared`` later (writes are idempotent). If InfluxDB refuses the batch as invalid, messages are
        written one by one and those it still refuses become dead letters with reason ``store_rejected``,
        so one bad message cannot stall the stream.
        """
        accepted, flags, flag_lines = prepared.accepted, prepared.flags, prepared.derived_lines
        lines = [line for _, _, msg_lines in accepted for line in msg_lines]
        if lines or flag_lines:
            try:
                self._write(lines + flag_lines)
            except StoreRejected as exc:
                log.warning("InfluxDB refused a batch of %d messages (%s); writing one by one", len(accepted), exc)
                lines = self._write_one_by_one(accepted)
                self._write(flag_lines)
        self.accepted_records += len(lines)  # one line per record
        self.records_by_type.update(line[: line.index(",")] for line in lines)  # the measurement is the type
        self.stored_points += len(lines) + len(flag_lines)
        self.flagged += len({(f.device, f.seq) for f in flags})
        self.flags_by_rule.update(f.rule for f in flags)
        self.sequences.save()
        self.alert_book.save()
        for alert in prepared.alerts:  # only now: what an alert points at is durable
            self.alerts_by_kind[alert.kind] += 1
            if self.alert_sink is not None:
                self.alert_sink(alert)

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
        return True

    def _write_one_by_one(self, accepted: list[tuple[str, bytes, list[str]]]) -> list[str]:
        stored: list[str] = []
        for topic_name, payload, msg_lines in accepted:
            try:
                self._write(msg_lines)
            except StoreRejected as exc:
                self._reject(topic_name, "store_rejected", str(exc), payload)
            else:
                stored.extend(msg_lines)
        return stored

    def _reject(self, topic_name: str, reason: str, detail: str, payload: bytes) -> None:
        if self.rejected[reason] == 0:
            log.warning("rejected a payload on %s: %s: %s (logged once per reason)", topic_name, reason, detail)
        self.rejected[reason] += 1
        self.dead_letters.add(topic_name, reason, detail, payload)


def flag_line(flag: Flag) -> str:
    """A ``flag`` point: tags device, rule, severity; at the flagged sale's point time."""
    tags = f"device={escape_tag(flag.device)},rule={flag.rule},severity={flag.severity}"
    fields = ",".join(
        f"{k}={format_field(v)}"
        for k, v in (
            ("seq", flag.seq),
            ("value", flag.value),
            ("limit", flag.limit),
            ("reason_en", flag.reason_en),
            ("reason_zh", flag.reason_zh),
            *((("record_device", flag.record_device),) if flag.record_device else ()),
        )
    )
    return f"flag,{tags} {fields} {point_time_ns(flag.ts, flag.seq)}"


def alert_line(alert: Alert) -> str:
    """An ``alert`` point: tags kind, severity, device, subject; at the alerting record's point time."""
    tags = (
        f"device={escape_tag(alert.device)},kind={alert.kind},severity={alert.severity},"
        f"subject={escape_tag(alert.subject)}"
    )
    fields = {"id": alert.id, "seq": alert.seq, **{k: v for k, v in alert.detail.items() if v is not None}}
    body = ",".join(f"{k}={format_field(v)}" for k, v in fields.items())
    return f"alert,{tags} {body} {point_time_ns(alert.ts, alert.seq)}"
