"""Prometheus ``/metrics`` and a ``/health`` endpoint for an ingest worker.

Metrics are read from the pipeline's and worker's counters at scrape time (a custom collector), so the
hot path does no extra bookkeeping. Served by a small threaded HTTP server: this endpoint is for
Prometheus and for a load balancer's health check, not for people.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from device_profiles.loops import Loop

from .worker import BatchTimer, IngestWorker


def labelled(name: str, doc: str, label: str, counts: Mapping[str, int]) -> CounterMetricFamily:
    """A counter family with one sample per key of ``counts``, in key order."""
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, n in sorted(counts.items()):
        family.add_metric([key], n)
    return family


class IngestCollector:
    """Metrics of one worker."""

    def __init__(self, worker: IngestWorker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        p, w = self.worker.pipeline, self.worker
        yield CounterMetricFamily("zhijian_ingest_messages_received", "MQTT messages received", value=p.received)
        yield labelled("zhijian_ingest_records_accepted", "records stored or spooled", "type", p.records_by_type)
        yield labelled("zhijian_ingest_rejected", "payloads rejected, by reason", "reason", p.rejected)
        yield CounterMetricFamily("zhijian_ingest_points_stored", "points written (or spooled)", value=p.stored_points)
        yield CounterMetricFamily("zhijian_ingest_points_spooled", "points sent to the spool", value=p.spooled_points)
        yield CounterMetricFamily(
            "zhijian_ingest_points_replayed", "points replayed from the spool", value=p.replayed_points
        )
        yield labelled("zhijian_ingest_flags", "anti-cheat flags, by rule", "rule", p.flags_by_rule)
        yield CounterMetricFamily(
            "zhijian_ingest_sequence_gaps",
            "records missing between devices' sequence numbers",
            value=p.sequences.total_gaps,
        )
        yield labelled("zhijian_ingest_alerts", "alerts raised, by kind", "kind", p.alerts_by_kind)
        yield GaugeMetricFamily("zhijian_ingest_spool_lines", "lines waiting in the spool", value=p.spool.lines)
        yield GaugeMetricFamily("zhijian_ingest_spool_bytes", "bytes in the spool", value=p.spool.bytes)
        yield GaugeMetricFamily(
            "zhijian_ingest_backlog_messages", "messages received, not yet processed", value=w.backlog
        )
        yield GaugeMetricFamily(
            "zhijian_ingest_lag_seconds",
            "now minus the send time of the last message stored",
            value=max(0.0, time.time() - p.last_sent_ms / 1000) if p.last_sent_ms else 0.0,
        )
        yield GaugeMetricFamily(
            "zhijian_ingest_connected", "1 when connected to the broker", value=1.0 if w.connected.is_set() else 0.0
        )
        yield labelled(
            "zhijian_ingest_thread_errors",
            "unexpected errors survived by background loops",
            "thread",
            {loop.name: loop.error_count for loop in w.loops},
        )
        yield labelled("zhijian_ingest_held", "messages of devices not known yet, held (not refused)", "device", p.held)
        yield CounterMetricFamily(
            "zhijian_ingest_device_acks", "end-to-end acknowledgements sent to devices", value=w.acks.sent
        )
        yield labelled(
            "zhijian_ingest_unprocessable",
            "errors of ours isolated to one message or batch, by kind",
            "kind",
            p.surprises,
        )
        dl = p.dead_letters
        yield GaugeMetricFamily("zhijian_ingest_dead_letter_bytes", "bytes kept as dead letters", value=dl.total_bytes)
        yield labelled(
            "zhijian_ingest_dead_letters_evicted", "dead letters evicted by the byte quotas", "device", dl.evicted
        )
        yield GaugeMetricFamily(
            "zhijian_ingest_stalled",
            "1 while messages wait and the batcher makes no progress",
            value=float(bool(w.stalled(after_s=w.settings.health_stall_s))),
        )
        if p.case_outbox is not None:  # docs/cases.md
            yield GaugeMetricFamily(
                "zhijian_ingest_case_outbox_events", "case events waiting for the registry", value=p.case_outbox.depth
            )
            yield labelled(
                "zhijian_ingest_case_events_overflowed",
                "case events not kept: the outbox was full",
                "type",
                p.case_outbox.overflowed,
            )
        if w.case_reporter is not None:
            results = w.case_reporter.results
            yield labelled("zhijian_ingest_case_events", "case events the registry took, by result", "result", results)
            if w.case_reporter.states is not None:  # docs/cases.md: the supervisors' steps as alert_state
                yield GaugeMetricFamily(
                    "zhijian_ingest_case_state_poll_failures",
                    "polls of the registry's case steps failed in a row (0: following)",
                    value=w.case_reporter.states.failures,
                )
        yield CounterMetricFamily(
            "zhijian_ingest_alert_states_dropped",
            "alert_state points of base acknowledgements dropped: too many waited for the batch thread",
            value=p.pending_states.dropped,
        )
        t: BatchTimer = w.batch_seconds
        yield HistogramMetricFamily(
            "zhijian_ingest_batch_seconds",
            "time to process and store one micro-batch",
            buckets=[("+Inf" if b == float("inf") else repr(b), c) for b, c in zip(t.BUCKETS, t.counts, strict=True)],
            sum_value=t.total,
        )


def health(worker: IngestWorker) -> tuple[int, dict[str, Any]]:
    """HTTP status and body: 200 when connected to the broker and the batcher makes progress, else 503
    (``problem`` says why: messages waiting while no batch is stored is as unhealthy as no broker)."""
    p = worker.pipeline
    stalled = worker.stalled(after_s=worker.settings.health_stall_s)
    doc: dict[str, Any] = {
        "connected": worker.connected.is_set(),
        "backlog": worker.backlog,
        "spool_lines": p.spool.lines,
        "received": p.received,
        "rejected": sum(p.rejected.values()),
        "threads": {loop.name: loop.status() for loop in worker.loops},
    }
    problem = "not connected to the broker" if not doc["connected"] else stalled
    if problem:
        doc["problem"] = problem
    return (503 if problem else 200), doc


class MetricsServer:
    """``/metrics`` and ``/health`` on ``host:port`` (port 0: any free port) in a background thread.

    Of an :class:`IngestWorker` by default; another process (the NATS router, a partitioned worker) passes
    its own ``collector`` and ``health_of``."""

    def __init__(
        self,
        worker: IngestWorker | None,
        *,
        host: str = "127.0.0.1",
        port: int = 9464,
        collector: Collector | None = None,
        health_of: Callable[[], tuple[int, dict[str, Any]]] | None = None,
    ) -> None:
        registry = CollectorRegistry(auto_describe=False)
        if collector is None or health_of is None:
            assert worker is not None, "a worker, or a collector and a health function"
            of_worker = worker

            def health_of() -> tuple[int, dict[str, Any]]:
                return health(of_worker)

            collector = IngestCollector(worker)
        registry.register(collector)
        answer_health = health_of

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body, status, kind = generate_latest(registry), 200, "text/plain; version=0.0.4"
                elif self.path == "/health":
                    status, doc = answer_health()
                    body, kind = json.dumps(doc).encode(), "application/json"
                else:
                    body, status, kind = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:  # scrapes every few seconds: not worth a log line
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self._server.server_address[1])
        # serve_forever returns only on shutdown; should it raise, the loop serves again after a backoff
        self.loop = Loop("metrics", self._server.serve_forever)

    def start(self) -> MetricsServer:
        self.loop.start()
        return self

    def close(self) -> None:
        self.loop.stopping.set()
        self._server.shutdown()
        self.loop.join()
        self._server.server_close()
