"""The case panels' queries on a real influxd: the counts now and over time, by district and state, and a
district's markets, from the `case` points the ingest's case reporter writes (zeros when a group empties)."""

from __future__ import annotations

import time

from cloud_ingest import InfluxClient
from cloud_ingest.case_reporter import case_line
from dashboards.case_queries import CASE_QUERIES
from tests.support.case_panels import expand


def test_counts_now_and_over_time_by_district_state_and_market(influx: InfluxClient) -> None:
    now_ns = time.time_ns()
    minute = 60 * 10**9
    earlier, later = now_ns - 5 * minute, now_ns - minute
    influx.write(
        [
            case_line(("", "futian", "open"), 3, earlier),
            case_line(("futian-no1", "futian", "open"), 2, earlier),
            case_line(("futian-no2", "futian", "open"), 1, earlier),
            case_line(("", "nanshan", "assigned"), 1, earlier),  # a base's case: in no market
            # the next reading: one futian-no1 case acknowledged, the base's case closed (written as 0)
            case_line(("", "futian", "open"), 2, later),
            case_line(("", "futian", "acknowledged"), 1, later),
            case_line(("futian-no1", "futian", "open"), 1, later),
            case_line(("futian-no1", "futian", "acknowledged"), 1, later),
            case_line(("futian-no2", "futian", "open"), 1, later),
            case_line(("", "nanshan", "assigned"), 0, later),
        ]
    )
    now_ms = now_ns // 10**6
    span = {"from_ms": now_ms - 600_000, "to_ms": now_ms}
    rows = influx.rows(expand(CASE_QUERIES["cases_by_district_now"], **span))
    assert {(r["district"], r["state"]): r["cases"] for r in rows} == {
        ("futian", "acknowledged"): 1,
        ("futian", "open"): 2,
        ("nanshan", "assigned"): 0,
    }
    series: dict[tuple[str, str], list[int | None]] = {}
    for r in influx.rows(expand(CASE_QUERIES["cases_by_district_over_time"], **span, interval="1m")):
        series.setdefault((r["district"], r["state"]), []).append(r["cases"])
    assert [n for n in series["futian", "open"] if n is not None] == [3, 3, 3, 3, 2, 2]
    assert [n for n in series["nanshan", "assigned"] if n is not None] == [1, 1, 1, 1, 0, 0]
    markets = influx.rows(expand(CASE_QUERIES["cases_by_market_now"], **span, district="futian"))
    assert {(r["market"], r["state"]): r["cases"] for r in markets} == {
        ("futian-no1", "acknowledged"): 1,
        ("futian-no1", "open"): 1,
        ("futian-no2", "open"): 1,
    }
