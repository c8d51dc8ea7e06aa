"""Edge agent throughput: the durable outbox and the MQTT publisher against a real Mosquitto, with the
end-to-end acknowledgement (the default delivery: a record leaves the outbox when the cloud acknowledges
it; the acknowledgements come from benchmarks/ack_responder.py in its own process, standing in for the
ingest) side by side with PUBACK-only delivery, in one run.

Prints, as medians of --runs runs on this machine, for each delivery:
- sustained: records/s from a producer that stores each record in the outbox (one fsync'd SQLite
  transaction per record, as drivers do) while the publisher sends them, until the outbox is empty;
- CPU per record: process CPU time (all threads) over that run divided by the records;
- drain: records/s the publisher empties a full outbox at after an outage (broker back).
Goals (issue 3): ≥ 5 000 records/s sustained on one core, drain ≥ 10 000 records/s.

    .venv/bin/python benchmarks/agent_throughput.py [--records 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, median

from device_profiles.records import EXAMPLE_SALE
from edge_agent import BrokerConfig, Outbox, Publisher
from zhijian_cli.servers import MosquittoServer

RECORD = EXAMPLE_SALE


def publisher(outbox: Outbox, port: int, delivery: str) -> Publisher:
    return Publisher(
        delivery=delivery,  # type: ignore[arg-type]
        device_id="bench-0001",
        key=secrets.token_bytes(32),
        boot="0" * 31 + "1",
        outbox=outbox,
        broker=BrokerConfig(port=port, backoff_min_s=0.05, backoff_max_s=0.2),
        linger_s=0.0,
    )


def wait_empty(outbox: Outbox, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while outbox.depth and time.monotonic() < deadline:
        time.sleep(0.005)
    if outbox.depth:
        raise RuntimeError(f"outbox still holds {outbox.depth} records")


def sustained(folder: Path, port: int, n: int, delivery: str) -> tuple[float, float]:
    outbox = Outbox(folder / f"sustained-{delivery}.sqlite")
    pub = publisher(outbox, port, delivery)
    pub.start()
    assert pub.connected.wait(10)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        outbox.put({**RECORD, "txn": i})
        if i % 64 == 0:
            pub.wake.set()
    pub.wake.set()
    wait_empty(outbox)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    pub.stop()
    outbox.close()
    return n / elapsed, cpu / n * 1e6


def drain(folder: Path, port: int, n: int, delivery: str) -> float:
    outbox = Outbox(folder / f"drain-{delivery}.sqlite")
    for i in range(n):  # records that piled up during an outage
        outbox.put({**RECORD, "txn": i})
    pub = publisher(outbox, port, delivery)
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
    args = parser.parse_args()
    print(f"machine: {describe()}")
    deliveries = ("cloud", "broker")
    rates: dict[str, list[float]] = {d: [] for d in deliveries}
    cpus: dict[str, list[float]] = {d: [] for d in deliveries}
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
                    rate, cpu_us = sustained(folder, broker.port, args.records, delivery)
                    rates[delivery].append(rate)
                    cpus[delivery].append(cpu_us)
                    drains[delivery].append(drain(folder, broker.port, args.records, delivery))
                    print(
                        f"run {run + 1} {delivery:>6}: sustained {rate:,.0f} records/s, {cpu_us:.0f} µs CPU/record, "
                        f"drain {drains[delivery][-1]:,.0f} records/s"
                    )
        finally:
            acker.terminate()
            acker.wait(10)
    print(f"median of {args.runs} runs, {args.records:,} records each (outbox: SQLite WAL, synchronous=FULL):")
    print("                                     cloud ack    PUBACK only   ratio")
    for label, table, unit, goal in (
        ("sustained with the durable outbox", rates, "records/s", "goal ≥ 5 000"),
        ("CPU per record (all agent threads)", cpus, "µs", ""),
        ("drain after an outage", drains, "records/s", "goal ≥ 10 000"),
    ):
        cloud, broker_only = median(table["cloud"]), median(table["broker"])
        print(f"  {label:<34} {cloud:>10,.0f} {broker_only:>13,.0f}   {cloud / broker_only:5.2f}  {unit} {goal}")


if __name__ == "__main__":
    main()
