"""A stand-in for the ingest's end-to-end acknowledgement, for benchmarking the agent alone: subscribes to
every device's data topic and acknowledges each message at once on the device's ack topic (what
`zhijian ingest run` sends after the records are durable; here nothing is stored, so the figure is the
agent's cost of the protocol, not the ingest's speed).

    .venv/bin/python benchmarks/ack_responder.py PORT
"""

from __future__ import annotations

import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles.acks import encode_ack


def main() -> None:
    port = int(sys.argv[1])
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-acks", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    ready = threading.Event()

    def on_message(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        device = msg.topic.split("/")[2]
        doc = json.loads(msg.payload)
        first = doc["seq"]
        c.publish(f"zhijian/v1/{device}/ack", encode_ack([(first, first + len(doc["records"]) - 1)]), qos=1)

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe("zhijian/v1/+/data", qos=1)
    client.on_subscribe = lambda *_: (ready.set(), print("ready", flush=True))
    client.connect("127.0.0.1", port)
    client.loop_forever()


if __name__ == "__main__":
    main()
