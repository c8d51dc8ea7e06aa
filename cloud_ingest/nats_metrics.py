"""``/metrics`` and ``/health`` of the NATS scale-out processes: the router and a partitioned worker.

Served by :class:`cloud_ingest.metrics.MetricsServer` with these collectors. A worker exports what it
received per partition (``zhijian_ingest_partition_messages_total{partition=…}``): the proof, in
production as in the tests, that each worker receives only its partitions' messages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .metrics import labelled
from .nats_worker import PartitionedWorker
from .router import Router


class PartitionedCollector:
    def __init__(self, worker: PartitionedWorker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        w = self.worker
        c = w.counters()
        yield labelled(
            "zhijian_ingest_partition_messages",
            "stream messages received, by partition",
            "partition",
            {str(p): n for p, n in w.partition_messages.items()},
        )
        owned = GaugeMetricFamily(
            "zhijian_ingest_partition_owned", "1 for each partition this worker owns", labels=["partition"]
        )
        for p in w.owned:
            owned.add_metric([str(p)], 1.0)
        yield owned
        yield CounterMetricFamily("zhijian_ingest_partition_takeovers", "partitions taken", value=w.takeovers)
        yield CounterMetricFamily("zhijian_ingest_messages_received", "messages received", value=c["received"])
        yield labelled("zhijian_ingest_records_accepted", "records stored or spooled", "type", c["records_by_type"])
        yield labelled("zhijian_ingest_rejected", "payloads rejected, by reason", "reason", c["rejected"])
        yield CounterMetricFamily(
            "zhijian_ingest_points_stored", "points written (or spooled)", value=c["stored_points"]
        )
        yield CounterMetricFamily(
            "zhijian_ingest_device_acks", "end-to-end acknowledgements sent to devices", value=w.acks.sent
        )
        yield GaugeMetricFamily(
            "zhijian_ingest_connected", "1 when connected to NATS", value=1.0 if w.connected.is_set() else 0.0
        )


def worker_health(worker: PartitionedWorker) -> tuple[int, dict[str, Any]]:
    doc: dict[str, Any] = {
        "connected": worker.connected.is_set(),
        "worker": worker.worker_id,
        "partitions": worker.owned,
    }
    problem = "not connected to NATS" if not doc["connected"] else worker.last_error
    if problem:
        doc["problem"] = problem
    return (503 if problem else 200), doc


class RouterCollector:
    def __init__(self, router: Router) -> None:
        self.router = router

    def collect(self) -> Iterator[Metric]:
        r = self.router
        yield labelled(
            "zhijian_router_messages",
            "messages stored in the stream, by partition",
            "partition",
            {str(p): n for p, n in r.routed.items()},
        )
        yield CounterMetricFamily(
            "zhijian_router_publish_retries", "JetStream publishes retried", value=r.publish_retries
        )
        yield CounterMetricFamily("zhijian_router_truncated", "messages over NATS's limit, cut", value=r.truncated)
        yield GaugeMetricFamily("zhijian_router_inflight", "sent to JetStream, not yet stored", value=r.inflight)
        yield GaugeMetricFamily(
            "zhijian_router_connected", "1 when subscribed to the broker", value=1.0 if r.connected.is_set() else 0.0
        )


def router_health(router: Router) -> tuple[int, dict[str, Any]]:
    doc = router.status()
    if not doc["connected"]:
        doc["problem"] = "not subscribed to the broker"
    return (503 if "problem" in doc else 200), doc
