"""Planting-base alerts: thresholds with a minimum duration and hysteresis, sensor faults, and the base's
acknowledgement. State lives in SQLite so that an open alert survives a worker restart.

For each (base, channel) — a channel is ``<record type>.<field>``, such as ``soil.moisture_pct`` — a
breach of the low or high limit that lasts ``min_duration_s`` opens an alert; the reading must come back
inside the limits by the ``hysteresis`` margin before the condition counts as cleared, so a value
hovering at a limit does not flap. A ``sensor_fault`` record (timeout, out of range, stuck) opens a
``sensor_fault`` alert for its channel at once. An alert stays open until the base acknowledges it (its
agent's reply ``ack_alert``) *and* the condition has cleared; only then can the channel alert again.
Limits are checked for a whole batch with numpy; only channels that breach or are not quiet go through the
state machine. State is kept in memory and written to SQLite when a batch is stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from device_profiles.sensor_limits import CROP_LIMITS, DEFAULT_LIMITS, Limit

from .rapid_tests import Alert
from .state_store import StateStore, open_store

_FIELDS = ("breach_since", "alert", "acknowledged", "cleared", "detail")


class AlertBook:
    """Open alerts and pending breaches per (device, channel)."""

    def __init__(self, path: str | Path | StateStore = ":memory:") -> None:
        self.store = open_store(path)
        self._lock = self.store.lock
        self._db = self.store.db
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS channel (device TEXT, channel TEXT, breach_since INTEGER, alert TEXT,"
            " acknowledged INTEGER NOT NULL DEFAULT 0, cleared INTEGER NOT NULL DEFAULT 1, detail TEXT,"
            " PRIMARY KEY (device, channel))"
        )
        self.limits: dict[str, dict[str, Limit]] = {}  # device → channel → limit, from the registry
        self.crops: dict[str, str] = {}  # device → crop grown at its base
        # the state lives in memory and is written behind, at each commit (save): a reading costs ~25 µs
        self._state: dict[tuple[str, str], dict[str, Any]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._unquiet: set[tuple[str, str]] = set()  # channels with a pending breach or an alert not closed
        for device, channel, *values in self._db.execute(
            "SELECT device, channel, breach_since, alert, acknowledged, cleared, detail FROM channel"
        ):
            self._save(device, channel, dict(zip(_FIELDS, values, strict=True)))
        self._dirty.clear()

    def _row(self, device: str, channel: str) -> dict[str, Any]:
        st = self._state.get((device, channel))
        return (
            dict(st) if st else {"breach_since": None, "alert": None, "acknowledged": 0, "cleared": 1, "detail": None}
        )

    def _save(self, device: str, channel: str, st: dict[str, Any]) -> None:
        if self._state.get((device, channel)) != st:
            self._state[device, channel] = st
            self._dirty.add((device, channel))
        if st["breach_since"] is None and st["alert"] is None and st["cleared"]:
            self._unquiet.discard((device, channel))
        else:
            self._unquiet.add((device, channel))

    def save(self) -> None:
        """Write the changed channels in the store's transaction (the pipeline's, one per batch, when the
        batch is durable); they are marked clean only once it commits."""
        with self._lock:
            rows = [(d, c, *(self._state[d, c][f] for f in _FIELDS)) for d, c in self._dirty]
            if not rows:
                return
            with self.store.transaction() as db:
                db.executemany(
                    "INSERT INTO channel VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(device, channel) DO UPDATE SET"
                    " breach_since = excluded.breach_since, alert = excluded.alert,"
                    " acknowledged = excluded.acknowledged, cleared = excluded.cleared, detail = excluded.detail",
                    rows,
                )
                self.store.after_commit(self._dirty.clear)

    def close(self) -> None:
        self.store.close()

    def open_alerts(self) -> list[tuple[str, str, str]]:
        """(device, channel, alert id) of every alert not yet closed."""
        with self._lock:
            return [(d, c, st["alert"]) for (d, c), st in sorted(self._state.items()) if st["alert"] is not None]

    def limit(self, device: str, channel: str) -> Limit | None:
        """The base's own limit, else its crop's, else the default."""
        crop = CROP_LIMITS.get(self.crops.get(device, ""), {})
        return self.limits.get(device, {}).get(channel) or crop.get(channel) or DEFAULT_LIMITS.get(channel)

    def observe(self, device: str, seq: int, record: dict[str, Any]) -> list[Alert]:
        """Alerts opened by one soil, air or sensor_fault record."""
        return self.observe_batch([(device, seq, record)])

    def observe_batch(self, rows: list[tuple[str, int, dict[str, Any]]]) -> list[Alert]:
        """Alerts opened by a batch of ``(device, seq, record)`` soil, air and sensor_fault records.

        The limits are checked for the whole batch at once (numpy); only channels that breach, or whose
        state is not quiet (a pending breach, an open alert), go through the state machine, in order.
        """
        with self._lock:
            out: list[Alert] = []
            readings: list[tuple[str, int, int, str, float, Limit]] = []
            for device, seq, rec in rows:
                if rec["type"] == "sensor_fault":
                    out += self._fault(device, seq, rec)
                    continue
                for field, value in rec.items():
                    if field not in ("type", "ts"):
                        channel = f"{rec['type']}.{field}"
                        limit = self.limit(device, channel)
                        if limit is not None:
                            readings.append((device, seq, rec["ts"], channel, float(value), limit))
            if not readings:
                return out
            values = np.array([r[4] for r in readings])
            low = np.array([np.nan if r[5].low is None else r[5].low for r in readings])
            high = np.array([np.nan if r[5].high is None else r[5].high for r in readings])
            breach = (values < low) | (values > high)  # NaN limits compare False
            for k in np.flatnonzero(breach | np.array([(r[0], r[3]) in self._unquiet for r in readings])):
                device, seq, ts, channel, value, limit = readings[k]
                out += self._reading(device, seq, ts, channel, value, limit)
            return out

    def _reading(self, device: str, seq: int, ts: int, channel: str, value: float, limit: Limit) -> list[Alert]:
        st = self._row(device, channel)
        low = limit.low is not None and value < limit.low
        high = limit.high is not None and value > limit.high
        inside = (limit.low is None or value >= limit.low + limit.hysteresis) and (
            limit.high is None or value <= limit.high - limit.hysteresis
        )
        out: list[Alert] = []
        if low or high:
            st["cleared"] = 0
            if st["breach_since"] is None:
                st["breach_since"] = ts
            if st["alert"] is None and ts - st["breach_since"] >= limit.min_duration_s * 1000:
                bound = limit.low if low else limit.high
                alert = Alert(
                    f"{device}:{channel}:{ts}",
                    "sensor_threshold",
                    "medium",
                    device,
                    seq,
                    ts,
                    device,
                    {
                        "channel": channel,
                        "value": float(value),  # floats always: InfluxDB refuses a field whose type changes
                        "limit": None if bound is None else float(bound),
                        "side": "low" if low else "high",
                        "since_ts": st["breach_since"],
                    },
                )
                st.update(alert=alert.id, acknowledged=0, detail=json.dumps(alert.detail))
                out.append(alert)
        elif inside:
            st["breach_since"] = None
            st["cleared"] = 1
            if st["alert"] is not None and st["acknowledged"]:
                st["alert"] = None  # acknowledged and cleared: closed
        self._save(device, channel, st)
        return out

    def _fault(self, device: str, seq: int, record: dict[str, Any]) -> list[Alert]:
        channel = f"fault.{record['channel']}"
        st = self._row(device, channel)
        if st["alert"] is not None:
            return []
        alert = Alert(
            f"{device}:{channel}:{record['ts']}",
            "sensor_fault",
            "medium",
            device,
            seq,
            record["ts"],
            device,
            {"channel": record["channel"], "fault": record["fault"]},
        )
        st.update(alert=alert.id, acknowledged=0, cleared=0, breach_since=record["ts"], detail=json.dumps(alert.detail))
        self._save(device, channel, st)
        return [alert]

    def acknowledge(self, device: str, alert_id: str) -> str | None:
        """The base acknowledged ``alert_id``; closes it if its condition has cleared. The alert's channel
        (``fault.…`` for a sensor fault), None if it is not open."""
        with self._lock:
            found = [(c, st) for (d, c), st in self._state.items() if d == device and st["alert"] == alert_id]
            if not found:
                return None
            channel, st = found[0]
            st = {**st, "acknowledged": 1}
            if st["cleared"] or channel.startswith("fault."):  # a fault closes on acknowledgement
                st["alert"] = None
            self._save(device, channel, st)
        self.save()  # rare, and the base should not have to acknowledge twice after a restart
        return channel

    def open_by_device(self) -> dict[str, int]:
        """Alerts not closed, per device: the ``open_alerts`` of a planting base's place. Read from the
        channels that are not quiet (those with a pending breach or an alert), a small set however many
        sensors report."""
        with self._lock:
            out: dict[str, int] = {}
            for device, channel in self._unquiet:
                if self._state[device, channel]["alert"] is not None:
                    out[device] = out.get(device, 0) + 1
            return out
