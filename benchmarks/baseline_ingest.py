"""The baseline the shipped ingest is measured against: what a competent engineer writes in an afternoon.

One paho subscriber (MQTT 5, QoS 1, persistent session, manual acknowledgements), orjson (json when orjson
is not installed), no checks at all (no tag, no validation, no sequences, no anti-cheat), line protocol
formatted per record, 1 000-line writes to InfluxDB's ``/write`` (fewer when 0.2 s have passed since the
first, as the ingest's batches), and each message acknowledged to the broker after the write that holds its
records. ``benchmarks/ingest_shipped.py`` runs it as a process beside ``zhijian ingest run``; it prints
``connected`` once subscribed and stops on SIGTERM (its session stays).

    .venv/bin/python benchmarks/baseline_ingest.py --mqtt-port 1883 --influx-url http://127.0.0.1:8086 \\
        --db baseline --client-id baseline-1
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
import threading
import time
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

try:
    import orjson

    loads = orjson.loads
    PARSER = "orjson"
except ImportError:  # pragma: no cover - the benchmark says which one ran
    import json

    loads = json.loads
    PARSER = "json"

TAGS = ("plu", "tare_kind", "stall_device", "scale_device", "accuracy_class", "channel", "fault", "result")


def field(value: Any) -> str:
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def line(device: str, seq: int, rec: dict[str, Any]) -> str:
    tags = "".join(f",{k}={rec[k]}" for k in TAGS if rec.get(k))
    fields = ",".join(f"{k}={field(v)}" for k, v in rec.items() if k not in TAGS and k not in ("type", "ts"))
    return f"{rec['type']},device={device}{tags} seq={seq}i,{fields} {rec['ts'] * 1_000_000 + seq % 1_000_000}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--influx-url", default="http://127.0.0.1:8086")
    parser.add_argument("--db", default="baseline")
    parser.add_argument("--client-id", default="baseline-ingest")
    parser.add_argument("--batch-lines", type=int, default=1000)
    parser.add_argument("--linger-s", type=float, default=0.2, help="a write at most this long after its first line")
    args = parser.parse_args()

    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue(maxsize=20_000)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def on_connect(c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        c.subscribe("zhijian/v1/+/data", qos=1)

    def on_subscribe(_c: mqtt.Client, _u: object, _m: int, _r: object, _p: object) -> None:
        print(f"connected {time.time():.3f} ({PARSER})", flush=True)

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=5)
    client.manual_ack_set(True)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = lambda _c, _u, msg: received.put(msg)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 86_400
    client.connect("127.0.0.1", args.mqtt_port, clean_start=False, properties=props)
    client.loop_start()
    http = httpx.Client(base_url=args.influx_url, timeout=30)
    lines: list[str] = []
    held: list[mqtt.MQTTMessage] = []

    def flush() -> None:
        if lines:
            resp = http.post("/write", params={"db": args.db, "precision": "ns"}, content="\n".join(lines).encode())
            resp.raise_for_status()
        for m in held:
            client.ack(m.mid, m.qos)
        lines.clear()
        held.clear()

    first = 0.0  # when the oldest line in hand came
    while not stop.is_set():
        try:
            msg = received.get(timeout=max(0.001, first + args.linger_s - time.monotonic()) if lines else 0.2)
        except queue.Empty:
            flush()
            continue
        if not lines:
            first = time.monotonic()
        doc = loads(msg.payload)
        device, seq = doc["device"], doc["seq"]
        lines.extend(line(device, seq + i, rec) for i, rec in enumerate(doc["records"]))
        held.append(msg)
        if len(lines) >= args.batch_lines or time.monotonic() - first >= args.linger_s:
            flush()
    flush()
    client.disconnect()
    client.loop_stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
