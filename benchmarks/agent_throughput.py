"""Edge agent throughput: the durable outbox and the MQTT publisher against a real Mosquitto, with the
end-to-end acknowledgement (the default delivery: a record leaves the outbox when the cloud acknowledges
it; the acknowledgements come from benchmarks/ack_responder.py in its own process, standing in for the
ingest) side by side with PUBACK-only delivery, in one run.

Prints, as medians of --runs runs on this machine, for each delivery:
- sustained: records/s from --producers threads (sources on a gateway, one reader thread each, as in
  the agent) that each store their records one at a time with `Outbox.put` (durable when it returns:
  SQLite WAL, synchronous=FULL; concurrent puts share a group commit), with the source's own record
  number as the scales give it, waking the publisher after each, while the publisher sends them; from
  the first put until the outbox is empty (every record acknowledged by the cloud, or PUBACKed);
- the same with one producer (no one to share a commit with);
- CPU per record: process CPU time (all threads) over the many-producer run divided by the records;
- records per commit: how many puts the group commits gathered, on average (many producers);
- drain: records/s the publisher empties a full outbox at after an outage (broker back).
Goals (issue 11): ≥ 5 000 records/s sustained, drain ≥ 10 000 records/s, with the cloud acknowledgement.

    .venv/bin/python benchmarks/agent_throughput.py [--records 20000] [--runs 3] [--producers 8]
"""

from __future__ import annotations

import argparse
import inspect
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from machine import describe, median

from device_profiles.records import EXAMPLE_SALE
from edge_agent import BrokerConfig, Outbox, Publisher
from zhijian_cli.servers import MosquittoServer

RECORD = EXAMPLE_SALE


LINGER_S = inspect.signature(Publisher).parameters["linger_s"].default  # what the agent runs with
MAX_RECORDS = inspect.signature(Publisher).parameters["max_records"].default


def publisher(outbox: Outbox, port: int, delivery: str, linger_s: float) -> Publisher:
    return Publisher(
        delivery=delivery,  # type: ignore[arg-type]
        device_id="bench-0001",
        key=secrets.token_bytes(32),
        boot="0" * 31 + "1",
        outbox=outbox,
        broker=BrokerConfig(port=port, backoff_min_s=0.05, backoff_max_s=0.2),
        linger_s=linger_s,
    )


def wait_empty(outbox: Outbox, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while outbox.depth and time.monotonic() < deadline:
        time.sleep(0.005)
    if outbox.depth:
        raise RuntimeError(f"outbox still holds {outbox.depth} records")


@dataclass(frozen=True, slots=True)
class Sustained:
    rate: float  # records/s
    cpu_us: float  # process CPU per record
    per_commit: float  # records per outbox commit


def sustained(folder: Path, port: int, n: int, delivery: str, producers: int, linger_s: float) -> Sustained:
    outbox = Outbox(folder / f"sustained-{delivery}-{producers}.sqlite")
    pub = publisher(outbox, port, delivery, linger_s)
    pub.start()
    assert pub.connected.wait(10)
    go = threading.Barrier(producers + 1)
    errors: list[BaseException] = []

    def produce(k: int, count: int) -> None:  # one source's reader: put, (confirm to the device), wake
        go.wait()
        try:
            for txn in range(1, count + 1):
                outbox.put({**RECORD, "txn": txn}, source=f"scale-{k}", source_id=txn)
                pub.wake.set()
        except BaseException as exc:
            errors.append(exc)
            raise

    counts = [n // producers + (k < n % producers) for k in range(producers)]
    threads = [threading.Thread(target=produce, args=(k, c), name=f"read-{k}") for k, c in enumerate(counts)]
    for t in threads:
        t.start()
    go.wait()
    cpu0, t0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"a producer failed: {errors[0]!r}")
    wait_empty(outbox)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    commits = outbox.commits
    pub.stop()
    outbox.close()
    return Sustained(n / elapsed, cpu / n * 1e6, n / max(commits, 1))


def drain(folder: Path, port: int, n: int, delivery: str, linger_s: float) -> float:
    outbox = Outbox(folder / f"drain-{delivery}.sqlite")
    for first in range(0, n, 1_000):  # records that piled up during an outage
        outbox.put_many(({**RECORD, "txn": i}, None) for i in range(first, min(first + 1_000, n)))
    pub = publisher(outbox, port, delivery, linger_s)
    t0 = time.perf_counter()
    pub.start()
    wait_empty(outbox)
    elapsed = time.perf_counter() - t0
    pub.stop()
    outbox.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--producers", type=int, default=8, help="source reader threads putting at once")
    parser.add_argument(
        "--linger-s", type=float, default=LINGER_S, help="publisher linger for a batch to fill (the agent's default)"
    )
    args = parser.parse_args()
    print(f"machine: {describe()}")
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other processes compete for these cores)")
    defaults = " (the agent's defaults)" if args.linger_s == LINGER_S else ""
    print(f"publisher: linger {args.linger_s:g} s, at most {MAX_RECORDS} records per message{defaults}")
    deliveries = ("cloud", "broker")
    many: dict[str, list[Sustained]] = {d: [] for d in deliveries}
    one: dict[str, list[Sustained]] = {d: [] for d in deliveries}
    drains: dict[str, list[float]] = {d: [] for d in deliveries}
    with tempfile.TemporaryDirectory() as tmp, MosquittoServer(Path(tmp) / "broker") as broker:
        acker = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("ack_responder.py")), str(broker.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert acker.stdout is not None and acker.stdout.readline().strip() == "ready"
            for run in range(args.runs):
                for delivery in deliveries:  # interleaved: both see the same machine
                    folder = Path(tmp) / f"run{run}"
                    folder.mkdir(exist_ok=True)
                    linger = args.linger_s
                    many[delivery].append(
                        sustained(folder, broker.port, args.records, delivery, args.producers, linger)
                    )
                    one[delivery].append(sustained(folder, broker.port, args.records, delivery, 1, linger))
                    drains[delivery].append(drain(folder, broker.port, args.records, delivery, linger))
                    m, o = many[delivery][-1], one[delivery][-1]
                    print(
                        f"run {run + 1} {delivery:>6}: sustained {m.rate:,.0f} records/s with {args.producers} "
                        f"producers ({m.per_commit:.1f} records per commit, {m.cpu_us:.0f} µs CPU/record), "
                        f"{o.rate:,.0f} with 1; drain {drains[delivery][-1]:,.0f} records/s",
                        flush=True,
                    )
        finally:
            acker.terminate()
            acker.wait(10)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(
        f"median of {args.runs} runs, {args.records:,} records each "
        "(outbox: SQLite WAL, synchronous=FULL, group commit):"
    )
    print("                                          cloud ack    PUBACK only   ratio")
    rows: list[tuple[str, dict[str, list[float]], str, str]] = [
        (
            f"sustained, {args.producers} producers",
            {d: [s.rate for s in many[d]] for d in deliveries},
            "records/s",
            "goal ≥ 5 000",
        ),
        ("sustained, 1 producer", {d: [s.rate for s in one[d]] for d in deliveries}, "records/s", ""),
        (
            f"records per commit, {args.producers} producers",
            {d: [s.per_commit for s in many[d]] for d in deliveries},
            "",
            "",
        ),
        (f"CPU per record, {args.producers} producers", {d: [s.cpu_us for s in many[d]] for d in deliveries}, "µs", ""),
        ("drain after an outage", drains, "records/s", "goal ≥ 10 000"),
    ]
    for label, table, unit, goal in rows:
        cloud, broker_only = median(table["cloud"]), median(table["broker"])
        digits = 1 if unit == "" else 0
        figures = f"{cloud:>10,.{digits}f} {broker_only:>13,.{digits}f}   {cloud / broker_only:5.2f}"
        print(f"  {label:<39} {figures}  {unit} {goal}")


if __name__ == "__main__":
    main()
