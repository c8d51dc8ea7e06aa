"""The case reporter: drains the case outbox to the registry and writes the ``case`` series for dashboards.

On its own thread (a supervised :class:`~device_profiles.loops.Loop`, ``case-reporter``), never the batch
thread's: it posts the outbox's oldest events (up to 200 a call) to ``POST /v1/case-events`` with the
ingest's token (role ``ingest``) and forgets them once the registry has answered for each. While the
registry is away or refuses the token, the events stay in the outbox and the reporter retries with a
backoff doubling up to 30 s; the loss and the recovery are each logged once. A batch the registry
refuses by its schema (422, which a bug of ours would cause) or for its size (413) is sent one event at
a time, and an event refused alone is logged, counted as ``refused`` and forgotten: sending it again
would be refused again.

Every ``case_counts_interval_s`` it reads ``GET /v1/case-counts`` (cases not closed, by district,
market and state) and writes, at the time of the reading, field ``count`` in one ``case`` point per
district and state (tag ``level=district``: every case of the district, its bases' and vehicles'
included) and one per market and state (``level=market``); a combination counted before and now gone is
written as 0, so a panel's ``last()`` goes down to 0 when the last case closes. District totals are
written, not summed in InfluxQL, because InfluxDB 1.x sums the ``fill(previous)`` buckets of a subquery
per series instead of per time, which a time-series panel needs. Why the ingest writes it, not the registry: the
registry keeps no InfluxDB connection (it stays a small CRUD service that runs without one), and the
ingest already writes InfluxDB; the price is that the series lags the registry by up to one interval
(30 s by default) and is not written while the ingest is down (docs/cases.md).

With the counts it follows the supervisors' steps on alert cases into the ``alert_state`` series
(:mod:`cloud_ingest.case_state_points`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import httpx

from device_profiles.influx_schema import escape_tag
from device_profiles.loops import Loop

from .case_outbox import CaseOutbox
from .case_state_points import CaseStatePoller
from .errors import RegistryAway, StoreUnavailable
from .influx import InfluxClient

log = logging.getLogger(__name__)

BATCH = 200
MAX_BACKOFF_S = 30.0


class CaseReporter:
    """Sends the outbox to the registry API; optionally writes the ``case`` counts to InfluxDB."""

    def __init__(
        self,
        outbox: CaseOutbox,
        *,
        api_url: str,
        token: str,
        influx: InfluxClient | None = None,
        counts_interval_s: float = 30.0,
        idle_s: float = 0.5,
        timeout_s: float = 10.0,
        http: httpx.Client | None = None,
    ) -> None:
        """``http``: a client of our own making instead (tests hand the registry app's test client)."""
        self.outbox = outbox
        self.influx = influx
        self.counts_interval_s = counts_interval_s
        self.idle_s = idle_s
        self._http = http or httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout_s)
        self._http.headers["Authorization"] = f"Bearer {token}"
        self.results: Counter[str] = Counter()  # what the registry made of the events: opened, attached, …
        self.failures = 0  # calls that failed (the events wait)
        self.count_writes = 0
        self._away_since: float | None = None
        self._backoff = idle_s
        self._counted: set[tuple[str, str, str]] = set()  # (market or "", district, state) written before
        self._counts_due = 0.0
        #: the supervisors' steps on alert cases as ``alert_state`` points, polled with the counts
        self.states = CaseStatePoller(self._http, influx) if influx is not None else None
        self.loop = Loop("case-reporter", self._step, max_backoff_s=MAX_BACKOFF_S)

    def start(self) -> CaseReporter:
        self.loop.start()
        return self

    def stop(self) -> None:
        self.loop.stop()
        self._http.close()

    # -- one step --------------------------------------------------------------------------------------
    def _step(self) -> None:
        delivered = self.deliver()
        if self.influx is not None and time.monotonic() >= self._counts_due:
            self.write_counts()
            if self.states is not None:
                self.states.poll()
        if delivered == 0:
            self.loop.stopping.wait(self._backoff if self._away_since is not None else self.idle_s)

    def deliver(self) -> int:
        """Send one batch of the oldest events; the number the registry answered for (0: none waiting, or
        the registry is away)."""
        rows = self.outbox.oldest(BATCH)
        if not rows:
            return 0
        try:
            answered = self._post([event for _, event in rows])
        except RegistryAway as exc:
            self._away(str(exc))
            return 0
        if answered is None:  # refused by the schema or for its size: one by one, to find the one
            done = []
            for row_id, event in rows:
                try:
                    one = self._post([event])
                except RegistryAway as exc:
                    self._away(str(exc))
                    break
                if one is None:
                    log.error("the registry refused case event %s (schema or size); dropped", event["event_key"])
                    self.results["refused"] += 1
                else:
                    self.results.update(r["result"] for r in one)
                done.append(row_id)
            self.outbox.remove(done)
            return len(done)
        self._back()
        self.results.update(r["result"] for r in answered)
        self.outbox.remove([row_id for row_id, _ in rows])
        return len(rows)

    def _post(self, events: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """The registry's results for ``events``; None if it refused them by its schema (422) or as too
        large (413: many events with long details; each alone is small)."""
        try:
            r = self._http.post("/v1/case-events", json={"events": events})
        except httpx.HTTPError as exc:
            raise RegistryAway(f"cannot reach the registry: {exc}") from exc
        if r.status_code in (413, 422):
            return None
        if r.status_code != 200:  # 401/403 (a token to fix), 5xx, a proxy's answer: keep and retry
            raise RegistryAway(f"the registry answered {r.status_code}: {r.text[:200]}")
        results: list[dict[str, Any]] = r.json()["results"]
        return results

    def _away(self, why: str) -> None:
        self.failures += 1
        if self._away_since is None:
            self._away_since = time.monotonic()
            log.warning("case events wait in the outbox (%d): %s", self.outbox.depth, why)
        self._backoff = min(max(self._backoff * 2, 1.0), MAX_BACKOFF_S)

    def _back(self) -> None:
        if self._away_since is not None:
            log.warning(
                "the registry takes case events again after %.0f s; %d wait",
                time.monotonic() - self._away_since,
                self.outbox.depth,
            )
            self._away_since = None
        self._backoff = self.idle_s

    # -- the dashboards' series ------------------------------------------------------------------------
    def write_counts(self) -> bool:
        """Read the registry's counts and write the ``case`` points; False if either side is away."""
        assert self.influx is not None
        self._counts_due = time.monotonic() + self.counts_interval_s
        try:
            r = self._http.get("/v1/case-counts")
        except httpx.HTTPError:
            return False
        if r.status_code != 200:
            return False
        now_ns = time.time_ns()
        seen: Counter[tuple[str, str, str]] = Counter()
        for item in r.json()["items"]:
            district, market, state, n = item["district_id"], item["market_id"], item["state"], int(item["count"])
            seen["", district, state] += n  # the district's total ("" market: the district level)
            if market:
                seen[market, district, state] += n
        lines = [case_line(key, seen[key], now_ns) for key in sorted(seen.keys() | self._counted)]
        if not lines:
            return True
        try:
            self.influx.write(lines)
        except StoreUnavailable:
            return False
        self._counted = set(seen)
        self.count_writes += 1
        return True


def case_line(key: tuple[str, str, str], count: int, ts_ns: int) -> str:
    """A ``case`` point for ``(market, district, state)``: with a market, tags ``level=market``, district,
    market, state; with ``""``, the district's total over its markets, bases and vehicles, ``level=district``."""
    market, district, state = key
    where = f"level=market,market={escape_tag(market)}" if market else "level=district"
    return f"case,district={escape_tag(district)},{where},state={escape_tag(state)} count={count}i {ts_ns}"
