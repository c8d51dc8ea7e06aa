"""Every dashboard query runs on a real influxd holding pipeline-written data."""

from __future__ import annotations

import time

import pytest

from cloud_ingest import InfluxClient
from dashboards import QUERIES
from tests.cloud_ingest.test_pipeline import TOPIC, make
from tests.device_profiles.test_envelope import payload, sale


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_runs(influx: InfluxClient, name: str) -> None:
    now_ms = int(time.time() * 1000)
    make(influx).process([(TOPIC, payload(records=[sale(ts=now_ms, raw_counts=1), sale(ts=now_ms, txn=2)]))])
    rows = influx.rows(QUERIES[name])
    assert rows, f"{name} returned nothing"
