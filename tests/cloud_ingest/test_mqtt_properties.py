"""The ingest's paho property decoding (shared tables) gives what paho's own gives, packet by packet."""

from __future__ import annotations

import struct

import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from anti_cheat import Engine, ScaleFacts
from cloud_ingest import InfluxClient, IngestSettings, IngestWorker, Pipeline, mqtt_properties
from cloud_ingest.mqtt_properties import SharedTableProperties

V5 = MQTTProtocolVersion.MQTTv5


def _props_bytes(props: Properties | None) -> bytes:
    return bytes(props.pack()) if props is not None else b"\x00"


def _publish(topic: bytes, mid: int, props: Properties | None, payload: bytes) -> bytes:
    return struct.pack("!H", len(topic)) + topic + struct.pack("!H", mid) + _props_bytes(props) + payload


def _with_properties() -> Properties:
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 60
    props.ContentType = "application/json"
    props.UserProperty = ("a", "1")
    props.UserProperty = ("b", "2")
    props.CorrelationData = b"\x01\x02"
    return props


def _decoded(fn: object, *args: object) -> object:
    """What a decoder returns, with property and reason objects compared by their content."""
    try:
        result = fn(*args)  # type: ignore[operator]
    except MalformedPacket as exc:
        return ("malformed", str(exc))

    def plain(value: object) -> object:
        if isinstance(value, Properties):
            return ("props", value.packetType, value.json())
        if isinstance(value, list | tuple):
            return type(value)(plain(v) for v in value)
        return str(value) if type(value).__name__ == "ReasonCode" else value

    return plain(tuple(result))


PACKETS = [
    (_packet.decode_publish, 0x32, _publish(b"zhijian/v1/scale-0001/data", 7, None, b'{"v":1}')),
    (_packet.decode_publish, 0x32, _publish(b"zhijian/v1/scale-0001/data", 8, _with_properties(), b"x" * 300)),
    (_packet.decode_publish, 0x30, struct.pack("!H", 3) + b"a/b" + b"\x00" + b"payload"),  # QoS 0, no mid
    (_packet.decode_puback, 0x40, struct.pack("!H", 9)),  # success, short form
    (_packet.decode_puback, 0x40, struct.pack("!H", 9) + b"\x10"),  # no matching subscribers
    (_packet.decode_puback, 0x40, struct.pack("!H", 9) + b"\x10\x00"),
    (_packet.decode_puback, 0x40, struct.pack("!H", 9) + b"\x87\x05\x1f\x00\x02no"),  # reason string
    (_packet.decode_suback, 0x90, struct.pack("!H", 3) + b"\x00\x01\x01"),
    (_packet.decode_disconnect, 0xE0, b"\x8e\x00"),
    (_packet.decode_connack, 0x20, b"\x01\x00\x03\x21\x00\x14"),  # session present, ReceiveMaximum 20
    (_packet.decode_publish, 0x32, struct.pack("!H", 3) + b"a/b" + struct.pack("!H", 1) + b"\x05\x01"),  # truncated
    (_packet.decode_publish, 0x32, struct.pack("!H", 3) + b"a/b" + struct.pack("!H", 1) + b"\x02\x01\x01\x01\x01"),
]


@pytest.fixture
def paho_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_packet, "Properties", Properties)


def test_every_packet_decodes_as_with_pahos_own_properties(paho_own: None) -> None:
    expected = [_decoded(fn, header, data, V5) for fn, header, data in PACKETS]
    assert mqtt_properties.install()
    assert _packet.Properties is SharedTableProperties
    assert [_decoded(fn, header, data, V5) for fn, header, data in PACKETS] == expected
    assert expected[1][5][2]["UserProperty"] == [("a", "1"), ("b", "2")]  # type: ignore[index]


def test_install_is_idempotent_and_leaves_a_foreign_decoder_alone(
    paho_own: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert mqtt_properties.install()
    assert mqtt_properties.install()
    assert _packet.Properties is SharedTableProperties
    monkeypatch.setattr(_packet, "Properties", object)
    assert not mqtt_properties.install()
    assert _packet.Properties is object


def test_instances_share_tables_not_values() -> None:
    one, two = SharedTableProperties(PacketTypes.PUBLISH), SharedTableProperties(PacketTypes.PUBLISH)
    assert one.names is two.names
    one.UserProperty = ("k", "v")
    one.unpack(_with_properties().pack())  # unpack clears what was there, as paho's does
    assert not hasattr(two, "UserProperty") and not hasattr(two, "ContentType")
    assert one.ContentType == "application/json" and one.UserProperty == [("a", "1"), ("b", "2")]
    assert one.unpack(b"\x00") == (one, 1) and one.isEmpty()  # set before: paho's path, which clears
    with pytest.raises(Exception, match="does not apply"):
        SharedTableProperties(PacketTypes.PUBACK).SessionExpiryInterval = 5


def test_the_ingest_worker_installs_it(paho_own: None) -> None:
    pipeline = Pipeline(
        key_for=lambda _d: None, engine=Engine(ScaleFacts()), store=InfluxClient("http://127.0.0.1:9", "x")
    )
    IngestWorker(IngestSettings(metrics_port=0), pipeline)
    assert _packet.Properties is SharedTableProperties
