"""Rapid-test verdicts and alerts: the cloud recomputes each enzyme-inhibition result and raises an alert
for positives and suspects, tied to the stall or base the sample came from and to where the vehicle was.

Rules (GB/T 5009.199-2003): inhibition % = (ΔA0 − ΔAt) / ΔA0 × 100;
≥ 50 % positive (retest twice more and confirm by another method); 40–50 % suspect (a study found a
25.4 % false-negative rate there); a control with ΔA0 < 0.3 is invalid [unsure]. The device's own verdict
is kept; when the cloud's differs, the alert says so. Verdicts are computed over the batch with numpy;
only the alerts (few) are built one by one. GPS fixes are kept per vehicle in a bounded ring to find the
position at sampling time.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

POSITIVE_PCT, SUSPECT_PCT, MIN_CONTROL = 50.0, 40.0, 0.3
FIX_RING = 3_600  # fixes kept per vehicle (an hour at 1 Hz)
MAX_FIX_DISTANCE_MS = 5 * 60_000  # a fix further than this from the sampling time does not place it


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a supervisor must act on; ``subject`` is the stall or base concerned."""

    id: str
    kind: str
    severity: str
    device: str
    seq: int
    ts: int
    subject: str
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "device": self.device,
            "seq": self.seq,
            "ts": self.ts,
            "subject": self.subject,
            **self.detail,
        }


RESULTS = ("invalid", "negative", "suspect", "positive")
INVALID, NEGATIVE, SUSPECT, POSITIVE = range(4)


def verdicts(
    delta_a0: npt.NDArray[np.float64], delta_at: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Inhibition % and result codes (indices into :data:`RESULTS`) for a batch of tests."""
    valid = delta_a0 >= MIN_CONTROL
    pct = np.where(valid, np.round((delta_a0 - delta_at) / np.where(valid, delta_a0, 1.0) * 100, 2), 0.0)
    codes = np.select([~valid, pct >= POSITIVE_PCT, pct >= SUSPECT_PCT], [INVALID, POSITIVE, SUSPECT], NEGATIVE)
    return pct, codes.astype(np.int64)


@dataclass
class PositionBook:
    """Recent GPS fixes per vehicle."""

    fixes: dict[str, deque[tuple[int, float, float]]] = field(default_factory=dict)

    def add(self, device: str, ts: int, lat: float, lon: float) -> None:
        ring = self.fixes.setdefault(device, deque(maxlen=FIX_RING))
        if ring and ts < ring[-1][0]:
            return  # out of order: GPS time only goes forward on one receiver
        ring.append((ts, lat, lon))

    def at(self, device: str, ts: int) -> tuple[float, float] | None:
        ring = self.fixes.get(device)
        if not ring:
            return None
        times = [f[0] for f in ring]
        i = bisect.bisect_left(times, ts)
        best = min((ring[j] for j in (i - 1, i) if 0 <= j < len(ring)), key=lambda f: abs(f[0] - ts))
        return (best[1], best[2]) if abs(best[0] - ts) <= MAX_FIX_DISTANCE_MS else None


def judge(device: str, first_seq: int, records: list[dict[str, Any]], positions: PositionBook) -> list[Alert]:
    """Alerts for the positive and suspect rapid tests among ``records`` (GPS fixes update ``positions``)."""
    for rec in records:
        if rec["type"] == "gps":
            positions.add(device, rec["ts"], rec["lat_deg"], rec["lon_deg"])
    rows = [i for i, rec in enumerate(records) if rec["type"] == "rapid_test"]
    if not rows:
        return []
    pcts, results = verdicts(
        np.array([records[i]["delta_a0"] for i in rows], dtype=np.float64),
        np.array([records[i]["delta_at"] for i in rows], dtype=np.float64),
    )
    alerts = []
    for k in np.flatnonzero(results >= SUSPECT):  # alerts are few: one loop per alert, not per test
        i, pct, result = rows[k], float(pcts[k]), RESULTS[results[k]]
        rec = records[i]
        seq = first_seq + i
        where = positions.at(device, rec["ts"])
        detail: dict[str, Any] = {
            "sample_id": rec["sample_id"],
            "sample_name": rec["sample_name"],
            "inhibition_pct": pct,
            "result": result,
            "device_result": rec["result"],
            "agrees": rec["result"] == result,
            "lat_deg": where[0] if where else None,
            "lon_deg": where[1] if where else None,
            "action": "retest twice more and confirm by another method"
            if result == "positive"
            else "retest: 40–50 % inhibition has a high false-negative rate",
        }
        alerts.append(
            Alert(
                f"{device}:{seq}",
                f"rapid_test_{result}",
                "high" if result == "positive" else "medium",
                device,
                seq,
                rec["ts"],
                rec["source_id"],
                detail,
            )
        )
    return alerts
