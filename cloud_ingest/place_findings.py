"""What was found at each place in the last 24 hours, for the ``open_flags`` and ``open_alerts`` fields of
the ``place`` series (:mod:`cloud_ingest.status_points`):

- flags raised at a stall's scales, by (market, stall), counted from the flags the ingest writes;
- positive and suspect rapid tests of samples from a market's stalls, by market, from the rapid-test
  alerts the ingest writes (a sample's place is its source's: :func:`cloud_ingest.derived_points.alert_place`).

The pipeline adds to it once a batch is durable (what is counted is what InfluxDB holds); the status
writer reads it each period. Both run on the batch thread. Counts are kept per place and hour of the
finding's record time, so the memory is bounded by the registry's places times 25 hours, whatever the
fleet's size: a million scales at a few thousand stalls cost a few thousand small dicts. A finding
whose time is more than 24 h old, or more than an hour ahead of the clock, is not counted (a device's
backlog sent late is history, not something open now). The counts live in memory: after an ingest
restart they start again from what it writes from then on (docs/supervisors.md says so).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from anti_cheat import Flag

from .rapid_tests import Alert

HOUR_MS = 3_600_000
WINDOW_H = 24
_TESTS = ("rapid_test_positive", "rapid_test_suspect")


class RecentCounts:
    """Counts per key and hour over a sliding window of :data:`WINDOW_H` hours."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._by_key: dict[tuple[str, str], dict[int, int]] = {}
        self.ignored = 0  # findings outside the window (late or ahead of the clock)

    def add(self, key: tuple[str, str], ts_ms: int) -> None:
        now_h = int(self.clock() * 1000) // HOUR_MS
        hour = ts_ms // HOUR_MS
        if not now_h - WINDOW_H < hour <= now_h + 1:
            self.ignored += 1
            return
        hours = self._by_key.setdefault(key, {})
        hours[hour] = hours.get(hour, 0) + 1

    def totals(self) -> dict[tuple[str, str], int]:
        """Each key's count in the window; hours that left it are dropped."""
        oldest = int(self.clock() * 1000) // HOUR_MS - WINDOW_H + 1
        out: dict[tuple[str, str], int] = {}
        for key in list(self._by_key):
            hours = self._by_key[key]
            for hour in [h for h in hours if h < oldest]:
                del hours[hour]
            if hours:
                out[key] = sum(hours.values())
            else:
                del self._by_key[key]
        return out

    def __len__(self) -> int:
        return len(self._by_key)


class PlaceFindings:
    """The flags per (market, stall) and the rapid tests per market of the last 24 h."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.flags = RecentCounts(clock)
        self.tests = RecentCounts(clock)

    def add(
        self,
        flags: Iterable[Flag],
        alerts: Iterable[tuple[Alert, Mapping[str, str]]],
        tags_for: Callable[[str], Mapping[str, str]],
    ) -> None:
        """A durable batch's flags (placed by their scale's tags) and alerts with their places."""
        for f in flags:
            tags = tags_for(f.device)
            market, stall = tags.get("market", ""), tags.get("stall", "")
            if market and stall:
                self.flags.add((market, stall), f.ts)
        for alert, place in alerts:
            if alert.kind in _TESTS and place.get("market"):
                self.tests.add((place["market"], ""), alert.ts)

    def flags_by_place(self) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """(flags per market, flags per (market, stall))."""
        stalls = self.flags.totals()
        markets: dict[str, int] = {}
        for (market, _), n in stalls.items():
            markets[market] = markets.get(market, 0) + n
        return markets, stalls

    def tests_by_market(self) -> dict[str, int]:
        return {market: n for (market, _), n in self.tests.totals().items()}
