"""Every dashboard query runs on a real influxd holding pipeline-written data, and returns rows."""

from __future__ import annotations

import time

import pytest

from cloud_ingest import InfluxClient
from dashboards import QUERIES
from device_profiles import encode
from tests.support.envelopes import BOOT, KEY, TOPIC, make, payload, sale


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_runs(influx: InfluxClient, name: str) -> None:
    now = int(time.time() * 1000)
    field = [
        {"type": "soil", "ts": now, "moisture_pct": 30.5},
        {"type": "gps", "ts": now, "lat_deg": 22.54, "lon_deg": 114.06},
        {
            "type": "rapid_test",
            "ts": now,
            "channel": 1,
            "sample_id": "S1",
            "sample_name": "韭菜",
            "sample_category": "leafy",
            "source_id": "scale-0001",
            "delta_a0": 0.6,
            "delta_at": 0.2,
            "inhibition_pct": 66.67,
            "result": "positive",
            "retest": 0,
            "reagent_lot": "L1",
            "reagent_expiry": "2027-01-01",
            "temperature_c": 25.0,
            "operator": "wang",
        },
    ]
    make(influx).process(
        [
            (TOPIC, payload(records=[sale(ts=now, raw_counts=1), sale(ts=now, txn=2)])),
            (TOPIC, encode(device="scale-0001", boot=BOOT, seq=100, sent_ms=now, records=field, key=KEY)),
        ]
    )
    rows = influx.rows(QUERIES[name])
    assert rows, f"{name} returned nothing"
