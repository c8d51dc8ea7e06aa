"""The gross-load fields of the contract: a sale's tare kind, empty-pan counts and zero-setting counter, a
re-weigh's receipt tare. Optional, so old records stay valid; mapped to InfluxDB like their kin; read off
MT-SICS replies of new and old firmware alike."""

from __future__ import annotations

import pytest

from cloud_ingest import InfluxClient
from device_profiles import EnvelopeError, builtin, check_record
from device_profiles.codecs import mtsics
from device_profiles.influx_schema import envelope_lines, record_line, tag_keys
from device_profiles.records import EXAMPLE_REWEIGH, EXAMPLE_SALE, RECORD_TYPES, TARE_KINDS

NEW = {"tare_gross_mg": 205_000, "tare_kind": "weighed", "empty_counts": 120_003, "zero_set_events": 41}


def test_the_new_fields_are_optional_and_checked() -> None:
    check_record(dict(EXAMPLE_SALE))  # an old agent's sale
    check_record(dict(EXAMPLE_REWEIGH))
    check_record({**EXAMPLE_SALE, "tare_mg": 205_000, **NEW})
    check_record({**EXAMPLE_SALE, "tare_mg": 5_000, "tare_kind": "preset", "tare_gross_mg": 0})
    check_record({**EXAMPLE_REWEIGH, "claimed_tare_mg": 5_000})
    assert TARE_KINDS == ("weighed", "preset")
    for name in ("tare_kind", "empty_counts", "zero_set_events"):
        assert not RECORD_TYPES["sale"].fields[name].required
    for bad in (
        {"tare_kind": "keyed"},
        {"tare_kind": ""},
        {"tare_kind": "T"},
        {"empty_counts": -1},
        {"empty_counts": 2**31},
        {"zero_set_events": 1.5},
        {"zero_set_events": -1},
    ):
        with pytest.raises(EnvelopeError, match="bad_record"):
            check_record({**EXAMPLE_SALE, **bad})
    with pytest.raises(EnvelopeError, match="claimed_tare_mg"):
        check_record({**EXAMPLE_REWEIGH, "claimed_tare_mg": -5})


def test_tare_kind_is_a_tag_like_the_other_enumerations_and_the_counts_are_integer_fields() -> None:
    assert "tare_kind" in tag_keys("sale")
    line = record_line("scale-0001", 7, {**EXAMPLE_SALE, "tare_mg": 205_000, **NEW})
    tags, fields = line.split(" ")[0], line.split(" ")[1]
    assert tags == "sale,device=scale-0001,plu=1001,tare_kind=weighed"
    assert "empty_counts=120003i" in fields and "zero_set_events=41i" in fields and "tare_gross_mg=205000i" in fields
    old = record_line("scale-0001", 8, dict(EXAMPLE_SALE))
    assert "tare_kind" not in old and "empty_counts" not in old
    reweigh = record_line("fair-0001", 3, {**EXAMPLE_REWEIGH, "claimed_tare_mg": 5_000})
    assert "claimed_tare_mg=5000i" in reweigh.split(" ")[1]


def test_old_and_new_sales_live_side_by_side_in_influxdb(influx: InfluxClient) -> None:
    records = [
        dict(EXAMPLE_SALE),
        {**EXAMPLE_SALE, "txn": 2, "tare_mg": 205_000, **NEW},
        {**EXAMPLE_SALE, "txn": 3, "tare_mg": 5_000, **NEW, "tare_kind": "preset", "tare_gross_mg": 0},
    ]
    influx.write(envelope_lines("scale-0001", 10, records))
    rows = influx.rows("SELECT txn, tare_mg, empty_counts, zero_set_events FROM sale GROUP BY tare_kind")
    got = sorted((r.get("tare_kind") or "", r["txn"], r["empty_counts"]) for r in rows)
    assert got == [("", 1, None), ("preset", 3, 120_003), ("weighed", 2, 120_003)]


SALE_REPLY = builtin("zj-pcs-30").mtsics.extensions["transaction"].reply  # type: ignore[union-attr]
OPTIONAL = frozenset(n for n, f in RECORD_TYPES["sale"].fields.items() if not f.required)
OLD_XTR = b'XTR A 17 1764000000000 "1001" 275000 0 12300 3383 1 800 125500 120000 3 7\r\n'


def _line(raw: bytes) -> mtsics.Line:
    line, used = mtsics.decode(raw)
    assert line is not None and used == len(raw)
    return line


def test_a_reply_of_older_firmware_maps_onto_the_longer_profile() -> None:
    assert SALE_REPLY[-4:] == ["tare_gross_mg", "tare_kind", "empty_counts", "zero_set_events"]  # added at the end
    fields = mtsics.fields_of(_line(OLD_XTR), SALE_REPLY, OPTIONAL)
    assert list(fields) == SALE_REPLY[:13] and fields["configuration_events"] == "7"
    new = _line(OLD_XTR[:-2] + b' 205000 "weighed" 120003 41\r\n')
    assert mtsics.fields_of(new, SALE_REPLY, OPTIONAL)["tare_kind"] == "weighed"
    unreported = _line(OLD_XTR[:-2] + b' "" "" 120003 41\r\n')  # a sale without tare
    assert set(mtsics.fields_of(unreported, SALE_REPLY, OPTIONAL)) == set(SALE_REPLY) - {"tare_gross_mg", "tare_kind"}


@pytest.mark.parametrize(
    "raw",
    [
        b'XTR A 17 1764000000000 "1001" 275000 0 12300 3383 1 800 125500 120000 3\r\n',  # a required field short
        OLD_XTR[:-2] + b' 205000 "weighed" 120003 41 9\r\n',  # one value too many
    ],
)
def test_a_reply_short_of_a_required_field_or_too_long_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="values, profile names 17"):
        mtsics.fields_of(_line(raw), SALE_REPLY, OPTIONAL)


def test_an_empty_string_stays_a_value_for_a_required_field() -> None:
    line = _line(b'XTR A 17 1764000000000 "" 275000 0 12300 3383 1 800 125500 120000 3 7\r\n')
    assert mtsics.fields_of(line, SALE_REPLY, OPTIONAL)["plu"] == ""  # the record check judges it, not the codec


def test_without_optional_names_the_reply_must_match_exactly() -> None:
    with pytest.raises(ValueError, match="13 values, profile names 17"):
        mtsics.fields_of(_line(OLD_XTR), SALE_REPLY)
