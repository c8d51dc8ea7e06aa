"""What InfluxDB itself spends per sale point on this machine: the ceiling any ingest's drain meets here.

A private influxd (the tests' and the demo's config) is written the lines the shipped ingest writes for
honest sales (``device_profiles.influx_schema.envelope_lines`` with the place tags district, market, stall),
the lines ``baseline_ingest.py`` writes for the same sales (three tags), and a one-field point, in batches
of 1 000 and 5 000 lines, plain and gzip, interleaved; each write is timed and influxd's CPU read from
/proc. The series exist before the timed rounds (as in ``ingest_shipped.py``), so series creation is not
counted. Printed per kind: influxd CPU µs per point (median of --runs), points/s of the writes alone, and
the ceiling ``cores / CPU per point``: the drain no consumer can pass on this machine even if it cost
nothing itself.

    .venv/bin/python benchmarks/influx_point_cost.py [--devices 1000] [--per-device 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from baseline_ingest import line as baseline_line
from ingest_shipped import T0, device_entry, device_ids, proc_cpu_s, sale
from machine import describe, median

from device_profiles.influx_schema import envelope_lines
from zhijian_cli.servers import InfluxServer

Lines = Callable[[int], list[str]]


def line_makers(devices: int, per_device: int) -> dict[str, Lines]:
    rng = random.Random(1)
    ids = device_ids(devices)
    tags = {d: device_entry(i, d)["tags"] for i, d in enumerate(ids)}
    sales = {d: [sale(rng, s, T0 + s * 60_000) for s in range(1, per_device + 1)] for d in ids}

    def shipped(offset_ms: int) -> list[str]:
        return [
            envelope_lines(d, s + 1, [{**sales[d][s], "ts": sales[d][s]["ts"] + offset_ms}], tags[d])[0]
            for s in range(per_device)
            for d in ids
        ]

    def baseline(offset_ms: int) -> list[str]:
        return [
            baseline_line(d, s + 1, {**sales[d][s], "ts": sales[d][s]["ts"] + offset_ms})
            for s in range(per_device)
            for d in ids
        ]

    def one_field(offset_ms: int) -> list[str]:
        return [
            f"sale,device={d} amount_fen={sales[d][s]['amount_fen']}i {(sales[d][s]['ts'] + offset_ms) * 1_000_000}"
            for s in range(per_device)
            for d in ids
        ]

    return {"shipped (6 tags, 15 fields)": shipped, "baseline (3 tags, 15 fields)": baseline, "one field": one_field}


def write(http: httpx.Client, db: str, lines: list[str], batch: int, gz: bool) -> None:
    for i in range(0, len(lines), batch):
        body = "\n".join(lines[i : i + batch]).encode()
        headers = {}
        if gz:
            body, headers = gzip.compress(body, 1), {"Content-Encoding": "gzip"}
        answer = http.post("/write", params={"db": db}, content=body, headers=headers)
        if answer.status_code != 204:
            raise SystemExit(f"influxd refused a write: {answer.status_code} {answer.text[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--per-device", type=int, default=50, help="sales per device per round")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {describe()}; load average {os.getloadavg()[0]:.1f}")
    makers = line_makers(args.devices, args.per_device)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp, InfluxServer(Path(tmp)) as server:
        pid = server.pid
        http = httpx.Client(base_url=server.url, timeout=120)
        dbs = {kind: f"db{i}" for i, kind in enumerate(makers)}
        for kind, make in makers.items():
            http.post("/query", params={"q": f"CREATE DATABASE {dbs[kind]}"})
            write(http, dbs[kind], make(0), 5000, False)  # the series exist before anything is timed
        figures: dict[tuple[str, int, bool], list[tuple[float, float]]] = {}
        for run in range(1, args.runs + 1):
            for kind, make in makers.items():
                for batch in (1000, 5000):
                    for gz in (False, True):
                        lines = make(run * 10_000_000 + batch + gz)  # new points on the same series
                        cpu0, t0 = proc_cpu_s(pid), time.perf_counter()
                        write(http, dbs[kind], lines, batch, gz)
                        wall, cpu = time.perf_counter() - t0, proc_cpu_s(pid) - cpu0
                        figures.setdefault((kind, batch, gz), []).append((cpu / len(lines) * 1e6, len(lines) / wall))
        print(f"{args.devices} devices × {args.per_device} sales a round, medians of {args.runs} runs")
        print(f"{'kind':30} {'batch':>6} {'gzip':>5} {'influxd µs/point':>17} {'points/s':>9} {'ceiling/s':>10}")
        for (kind, batch, gz), values in figures.items():
            us = median([v[0] for v in values])
            rate = median([v[1] for v in values])
            print(f"{kind:30} {batch:>6} {'yes' if gz else 'no':>5} {us:>17.1f} {rate:>9.0f} {cores / us * 1e6:>10.0f}")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
