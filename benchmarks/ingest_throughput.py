"""Ingest throughput end to end: signed envelopes on a real Mosquitto → one worker → a real influxd.

The messages are published first (QoS 1, the worker's persistent session queues them), then one worker
drains the queue: decode, verify the tag, validate, score with the anti-cheat engine, write line
protocol. Printed: records/s and messages/s stored, medians of --runs runs, and CPU per record.

    .venv/bin/python benchmarks/ingest_throughput.py [--messages 5000] [--records-per-message 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from machine import describe, median
from paho.mqtt.enums import CallbackAPIVersion

from anti_cheat import Engine
from cloud_ingest import DeviceFile, InfluxClient, IngestSettings, IngestWorker, Pipeline
from device_profiles import encode
from device_profiles.records import EXAMPLE_SALE
from zhijian_cli.servers import InfluxServer, MosquittoServer

DEVICES = [f"scale-{i:04d}" for i in range(1, 101)]


def one_run(broker: MosquittoServer, influx_url: str, run: int, n: int, per: int) -> tuple[float, float]:
    keys = {d: secrets.token_bytes(32) for d in DEVICES}
    files = DeviceFile(
        {
            d: {
                "key": k.hex(),
                "scale": {"coefficient": 20_000.0, "e_mg": 5000, "calibration_events": 3, "configuration_events": 7},
            }
            for d, k in keys.items()
        }
    )
    client = InfluxClient(influx_url, f"bench{run}")
    client.create_database()
    settings = IngestSettings(mqtt_port=broker.port, mqtt_client_id=f"bench-{run}", batch_max_messages=2000)
    worker = IngestWorker(settings, Pipeline(key_for=files.key_for, engine=Engine(files.facts), store=client))
    worker.start()
    worker.connected.wait(10)
    worker.stop()  # the session stays: the broker queues what follows for it
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    infos = []
    for i in range(n):
        device = DEVICES[i % len(DEVICES)]
        seq = (i // len(DEVICES)) * per + 1
        records = [{**EXAMPLE_SALE, "txn": seq + k, "ts": 1_764_000_000_000 + seq + k} for k in range(per)]
        payload = encode(device=device, boot="0" * 32, seq=seq, sent_ms=1, records=records, key=keys[device])
        infos.append(pub.publish(f"zhijian/v1/{device}/data", payload, qos=1))
    for info in infos:
        info.wait_for_publish(30)
    pub.loop_stop()
    pipeline = Pipeline(key_for=files.key_for, engine=Engine(files.facts), store=client)
    worker = IngestWorker(settings, pipeline)
    cpu0, t0 = time.process_time(), time.perf_counter()
    worker.start()
    while pipeline.received < n:
        time.sleep(0.01)
    while worker.backlog or pipeline.accepted_records < n * per:
        time.sleep(0.01)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    worker.stop(end_session=True)
    client.close()
    return n * per / elapsed, cpu / (n * per) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--records-per-message", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    rates, cpus = [], []
    with (
        tempfile.TemporaryDirectory() as tmp,
        MosquittoServer(Path(tmp) / "broker") as broker,
        InfluxServer(Path(tmp) / "influx") as influx,
    ):
        for run in range(args.runs):
            rate, cpu = one_run(broker, influx.url, run, args.messages, args.records_per_message)
            rates.append(rate)
            cpus.append(cpu)
            print(f"run {run + 1}: {rate:,.0f} records/s stored, {cpu:.1f} µs CPU per record (ingest process)")
    print(f"median of {args.runs} runs, {args.messages:,} messages × {args.records_per_message} records:")
    print(
        f"  {median(rates):,.0f} records/s ({median(rates) / args.records_per_message:,.0f} messages/s) "
        f"from broker queue to InfluxDB, one worker"
    )
    print(f"  {median(cpus):.1f} µs CPU per record in the ingest process (InfluxDB and Mosquitto not counted)")


if __name__ == "__main__":
    main()
