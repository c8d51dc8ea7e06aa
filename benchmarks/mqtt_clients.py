"""paho-mqtt against aiomqtt for the ingest's receiving path, measured side by side on one broker.

A fast C publisher (``mosquitto_pub -l``, QoS 1) sends --messages signed sale envelopes (about 450
bytes each, as devices send them); each subscriber takes them with QoS 1, parses the JSON and counts.
Printed: messages/s received per client, medians of --runs interleaved runs, and their ratio. The ingest
uses paho-mqtt because of these figures (and because it needs manual acknowledgements, which paho has).

    .venv/bin/python benchmarks/mqtt_clients.py [--messages 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import aiomqtt
import paho.mqtt.client as mqtt
from machine import describe, median
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles import encode
from device_profiles.records import EXAMPLE_SALE
from zhijian_cli.servers import MosquittoServer, find_binary

TOPIC = "zhijian/v1/scale-0001/data"


def payload_lines(n: int) -> bytes:
    key = secrets.token_bytes(32)
    sale = EXAMPLE_SALE
    return (
        b"\n".join(
            encode(device="scale-0001", boot="0" * 32, seq=i, sent_ms=1, records=[sale], key=key)
            for i in range(1, n + 1)
        )
        + b"\n"
    )


def publish(port: int, lines: bytes) -> None:
    subprocess.run(
        [find_binary("mosquitto_pub", "mosquitto-clients"), "-p", str(port), "-q", "1", "-t", TOPIC, "-l"],
        input=lines,
        check=True,
    )


def paho_rate(port: int, lines: bytes, n: int) -> float:
    got = 0
    first = last = 0.0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal got, first, last
        json.loads(msg.payload)
        got += 1
        if got == 1:
            first = time.perf_counter()
        if got == n:
            last = time.perf_counter()
            done.set()

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(TOPIC, qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    subscribed.wait(5)
    publish(port, lines)
    done.wait(120)
    client.loop_stop()
    client.disconnect()
    return (n - 1) / (last - first)


def aiomqtt_rate(port: int, lines: bytes, n: int) -> float:
    async def run() -> float:
        async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.subscribe(TOPIC, qos=1)
            publisher = asyncio.get_running_loop().run_in_executor(None, publish, port, lines)
            got = 0
            first = 0.0
            async for message in client.messages:
                json.loads(message.payload)  # type: ignore[arg-type]
                got += 1
                if got == 1:
                    first = time.perf_counter()
                if got == n:
                    break
            last = time.perf_counter()
            await publisher
            return (n - 1) / (last - first)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    lines = payload_lines(args.messages)
    with tempfile.TemporaryDirectory() as tmp, MosquittoServer(Path(tmp) / "broker") as broker:
        paho, aio = [], []
        for run in range(args.runs):
            paho.append(paho_rate(broker.port, lines, args.messages))
            aio.append(aiomqtt_rate(broker.port, lines, args.messages))
            print(f"run {run + 1}: paho-mqtt {paho[-1]:,.0f}/s, aiomqtt {aio[-1]:,.0f}/s")
    print(
        f"median of {args.runs} runs, {args.messages:,} messages of {len(lines) // args.messages} bytes, QoS 1, "
        f"JSON parsed:"
    )
    print(f"  paho-mqtt: {median(paho):,.0f} messages/s")
    print(f"  aiomqtt:   {median(aio):,.0f} messages/s")
    print(f"  ratio paho/aiomqtt: {median(paho) / median(aio):.2f}")


if __name__ == "__main__":
    main()
