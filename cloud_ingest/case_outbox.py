"""The case outbox: alert, flag and base-acknowledgement events waiting to reach the registry's cases.

Events are put in the ingest's state store in the transaction that makes their batch durable
(:meth:`Pipeline.commit`), so an event exists exactly when what it points at is stored, a crash loses
none, and a batch stored twice (a retry) puts each event once (``event_key`` is unique here as in the
registry). The registry is never called on the batch thread: :mod:`.case_reporter` drains the outbox on
a thread of its own, so a registry outage only makes the outbox grow.

The outbox is bounded (``ZHIJIAN_CASE_OUTBOX_MAX_EVENTS``, 100 000 by default: days of an outage at
Shenzhen's flag rates). Past the bound, new events are not kept: each is counted by type in
:attr:`CaseOutbox.overflowed` (exported as ``zhijian_ingest_case_events_overflowed``) and logged once
per outage; the alerts and flags themselves are stored in InfluxDB all the same.

Event keys: ``flag:<scale>:<seq>:<rule>``, ``alert:<alert id>``, ``base_ack:<alert id>`` — a
redelivered message gives the same keys, so the registry takes each event once.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from anti_cheat import Flag

from .rapid_tests import Alert
from .state_store import StateStore

log = logging.getLogger(__name__)

MAX_EVENTS = 100_000
_MAX_TEXT = 500  # the registry's bound on a detail value
_MAX_DETAIL = 50


def _scalars(detail: dict[str, Any]) -> dict[str, Any]:
    """What the registry's schema takes of a detail: scalars (long texts cut), at most 50 keys."""
    out: dict[str, Any] = {}
    for k, v in list(detail.items())[:_MAX_DETAIL]:
        if isinstance(v, str):
            out[str(k)[:64]] = v[:_MAX_TEXT]
        elif isinstance(v, bool | int | float) and math.isfinite(v):
            out[str(k)[:64]] = v
    return out


def flag_event(flag: Flag) -> dict[str, Any]:
    detail = {"value": flag.value, "limit": flag.limit, "reason_en": flag.reason_en, "reason_zh": flag.reason_zh}
    if flag.record_device:
        detail["record_device"] = flag.record_device
    return {
        "event_key": f"flag:{flag.device}:{flag.seq}:{flag.rule}",
        "type": "flag",
        "device": flag.device,
        "ts": flag.ts,
        "seq": flag.seq,
        "rule": flag.rule,
        "severity": flag.severity,
        "summary": f"{flag.reason_en} ({flag.reason_zh})"[:_MAX_TEXT] if flag.reason_en else None,
        "detail": _scalars(detail),
    }


def alert_event(alert: Alert) -> dict[str, Any]:
    return {
        "event_key": f"alert:{alert.id}"[:200],
        "type": "alert",
        "device": alert.device,
        "ts": alert.ts,
        "seq": alert.seq,
        "rule": alert.kind,
        "severity": alert.severity,
        "alert_id": alert.id[:200],
        "subject": alert.subject[:200] if alert.subject else None,
        "detail": _scalars(alert.detail),
    }


def base_ack_event(device: str, alert_id: str, *, by: str = "", ts_ms: int | None = None) -> dict[str, Any]:
    return {
        "event_key": f"base_ack:{alert_id}"[:200],
        "type": "base_ack",
        "device": device,
        "ts": ts_ms if ts_ms is not None else int(time.time() * 1000),
        "alert_id": alert_id[:200],
        "by": by.strip()[:200] or None,
    }


class CaseOutbox:
    """Events for the registry, in the ingest's state store, oldest first."""

    def __init__(self, store: StateStore, *, max_events: int = MAX_EVENTS) -> None:
        self.store = store
        self.max_events = max_events
        self.overflowed: Counter[str] = Counter()
        self._full_logged = False
        with store.lock:
            store.db.execute(
                "CREATE TABLE IF NOT EXISTS case_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " event_key TEXT NOT NULL UNIQUE, body TEXT NOT NULL)"
            )
            self._depth: int = store.db.execute("SELECT count(*) FROM case_outbox").fetchone()[0]

    @property
    def depth(self) -> int:
        return self._depth

    def put(self, events: Iterable[dict[str, Any]]) -> None:
        """Keep ``events`` (in the caller's transaction when there is one); those past the bound are counted."""
        with self.store.transaction() as db:
            added = 0
            for event in events:
                if self._depth + added >= self.max_events:
                    self._overflow(event)
                    continue
                cur = db.execute(
                    "INSERT OR IGNORE INTO case_outbox (event_key, body) VALUES (?, ?)",
                    (event["event_key"], json.dumps(event, ensure_ascii=False)),
                )
                added += cur.rowcount
            before = self._depth
            self._depth += added
            self.store.on_rollback(lambda: setattr(self, "_depth", before))

    def _overflow(self, event: dict[str, Any]) -> None:
        if not self._full_logged:
            log.error(
                "the case outbox is full (%d events: the registry has not taken them); new %s events are counted, "
                "not kept, until it drains (logged once per outage)",
                self.max_events,
                event["type"],
            )
            self._full_logged = True
        self.overflowed[event["type"]] += 1

    def close(self) -> None:
        """Release the state store (the last book's close closes the file)."""
        self.store.close()

    def oldest(self, n: int) -> list[tuple[int, dict[str, Any]]]:
        with self.store.lock:
            rows = self.store.db.execute("SELECT id, body FROM case_outbox ORDER BY id LIMIT ?", (n,)).fetchall()
        return [(row_id, json.loads(body)) for row_id, body in rows]

    def remove(self, ids: Sequence[int]) -> None:
        """Forget events the registry has taken."""
        if not ids:
            return
        with self.store.transaction() as db:
            removed = db.executemany("DELETE FROM case_outbox WHERE id = ?", [(i,) for i in ids]).rowcount
            before = self._depth
            self._depth -= removed
            self.store.on_rollback(lambda: setattr(self, "_depth", before))
            if self._depth < self.max_events:
                self._full_logged = False
