"""The InfluxQL that supervisors' views are built on. Each query runs against a real InfluxDB in tests;
the Grafana provisioning (a later issue) turns these into panels."""

from __future__ import annotations

QUERIES: dict[str, str] = {
    "sales_per_scale": 'SELECT count("amount_fen") AS sales, sum("amount_fen") AS fen FROM "sale" GROUP BY "device"',
    "flags_by_rule": 'SELECT count("seq") AS flags FROM "flag" GROUP BY "rule"',
    "flagged_scales": 'SELECT count("seq") AS flags FROM "flag" GROUP BY "device", "rule"',
    "latest_flags": 'SELECT "seq", "reason_en", "reason_zh" FROM "flag" GROUP BY "device" ORDER BY time DESC LIMIT 5',
    "field_records": 'SELECT count(*) FROM "soil", "air", "sensor_fault", "gps", "rapid_test"',
    "positive_rapid_tests": (
        'SELECT count("inhibition_pct") FROM "rapid_test" WHERE "result" = \'positive\' GROUP BY "sample_category"'
    ),
    "turnover_per_minute": (
        'SELECT sum("amount_fen") / 100 AS yuan FROM "sale" WHERE time > now() - 1h GROUP BY time(1m)'
    ),
}
