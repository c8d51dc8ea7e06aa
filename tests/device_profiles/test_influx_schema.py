"""Records → line protocol; on a real influxd, retries overwrite and distinct records never collide."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud_ingest import InfluxClient
from device_profiles import check_record
from device_profiles.influx_schema import (
    ENRICHMENT_TAGS,
    envelope_lines,
    escape_tag,
    format_field,
    point_time_ns,
    record_line,
)
from device_profiles.records import RECORD_TYPES, FieldSpec
from tests.support.envelopes import sale


def test_line_shape() -> None:
    line = record_line("scale-0001", 42, sale(), {"market": "Futian No.1"})
    assert line.startswith("sale,device=scale-0001,market=Futian\\ No.1,plu=1001 seq=42i,")
    fields, ts = line.split(" ")[-2], line.split(" ")[-1]
    assert "seq=42i" in fields and "net_mg=275000i" in line and "stable=t" in line
    assert int(ts) == 1_764_000_000_000 * 1_000_000 + 42


def test_escaping() -> None:
    assert escape_tag("a,b=c d") == "a\\,b\\=c\\ d" and escape_tag("a\\") == "a\uff3c"
    assert format_field('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    assert format_field(1.5) == "1.5" and format_field(3) == "3i" and format_field(False) == "f"


def test_point_time_separates_seqs_within_a_millisecond() -> None:
    times = {point_time_ns(1_000, s) for s in range(10_000)}
    assert len(times) == 10_000


def test_retries_overwrite_and_equal_timestamps_do_not_collide(influx: InfluxClient) -> None:
    records = [sale(txn=i) for i in range(1, 6)]  # five sales, all with the same ts
    lines = envelope_lines("scale-0001", 100, records)
    influx.write(lines)
    influx.write(lines)  # a redelivery
    influx.write(envelope_lines("scale-0001", 102, records[2:3]))  # a retry of one record alone
    influx.write(envelope_lines("scale-0002", 100, records))  # another device, same seqs and ts
    rows = influx.rows("SELECT seq, txn FROM sale GROUP BY device")
    assert len(rows) == 10
    assert sorted((r["device"], r["seq"]) for r in rows) == sorted(
        (d, s) for d in ("scale-0001", "scale-0002") for s in range(100, 105)
    )


def _reference_line(device: str, seq: int, record: dict, extra_tags: dict) -> str:
    """record_line as it was written first (one dict of tags, every field looked up in its spec), kept to
    check that the per-type layout gives the same bytes."""
    rtype = RECORD_TYPES[record["type"]]
    tags = {"device": device, **extra_tags}
    fields = [f"seq={seq}i"]
    for name, spec in rtype.fields.items():
        value = record.get(name)
        if value is None:
            continue
        if spec.tag:
            if value != "":
                tags[name] = str(value)
        else:
            fields.append(f"{name}={format_field(float(value) if spec.kind == 'float' else value)}")
    tag_text = ",".join(f"{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v)
    return f"{rtype.measurement},{tag_text} {','.join(fields)} {point_time_ns(record['ts'], seq)}"


def _value(spec: FieldSpec) -> st.SearchStrategy[object]:
    if spec.kind == "int":
        return st.integers(int(spec.min if spec.min is not None else -(2**53)), int(spec.max or 2**53))
    if spec.kind == "float":
        lo, hi = spec.min if spec.min is not None else -1e9, spec.max if spec.max is not None else 1e9
        return st.floats(lo, hi) | st.integers(int(lo), int(hi))  # a device may send 20 for 20.0
    if spec.kind == "bool":
        return st.booleans()
    if spec.choices:
        return st.sampled_from(spec.choices)
    alphabet = st.characters(blacklist_categories=("Cs", "Cc")) if not spec.tag else st.sampled_from("ab-_.1é")
    return st.text(alphabet, max_size=min(spec.max_len, 12))  # within the field's length: the record is valid


@st.composite
def _records(draw: st.DrawFn) -> dict:
    rtype = RECORD_TYPES[draw(st.sampled_from(sorted(RECORD_TYPES)))]
    record: dict = {"type": rtype.name, "ts": draw(st.integers(0, 4_102_444_800_000))}
    for name, spec in rtype.fields.items():
        if spec.required or draw(st.booleans()):
            record[name] = draw(_value(spec))
    return record


_places = st.dictionaries(
    st.sampled_from([*ENRICHMENT_TAGS, "plu", "channel", "device"]),  # also keys a record's own tags have
    st.text(st.sampled_from('aZ ,=\\"-1'), max_size=6),
    max_size=4,
)


@given(st.lists(_records(), min_size=1, max_size=4), _places, st.integers(0, 2**53 - 10))
def test_lines_are_byte_for_byte_those_of_the_first_formatter(records: list[dict], place: dict, seq: int) -> None:
    for record in records:
        check_record(record)
    expected = [_reference_line("scale-0001", seq + i, r, place) for i, r in enumerate(records)]
    assert envelope_lines("scale-0001", seq, records, place) == expected
    assert [record_line("scale-0001", seq + i, r, place) for i, r in enumerate(records)] == expected


def test_a_device_moved_to_another_stall_gets_its_new_tags_at_once() -> None:
    """The device's escaped tags are remembered between messages; a registry change is never hidden by it."""
    from device_profiles.influx_schema import envelope_lines
    from device_profiles.records import EXAMPLE_SALE

    before = envelope_lines("scale-0001", 1, [EXAMPLE_SALE], {"market": "futian-no1", "stall": "A-017"})
    after = envelope_lines("scale-0001", 2, [EXAMPLE_SALE], {"market": "futian-no1", "stall": "B 002"})
    assert ",stall=A-017" in before[0] and ",stall=B\\ 002" in after[0] and "A-017" not in after[0]


def test_a_place_name_ending_in_a_backslash_is_stored_not_refused(influx: InfluxClient) -> None:
    """InfluxDB reads a backslash before the space after a tag value as an escape and refuses the write:
    a registry name or vendor holding one is written with U+FF3C instead, and the sale is stored."""
    line = record_line("scale-0001", 7, sale(), {"market": "Evil market\\", "stall": "A\\017"})
    influx.write([line])
    (row,) = influx.rows("SELECT seq, market, stall FROM sale WHERE device = 'scale-0001' AND seq = 7")
    assert (row["market"], row["stall"]) == ("Evil market\uff3c", "A\uff3c017")
