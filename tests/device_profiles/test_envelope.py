"""The envelope: signing the exact bytes, every rejection reason, and the record contract."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_profiles import (
    REJECT_REASONS,
    EnvelopeError,
    IntegrityError,
    amount_fen,
    check_record,
    decode,
    encode,
    topics,
)
from device_profiles.envelope import sign
from device_profiles.records import EXAMPLE_SALE
from tests.support.envelopes import BOOT, KEY, keys, payload, resign, resign_text, sale


def test_price_vector_in_integers() -> None:
    assert amount_fen(275_000, 12_300) == 3383  # 0.275 kg × 123.00 yuan/kg = 33.825 → 33.83
    assert amount_fen(-275_000, 12_300) == -3383
    assert amount_fen(0, 99_999) == 0


def test_round_trip_and_identity() -> None:
    env = decode(payload([sale(), sale(txn=2)]), topic_device="scale-0001", key_for=keys)
    assert (env.device, env.boot, env.seq, list(env.seqs)) == ("scale-0001", BOOT, 10, [10, 11])
    assert env.records[1]["txn"] == 2


def test_tag_is_over_the_exact_bytes() -> None:
    raw = payload()
    assert raw.endswith(b'"}') and b',"tag":"' in raw[-74:]
    json.loads(raw)  # still plain JSON for any consumer
    tampered = raw.replace(b"3383", b"3393")
    with pytest.raises(IntegrityError) as info:
        decode(tampered, topic_device="scale-0001", key_for=keys)
    assert info.value.reason == "bad_tag"
    with pytest.raises(IntegrityError, match="bad_tag"):
        decode(payload(key=b"x" * 32), topic_device="scale-0001", key_for=keys)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: b"{" + b" " * 300_000 + b"}", "oversized"),
        (lambda: b'{"v":1}', "missing_tag"),
        (lambda: payload()[:-3] + b'0"}', "bad_tag"),
        (lambda: resign({"v": 2, "device": "scale-0001"}), "schema_version"),
        (lambda: resign({"v": "1"}), "bad_envelope"),
        (
            lambda: resign({"v": 1, "device": "scale-0001", "boot": "nope", "seq": 1, "sent_ms": 1, "records": [1]}),
            "bad_envelope",
        ),
        (lambda: payload(device="scale-0001", seq=-1), "bad_envelope"),
        (lambda: payload(records=[]), "bad_envelope"),
        (lambda: payload(records=[sale(net_mg=1.5)]), "bad_record"),
        (lambda: payload(records=[sale(net_mg=10**12)]), "bad_record"),
        (lambda: payload(records=[sale(stable="yes")]), "bad_record"),
        (lambda: payload(records=[sale(colour="red")]), "bad_record"),
        (lambda: payload(records=[{k: v for k, v in sale().items() if k != "amount_fen"}]), "bad_record"),
        (lambda: payload(records=[sale(type="teleport")]), "bad_record"),
        (lambda: payload(records=[sale(ts=-5)]), "bad_record"),
        (
            lambda: payload(
                records=[
                    {
                        "type": "soil",
                        "ts": 1,
                        "moisture_pct": 101.0,
                        "temperature_c": 20.0,
                        "conductivity_us_cm": 300,
                        "ph": 6.5,
                    }
                ]
            ),
            "bad_record",
        ),
    ],
)
def test_every_reason(make, reason: str) -> None:
    assert reason in REJECT_REASONS
    with pytest.raises(EnvelopeError) as info:
        decode(make(), topic_device="scale-0001", key_for=keys)
    assert info.value.reason == reason


def test_device_mismatch_and_unknown_device() -> None:
    raw = encode(device="scale-0002", boot=BOOT, seq=1, sent_ms=1, records=[sale()], key=KEY)
    with pytest.raises(EnvelopeError, match="device_mismatch"):
        decode(raw, topic_device="scale-0001", key_for=keys)
    with pytest.raises(EnvelopeError, match="unknown_device"):
        decode(raw, topic_device="scale-0002", key_for=keys)


def test_malformed_json_with_a_valid_tag() -> None:
    body = b'{"v":1,"device":'
    with pytest.raises(EnvelopeError, match="malformed_json"):
        decode(body + b',"tag":"' + sign(KEY, body).encode() + b'"}', topic_device="scale-0001", key_for=keys)


@given(st.binary(max_size=400))
def test_fuzz_any_bytes_give_an_envelope_error(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode(data, topic_device="scale-0001", key_for=keys)


def test_topics() -> None:
    assert topics.topic("scale-0001", "data") == "zhijian/v1/scale-0001/data"
    assert topics.parse("zhijian/v1/scale-0001/status") == ("scale-0001", "status")
    assert topics.parse("zhijian/v1/Scale+1/data") is None
    assert topics.parse("other/v1/scale-0001/data") is None
    assert topics.subscription("data", share_group="g") == "$share/g/zhijian/v1/+/data"
    with pytest.raises(ValueError):
        topics.topic("a/b", "data")
    assert all("%u" in line for line in topics.acl_lines())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


@given(
    st.dictionaries(
        st.sampled_from(["type", "ts", "net_mg", "plu", "stable", "txn", "moisture_pct", "x"]), json_values, max_size=6
    ),
    st.sampled_from(["sale", "soil", "gps", None]),
)
def test_fuzz_signed_garbage_records_give_bad_record_not_a_crash(record: dict, rtype: str | None) -> None:
    if rtype is not None:
        record["type"] = rtype
    raw = encode(device="scale-0001", boot=BOOT, seq=1, sent_ms=1, records=[record], key=KEY)
    try:
        decode(raw, topic_device="scale-0001", key_for=keys)
    except EnvelopeError as exc:
        assert exc.reason == "bad_record"


def test_huge_integers_in_float_fields_are_out_of_range_not_a_crash() -> None:
    soil = {"type": "soil", "ts": 1, "moisture_pct": 10**400, "temperature_c": 20.0, "conductivity_us_cm": 1, "ph": 7}
    with pytest.raises(EnvelopeError, match="bad_record"):
        decode(payload(records=[soil]), topic_device="scale-0001", key_for=keys)


def _signed_sale_text(**replace: bytes) -> bytes:
    """A valid envelope's signed JSON text with some of its bytes replaced, re-signed."""
    text = payload()[: -len(',"tag":"') - 64 - 2] + b"}"
    for old, new in replace.items():
        text = text.replace(old.encode(), new)
    return resign_text(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_signed_sale_text(**{'"plu":"1001"': b'"plu":"\\ud800"'}), "bad_json"),  # a lone surrogate
        (_signed_sale_text(**{'"plu":"1001"': b'"plu":"10\\udfff"'}), "bad_json"),
        (_signed_sale_text(**{'"plu":"1001"': b'"plu":"\\ud83d\\ude00"'}), None),  # a surrogate pair is text
        (_signed_sale_text(**{'"plu":"1001"': b'"plu":"10\\u0000"'}), "bad_record"),  # a control character
        (_signed_sale_text(**{'"plu":"1001"': b'"plu":"10\\n"'}), "bad_record"),
        (_signed_sale_text(**{'"v":1,': b'"v":1,"x":' + b"[" * 5000 + b"]" * 5000 + b","}), "bad_json"),
        (_signed_sale_text(**{'"v":1,': b'"v":1,"extra":0,'}), "bad_envelope"),  # unknown member
        (_signed_sale_text(**{'"net_mg":275000': b'"net_mg":[[[[275000]]]]'}), "bad_record"),
    ],
)
def test_json_beyond_the_contract_is_refused_at_decode(text: bytes, reason: str | None) -> None:
    if reason is None:
        env = decode(text, topic_device="scale-0001", key_for=keys)
        assert env.records[0]["plu"] == "\U0001f600"
        return
    with pytest.raises(EnvelopeError) as info:
        decode(text, topic_device="scale-0001", key_for=keys)
    assert info.value.reason == reason
    str(info.value).encode()  # the message itself is printable text, whatever the payload held


def test_the_contracts_examples_are_valid_records() -> None:
    from device_profiles.records import EXAMPLE_RAPID_TEST, EXAMPLE_REWEIGH

    for example in (EXAMPLE_SALE, EXAMPLE_REWEIGH, EXAMPLE_RAPID_TEST):
        check_record(example)


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("net_mg", 5, True),  # int
        ("net_mg", True, False),
        ("net_mg", 5.0, False),
        ("net_mg", "5", False),
        ("net_mg", [5], False),
        ("stable", False, True),  # bool
        ("stable", 0, False),
        ("stable", "true", False),
        ("plu", "1001", True),  # str, a tag
        ("plu", "10 01", False),
        ("plu", "1" * 17, False),
        ("plu", 1001, False),
        ("tare_kind", "weighed", True),  # str with choices
        ("tare_kind", "heavy", False),
    ],
)
def test_each_kind_takes_only_its_own_json_type(field: str, value: object, ok: bool) -> None:
    record = sale(**{field: value})
    if ok:
        check_record(record)
        return
    with pytest.raises(EnvelopeError, match=rf"bad_record: record\.{field} must be"):
        check_record(record)


@pytest.mark.parametrize(
    ("value", "ok"), [(20, True), (20.5, True), (True, False), (float("inf"), False), ("20", False), (101, False)]
)
def test_a_float_field_takes_integers_and_finite_floats_in_range(value: object, ok: bool) -> None:
    soil = {"type": "soil", "ts": 1, "moisture_pct": value}
    if ok:
        check_record(soil)
        return
    with pytest.raises(EnvelopeError, match=r"bad_record: record\.moisture_pct"):
        check_record(soil)
