"""Fuzz the whole ingest path as shipped: hostile signed payloads through the pipeline `zhijian ingest run`
builds (its on-disk dead letters, sequence book and spool in a temp dir, sender rules from the built-in
profiles) into a private influxd.

Every input must end as stored records or as a dead letter: the benchmark counts exceptions out of the
pipeline (must be 0) and ``unprocessable`` dead letters (errors of ours isolated to one message; should
be 0), prints the reasons seen, the time per input by mutation kind, and the slowest input.

    .venv/bin/python benchmarks/ingest_fuzz.py [--inputs 1000000] [--seed 1] [--batch 1000]
"""

from __future__ import annotations

import argparse
import heapq
import tempfile
import time
from collections import Counter
from pathlib import Path

from machine import describe, median

from cloud_ingest import DeviceFile, InfluxClient, IngestSettings
from firmware_sim.hostile import HostilePayloads
from zhijian_cli.ingest_devices import build_worker
from zhijian_cli.servers import InfluxServer

KEY, OTHER_KEY = b"k" * 32, b"o" * 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1_000, help="inputs per commit (the worker's micro-batch)")
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp_dir, InfluxServer(Path(tmp_dir) / "influxd") as influxd:
        tmp = Path(tmp_dir)
        devices = DeviceFile(
            {
                "scale-0001": {"key": KEY.hex(), "profile": "zj-pcs-30", "tags": {"market": "m1", "stall": "A-1"}},
                "scale-0002": {"key": OTHER_KEY.hex(), "profile": "zj-pcs-30", "tags": {"market": "m1"}},
            }
        )
        settings = IngestSettings(
            influx_url=influxd.url,
            state_path=tmp / "ingest_state.sqlite",
            spool_path=tmp / "spool.sqlite",
            metrics_port=0,
        )
        influx = InfluxClient(influxd.url, settings.influx_db)
        influx.create_database()
        pipe = build_worker(settings, influx, devices).pipeline
        hostile = iter(HostilePayloads("scale-0001", KEY, seed=args.seed))
        honest = HostilePayloads("scale-0002", OTHER_KEY)
        escaped: Counter[str] = Counter()
        per_kind: dict[str, list[float]] = {}
        slowest: list[tuple[float, int, str, bytes]] = []  # the 5 slowest, timed again at the end
        started = time.perf_counter()
        done = 0
        while done < args.inputs:
            prepared = []
            for _ in range(min(args.batch, args.inputs - done)):
                kind, raw = next(hostile)
                t0 = time.perf_counter()
                try:
                    prepared.append(pipe.prepare([("zhijian/v1/scale-0001/data", raw)]))
                except Exception as exc:
                    escaped[type(exc).__name__] += 1
                took = time.perf_counter() - t0
                per_kind.setdefault(kind, []).append(took)
                heapq.heappush(slowest, (took, done, kind, raw))
                if len(slowest) > 5:
                    heapq.heappop(slowest)
                done += 1
            prepared.append(pipe.prepare([("zhijian/v1/scale-0002/data", honest.valid())]))
            for p in prepared:
                try:
                    pipe.commit(p)
                except Exception as exc:
                    escaped[f"commit {type(exc).__name__}"] += 1
            if done % 100_000 < args.batch:
                print(f"  {done:>9,} inputs, {time.perf_counter() - started:7.1f} s", flush=True)
        elapsed = time.perf_counter() - started
        series = influx.query("SELECT count(amount_fen) FROM sale WHERE device='scale-0002'")
        honest_stored = int(series[0]["values"][0][1]) if series else 0
        dead = pipe.dead_letters
        print(f"\ninputs: {done:,} in {elapsed:.0f} s ({done / elapsed:,.0f}/s)")
        print(f"exceptions out of the pipeline: {sum(escaped.values())} {dict(escaped)}")
        print(f"unprocessable (errors of ours, isolated): {pipe.rejected['unprocessable']} {dict(pipe.surprises)}")
        print(f"honest sales stored after each batch: {honest_stored} of {honest.seq - 1}")
        print(f"records accepted from the hostile device: {pipe.accepted_records - honest_stored}")
        print("rejections: " + ", ".join(f"{r} {n:,}" for r, n in pipe.rejected.most_common()))
        print(f"dead letters kept: {dead.total_bytes / 1e6:.1f} MB, evicted {sum(dead.evicted.values()):,}")
        print("\nkind       inputs    median µs   max ms")
        for kind, times in sorted(per_kind.items()):
            print(f"{kind:<9} {len(times):>8,} {median(times) * 1e6:>11.1f} {max(times) * 1e3:>8.2f}")
        print("\nslowest inputs, prepared again 3 times (a first time not repeated was the machine, not the input)")
        for took, _, kind, raw in sorted(slowest, reverse=True):
            again = []
            for _ in range(3):
                t0 = time.perf_counter()
                prepared_again = pipe.prepare([("zhijian/v1/scale-0001/data", raw)])
                again.append(time.perf_counter() - t0)
                pipe.commit(prepared_again)
            print(
                f"  {took * 1e3:8.2f} ms, again {min(again) * 1e3:7.2f} ms ({min(again) * 1e5 / len(raw):.4f} ms per"
                f" 100 bytes), {kind}, {len(raw):,} bytes: {raw[:60]!r}…"
            )


if __name__ == "__main__":
    main()
