"""The supervisors' steps on alert cases, as ``alert_state`` points (dashboards/series.py).

The ingest writes an alert's opening and its base's acknowledgement itself
(:func:`cloud_ingest.derived_points.alert_state_line`); what supervisors do happens in the registry.
The case reporter's thread (:mod:`cloud_ingest.case_reporter`) calls :meth:`CaseStatePoller.poll` every
counts interval: it reads ``GET /v1/cases?source=alert&updated_since=…`` (the cases changed since the
last poll, oldest change first, 200 a page, at most :data:`MAX_PAGES` pages a poll; the rest at the
next one), each such case's history (``GET /v1/cases/{id}``), and writes one point per supervisor's step
since then (acknowledge → acknowledged, assign → assigned, close → closed; ``open`` 0; ``actor`` the
step's actor; at the step's time). Tags are the case's: ``id`` the alert's id, ``kind`` its rule,
``severity``, and the place (district, market, and stall, base or vehicle from the case's place).

Failure-tolerant and bounded: a poll that cannot read the registry or write InfluxDB leaves its cursor
where it was and is tried again at the next interval; a point written twice is the same point (same
series and time), so the cursor goes back :data:`OVERLAP_S` to take steps whose transaction committed
late, and a restart reads the last :data:`START_BACK_S` again. The cursor is one timestamp: memory does
not grow with the cases.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import httpx

from .derived_points import alert_state_line
from .errors import RegistryAway, StoreRejected, StoreUnavailable
from .influx import InfluxClient

log = logging.getLogger(__name__)

PAGE = 200
MAX_PAGES = 5
OVERLAP_S = 60.0
START_BACK_S = 86_400.0
#: a supervisor's step → the state it leads to (what the registry's case history names them)
STEPS = {"acknowledge": "acknowledged", "assign": "assigned", "close": "closed"}


def _utc(text: str) -> dt.datetime:
    at = dt.datetime.fromisoformat(text)
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def case_place(case: dict[str, Any]) -> dict[str, str]:
    """The place tags of a case: district, market, and its stall, base or vehicle."""
    place = {"district": case["district_id"], "market": case.get("market_id") or ""}
    kind, where = case.get("place_kind"), str(case.get("place") or "")
    if kind == "stall":
        place["stall"] = where.rsplit("/", 1)[-1]
    elif kind in ("base", "vehicle"):
        place[kind] = where
    return {k: v for k, v in place.items() if v}


def step_lines(case: dict[str, Any], since: dt.datetime) -> list[str]:
    """``alert_state`` lines of the supervisors' steps in ``case`` (a case detail) at or after ``since``."""
    if not case.get("alert_id"):
        return []
    out = []
    place = case_place(case)
    for h in case.get("history") or []:
        state = STEPS.get(h.get("action", ""))
        if state is None or _utc(h["at"]) < since:
            continue
        at_ms = int(_utc(h["at"]).timestamp() * 1000)
        out.append(
            alert_state_line(
                case["alert_id"], case["rule"], case["severity"], place, state=state, actor=h["actor"], ts_ms=at_ms
            )
        )
    return out


class CaseStatePoller:
    """Follows the registry's alert cases into ``alert_state`` (see the module docstring)."""

    def __init__(
        self,
        http: httpx.Client,
        influx: InfluxClient,
        *,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._http, self.influx, self._now = http, influx, now
        self.since = now() - dt.timedelta(seconds=START_BACK_S)
        self.points_written = 0
        self.failures = 0

    def poll(self) -> bool:
        """One poll; False if the registry or InfluxDB was away (the cursor stays)."""
        started = self._now()
        since, lines, last_change = self.since, [], None
        complete = False
        try:
            for page in range(MAX_PAGES):
                params: dict[str, str | int] = {
                    "source": "alert",
                    "updated_since": since.isoformat(),
                    "limit": PAGE,
                    "offset": page * PAGE,
                }
                items = self._get("/v1/cases", params)["items"]
                for case in items:
                    lines += step_lines(self._get(f"/v1/cases/{case['id']}"), since)
                    last_change = _utc(case["updated_at"])
                if len(items) < PAGE:
                    complete = True
                    break
        except (httpx.HTTPError, RegistryAway, KeyError, ValueError) as exc:
            return self._failed("reading the registry's cases", exc)
        if lines:
            try:
                self.influx.write(lines)
            except (StoreUnavailable, StoreRejected) as exc:
                return self._failed("writing alert_state", exc)
            self.points_written += len(lines)
        if complete:
            self.since = started - dt.timedelta(seconds=OVERLAP_S)
        elif last_change is not None:  # more than a poll's pages: go on from the last change read
            self.since = last_change
        self.failures = 0
        return True

    def _get(self, path: str, params: dict[str, str | int] | None = None) -> dict[str, Any]:
        r = self._http.get(path, params=params)
        if r.status_code != 200:
            raise RegistryAway(f"{path}: {r.status_code} {r.text[:200]}")
        doc: dict[str, Any] = r.json()
        return doc

    def _failed(self, what: str, exc: Exception) -> bool:
        if self.failures == 0:
            log.warning("alert_state from the registry's cases: %s failed (%s); tried again each interval", what, exc)
        self.failures += 1
        return False
