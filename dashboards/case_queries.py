"""The InfluxQL of the case panels: how many cases are open, acknowledged and assigned, by district.

The ``case`` series is written by the ingest's case reporter from the registry's counts
(:mod:`cloud_ingest.case_reporter`, docs/cases.md): at each reading, field ``count`` per district and
state (``level=district``) and per market and state (``level=market``); a group that has emptied is
written once more as 0. So the current count of a group is its ``last()`` within the dashboard's range.
``$timeFilter``, ``$__interval`` and ``${district}`` are Grafana's; :mod:`dashboards.expand` fills them for tests.
"""

from __future__ import annotations

CASE_QUERIES: dict[str, str] = {
    # a table or stat panel: the counts now, one row per district and state
    "cases_by_district_now": (
        'SELECT last("count") AS "cases" FROM "case" WHERE "level" = \'district\' AND $timeFilter'
        ' GROUP BY "district", "state"'
    ),
    # a time-series panel: the counts over the range, per district and state
    "cases_by_district_over_time": (
        'SELECT last("count") AS "cases" FROM "case" WHERE "level" = \'district\' AND $timeFilter'
        ' GROUP BY time($__interval), "district", "state" fill(previous)'
    ),
    # the drill-down: a district's markets now (bases and vehicles are in no market: district level only)
    "cases_by_market_now": (
        'SELECT last("count") AS "cases" FROM "case" WHERE "level" = \'market\' AND "district" =~ /^${district}$/'
        ' AND $timeFilter GROUP BY "market", "state"'
    ),
}
